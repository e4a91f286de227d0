/*
 * index_scan.c
 *	  Index scans: ORDER BY column <op> query, walked over the graph with
 *	  compressed distances, then re-scored with exact ones.
 *
 * The query is encoded once into an ADC lookup table.  The walk descends
 * greedily from the entry point and keeps max(ef_search, rerank) candidates
 * at level 0 (quantumdb.ef_search and quantumdb.rerank, or the pair the
 * index's calibration chose for quantumdb.target_recall: scan_settings.c).
 * The nearest rerank of them are read from the heap
 * (the version visible to the scan's snapshot) and their exact distances
 * computed by the operator class's distance function; they are returned in
 * exact order, followed by the rest in compressed order.  When the executor
 * asks for more (a filter rejected rows), the walk runs again with twice the
 * candidates, skipping rows already returned, until it has visited
 * quantumdb.max_scan_tuples nodes or finds nothing new.
 */
#include "postgres.h"

#include "access/relscan.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "lib/pairingheap.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "calibration.h"
#include "distance_memo.h"
#include "index.h"

typedef QdbScanRow ScanResult;

typedef struct QdbScanOpaqueData
{
	MemoryContext cxt;			/* lives for the scan */
	MemoryContext round_cxt;	/* reset for each walk */
	QdbIndexCache *c;
	bool		started;
	bool		exhausted;
	struct varlena *query;		/* detoasted; NULL: ORDER BY ... NULL */
	float	   *table;
	float		bias;
	int			ef;
	int			rerank;			/* quantumdb.rerank, or the calibration's */
	int64		visited;
	ScanResult *results;
	int			nresults;
	int			next;
	HTAB	   *returned;		/* heap TIDs already returned */
	FmgrInfo   *distproc;
	QdbDistanceMemo *memo;		/* the rerank's distances, for the executor */
	Oid			collation;
	AttrNumber	attnum;
	IndexFetchTableData *fetch;
	TupleTableSlot *slot;
	bool		null_query;		/* ORDER BY ... NULL: all rows, page by page */
	bool		heap_rows;		/* no compressor: results hold every row */
	QdbMetaPageData meta;
	BlockNumber next_block;
} QdbScanOpaqueData;

typedef QdbScanOpaqueData *QdbScanOpaque;

IndexScanDesc
qdbbeginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	QdbScanOpaque so = palloc0(sizeof(QdbScanOpaqueData));

	so->cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb scan",
									ALLOCSET_DEFAULT_SIZES);
	so->round_cxt = AllocSetContextCreate(so->cxt, "quantumdb scan walk",
										  ALLOCSET_DEFAULT_SIZES);
	/* the scan's own copy: only calls through it record in its memo */
	so->distproc = palloc(sizeof(FmgrInfo));
	fmgr_info_copy(so->distproc, index_getprocinfo(index, 1, QDB_DISTANCE_PROC),
				   CurrentMemoryContext);
	so->collation = index->rd_indcollation[0];
	so->attnum = index->rd_index->indkey.values[0];
	scan->xs_orderbyvals = palloc0(sizeof(Datum) * Max(norderbys, 1));
	scan->xs_orderbynulls = palloc(sizeof(bool) * Max(norderbys, 1));
	memset(scan->xs_orderbynulls, true, sizeof(bool) * Max(norderbys, 1));
	scan->opaque = so;
	return scan;
}

void
qdbrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	MemoryContext old;

	if (so->fetch)
	{
		table_index_fetch_end(so->fetch);
		ExecDropSingleTupleTableSlot(so->slot);
		so->fetch = NULL;
		so->slot = NULL;
	}
	MemoryContextReset(so->cxt);	/* unpins the index's cache too */
	so->round_cxt = AllocSetContextCreate(so->cxt, "quantumdb scan walk",
										  ALLOCSET_DEFAULT_SIZES);
	so->started = false;
	so->exhausted = false;
	so->null_query = false;
	so->heap_rows = false;
	so->c = NULL;
	so->memo = NULL;			/* gone with the context */
	so->query = NULL;
	so->results = NULL;
	so->nresults = so->next = 0;
	so->visited = 0;
	so->returned = NULL;

	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
	if (scan->numberOfOrderBys > 0 && !(scan->orderByData[0].sk_flags & SK_ISNULL))
	{
		old = MemoryContextSwitchTo(so->cxt);
		so->query = PG_DETOAST_DATUM_COPY(scan->orderByData[0].sk_argument);
		MemoryContextSwitchTo(old);
	}
}

