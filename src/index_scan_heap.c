/*
 * index_scan_heap.c
 *	  Scans of an index without a compressor (QDB_BUILT_UNTRAINED): every
 *	  row of the heap that the index covers, in exact order.
 *
 * Such an index was built on a table with too few rows to train a
 * compressor and stores nothing.  Its scans read the whole heap with the
 * scan's snapshot, keep the rows whose indexed value is not NULL (nor,
 * under cosine, a zero vector) and that satisfy the index's predicate,
 * compute the operator class's distance function to the query and sort:
 * the answer a sequential scan and a sort would give, for tables small
 * enough that this is what the planner would do anyway (index_cost.c
 * prices it so).  REINDEX trains the compressor once the table has rows enough.
 *
 * A trained index's scans take this path too for a user whom row-level
 * security on the table restricts (QdbScanExactForUser).
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/subtrans.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "catalog/pg_inherits.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "executor/tuptable.h"
#include "utils/memutils.h"
#include "utils/acl.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "distance_memo.h"
#include "index.h"

/* Rows by distance, NaN last, then by TID (qsort). */
int
QdbScanRowCmp(const void *a, const void *b)
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
zero_vector(QdbIndexCache *c, Datum value)
{
	int			dim;
	float	   *x = QdbDatumGetFloats(value, c->vectype, &dim, "vector");

	return QdbVectorIsZero(x, dim);
}

typedef struct HeapRows
{
	QdbIndexCache *c;
	FmgrInfo   *distproc;
	Oid			collation;
	struct varlena *query;		/* NULL: no distances */
	MemoryContext row_cxt;		/* reset after each row */
	QdbScanRow *rows;			/* in the caller's context */
	int			n;
	int			cap;
	Relation	index;
} HeapRows;

/* One row of the heap scan (an IndexBuildCallback): tid is its chain's root. */
static void
heap_row(Relation index, ItemPointer tid, Datum *values, bool *isnull,
		 bool tupleIsAlive, void *state)
{
	HeapRows   *h = state;
	MemoryContext old;
	double		dist = 0;

	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(h->row_cxt);
	if (h->c->metric == QDB_METRIC_COSINE && zero_vector(h->c, values[0]))
	{
		MemoryContextSwitchTo(old);
		MemoryContextReset(h->row_cxt);
		return;
	}
	if (h->query)
		dist = QdbCallDistance(h->distproc, h->collation, values[0], PointerGetDatum(h->query));
	MemoryContextSwitchTo(old);
	MemoryContextReset(h->row_cxt);

	if (h->n == h->cap)
	{
		if ((Size) h->cap * 2 * sizeof(QdbScanRow) > MaxAllocSize)
		{
			if (h->c->untrained)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("index \"%s\" has no compressor and its table has too many rows to scan through it",
								RelationGetRelationName(h->index)),
						 errhint("REINDEX INDEX %s;", QdbRelationSqlName(h->index))));
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("index \"%s\" reads its table for you, under row-level security, and the table has too many rows to scan through it",
							RelationGetRelationName(h->index)),
					 errhint("SET enable_indexscan = off for this query, or ask a superuser about quantumdb.approximate_under_rls.")));
		}
		h->cap *= 2;
		h->rows = repalloc(h->rows, sizeof(QdbScanRow) * h->cap);
	}
	h->rows[h->n].tid = *tid;
	h->rows[h->n].dist = dist;
	h->n++;
}

/*
 * The rows, in *rows (palloc'd in the current context), and their count.
 * Without a query (ORDER BY column <op> NULL) every distance is 0 and the
 * order is the heap's.
 *
 * The heap is read by the table AM's index-build scan, given a scan with
 * the index scan's MVCC snapshot: it evaluates the partial-index predicate
 * and, for a row updated in place (a HOT chain), gives the TID of its
 * chain's root, the TID an index entry must carry for the executor's fetch
 * to follow the chain to the visible version.
 */
