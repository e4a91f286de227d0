/*
 * index_scan.c
 *	  Index scans: ORDER BY column <op> query, walked over the graph with
 *	  compressed distances, then re-scored with exact ones.
 *
 * The query is encoded once into an ADC lookup table.  The walk descends
 * greedily from the entry point and keeps max(ef_search, rerank) candidates
 * at level 0 (quantumdb.ef_search and quantumdb.rerank, or the pair the
 * index's calibration chose for quantumdb.target_recall: scan_settings.c).
 * The candidates are re-scored in batches of rerank, nearest code first,
 * as the executor asks for rows: a batch reads its rows from the heap (the
 * version visible to the scan's snapshot) and computes their exact
 * distances with the operator class's distance function.  When the walk's
 * candidates run out (a filter rejected rows, or rows were not visible), the
 * walk runs again with twice the candidates, skipping rows already taken,
 * until it has visited quantumdb.max_scan_tuples nodes or finds nothing new;
 * the walks share one graph of node copies, so a wider walk reads only the
 * pages of nodes the ones before did not.  Once the walks have seen the
 * whole reachable graph, the scan reads the node pages for the live nodes
 * no walk reached (index_scan_sweep.c) and goes on with them.
 *
 * quantumdb.iterative_scan says how batches and walks join:
 *	- strict_order (the default): re-scored rows wait in a pool; the first
 *	  quarter of the first batch's visible rows is returned at once
 *	  (FREE_SHARE), and from
 *	  then on the pool's nearest only once no row the scan has not re-scored
 *	  is likely nearer: once the code distance of the next candidate (or of
 *	  the walk's last, when a wider walk is still possible), lowered by how
 *	  far exact distances have fallen below code distances (a low quantile
 *	  of the re-scored rows'), is no less.  Otherwise the next batch is
 *	  re-scored, or the walk runs again.  A row that still turns up nearer
 *	  than one already returned is passed over (an approximate index misses
 *	  it, as a LIMIT k scan misses rows), so the distances a scan returns
 *	  never decrease: ORDER BY holds across walks.
 *	- relaxed_order (every scan's behaviour before this setting): each
 *	  walk's first rerank rows in exact order, the rest of the walk in
 *	  compressed order, then the next walk's: every row comes back, but a
 *	  later row may be nearer than an earlier one (pgvector's relaxed_order).
 *	- off: strict order within one walk; no second walk.
 * With rerank 0 nothing is re-scored: rows come in compressed order (the
 * pool then holds code distances).
 */
#include "postgres.h"

#include "access/relscan.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "lib/pairingheap.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/datum.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "calibration.h"
#include "distance_memo.h"
#include "index.h"
#include "toast_fetch.h"

typedef QdbScanRow ScanResult;

