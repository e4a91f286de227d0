/*
 * distance_memo.h
 *	  Exact distances an index scan's rerank computed, found again by the
 *	  distance functions when the executor asks for them (distance_memo.c).
 */
#ifndef QDB_DISTANCE_MEMO_H
#define QDB_DISTANCE_MEMO_H

#include "postgres.h"

#include "fmgr.h"

typedef struct QdbDistanceMemo QdbDistanceMemo;

extern QdbDistanceMemo *QdbDistanceMemoCreate(MemoryContext cxt, FmgrInfo *flinfo,
											  Datum raw_query,
											  const struct varlena *query);
extern void QdbDistanceMemoClear(QdbDistanceMemo *memo, int expected);
extern double QdbCallDistance(FmgrInfo *proc, Oid collation, Datum a, Datum b);
extern double QdbDistanceMemoCall(QdbDistanceMemo *memo, FmgrInfo *proc,
								  Oid collation, Datum stored, Datum value,
								  Datum query);
extern bool QdbDistanceMemoFind(FunctionCallInfo fcinfo, double *dist);
extern void QdbDistanceMemoKeep(FunctionCallInfo fcinfo, double dist);

#endif							/* QDB_DISTANCE_MEMO_H */