int
QdbExactHeapScan(IndexScanDesc scan, QdbIndexCache *c, FmgrInfo *distproc,
				 Oid collation, struct varlena *query, QdbScanRow **rows)
{
	Relation	heap = scan->heapRelation;
	Relation	index = scan->indexRelation;
	IndexInfo  *indexInfo = BuildIndexInfo(index);
	TableScanDesc hs;
	HeapRows	h;
	QdbAsRole	as;

	if (!IsMVCCSnapshot(scan->xs_snapshot))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg(c->untrained ?
						"index \"%s\" has no compressor and can only be scanned with an MVCC snapshot" :
						"index \"%s\" reads its table for you, under row-level security, and can only be scanned with an MVCC snapshot",
						RelationGetRelationName(index))));
	/* the caller checked the query (start_scan) */
	memset(&h, 0, sizeof(h));
	h.c = c;
	h.distproc = distproc;
	h.collation = collation;
	h.query = query;
	h.index = index;
	h.cap = 64;
	h.rows = palloc(sizeof(QdbScanRow) * h.cap);
	h.row_cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb heap scan row",
									  ALLOCSET_DEFAULT_SIZES);

	/* an MVCC snapshot of our own (not a build's): no OldestXmin to use */
	indexInfo->ii_Concurrent = true;
	/* no synchronized scan: rows in heap order from its first block */
	hs = table_beginscan_strat(heap, scan->xs_snapshot, 0, NULL, true, false);

	/*
	 * The scan evaluates the index's predicate and expressions: as the
	 * table's owner in a security-restricted operation, as a build does.
	 * As the caller, any reader (a superuser too) ran the owner's functions
	 * with its own rights (session 66's hunt, /work/runs/hunt-s66a.md F1:
	 * a predicate function made its owner a superuser).
	 */
	QdbAsRoleBegin(&as, heap->rd_rel->relowner, 0);
	(void) table_index_build_range_scan(heap, index, indexInfo, true, false, false,
										0, InvalidBlockNumber, heap_row, &h, hs);
	QdbAsRoleEnd(&as);
	MemoryContextDelete(h.row_cxt);
	if (query)
		qsort(h.rows, h.n, sizeof(QdbScanRow), QdbScanRowCmp);
	*rows = h.rows;
	return h.n;
}

/*
 * Whether row-level security applies to the current user on relid or on a
 * table it inherits from, at any depth (a partition's or an inheritance
 * child's: a query naming the parent filters by the parent's policies,
 * while the index scanned is the child's, whose own security is usually
 * off; session 57's review, /work/runs/review-s57.md R1).  A query naming
 * the child itself then gets exact rows too.
 */
static bool
rls_applies(Oid relid, Oid roleid)
{
	Relation	inh;
	SysScanDesc sscan;
	ScanKeyData key;
	HeapTuple	tup;
	bool		found = false;

	if (check_enable_rls(relid, roleid, true) == RLS_ENABLED)
		return true;
	/*
	 * a role that bypasses row-level security (a superuser, BYPASSRLS) on
	 * the parents too: their pg_inherits look cost every query two buffer
	 * reads (session 67's hunt, /work/runs/hunt-s67a.md F1)
	 */
	if (has_bypassrls_privilege(roleid))
		return false;
	check_stack_depth();
	inh = table_open(InheritsRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	sscan = systable_beginscan(inh, InheritsRelidSeqnoIndexId, true, NULL, 1, &key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(sscan)))
		found = rls_applies(((Form_pg_inherits) GETSTRUCT(tup))->inhparent, roleid);
	systable_endscan(sscan);
	table_close(inh, AccessShareLock);
	return found;
}

/*
 * Whether the current user's scans of an index of table heapoid read its
 * heap and return rows in exact order (QdbExactHeapScan) though the index
 * has a compressor: row-level security on the table applies to the user,
 * or on a table it inherits from (rls_applies), unless a superuser set
 * quantumdb.approximate_under_rls.  An approximate
 * scan's order and choice of rows depend on every row of the table, the
 * ones the policies hide included (index_scan.c, start_scan).  The user is
 * the current one, as the compressor's own rule has it
 * (compressor_catalog.c), not a view owner's whose rights a query uses:
 * such a query gets exact rows too; nor a SECURITY DEFINER function's
 * owner alone.
 */