typedef struct QdbScanOpaqueData
{
	MemoryContext cxt;			/* lives for the scan */
	MemoryContext round_cxt;	/* reset for each walk */
	MemoryContext graph_cxt;	/* the walks' graph: for the scan, made at its first walk */
	QdbDiskGraph *graph;		/* its copies of the nodes read, kept for the next walk */
	bool		own_arena;		/* another walk took its graph's arena once: */
								/* its graphs have arenas of their own */
	QdbIndexCache *c;
	bool		started;
	bool		count_stats;	/* false: a calibration's scan, not counted */
	int8		exact_for_user; /* QdbScanExactForUser at the first start: 1, 0; -1 not yet */
	bool		exhausted;
	bool		swept;			/* the node pages were read (sweep) */
	struct varlena *query;		/* detoasted; NULL: ORDER BY ... NULL */
	float	   *table;
	float		bias;
	int			ef;
	int			rerank;			/* quantumdb.rerank, or the calibration's */
	int64		visited;
	int			iterative;		/* QdbIterativeScan */
	ScanResult *results;		/* the walk's rows, nearest code first */
	int			nresults;
	int			next;			/* the next to return (relaxed) or re-score */
	double		frontier;		/* the code distance of the walk's last candidate */
	/* strict order: re-scored rows not yet returned, and what bounds the rest */
	ScanResult *pool;			/* pool[pool_next .. npool): in exact order */
	int			npool;
	int			pool_next;
	int			pool_size;
	double		err_low;		/* ERR_QUANTILE of exact minus code distance */
	bool		have_err;
	float	   *errs;			/* exact minus code distance of re-scored rows, ascending */
	int			nerrs;
	int			errs_size;
	int			free_rows;		/* rows the pool still returns unbounded */
	bool		first_scored;	/* the first batch was re-scored (fill_pool) */
	double		last_dist;		/* the distance last returned */
	bool		have_last;
	HTAB	   *returned;		/* heap TIDs returned, or taken into the pool */
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

/*
 * A scan the extension runs for itself (a calibration's queries): not
 * counted in pg_stat_*_indexes.idx_scan, which tells users whether anyone
 * uses the index.
 */
void
QdbScanNotCounted(IndexScanDesc scan)
{
	((QdbScanOpaque) scan->opaque)->count_stats = false;
}

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
	so->count_stats = true;
	so->exact_for_user = -1;
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
	so->swept = false;
	so->null_query = false;
	so->heap_rows = false;
	so->c = NULL;
	so->graph_cxt = NULL;		/* gone with the context, and the graph with it */
	so->graph = NULL;
	so->memo = NULL;			/* gone with the context */
	so->query = NULL;
	so->results = NULL;
	so->nresults = so->next = 0;
	so->pool = NULL;
	so->errs = NULL;
	so->nerrs = so->errs_size = 0;
	so->npool = so->pool_next = so->pool_size = 0;
	so->have_err = so->have_last = false;
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

/* The exact distance of the stored value of a row; out of line: through tf. */
static double
stored_distance(IndexScanDesc scan, QdbToastFetch *tf, Datum stored)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	Datum		value = stored;

	/*
	 * real[]'s distance functions decode a value compressed in the row by
	 * QdbDetoastDatum themselves, and keep the stored bytes in the memo;
	 * pgvector's types are detoasted here, where a row compressed in the
	 * heap decompresses faster; a value out of line is read here for both
	 * (the memo keeps its TOAST pointer)
	 */
	if (VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(stored)))
		value = PointerGetDatum(QdbToastFetchValue(tf, stored));
	else if (so->c->vectype != QDB_VEC_REAL_ARRAY)
		value = PointerGetDatum(QdbDetoastDatum(stored));
	/* only real[]'s functions look the memo up: pgvector's keep nothing */
	if (so->c->vectype != QDB_VEC_REAL_ARRAY)
		stored = value;
	return QdbDistanceMemoCall(so->memo, so->distproc, so->collation, stored,
							   value, PointerGetDatum(so->query));
}

/*
 * The exact distance of the heap row tid visible to the scan, in *dist;
 * false if none.  A value stored out of line is not read here: *pointer
 * gets a copy of its TOAST pointer (in the current context) for the batch's
 * second pass, which reads all of them; otherwise *pointer is NULL.
 */
static bool
exact_distance(IndexScanDesc scan, QdbToastFetch *tf, ItemPointer tid, double *dist,
			   struct varlena **pointer)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	bool		call_again = false,
				all_dead = false,
				found,
				isnull;
	ItemPointerData t = *tid;
	Datum		stored;

	*pointer = NULL;
	found = table_index_fetch_tuple(so->fetch, &t, scan->xs_snapshot, so->slot,
									&call_again, &all_dead);
	if (!found)
		return false;
	stored = slot_getattr(so->slot, so->attnum, &isnull);
	if (isnull)
	{
		ExecClearTuple(so->slot);
		return false;
	}
	if (VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(stored)))
	{
		/* the value it names stays while the scan's snapshot sees the row */
		Size		len = VARSIZE_ANY(DatumGetPointer(stored));

		*pointer = memcpy(palloc(len), DatumGetPointer(stored), len);
	}
	else
		*dist = stored_distance(scan, tf, stored);
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

/* Walks of one round, the first included, when the ones before came back short */
#define WALK_TRIES	4

