/*
 * graph_memory.h
 *	  The HNSW graph of a build, in memory, filled by several threads
 *	  (graph_memory.c); index_build.c owns its arrays and writes it to pages.
 */
#ifndef QDB_GRAPH_MEMORY_H
#define QDB_GRAPH_MEMORY_H

#include "postgres.h"

#include "storage/itemptr.h"

#include "graph_vec16.h"
#include "qdb_trainer.h"

typedef struct QdbMemNode
{
	ItemPointerData tid;
	uint8		level;
	int32	   *nb;				/* (2m + level * m) node numbers, packed, -1 empty */
} QdbMemNode;

typedef struct QdbMemGraph
{
	QdbMetric	metric;			/* of the vectors' distances (L2 when projected) */
	int			dim;			/* of the input rows (batch_x) */
	int			vec_dim;		/* of vectors: dim, or dim_pq when projected */
	int			code_size;
	int			m;
	int			ef_construction;
	int			max_level;		/* no node is drawn higher */
	const float *pair;			/* code-to-code table */
	QdbMemNode *nodes;
	uint8	   *codes;			/* (cap, code_size) */
	float	   *vectors;		/* (cap, vec_dim), unit under cosine, or the
								 * model's projection (the auto-tuner's) */
	int16	   *vec16;			/* or these vectors as 16-bit integers
								 * (graph_vec16.c), (cap, vec16_stride): the
								 * build's; both NULL: codes only */
	QdbVec16Info *vec16_info;	/* (cap) */
	int			vec16_stride;
	QdbVec16DotFn vec16_dot;
	QdbVec16Dot4Fn vec16_dot4;	/* NULL: vec16_dot a row at a time */
	uint8	   *locks;			/* a spinlock per node */
	int			n;
	int			cap;
	uint64		entry;			/* entry point and its level, one atomic word */
	const float *batch_x;		/* the batch's input vectors */
	int			next;			/* next row of the batch to insert */
	int			stop;			/* set by the leader on a cancel: no more rows */
} QdbMemGraph;

extern void QdbMemGraphInit(QdbMemGraph *g, QdbMetric metric, int dim, int vec_dim,
							int code_size, int m, int ef_construction, int max_level,
							const float *pair);
extern int	QdbMemGraphEntry(const QdbMemGraph *g, int *level);
extern int	QdbMemGraphInsert(QdbMemGraph *g, const QdbModel *model, int first, int count,
							  int nthreads);

/* Walks of a finished graph by ADC over any compressor's codes (graph_memory.c) */
typedef struct QdbMemWalker QdbMemWalker;
struct QdbCandidate;
extern QdbMemWalker *QdbMemWalkerCreate(const QdbMemGraph *g, const QdbModel *model,
										const uint8 *codes, const QdbAlloc *alloc);
extern void QdbMemWalkerFree(QdbMemWalker *walker);
extern int	QdbMemWalk(QdbMemWalker *walker, const float *query, int ef,
					   struct QdbCandidate *out, int64 *distances);

#endif							/* QDB_GRAPH_MEMORY_H */