bool
QdbScanExactForUser(Oid heapoid)
{
	if (qdb_approximate_under_rls)
		return false;
	if (rls_applies(heapoid, GetUserId()))
		return true;
	/*
	 * Inside a SECURITY DEFINER function, the session's user too: the AM
	 * begins a scan at its first fetch, so a definer function fetching
	 * from a cursor a restricted reader declared would otherwise choose
	 * for the function's owner (session 57's review R2).  Such a function
	 * querying the table itself then gets exact rows for that reader too.
	 */
	return GetOuterUserId() != GetUserId() && rls_applies(heapoid, GetOuterUserId());
}

/*
 * Whether this transaction deleted the heap tuple in slot (a buffer heap
 * tuple of a scan): a delete it may yet undo, by ROLLBACK or ROLLBACK TO.
 * Not so for a row inserted by the deleting (sub)transaction or one inside
 * it: whatever undoes the delete undoes the insert too (session 61's
 * second review, F1.1).
 */
static bool
deleted_here(TupleTableSlot *slot)
{
	BufferHeapTupleTableSlot *bslot = (BufferHeapTupleTableSlot *) slot;
	HeapTupleHeader h;
	TransactionId deleter = InvalidTransactionId;
	TransactionId inserter;

	Assert(TTS_IS_BUFFERTUPLE(slot) && BufferIsValid(bslot->buffer));
	LockBuffer(bslot->buffer, BUFFER_LOCK_SHARE);
	h = bslot->base.tuple->t_data;
	if (!(h->t_infomask & HEAP_XMAX_INVALID) && !HEAP_XMAX_IS_LOCKED_ONLY(h->t_infomask))
		deleter = HeapTupleHeaderGetUpdateXid(h);
	inserter = HeapTupleHeaderGetRawXmin(h);
	LockBuffer(bslot->buffer, BUFFER_LOCK_UNLOCK);
	if (!TransactionIdIsValid(deleter) || !TransactionIdIsCurrentTransactionId(deleter))
		return false;
	/* up from the inserter through this transaction's subtransactions */
	while (TransactionIdIsValid(inserter) && TransactionIdIsCurrentTransactionId(inserter))
	{
		if (TransactionIdEquals(inserter, deleter))
			return false;
		inserter = SubTransGetParent(inserter);
	}
	return true;
}

/*
 * Whether the heap holds a row whose indexed value has dim dimensions and
 * that may yet be there when every transaction ends: committed or still
 * being inserted (not one whose insert aborted), and not deleted, or
 * deleted by a transaction that has not committed, this one included.  An
 * index without a compressor takes another row's dimensions only where
 * none is left of the ones it has (index_insert.c), and the meta page it
 * writes them to is not rolled back: a DELETE of the last rows of them
 * undone by a ROLLBACK (or ROLLBACK TO SAVEPOINT) left the index taking
 * rows of the new dimensions beside them (session 61's hunt).  A dirty
 * snapshot sees other transactions' rows in progress but not this one's
 * deletes, so a heap table is read with SnapshotAny, each row counted when
 * the dirty snapshot sees it or this transaction deleted it.  For a table
 * of another AM, whose deletes cannot be told so, it answers true: such an
 * index keeps its dimensions until a REINDEX.  A row outside a partial
 * index's predicate counts too.  It runs only when a row's dimensions
 * differ from the index's, first without the index's update lock and,
 * only when that found none, again holding off the index's inserts, and
 * stops at the first row of dim: a table that has rows of them pays that
 * far.  The table of such an
 * index is usually small (under the rows a compressor needs), but one
 * nobody reindexed can be any size; a cancel stops the search.
 */