/*
 * The scan's graph for its next walk: kept from the walk before, or a new
 * one (the first walk, or another walk of the backend took the kept one's
 * arena while the scan waited: QdbDiskGraphIdle).  Sets *reused.
 *
 * One graph serves all of a scan's walks: a wider walk goes on from the one
 * before (walk_graph) over the copies of the nodes it read, instead of
 * reading their pages again.  The copies are not refreshed while the scan
 * waits between rows: an insert's new links are not seen, and a node
 * VACUUM freed (its list emptied, its neighbours' lists rewritten) may
 * still be followed through an old copy.  A wrong turn, never a wrong row, since every row is
 * read from the heap with the scan's snapshot; and a walk over kept copies
 * that comes back short, which would end the scan, is walked again over a
 * new graph first (walk below).
 */
static QdbDiskGraph *
scan_graph(IndexScanDesc scan, bool fresh, bool *reused)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	MemoryContext old;

	if (so->graph != NULL)
	{
		bool		lost = !fresh && !QdbDiskGraphResume(so->graph);

		/*
		 * Taken once, it would be taken again: the next has its own.  Its
		 * walk from the entry redoes the lost graph's, whose nodes are not
		 * counted twice towards quantumdb.max_scan_tuples (a MergeAppend's
		 * filtered scan over two partitions, each taking the other's arena,
		 * stopped at 1 row of 6 on the bound; sql/iterative_scan.sql).
		 */
		if (lost)
		{
			so->own_arena = true;
			so->visited -= QdbDiskGraphVisited(so->graph);
		}
		if (fresh || lost)
		{
			MemoryContextDelete(so->graph_cxt);
			so->graph_cxt = NULL;
			so->graph = NULL;
		}
	}
	*reused = so->graph != NULL;
	if (so->graph == NULL)
	{
		so->graph_cxt = AllocSetContextCreate(so->cxt, "quantumdb scan graph",
											  ALLOCSET_DEFAULT_SIZES);
		old = MemoryContextSwitchTo(so->graph_cxt);
		so->graph = so->own_arena ? QdbDiskGraphCreateOwn(scan->indexRelation, so->c) :
			QdbDiskGraphCreate(scan->indexRelation, so->c);
		QdbDiskGraphSetQuery(so->graph, so->table, so->bias);
		QdbDiskGraphHide(so->graph, QdbScanHiddenNode(scan->indexRelation));
		MemoryContextSwitchTo(old);
	}
	return so->graph;
}

/*
 * One walk with so->ef candidates over graph g; fills so->results with rows
 * not yet returned.  False when it came back short: fewer candidates than
 * ef, or none new (the walk saw the whole reachable graph).
 *
 * A wider walk over the graph of the walk before goes on from where that
 * one stopped (QdbDiskWiden): the nodes it visited stay visited, the
 * nearest of them not in its beam fill the wider one, and only nodes not
 * seen yet cost a distance.  A walk started again from the entry point would
 * redo the whole of the narrower one first.
 */
static bool
walk_graph(IndexScanDesc scan, QdbDiskGraph *g)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	QdbMetaPageData meta;
	QdbCandidate cur;
	QdbCandidate *found;
	ScanResult *res;
	int64		visits = QdbDiskGraphVisited(g);
	int			nfound,
				nres = 0,
				ndeleted = 0,
				i;
	MemoryContext old;

	MemoryContextReset(so->round_cxt);
	old = MemoryContextSwitchTo(so->round_cxt);
	found = palloc(sizeof(QdbCandidate) * so->ef);
	if (QdbDiskCanWiden(g))
		nfound = QdbDiskWiden(g, so->ef, found);	/* the walk before, wider */
	else
	{
		QdbReadMeta(scan->indexRelation, &meta);
		if (!QdbDiskDescend(g, &meta, 0, &cur))
		{
			so->nresults = so->next = 0;	/* nothing new */
			MemoryContextSwitchTo(old);
			return false;
		}
		QdbDiskGraphNewLayer(g, 0);
		nfound = QdbDiskSearch(g, &cur, 1, so->ef, 0, found, true);
		/*
		 * too few from where the descent ended: from all it saw, and the
		 * entry (the nodes it visits again count again towards
		 * quantumdb.max_scan_tuples)
		 */
		if (nfound < so->ef)
			nfound = QdbDiskSearchFromMeasured(g, meta.entry, so->ef, found, nfound, true);
	}
	so->visited += QdbDiskGraphVisited(g) - visits;

	/* the nodes to return are read for their heap TIDs: ask for them at once */
	QdbDiskGraphPrefetchNodes(g, found, nfound);

	MemoryContextSwitchTo(so->cxt);
	res = palloc(sizeof(ScanResult) * Max(nfound, 1));
	for (i = 0; i < nfound; i++)
	{
		ItemPointerData tid;
		bool		deleted;

		(void) QdbDiskGraphCode(g, found[i].id, &deleted, &tid);
		if (deleted)
		{
			ndeleted++;
			continue;
		}
		if (so->returned && hash_search(so->returned, &tid, HASH_FIND, NULL))
			continue;
		res[nres].tid = tid;
		res[nres].dist = found[i].dist;
		nres++;
	}
	so->frontier = nfound > 0 ? found[nfound - 1].dist : 0;
	if (so->results)
		pfree(so->results);
	so->results = res;
	so->nresults = nres;
	so->next = 0;
	MemoryContextSwitchTo(old);
	MemoryContextReset(so->round_cxt);
	/*
	 * a beam of nodes VACUUM flagged deleted (not yet unlinked, or kept
	 * because a node still links to them) says nothing of what lies beyond
	 * it: only rows already returned mean nothing new
	 */
	return (nres > 0 || ndeleted > 0) && nfound >= so->ef;
}