/* The exact distance of the heap row tid visible to the scan; false if none. */
static bool
exact_distance(IndexScanDesc scan, ItemPointer tid, double *dist)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	bool		call_again = false,
				all_dead = false,
				found,
				isnull;
	ItemPointerData t = *tid;
	Datum		value;

	found = table_index_fetch_tuple(so->fetch, &t, scan->xs_snapshot, so->slot,
									&call_again, &all_dead);
	if (!found)
		return false;
	value = slot_getattr(so->slot, so->attnum, &isnull);
	if (isnull)
	{
		ExecClearTuple(so->slot);
		return false;
	}
	*dist = QdbDistanceMemoCall(so->memo, so->distproc, so->collation, value,
								PointerGetDatum(so->query));
	ExecClearTuple(so->slot);
	return true;
}

/*
 * Asks the kernel for the heap blocks of the rows to re-score before the
 * first is read, so that rows not in shared buffers come in parallel
 * (when effective_io_concurrency is above 0, as for bitmap heap scans).
 */
static void
prefetch_heap(IndexScanDesc scan, const ScanResult *res, int n)
{
#ifdef USE_PREFETCH
	BlockNumber last = InvalidBlockNumber;
	int			i;

	if (effective_io_concurrency <= 0)
		return;
	for (i = 0; i < n; i++)
	{
		BlockNumber blkno = ItemPointerGetBlockNumber(&res[i].tid);

		if (blkno != last)
			PrefetchBuffer(scan->heapRelation, MAIN_FORKNUM, blkno);
		last = blkno;
	}
#endif
}

static int
result_cmp(const void *a, const void *b)
{
	const ScanResult *x = a,
			   *y = b;

	if (x->dist != y->dist)
		return x->dist < y->dist ? -1 : 1;
	return ItemPointerCompare((ItemPointer) &x->tid, (ItemPointer) &y->tid);
}