bool
QdbHeapHasDim(Relation heap, Relation index, QdbIndexCache *c, int dim)
{
	AttrNumber	attno = index->rd_index->indkey.values[0];
	MemoryContext row_cxt;
	SnapshotData dirty;
	TableScanDesc hs;
	TupleTableSlot *slot;
	bool		found = false;

	/*
	 * Another table AM: this transaction's deletes cannot be told, and a
	 * rollback of them would leave two dimensions: the index keeps its own
	 * (REINDEX takes the rows' again, as the error's hint says)
	 */
	if (heap->rd_tableam != GetHeapamTableAmRoutine())
		return true;
	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb dimension check",
									ALLOCSET_DEFAULT_SIZES);
	InitDirtySnapshot(dirty);
	hs = table_beginscan(heap, SnapshotAny, 0, NULL);
	slot = table_slot_create(heap, NULL);
	while (!found && table_scan_getnextslot(hs, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		value;
		MemoryContext old;
		int			d;

		CHECK_FOR_INTERRUPTS();
		if (!table_tuple_satisfies_snapshot(heap, slot, &dirty) && !deleted_here(slot))
			continue;
		value = slot_getattr(slot, attno, &isnull);
		if (isnull)
			continue;
		/* from the header: a row the index never checked may hold NaN */
		old = MemoryContextSwitchTo(row_cxt);
		d = QdbDatumDims(value, c->vectype);
		MemoryContextSwitchTo(old);
		MemoryContextReset(row_cxt);
		found = d == dim;
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(hs);
	MemoryContextDelete(row_cxt);
	return found;
}

/* What count_row counts with. */
typedef struct CountRows
{
	QdbIndexCache *c;
	MemoryContext row_cxt;		/* reset after each row */
	double		rows;
} CountRows;

/* counts the rows a build would take: a vector, not a zero one under cosine */
static void
count_row(Relation index, ItemPointer tid, Datum *values, bool *isnull,
		  bool tupleIsAlive, void *state)
{
	CountRows  *cr = state;
	MemoryContext old;
	bool		zero;

	if (isnull[0])
		return;
	if (cr->c->metric != QDB_METRIC_COSINE)
	{
		cr->rows++;
		return;
	}
	old = MemoryContextSwitchTo(cr->row_cxt);
	zero = zero_vector(cr->c, values[0]);
	MemoryContextSwitchTo(old);
	MemoryContextReset(cr->row_cxt);
	if (!zero)
		cr->rows++;
}

/* blocks read between checks of the count */
#define COVER_CHUNK_BLOCKS 1024

/*
 * Whether at least n rows of the heap that the index covers (within its
 * predicate), visible to the transaction's snapshot, have a vector (not a
 * zero one under cosine, which a build leaves out too): what
 * a build of an index without a compressor needs before it trains one
 * (train_worker.c asks before it reindexes).  The heap is read a chunk of
 * blocks at a time, stopping once there are n: the whole table only for a
 * partial index that covers fewer.  The caller runs it as the table's owner
 * (the predicate's functions run).
 */
bool
QdbHeapCoversRows(Relation heap, Relation index, double n)
{
	IndexInfo  *indexInfo = BuildIndexInfo(index);
	BlockNumber nblocks = RelationGetNumberOfBlocks(heap);
	CountRows	cr;

	cr.c = QdbPinIndexCache(index, false);
	cr.row_cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb row count",
									   ALLOCSET_DEFAULT_SIZES);
	cr.rows = 0;

	/*
	 * The table AM's own scan of each range (a scan given to it must cover
	 * the whole table), with the transaction's MVCC snapshot, as a
	 * concurrent build's first pass reads
	 */
	indexInfo->ii_Concurrent = true;
	for (BlockNumber start = 0; start < nblocks && cr.rows < n; start += COVER_CHUNK_BLOCKS)
	{
		CHECK_FOR_INTERRUPTS();
		(void) table_index_build_range_scan(heap, index, indexInfo, false, false, false,
											start, Min(COVER_CHUNK_BLOCKS, nblocks - start),
											count_row, &cr, NULL);
	}
	MemoryContextDelete(cr.row_cxt);
	return cr.rows >= n;
}