/*
 * One walk with so->ef candidates; fills so->results with rows not yet
 * returned.
 *
 * A walk that comes back short ends the scan, so it must be the graph's
 * answer, not an accident of timing.  Over kept copies it may be stale
 * copies'; over pages read now it may still have run into a dead end that a
 * concurrent VACUUM or insert made while it walked: a node it held a link to,
 * freed and emptied before it was read, or VACUUM's new entry point chosen
 * while an insert was still linking it (index_graph.c notes both).  Under
 * test/t/004_concurrency.pl's churn, with walks slowed on purpose, such a
 * walk found 1 node and its LIMIT 10 query returned no row.  Each is walked
 * again over a new graph, from the entry point as it is then, up to
 * WALK_TRIES times in all.
 */
static void
walk(IndexScanDesc scan)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	bool		reused;
	bool		full = walk_graph(scan, scan_graph(scan, false, &reused));

	for (int tries = 1; !full && tries < WALK_TRIES && so->visited < qdb_max_scan_tuples &&
		 (reused || QdbDiskGraphMetUnlinked(so->graph)); tries++)
		full = walk_graph(scan, scan_graph(scan, true, &reused));
	if (!full)
		so->exhausted = true;	/* the walk saw the whole reachable graph */
	/* until the next walk, another walk of the backend may take its arena */
	QdbDiskGraphIdle(so->graph);
}

/*
 * Strict order trusts a row's place once rows not yet re-scored have a code
 * distance that, lowered by this quantile of how far exact distances fell
 * below code distances so far, is no less.  The least (0) made plain LIMIT 10
 * scans on glove-100-angular walk again for most queries (half the QPS for
 * 2 points of recall); 0.05 leaves them as they were and still lifts a
 * filtered scan's recall (test/bench/scan_order.py).
 */
#define ERR_QUANTILE 0.05

/*
 * The first rerank / FREE_SHARE rows of the first batch are returned in
 * exact order without the bound: on fashion-mnist-784 the bound alone made
 * plain LIMIT 10 scans walk again at every setting (QPS at 0.95 recall fell
 * about a quarter); a quarter keeps a LIMIT 10 at rerank >= 40 as it was
 * and most of a filtered scan's recall (half lost most of it on glove).
 */
#define FREE_SHARE 4

static int
float_cmp(const void *a, const void *b)
{
	float		x = *(const float *) a,
				y = *(const float *) b;

	return x < y ? -1 : x > y;
}