/* One walk with so->ef candidates; fills so->results with rows not yet returned. */
static void
walk(IndexScanDesc scan)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	QdbIndexCache *c = so->c;
	QdbMetaPageData meta;
	QdbDiskGraph *g;
	QdbCandidate cur;
	QdbCandidate *found;
	ScanResult *res;
	int			nfound,
				nres = 0,
				nrerank,
				i,
				k;
	MemoryContext old;

	MemoryContextReset(so->round_cxt);
	old = MemoryContextSwitchTo(so->round_cxt);
	QdbReadMeta(scan->indexRelation, &meta);
	g = QdbDiskGraphCreate(scan->indexRelation, c);
	QdbDiskGraphSetQuery(g, so->table, so->bias);
	if (!QdbDiskDescend(g, &meta, 0, &cur))
	{
		so->exhausted = true;
		MemoryContextSwitchTo(old);
		return;
	}
	found = palloc(sizeof(QdbCandidate) * so->ef);
	QdbDiskGraphNewLayer(g, 0);
	nfound = QdbDiskSearch(g, &cur, 1, so->ef, 0, found);
	so->visited += QdbDiskGraphVisited(g);

	/* the nodes to return are read for their heap TIDs: ask for them at once */
	QdbDiskGraphPrefetchNodes(g, found, nfound);

	MemoryContextSwitchTo(so->cxt);
	res = palloc(sizeof(ScanResult) * Max(nfound, 1));
	for (i = 0; i < nfound; i++)
	{
		ItemPointerData tid;
		bool		deleted;

		(void) QdbDiskGraphCode(g, found[i].id, &deleted, &tid);
		if (deleted || (so->returned && hash_search(so->returned, &tid, HASH_FIND, NULL)))
			continue;
		res[nres].tid = tid;
		res[nres].dist = found[i].dist;
		nres++;
	}
	if (nres == 0 || nfound < so->ef)
		so->exhausted = true;	/* the walk saw the whole reachable graph */

	/* re-score the nearest with exact distances; drop rows not visible */
	nrerank = Min(so->rerank, nres);
	if (nrerank > 0)
	{
		if (so->fetch == NULL)
		{
			so->fetch = table_index_fetch_begin(scan->heapRelation);
			so->slot = table_slot_create(scan->heapRelation, NULL);
		}
		prefetch_heap(scan, res, nrerank);
		QdbDistanceMemoClear(so->memo, nrerank);
		for (i = 0, k = 0; i < nrerank; i++)
		{
			double		d;
			bool		visible;
			MemoryContext o;

			CHECK_FOR_INTERRUPTS();
			/* a detoasted row lives until the walk's end, not the scan's */
			o = MemoryContextSwitchTo(so->round_cxt);
			visible = exact_distance(scan, &res[i].tid, &d);
			MemoryContextSwitchTo(o);
			if (visible)
			{
				res[k].tid = res[i].tid;
				res[k].dist = d;
				k++;
			}
		}
		qsort(res, k, sizeof(ScanResult), result_cmp);
		memmove(res + k, res + nrerank, sizeof(ScanResult) * (nres - nrerank));
		nres = k + (nres - nrerank);
	}
	if (so->results)
		pfree(so->results);
	so->results = res;
	so->nresults = nres;
	so->next = 0;
	MemoryContextSwitchTo(old);
	MemoryContextReset(so->round_cxt);
}

static void
start_scan(IndexScanDesc scan)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	QdbIndexCache *c;
	float	   *x;
	int			dim;
	HASHCTL		hctl;
	QdbCalibration cal;			/* read only under a target or latency bound */
	QdbScanSettings s;
	MemoryContext old;

	so->started = true;
	old = MemoryContextSwitchTo(so->cxt);
	/* pinned for the scan: inserts and invalidations between fetches keep it */
	c = so->c = QdbPinIndexCache(scan->indexRelation, false);
	if (so->query)
	{
		x = QdbDatumGetFloats(PointerGetDatum(so->query), c->vectype, &dim, "query");
		/* an index without a compressor knows its dimensions once it has a row */
		if (dim != c->dim && !(c->untrained && c->dim == 0))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("query has %d dimensions, but index \"%s\" has %d",
							dim, RelationGetRelationName(scan->indexRelation), c->dim)));
		if (c->metric == QDB_METRIC_COSINE)
			QdbCheckNonZero(x, dim, "query");
	}
	if (c->untrained)
	{
		/* no compressor yet: the heap's rows, in exact order */
		so->heap_rows = true;
		so->nresults = QdbExactHeapScan(scan, c, so->distproc, so->collation,
										so->query, &so->results);
		so->next = 0;
		so->exhausted = true;
		MemoryContextSwitchTo(old);
		return;
	}
	if (so->query == NULL)
	{
		/* ORDER BY column <op> NULL: every row, as a sequential scan gives */
		so->null_query = true;
		QdbReadMeta(scan->indexRelation, &so->meta);
		so->next_block = so->meta.first_node_page;
		MemoryContextSwitchTo(old);
		return;
	}
	so->table = palloc(sizeof(float) * qdb_table_floats(&c->model));
	QdbReportStatus(qdb_compute_distance_table(&c->model, x, so->table, &so->bias),
					"could not compute the query's lookup table", NULL);
	memset(&hctl, 0, sizeof(hctl));
	hctl.keysize = sizeof(ItemPointerData);
	hctl.entrysize = sizeof(ItemPointerData);
	hctl.hcxt = so->cxt;
	so->returned = hash_create("quantumdb returned rows", 256, &hctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	/* the session's settings, or what the calibration chose for the target */
	QdbResolveScanSettings(scan->indexRelation, &cal, &s);	/* s.point: into cal */
	so->rerank = s.rerank;
	if (qdb_rerank_memo && so->rerank > 0)
		so->memo = QdbDistanceMemoCreate(so->cxt, so->distproc,
										 scan->orderByData[0].sk_argument, so->query);
	MemoryContextSwitchTo(old);
	/* the rerank needs as many candidates as it re-scores */
	so->ef = Max(s.ef_search, s.rerank);
	walk(scan);
}

