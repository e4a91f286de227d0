/*
 * index_scan_heap.c
 *	  Scans of an index without a compressor (QDB_BUILT_UNTRAINED): every
 *	  row of the heap that the index covers, in exact order.
 *
 * Such an index was built on a table with too few rows to train a
 * compressor and stores nothing.  Its scans read the whole heap with the
 * scan's snapshot, keep the rows whose indexed value is not NULL (nor,
 * under cosine, a zero vector) and that satisfy the index's predicate, compute the operator class's distance
 * function to the query and sort: the answer a sequential scan and a sort
 * would give, for tables small enough that this is what the planner would
 * do anyway.  REINDEX trains the compressor once the table has rows enough.
 */
#include "postgres.h"

#include <math.h>

#include "access/relscan.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "index.h"

static int
row_cmp(const void *a, const void *b)
{
	const QdbScanRow *x = a,
			   *y = b;

	/* NaN (pgvector's cosine of a zero vector) sorts last, as in float8 */
	if (isnan(x->dist) || isnan(y->dist))
		return isnan(x->dist) - isnan(y->dist);
	if (x->dist != y->dist)
		return x->dist < y->dist ? -1 : 1;
	return ItemPointerCompare((ItemPointer) &x->tid, (ItemPointer) &y->tid);
}

/* Under cosine an index holds no zero vector; neither does this scan. */
static bool
zero_vector(QdbIndexCache *c, Datum value, MemoryContext row_cxt)
{
	MemoryContext old = MemoryContextSwitchTo(row_cxt);
	int			dim;
	float	   *x = QdbDatumGetFloats(value, c->vectype, &dim, "vector");
	int			i;

	for (i = 0; i < dim && x[i] == 0; i++)
		;
	MemoryContextSwitchTo(old);
	MemoryContextReset(row_cxt);
	return i == dim;
}

/*
 * The rows, in *rows (palloc'd in the current context), and their count.
 * Without a query (ORDER BY column <op> NULL) every distance is 0 and the
 * order is the heap's.
 */
int
QdbExactHeapScan(IndexScanDesc scan, QdbIndexCache *c, FmgrInfo *distproc,
				 Oid collation, struct varlena *query, QdbScanRow **rows)
{
	Relation	heap = scan->heapRelation;
	Relation	index = scan->indexRelation;
	IndexInfo  *indexInfo = BuildIndexInfo(index);
	AttrNumber	attnum = index->rd_index->indkey.values[0];
	EState	   *estate = NULL;
	ExprContext *econtext = NULL;
	ExprState  *predicate = NULL;
	TableScanDesc hs;
	TupleTableSlot *slot;
	MemoryContext row_cxt,
				old;
	QdbScanRow *out;
	int			n = 0,
				cap = 64;

	if (query)
	{
		int			dim;
		float	   *x = QdbDatumGetFloats(PointerGetDatum(query), c->vectype, &dim, "query");

		if (c->metric == QDB_METRIC_COSINE)
			QdbCheckNonZero(x, dim, "query");
	}
	slot = table_slot_create(heap, NULL);
	if (indexInfo->ii_Predicate != NIL)
	{
		estate = CreateExecutorState();
		econtext = GetPerTupleExprContext(estate);
		econtext->ecxt_scantuple = slot;
		predicate = ExecPrepareQual(indexInfo->ii_Predicate, estate);
	}
	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb heap scan row",
									ALLOCSET_DEFAULT_SIZES);
	out = palloc(sizeof(QdbScanRow) * cap);
	hs = table_beginscan(heap, scan->xs_snapshot, 0, NULL);
	while (table_scan_getnextslot(hs, ForwardScanDirection, slot))
	{
		Datum		value;
		bool		isnull;

		CHECK_FOR_INTERRUPTS();
		if (predicate)
		{
			ResetExprContext(econtext);
			if (!ExecQual(predicate, econtext))
				continue;
		}
		value = slot_getattr(slot, attnum, &isnull);
		if (isnull || (c->metric == QDB_METRIC_COSINE && zero_vector(c, value, row_cxt)))
			continue;
		if (n == cap)
		{
			if ((Size) cap * 2 * sizeof(QdbScanRow) > MaxAllocSize)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("index \"%s\" has no compressor and its table has too many rows to scan through it",
								RelationGetRelationName(index)),
						 errhint("REINDEX INDEX %s;", RelationGetRelationName(index))));
			cap *= 2;
			out = repalloc(out, sizeof(QdbScanRow) * cap);
		}
		out[n].tid = slot->tts_tid;
		out[n].dist = 0;
		if (query)
		{
			old = MemoryContextSwitchTo(row_cxt);
			out[n].dist = DatumGetFloat8(FunctionCall2Coll(distproc, collation, value,
														   PointerGetDatum(query)));
			MemoryContextSwitchTo(old);
			MemoryContextReset(row_cxt);
		}
		n++;
	}
	table_endscan(hs);
	ExecDropSingleTupleTableSlot(slot);
	if (estate)
		FreeExecutorState(estate);
	MemoryContextDelete(row_cxt);
	if (query)
		qsort(out, n, sizeof(QdbScanRow), row_cmp);
	*rows = out;
	return n;
}