/* Merges a batch's exact minus code distances into so->errs. */
static void
add_errs(QdbScanOpaque so, float *batch, int n)
{
	int			i = so->nerrs - 1,
				j = n - 1,
				out = so->nerrs + n - 1;

	if (n == 0)
		return;
	qsort(batch, n, sizeof(float), float_cmp);
	if (so->nerrs + n > so->errs_size)
	{
		so->errs_size = Max(so->nerrs + n, 2 * so->errs_size);
		so->errs = so->errs ? repalloc(so->errs, sizeof(float) * so->errs_size)
			: MemoryContextAlloc(so->cxt, sizeof(float) * so->errs_size);
	}
	while (j >= 0)
		so->errs[out--] = (i >= 0 && so->errs[i] > batch[j]) ? so->errs[i--] : batch[j--];
	so->nerrs += n;
	so->err_low = so->errs[(int) (ERR_QUANTILE * (so->nerrs - 1))];
	so->have_err = true;
}

/*
 * Re-scores rows[0 .. n) with exact distances, keeps the visible ones first,
 * in exact order, and returns how many; keeps each row's exact minus code
 * distance for unseen_bound.
 */
static int
score_rows(IndexScanDesc scan, ScanResult *rows, int n)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	float	   *errs = MemoryContextAlloc(so->cxt, sizeof(float) * Max(n, 1));
	int			k = 0,
				nerr = 0;
	QdbToastFetch tf;			/* open in round_cxt until the batch ends */
	MemoryContext o;
	double	   *dists;
	bool	   *visible;
	Datum	   *pointers;		/* TOAST pointers of rows out of line */
	int		   *pointer_row;
	int			npointers = 0;

	if (so->fetch == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(so->cxt);

		so->fetch = table_index_fetch_begin(scan->heapRelation);
		so->slot = table_slot_create(scan->heapRelation, NULL);
		MemoryContextSwitchTo(old);
	}
	prefetch_heap(scan, rows, n);
	QdbDistanceMemoClear(so->memo, n);
	QdbToastFetchInit(&tf);
	/* a detoasted row lives until the batch's end, not the scan's */
	o = MemoryContextSwitchTo(so->round_cxt);
	dists = palloc(sizeof(double) * Max(n, 1));
	visible = palloc(sizeof(bool) * Max(n, 1));
	pointers = palloc(sizeof(Datum) * Max(n, 1));
	pointer_row = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		struct varlena *p;

		CHECK_FOR_INTERRUPTS();
		visible[i] = exact_distance(scan, &tf, &rows[i].tid, &dists[i], &p);
		if (p != NULL)
		{
			pointers[npointers] = PointerGetDatum(p);
			pointer_row[npointers++] = i;
		}
	}
	/* the rows stored out of line: their chunks asked for at once, then read */
	QdbToastFetchPrefetch(&tf, pointers, npointers);
	for (int j = 0; j < npointers; j++)
	{
		CHECK_FOR_INTERRUPTS();
		dists[pointer_row[j]] = stored_distance(scan, &tf, pointers[j]);
	}
	MemoryContextSwitchTo(o);
	for (int i = 0; i < n; i++)
	{
		if (!visible[i])
			continue;
		/* an infinite or NaN distance says nothing of the codes' error */
		errs[nerr] = dists[i] - rows[i].dist;
		if (isfinite(errs[nerr]))
			nerr++;
		rows[k].tid = rows[i].tid;
		rows[k].dist = dists[i];
		k++;
	}
	QdbToastFetchEnd(&tf);
	MemoryContextReset(so->round_cxt);
	qsort(rows, k, sizeof(ScanResult), QdbScanRowCmp);
	add_errs(so, errs, nerr);
	pfree(errs);
	return k;
}

/* Relaxed order: re-scores the walk's first rerank rows, in place. */
static void
score_first_batch(IndexScanDesc scan)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	int			n = Min(so->rerank, so->nresults),
				k = score_rows(scan, so->results, n);

	memmove(so->results + k, so->results + n, sizeof(ScanResult) * (so->nresults - n));
	so->nresults -= n - k;
}

/*
 * Strict order: moves the walk's next rows into the pool, re-scored (rerank
 * of them), or all of them in code order when rerank is 0.
 */
