/*
 * toast_fetch.h
 *	  Values stored out of line (TOAST), read for a batch of rows through
 *	  one open TOAST relation and one index scan (toast_fetch.c).
 */
#ifndef QDB_TOAST_FETCH_H
#define QDB_TOAST_FETCH_H

#include "access/genam.h"
#include "executor/tuptable.h"
#include "utils/rel.h"
#include "utils/snapshot.h"

typedef struct QdbToastFetch
{
	Oid			toastrelid;		/* InvalidOid: nothing open */
	bool		server_path;	/* the batch's TOAST relation is not for us */
	Relation	toastrel;
	Relation   *toastidxs;
	int			num_indexes;
	IndexScanDesc scan;			/* on the valid index, rescanned per value */
	TupleTableSlot *slot;
	SnapshotData snapshot;		/* SnapshotToast, set up when opened */
	ScanKeyData key;
} QdbToastFetch;

/* An empty fetcher: opens nothing until a value stored out of line comes. */
extern void QdbToastFetchInit(QdbToastFetch *f);

/*
 * The value of d as the server's detoasting gives it (decompressed, with a
 * 4-byte header), palloc'd in the current memory context; values not stored
 * out of line go through QdbDetoastDatum.
 */
extern struct varlena *QdbToastFetchValue(QdbToastFetch *f, Datum d);

/* Prefetches the chunks of n TOAST pointers, when that has paid lately. */
extern void QdbToastFetchPrefetch(QdbToastFetch *f, const Datum *values, int n);

/* Ends the scan and closes what the fetcher opened; it can be used again. */
extern void QdbToastFetchEnd(QdbToastFetch *f);

#endif							/* QDB_TOAST_FETCH_H */