/*
 * With a NULL query every distance is NULL: the rows of the next node page
 * that holds live nodes, in storage order.  False when no page is left.
 */
static bool
next_null_rows(IndexScanDesc scan)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	MemoryContext old = MemoryContextSwitchTo(so->cxt);

	if (so->results == NULL)
		so->results = palloc(sizeof(ScanResult) * QDB_MAX_NODES_PER_PAGE);
	so->nresults = so->next = 0;
	while (so->nresults == 0 && so->next_block < nblocks)
	{
		BlockNumber blkno = so->next_block++;
		Buffer		buf;
		Page		page;
		OffsetNumber off,
					maxoff;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		maxoff = PageGetMaxOffsetNumber(page);
		if (!PageIsNew(page) && (QdbPageGetOpaque(page)->flags & QDB_PAGE_NODES))
		{
			for (off = FirstOffsetNumber; off <= maxoff; off++)
			{
				QdbNode		node = QdbPageGetNode(index, &so->c->shape, page, blkno, off);

				if (node->flags & (QDB_NODE_DELETED | QDB_NODE_FREE))
					continue;
				so->results[so->nresults].tid = node->heaptid;
				so->results[so->nresults].dist = 0;
				so->nresults++;
			}
		}
		UnlockReleaseBuffer(buf);
	}
	MemoryContextSwitchTo(old);
	return so->nresults > 0;
}

bool
qdbgettuple(IndexScanDesc scan, ScanDirection dir)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;

	if (scan->numberOfOrderBys == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a quantumdb index can only be scanned with ORDER BY a distance")));
	if (!so->started)
		start_scan(scan);

	if (so->heap_rows)
	{
		if (so->next >= so->nresults)
			return false;
		scan->xs_heaptid = so->results[so->next].tid;
		scan->xs_recheck = false;
		scan->xs_recheckorderby = false;
		scan->xs_orderbyvals[0] = Float8GetDatum(so->results[so->next].dist);
		scan->xs_orderbynulls[0] = (so->query == NULL);
		so->next++;
		return true;
	}
	if (so->null_query)
	{
		if (so->next >= so->nresults && !next_null_rows(scan))
			return false;
		scan->xs_heaptid = so->results[so->next++].tid;
		scan->xs_recheck = false;
		scan->xs_recheckorderby = false;
		scan->xs_orderbyvals[0] = (Datum) 0;
		scan->xs_orderbynulls[0] = true;
		return true;
	}
	while (so->next >= so->nresults)
	{
		/* a filter wants more rows: walk again, wider */
		if (so->exhausted || so->visited >= qdb_max_scan_tuples)
			return false;
		so->ef = (int) Min((int64) so->ef * 2, (int64) INT_MAX / 2);
		walk(scan);
	}

	scan->xs_heaptid = so->results[so->next].tid;
	scan->xs_recheck = false;
	scan->xs_recheckorderby = false;
	scan->xs_orderbyvals[0] = Float8GetDatum(so->results[so->next].dist);
	scan->xs_orderbynulls[0] = false;
	hash_search(so->returned, &scan->xs_heaptid, HASH_ENTER, NULL);
	so->next++;
	return true;
}

void
qdbendscan(IndexScanDesc scan)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;

	if (so->fetch)
	{
		table_index_fetch_end(so->fetch);
		ExecDropSingleTupleTableSlot(so->slot);
	}
	MemoryContextDelete(so->cxt);
	pfree(so);
	scan->opaque = NULL;
}