static void
fill_pool(IndexScanDesc scan)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	ScanResult *rows = so->results + so->next;
	int			n = so->nresults - so->next,
				k = n,
				live = so->npool - so->pool_next;

	if (so->rerank > 0)
		n = k = Min(n, so->rerank);
	/* taken: a wider walk that meets them again skips them */
	for (int i = 0; i < n; i++)
		hash_search(so->returned, &rows[i].tid, HASH_ENTER, NULL);
	if (so->rerank > 0)
		k = score_rows(scan, rows, n);
	so->next += n;
	if (so->rerank > 0 && !so->first_scored)
	{
		/*
		 * No more than the batch's visible rows beyond half of it: with
		 * most rows dead (deleted, not yet vacuumed) its few live rows are
		 * no nearest quarter of anything, and returned unbounded they made
		 * every nearer row that a wider walk found "too late" (95% dead at
		 * ef_search 40, rerank 40: 10-recall@10 0.574 against 0.810
		 * without a rerank); a few dead rows (three quarters or more of the
		 * batch visible) leave the quarter whole, as a quarter of the
		 * visible rows did not (15% dead: twice the time, the same recall)
		 */
		so->free_rows = Min(so->free_rows, Max(0, k - n / 2));
		so->first_scored = true;
	}
	if (k == 0)
		return;					/* none visible: the pool is as it was */
	if (live + k > so->pool_size)
	{
		so->pool_size = Max(live + k, 2 * so->pool_size);
		/* huge: after a sweep at rerank 0 the pool may take all it read */
		so->pool = so->pool ? repalloc_huge(so->pool, sizeof(ScanResult) * so->pool_size)
			: MemoryContextAllocHuge(so->cxt, sizeof(ScanResult) * so->pool_size);
	}
	memmove(so->pool, so->pool + so->pool_next, sizeof(ScanResult) * live);
	so->npool = live + k;
	so->pool_next = 0;
	/* at rerank 0, the walk's order: by code distance, ties by node */
	if (so->rerank == 0)
		qsort(rows, k, sizeof(ScanResult), QdbScanRowCmp);
	/*
	 * both sorted (score_rows sorts the batch): merged from the far end, in
	 * QdbScanRowCmp's total order, as a sort of the whole would.  A sort of
	 * the whole pool per batch made a scan that returns many rows at a small
	 * rerank quadratic: 19.5 s for 50,000 rows at rerank 1 (session 60's
	 * settings hunt, /work/runs/hunt-s60c.md)
	 */
	{
		int			i = live - 1,
					j = k - 1,
					out = live + k - 1;

		while (j >= 0)
			so->pool[out--] = (i >= 0 && QdbScanRowCmp(&so->pool[i], &rows[j]) > 0) ?
				so->pool[i--] : rows[j--];
	}
}

/* Whether a wider walk may find rows this one did not. */
static bool
may_walk_again(QdbScanOpaque so)
{
	return !so->exhausted && so->iterative != QDB_ITERATIVE_OFF &&
		so->visited < qdb_max_scan_tuples;
}

/*
 * Whether the scan may read the node pages for the live nodes no walk
 * reached (index_scan_sweep.c): its walks saw the whole reachable graph and
 * it has not swept yet.  The walks' count of visited nodes does not bound
 * it: each walk that comes back short over kept copies is made again over
 * pages read anew (walk), so a scan that saw 11,500 reachable nodes had
 * counted 23,066 by then, over the default quantumdb.max_scan_tuples.
 * (Under iterative_scan = off only the first walk can see the whole
 * reachable graph: start_scan sweeps then.)
 */
static bool
may_sweep(QdbScanOpaque so)
{
	return so->exhausted && !so->swept;
}

/*
 * The sweep: so->results become the walk's rows not yet taken (at the
 * scan's start, the first walk's) and the live nodes whose rows the scan
 * has not returned nor taken into the pool, nearest code first, at most
 * so->ef of them under iterative_scan = off; it reads at most
 * quantumdb.max_scan_tuples live nodes, in page order, so the walk's rows
 * must stay (session 60's review F2: over an index of more live nodes than
 * that, the first walk's rows on later pages were lost).  Those rows enter
 * so->returned first, where every row the scan takes goes anyway: no walk
 * comes after a sweep.  A calibration's query row stays out, as its walks
 * leave it out.
 */
static void
sweep(IndexScanDesc scan)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	MemoryContext old = MemoryContextSwitchTo(so->cxt);
	ScanResult *rows;
	int64		read;
	int			kept = so->nresults - so->next,
				n;

	for (int i = so->next; i < so->nresults; i++)
		hash_search(so->returned, &so->results[i].tid, HASH_ENTER, NULL);
	n = QdbSweepNodes(scan->indexRelation, so->c, so->table, so->bias, so->returned,
					  QdbScanHiddenNode(scan->indexRelation), kept,
					  qdb_max_scan_tuples, &rows, &read);
	/* QdbSweepNodes left room for them first */
	if (kept > 0)
	{
		memcpy(rows, so->results + so->next, sizeof(ScanResult) * kept);
		qsort(rows, n, sizeof(ScanResult), QdbScanRowCmp);
	}
	MemoryContextSwitchTo(old);
	ereport(DEBUG1,
			(errmsg_internal("index \"%s\": its walks saw the whole reachable graph after %lld nodes; the sweep read %lld nodes and found %d rows no walk reached",
							 RelationGetRelationName(scan->indexRelation),
							 (long long) so->visited, (long long) read, n)));
	so->swept = true;
	so->visited += read;
	if (so->results)
		pfree(so->results);
	so->results = rows;
	so->nresults = so->iterative == QDB_ITERATIVE_OFF ? Min(n, so->ef) : n;
	so->next = 0;
	so->frontier = n > 0 ? rows[n - 1].dist : 0;
}

/*
 * Strict order: the least distance a row not yet in the pool may have, as
 * far as the scan can tell: the code distance of the walk's next row (or,
 * when the walk has none left, of its last candidate: a wider walk finds
 * rows beyond it), less how far exact distances fell below code distances
 * (ERR_QUANTILE of the re-scored rows').  When only a sweep is left, any
 * distance: a node no walk reached may be the nearest.  Infinite when
 * nothing is left to find.
 */
static double
unseen_bound(QdbScanOpaque so)
{
	double		code;

	if (so->next < so->nresults)
		code = so->results[so->next].dist;
	else if (may_walk_again(so))
		code = so->frontier;
	else if (may_sweep(so))
		return -get_float8_infinity();
	else
		return get_float8_infinity();
	return so->have_err ? code + Min(so->err_low, 0) : code;
}

/* Sets the scan's output to row r. */
static void
return_row(IndexScanDesc scan, const ScanResult *r)
{
	scan->xs_heaptid = r->tid;
	scan->xs_recheck = false;
	scan->xs_recheckorderby = false;
	scan->xs_orderbyvals[0] = Float8GetDatum(r->dist);
	scan->xs_orderbynulls[0] = false;
}

/*
 * Strict order (and off): returns the pool's nearest row once no row the
 * scan has not re-scored can be nearer; a row nearer than one already
 * returned (the bound was wrong) is passed over.
 */
static bool
next_strict(IndexScanDesc scan)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;

	for (;;)
	{
		double		bound = unseen_bound(so);

		/*
		 * a NaN distance (sorted last) is neither free nor <= the bound: it
		 * waits for the end
		 */
		if (so->pool_next < so->npool &&
			((so->free_rows > 0 && !isnan(so->pool[so->pool_next].dist)) ||
			 so->pool[so->pool_next].dist <= bound || (isinf(bound) && bound > 0)))
		{
			ScanResult *r = &so->pool[so->pool_next++];

			if (so->free_rows > 0)
				so->free_rows--;

			if (so->have_last && r->dist < so->last_dist)
				continue;		/* found too late */
			so->last_dist = r->dist;
			so->have_last = true;
			return_row(scan, r);
			return true;
		}
		if (so->next < so->nresults)
			fill_pool(scan);
		else if (may_walk_again(so))
		{
			so->ef = (int) Min((int64) so->ef * 2, (int64) INT_MAX / 2);
			walk(scan);
		}
		else if (may_sweep(so))
			sweep(scan);
		else
			return false;		/* the bound is infinite: the pool is empty */
	}
}

/*
 * Relaxed order: the walk's first rerank rows in exact order, the rest in
 * code order, then the next walk's.
 */
static bool
next_relaxed(IndexScanDesc scan)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;

	while (so->next >= so->nresults)
	{
		if (may_walk_again(so))
		{
			so->ef = (int) Min((int64) so->ef * 2, (int64) INT_MAX / 2);
			walk(scan);
		}
		else if (may_sweep(so))
			sweep(scan);
		else
			return false;
		if (so->rerank > 0 && so->nresults > 0)
			score_first_batch(scan);
	}
	return_row(scan, &so->results[so->next]);
	hash_search(so->returned, &scan->xs_heaptid, HASH_ENTER, NULL);
	so->next++;
	return true;
}

static void
start_scan(IndexScanDesc scan)
{
	QdbScanOpaque so = (QdbScanOpaque) scan->opaque;
	QdbIndexCache *c;
	float	   *x = NULL;
	int			dim;
	HASHCTL		hctl;
	QdbCalibration cal;			/* read only under a target or latency bound */
	QdbScanSettings s;
	MemoryContext old;

	so->started = true;
	/* pg_stat_*_indexes.idx_scan, as btree counts each search it starts */
	if (so->count_stats)
		pgstat_count_index_scan(scan->indexRelation);
	old = MemoryContextSwitchTo(so->cxt);
	/* pinned for the scan: inserts and invalidations between fetches keep it */
	c = so->c = QdbPinIndexCache(scan->indexRelation, false);
	if (so->query)
	{
		x = QdbDatumGetFloats(PointerGetDatum(so->query), c->vectype, &dim, "query");
		/*
		 * An index without a compressor: its rows' own distances to the
		 * query say (QdbExactHeapScan), as a sequential scan's would; the
		 * dimensions on its meta page are those of its inserts.
		 */
		if (dim != c->dim && !c->untrained)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("query has %d dimensions, but index \"%s\" has %d",
							dim, RelationGetRelationName(scan->indexRelation), c->dim)));
		if (!c->untrained)
			QdbCheckForMetric(x, dim, c->metric, "query");
		else if (c->metric == QDB_METRIC_COSINE)
			QdbCheckNonZero(x, dim, "query");
	}
	/*
	 * No compressor yet, or a user whom row-level security on the table
	 * restricts (not a calibration's scan, which runs as the owner): the
	 * heap's rows, in exact order.  The compressor refuses such a user its
	 * model (compressor_catalog.c), and an approximate scan would show it
	 * too: at rerank 0 the user's own rows came back in the order of codes
	 * learnt from every row, from which a bisection on the query recovered
	 * a hidden row exactly, and at any rerank which rows a walk finds and a
	 * batch re-scores depends on them (session 57's hunt,
	 * /work/runs/hunt-s57a.md F1).
	 */
	/*
	 * Asked once per scan, at its first start (the executor begins a scan
	 * at its first fetch), and kept across rescans; not for a calibration's
	 * scans nor an index without a compressor, which it would not change.
	 */
	if (!c->untrained && so->count_stats && so->exact_for_user < 0)
		so->exact_for_user = QdbScanExactForUser(scan->indexRelation->rd_index->indrelid);
	if (c->untrained || (so->count_stats && so->exact_for_user > 0))
	{
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
	so->iterative = s.iterative;
	if (qdb_rerank_memo && so->rerank > 0)
		so->memo = QdbDistanceMemoCreate(so->cxt, so->distproc,
										 scan->orderByData[0].sk_argument, so->query);
	MemoryContextSwitchTo(old);
	/* the rerank needs as many candidates as it re-scores */
	so->ef = Max(s.ef_search, s.rerank);
	walk(scan);
	/*
	 * A first walk that saw the whole reachable graph: a table smaller than
	 * the walk's beam, or a graph of which the walk reaches little (pruning,
	 * or VACUUMs cut short: t/027's churn once left 2,468 of 2,491 nodes
	 * unreached until its next whole VACUUM).  Every live node, before any
	 * row is returned: an exhaustive scan of the codes.
	 */
	if (may_sweep(so))
		sweep(scan);
	if (so->iterative == QDB_ITERATIVE_RELAXED && so->rerank > 0 && so->nresults > 0)
		score_first_batch(scan);
	/* the nearest quarter of the first batch: a LIMIT k <= rerank / 4 as relaxed */
	so->free_rows = so->rerank / FREE_SHARE;
	so->first_scored = false;
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
	return so->iterative == QDB_ITERATIVE_RELAXED ? next_relaxed(scan) : next_strict(scan);
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
