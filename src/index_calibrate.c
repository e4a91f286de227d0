/*
 * index_calibrate.c
 *	  Measures what recall an index gives at which ef_search and rerank, on
 *	  rows of its own table used as queries, and keeps the result on its
 *	  meta page for quantumdb.target_recall (scan_settings.c).
 *	  quantumdb.calibrate(index, ...) runs it; CREATE INDEX runs it at the
 *	  end of a build (reloption calibration_queries, 0: not); a background
 *	  worker runs it after a VACUUM that found the index much changed
 *	  (calibrate_worker.c).
 *
 * The query rows are the ones whose heap TIDs hash smallest under the seed
 * (deterministic for a seed and a table's layout).  One pass over the heap,
 * with an MVCC snapshot, computes each query's exact k nearest rows other
 * than itself (a new query is not in the table; with itself, one of the k
 * would be found by any index).  A new query has no node in the graph
 * either, while the query row's node has a neighbour list that the build
 * filled with about the rows the query looks for: a walk that reached it
 * would find them at once (on glove-100-angular that overstated the
 * recall of new queries by up to 0.14 at ef_search 10, 0.02 at 113).  So
 * each query's scans walk around its node (QdbDiskGraphHide: never
 * walked to, as if it were not there), found by one pass over the node
 * pages before the scans.  A query row whose node is the entry point
 * (where every walk starts; one that becomes it during the scans is
 * walked through from then on) or was not found finds itself and takes one
 * place of the walk's candidates and of the rerank, so its scans run with
 * ef_search + 1 and rerank + 1 (rerank 0 stays 0).  Scans read rows until
 * k other than the query row came (k, as a LIMIT k does, when its node is
 * walked around), and those k count.  The heap is read as an
 * index build reads it: the index's predicate and expression apply, a HOT chain gives its
 * root's TID, NULL rows and (under cosine) zero vectors, which the index
 * does not hold, are skipped.  Then every query runs through the index at
 * each setting of a grid: ef_search 10, 14, 20, ... (steps of about
 * sqrt 2, at least k) and rerank 0, ef_search / 4, ef_search / 2 and
 * ef_search (those of at least k; each of the first three only until
 * its pairs at two ef_search in a row were dominated: calibration_grid.c),
 * stopping after the first ef_search whose
 * full rerank reaches recall 0.99 by one standard error (as
 * scan_settings.c counts a target reached), or that covers the whole table.  A row
 * of the index's answer counts when its TID is among the exact k (an exact
 * tie at the k-th distance counts as a miss).  The time of a setting is the
 * scan's own (begin, the rows above visible to the snapshot, as the
 * executor fetches them), averaged over the queries, after one
 * untimed run of every query; each query runs every rerank of an ef_search
 * one after the other, starting at another one each query, so that a busy
 * moment of the machine or the first read of a page weighs on all alike.
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/relation.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "commands/progress.h"
#include "common/hashfn.h"
#include "executor/instrument.h"
#include "funcapi.h"
#include "lib/binaryheap.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "calibration.h"
#include "index.h"
#include "qdb_distance.h"

PG_FUNCTION_INFO_V1(quantumdb_calibrate);
PG_FUNCTION_INFO_V1(quantumdb_calibration);

/*
 * By one standard error, as a target is reached.  It was 0.995 until
 * 2026-12-05: on glove-100-angular (100,000 rows) the last step (ef_search
 * 905, past 640's 0.997, 0.9947 by one standard error) took a third of the
 * calibration's 3.7 s, for targets above 0.99, which 100 queries of k 10
 * barely tell apart; such a target now takes the pair of highest recall.
 */
#define STOP_RECALL 0.99

static const int grid_ef[] = {10, 14, 20, 28, 40, 56, 80, 113, 160, 226, 320, 452, 640,
905, 1280, 1810, 2560};

typedef struct Neighbour
{
	float		dist;
	ItemPointerData tid;
} Neighbour;

typedef struct CalQuery
{
	uint64		hash;
	ItemPointerData tid;
	struct varlena *value;		/* the column's value, detoasted */
	float	   *x;				/* its floats (pass 2), unit length under cosine */
	Neighbour  *nn;				/* the k nearest other rows so far */
	binaryheap *nnheap;			/* over nn, farthest first */
	int			nnn;
	uint32		self;			/* its node, which its scans walk around */
} CalQuery;

typedef struct Calib
{
	QdbIndexCache *c;
	int			k;
	uint64		seed;
	CalQuery   *q;				/* the query rows */
	binaryheap *qheap;			/* pass 1: over q, largest hash first */
	int			nq;
	int			maxq;
	double		rows;
	MemoryContext keep_cxt;		/* the query values */
	MemoryContext row_cxt;		/* reset after each row */
	float	   *unit;			/* a row scaled to unit length, under cosine */
	bool		notices;
	/* the compressor's fit (fit_row), on every fit_every-th row of pass 2 */
	double		seen;			/* pass 1: rows with a value */
	int64		fit_every;
	int64		fit_rows;
	double		fit_sum;		/* NaN once a row could not be coded */
	double		fit_energy;		/* under ip: the rows' squared lengths (fit_row) */
	uint8	   *fit_code;
	float	   *fit_table;
} Calib;

/* the orders of the two binaryheaps: largest hash, farthest row; ties by TID */
static inline bool
query_above(const CalQuery *x, const CalQuery *y)
{
	if (x->hash != y->hash)
		return x->hash > y->hash;
	return ItemPointerCompare((ItemPointer) &x->tid, (ItemPointer) &y->tid) > 0;
}

static inline bool
nn_above(const Neighbour *x, const Neighbour *y)
{
	if (x->dist != y->dist)
		return x->dist > y->dist;
	return ItemPointerCompare((ItemPointer) &x->tid, (ItemPointer) &y->tid) > 0;
}

static int
query_cmp(Datum a, Datum b, void *arg)
{
	const CalQuery *x = (const CalQuery *) DatumGetPointer(a);
	const CalQuery *y = (const CalQuery *) DatumGetPointer(b);

	return query_above(x, y) ? 1 : query_above(y, x) ? -1 : 0;
}

static int
nn_cmp(Datum a, Datum b, void *arg)
{
	const Neighbour *x = (const Neighbour *) DatumGetPointer(a);
	const Neighbour *y = (const Neighbour *) DatumGetPointer(b);

	return nn_above(x, y) ? 1 : nn_above(y, x) ? -1 : 0;
}

/* Pass 1 (an IndexBuildCallback): the rows of smallest hash. */
static void
pick_row(Relation index, ItemPointer tid, Datum *values, bool *isnull,
		 bool tupleIsAlive, void *state)
{
	Calib	   *cb = state;
	CalQuery	cand;
	MemoryContext old;

	if (isnull[0])
		return;
	cb->seen += 1;
	cand.hash = hash_bytes_extended((const unsigned char *) tid, sizeof(ItemPointerData),
									cb->seed);
	cand.tid = *tid;
	if (cb->nq == cb->maxq &&
		!query_above((CalQuery *) DatumGetPointer(binaryheap_first(cb->qheap)), &cand))
		return;
	old = MemoryContextSwitchTo(cb->keep_cxt);
	cand.value = PG_DETOAST_DATUM_COPY(values[0]);
	MemoryContextSwitchTo(old);
	if (cb->nq < cb->maxq)
	{
		cb->q[cb->nq] = cand;
		binaryheap_add(cb->qheap, PointerGetDatum(&cb->q[cb->nq]));
		cb->nq++;
	}
	else
	{
		CalQuery   *top = (CalQuery *) DatumGetPointer(binaryheap_first(cb->qheap));

		pfree(top->value);
		*top = cand;
		binaryheap_replace_first(cb->qheap, PointerGetDatum(top));
	}
}

/*
 * Pass 2: row x (unit length under cosine) adds its coding error to the
 * compressor's fit, if it is one of every fit_every rows: the asymmetric
 * distance from x to its own code, squared under l2 (the squared distance
 * to the code's reconstruction), the cosine distance under cosine; under
 * ip, whose distance to its own code measures no error, the squared
 * distance to the code's reconstruction (qdb_row_coding_error, kinds pq
 * and opq; since session 65) as a share of the row's squared length (less
 * the model's mean): fit_sum over fit_energy, since a score's error
 * matters against the spread of scores, which grows with the rows'
 * length (60% of a 2,000-row glove table moved by 1 in every component:
 * 2.1 times the build's expected share, t/032); none for kind rq, whose
 * encoding calls BLAS
 * (session 64's second review, /work/runs/review-s64b.md G2).  The scans'
 * code otherwise: no BLAS.  The fit (cal->fit) is their mean
 * (QdbFitStale); 0 when a row could not be coded.
 */
static void
fit_row(Calib *cb, const float *x)
{
	const QdbModel *m = &cb->c->model;
	float		bias;
	double		d;

	if (cb->fit_every <= 0 || (int64) (cb->rows - 1) % cb->fit_every != 0 || isnan(cb->fit_sum))
		return;
	if (qdb_compute_codes(m, x, 1, cb->fit_code) != QDB_OK ||
		(cb->c->metric != QDB_METRIC_IP &&
		 qdb_compute_distance_table(m, x, cb->fit_table, &bias) != QDB_OK))
	{
		cb->fit_sum = NAN;
		return;
	}
	if (cb->c->metric == QDB_METRIC_IP)
	{
		double		energy;

		d = qdb_row_coding_error(m, x, cb->fit_code, cb->fit_table, &energy);
		cb->fit_energy += energy;
	}
	else
	{
		d = qdb_adc_distance(m, cb->fit_table, bias, cb->fit_code);
		if (cb->c->metric == QDB_METRIC_L2)
			d *= d;
	}
	if (!(d >= 0))
	{
		cb->fit_sum = NAN;
		return;
	}
	cb->fit_sum += d;
	cb->fit_rows++;
}

#define FIT_ROWS 2000

/* Pass 2: every row against every query. */
static void
exact_row(Relation index, ItemPointer tid, Datum *values, bool *isnull,
		  bool tupleIsAlive, void *state)
{
	Calib	   *cb = state;
	MemoryContext old;
	float	   *x;
	int			dim;

	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(cb->row_cxt);
	x = QdbDatumGetFloats(values[0], cb->c->vectype, &dim, "vector");
	if (dim != cb->c->dim ||
		(cb->c->metric == QDB_METRIC_COSINE && QdbVectorIsZero(x, dim)))
	{
		/* not in the index: another dimension cannot be stored, a zero vector is not */
		MemoryContextSwitchTo(old);
		MemoryContextReset(cb->row_cxt);
		return;
	}
	if (cb->c->metric == QDB_METRIC_COSINE)
	{
		/* x may point into the heap tuple itself: normalise a copy */
		memcpy(cb->unit, x, sizeof(float) * dim);
		x = cb->unit;
		QdbNormalize(x, dim);
	}
	cb->rows += 1;
	fit_row(cb, x);
	for (int j = 0; j < cb->nq; j++)
	{
		CalQuery   *q = &cb->q[j];
		Neighbour	n;

		if (ItemPointerEquals(&q->tid, tid))
			continue;
		n.dist = QdbVectorDistance(cb->c->metric, q->x, x, dim);
		n.tid = *tid;
		if (q->nnn < cb->k)
		{
			q->nn[q->nnn] = n;
			binaryheap_add(q->nnheap, PointerGetDatum(&q->nn[q->nnn]));
			q->nnn++;
		}
		else
		{
			Neighbour  *top = (Neighbour *) DatumGetPointer(binaryheap_first(q->nnheap));

			if (nn_above(top, &n))
			{
				*top = n;
				binaryheap_replace_first(q->nnheap, PointerGetDatum(top));
			}
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(cb->row_cxt);
}

/* One pass over the heap as an index build reads it, with snapshot. */
static void
heap_pass(Relation heap, Relation index, Snapshot snapshot, IndexBuildCallback cb, void *state)
{
	IndexInfo  *indexInfo = BuildIndexInfo(index);
	TableScanDesc hs;

	/* an MVCC snapshot of our own (not a build's): no OldestXmin to use */
	indexInfo->ii_Concurrent = true;
	hs = table_beginscan_strat(heap, snapshot, 0, NULL, true, false);
	(void) table_index_build_range_scan(heap, index, indexInfo, true, false, false,
										0, InvalidBlockNumber, cb, state, hs);
}

static int
tid_order(const void *a, const void *b)
{
	return ItemPointerCompare(*(ItemPointer const *) a, *(ItemPointer const *) b);
}

/*
 * Each query's node (its row's, not deleted) into its self, one pass over
 * the node pages; QDB_NO_NODE where none is found, or where it is the
 * entry point, where every walk starts and which no walk can go around.
 * Returns the index's live (not deleted) nodes, counted on the way as
 * QdbCountLiveNodes counts them.
 */
static double
find_query_nodes(Relation index, Calib *cb)
{
	double		live = 0;
	QdbMetaPageData meta;
	QdbNodeScan ns;
	QdbNode		node;
	QdbNodeRef	ref;
	ItemPointer *tids = palloc(sizeof(ItemPointer) * Max(cb->nq, 1));

	for (int j = 0; j < cb->nq; j++)
	{
		cb->q[j].self = QDB_NO_NODE;
		tids[j] = &cb->q[j].tid;
	}
	qsort(tids, cb->nq, sizeof(ItemPointer), tid_order);
	QdbReadMeta(index, &meta);
	QdbNodeScanBegin(&ns, index, &cb->c->shape, meta.first_node_page,
					 RelationGetNumberOfBlocks(index), NULL, BUFFER_LOCK_SHARE,
					 QDB_PACE_INTERRUPTS);
	while (QdbNodeScanNextPage(&ns))
		while ((node = QdbNodeScanNext(&ns, &ref)) != NULL)
		{
			ItemPointer key = &node->heaptid;
			ItemPointer *hit;

			if (!(node->flags & QDB_NODE_DELETED))
				live++;
			if (node->flags & (QDB_NODE_DELETED | QDB_NODE_FREE))
				continue;
			hit = bsearch(&key, tids, cb->nq, sizeof(ItemPointer), tid_order);
			if (hit != NULL && ref != meta.entry)
				((CalQuery *) ((char *) *hit - offsetof(CalQuery, tid)))->self = ref;
		}
	QdbNodeScanEnd(&ns);
	pfree(tids);
	return live;
}

/*
 * One query through the index at the current override: the fraction of
 * its exact neighbours among the index's first k rows other than itself.
 * It reads rows until k others than itself came: k, as a LIMIT k does,
 * when its own node is walked around.
 */
static double
index_query(IndexScanDesc scan, const CalQuery *q, Oid collation, int k, double *secs)
{
	ScanKeyData key;
	instr_time	start,
				took;
	ItemPointerData got[QDB_MAX_CALIBRATION_K];
	int			ngot = 0,
				hits = 0;

	/*
	 * The key the executor would pass for ORDER BY emb <op> value, less the
	 * operator's function, which qdbrescan never calls.  Filled by hand:
	 * ScanKeyEntryInitialize asserts (on a server built with
	 * --enable-cassert) that a key without a function tests for NULL.
	 */
	memset(&key, 0, sizeof(key));
	key.sk_flags = SK_ORDER_BY;
	key.sk_attno = 1;
	key.sk_strategy = 1;
	key.sk_subtype = InvalidOid;
	key.sk_collation = collation;
	key.sk_argument = PointerGetDatum(q->value);
	INSTR_TIME_SET_CURRENT(start);
	qdbrescan(scan, NULL, 0, &key, 1);
	while (ngot < k && qdbgettuple(scan, ForwardScanDirection))
	{
		bool		all_dead;

		/* the executor skips a row its snapshot does not see and asks for more */
		if (table_index_fetch_tuple_check(scan->heapRelation, &scan->xs_heaptid,
										  scan->xs_snapshot, &all_dead) &&
			!ItemPointerEquals(&scan->xs_heaptid, (ItemPointer) &q->tid))
			got[ngot++] = scan->xs_heaptid;
	}
	INSTR_TIME_SET_CURRENT(took);
	INSTR_TIME_SUBTRACT(took, start);
	*secs += INSTR_TIME_GET_DOUBLE(took);

	for (int i = 0; i < ngot; i++)
	{
		for (int j = 0; j < q->nnn; j++)
			if (ItemPointerEquals(&got[i], (ItemPointer) &q->nn[j].tid))
			{
				hits++;
				break;
			}
	}
	return (double) hits / q->nnn;
}

/*
 * Measures index's calibration into *cal (not written): up to queries rows
 * of heap as queries, k-recall@k, reported as report says.
 */
typedef enum Report
{
	REPORT_NOTICES,				/* a NOTICE per ef_search (quantumdb.calibrate) */
	REPORT_PROGRESS,			/* CREATE INDEX's progress view */
	REPORT_NONE					/* VACUUM */
} Report;

static void
calibrate(Relation heap, Relation index, int queries, int k, int seed, Report report,
		  QdbCalibration *cal)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb calibrate",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Calib		cb;
	Snapshot	snapshot;
	IndexScanDesc scan = NULL;
	Oid			collation = index->rd_indcollation[0];
	int			nq = 0;
	double		nodes;
	QdbGridSlots grid;

	memset(cal, 0, sizeof(*cal));
	memset(&cb, 0, sizeof(cb));
	memset(&grid, 0, sizeof(grid));
	cb.c = QdbPinIndexCache(index, false);
	cb.k = k;
	cb.seed = (uint64) (uint32) seed;
	cb.maxq = queries;
	cb.q = palloc(sizeof(CalQuery) * queries);
	cb.qheap = binaryheap_allocate(queries, query_cmp, NULL);
	cb.unit = palloc(sizeof(float) * Max(cb.c->dim, 1));
	cb.keep_cxt = AllocSetContextCreate(cxt, "quantumdb calibrate queries",
										ALLOCSET_DEFAULT_SIZES);
	cb.row_cxt = AllocSetContextCreate(cxt, "quantumdb calibrate row",
									   ALLOCSET_DEFAULT_SIZES);
	qdb_distance_init();

	snapshot = RegisterSnapshot(GetLatestSnapshot());
	PG_TRY();
	{
		/* pass 1: the query rows; their floats, skipping those not in the index */
		heap_pass(heap, index, snapshot, pick_row, &cb);
		for (int j = 0; j < cb.nq; j++)
		{
			CalQuery   *q = &cb.q[j];
			int			dim;

			q->x = QdbDatumGetFloats(PointerGetDatum(q->value), cb.c->vectype, &dim, "query");
			if (dim != cb.c->dim ||
				(cb.c->metric == QDB_METRIC_COSINE && QdbVectorIsZero(q->x, dim)))
				continue;
			if (cb.c->metric == QDB_METRIC_COSINE)
			{
				/* q->x may point into q->value, the query the scans get: a copy */
				float	   *unit = palloc(sizeof(float) * dim);

				memcpy(unit, q->x, sizeof(float) * dim);
				q->x = unit;
				QdbNormalize(q->x, dim);
			}
			q->nn = palloc(sizeof(Neighbour) * k);
			q->nnheap = binaryheap_allocate(k, nn_cmp, NULL);
			q->nnn = 0;
			cb.q[nq++] = *q;
		}
		cb.nq = nq;

		/* pass 2: their exact neighbours, and the compressor's fit; a query without any is dropped */
		/* kind rq's encoding calls BLAS, which a calibration does not load */
		cb.fit_every = cb.c->model.kind == QDB_KIND_RQ ? 0 :
			(int64) ceil(cb.seen / FIT_ROWS);
		cb.fit_code = palloc(Max(cb.c->shape.code_size, 1));
		/* the ADC table, or under ip qdb_row_coding_error's scratch */
		cb.fit_table = palloc(sizeof(float) * Max(qdb_table_floats(&cb.c->model),
												  qdb_coding_error_floats(&cb.c->model)));
		heap_pass(heap, index, snapshot, exact_row, &cb);
		nq = 0;
		for (int j = 0; j < cb.nq; j++)
			if (cb.q[j].nnn > 0)
				cb.q[nq++] = cb.q[j];
		cb.nq = nq;
		nodes = find_query_nodes(index, &cb);
		/* each ef_search of the grid runs every query once */
		if (report == REPORT_PROGRESS)
			pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL,
										 (int64) lengthof(grid_ef) * cb.nq);

		cal->magic = QDB_CALIBRATION_MAGIC;
		cal->k = k;
		cal->queries = cb.nq;
		cal->live_rows = cb.rows;
		cal->nodes = nodes;
		cal->taken_at = GetCurrentTimestamp();
		if (cb.c->metric == QDB_METRIC_IP)
			cal->fit = cb.fit_energy > 0 && isfinite(cb.fit_sum) ? cb.fit_sum / cb.fit_energy : 0;
		else
			cal->fit = cb.fit_rows > 0 && isfinite(cb.fit_sum) ? cb.fit_sum / cb.fit_rows : 0;

		/*
		 * The access method's own calls, not index_beginscan's: those refuse
		 * an index that REINDEX is building (this one, at its end)
		 */
		scan = qdbbeginscan(index, 0, 1);
		QdbScanNotCounted(scan);
		scan->heapRelation = heap;
		scan->xs_snapshot = snapshot;
		/* untimed: the first reads of the index's and the table's pages */
		for (int j = 0; j < cb.nq; j++)
		{
			double		ignored = 0;

			CHECK_FOR_INTERRUPTS();
			QdbOverrideScanSettings(Max(grid_ef[0], k), Max(grid_ef[0], k));
			QdbOverrideHiddenNode(RelationGetRelid(index), cb.q[j].self);
			(void) index_query(scan, &cb.q[j], collation, k, &ignored);
		}
		for (int e = 0, last = 0; e < lengthof(grid_ef) && cb.nq > 0; e++)
		{
			int			ef = Max(grid_ef[e], k);	/* k first, when it is larger */
			int			reranks[QDB_GRID_SLOTS],
						slots[QDB_GRID_SLOTS];
			int			nr,
						first;
			double		recall[QDB_GRID_SLOTS] = {0},
						secs[QDB_GRID_SLOTS] = {0};

			if (ef == last)
				continue;
			last = ef;
			nr = QdbGridReranks(&grid, ef, k, reranks, slots);
			if (cal->npoints + nr > QDB_MAX_CALIBRATION_POINTS)
				break;
			for (int j = 0; j < cb.nq; j++)
			{
				/* a query row whose node is not walked around takes a place of the pool */
				int			extra = cb.q[j].self == QDB_NO_NODE ? 1 : 0;

				CHECK_FOR_INTERRUPTS();
				/*
				 * in the train worker's build: DDL waiting for the table
				 * (hunt s65c F1); every 16th query, since a waiting lazy
				 * VACUUM has the lock table read each time (review s65c K7)
				 */
				if (j % 16 == 0 && QdbTrainWorkerShouldYield(heap))
					QdbTrainWorkerYield(heap, false);
				QdbOverrideHiddenNode(RelationGetRelid(index), cb.q[j].self);
				for (int i = 0; i < nr; i++)
				{
					/* each query starts at another rerank: none is always first to read */
					int			r = (i + j) % nr;

					QdbOverrideScanSettings(ef + extra, reranks[r] > 0 ? reranks[r] + extra : 0);
					recall[r] += index_query(scan, &cb.q[j], collation, k, &secs[r]);
				}
				QdbOverrideScanSettings(0, 0);
				QdbOverrideHiddenNode(InvalidOid, QDB_NO_NODE);
				if (report == REPORT_PROGRESS)
					pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE,
												 (int64) e * cb.nq + j + 1);
			}
			first = cal->npoints;
			for (int r = 0; r < nr; r++)
			{
				QdbCalibrationPoint *p = &cal->points[cal->npoints++];

				p->ef_search = ef;
				p->rerank = reranks[r];
				p->recall = recall[r] / cb.nq;
				p->ms = 1000.0 * secs[r] / cb.nq;
			}
			QdbGridAfterLevel(&grid, cal, first, nr, slots);
			if (report == REPORT_NOTICES)
				ereport(NOTICE,
						(errmsg("calibrate \"%s\": ef_search %d, rerank %d to %d: recall %.4f to %.4f, %.3f to %.3f ms a query",
								RelationGetRelationName(index), ef, reranks[0],
								reranks[nr - 1], recall[0] / cb.nq, recall[nr - 1] / cb.nq,
								1000.0 * secs[0] / cb.nq, 1000.0 * secs[nr - 1] / cb.nq)));
			/* every row found stops it too: few queries never bound 0.99 */
			if (QdbRecallLowerBound(recall[nr - 1] / cb.nq, k, cb.nq) >= STOP_RECALL ||
				recall[nr - 1] >= cb.nq || ef >= cb.rows)
				break;
		}
		/* a grid that stopped early (recall found, the calibration's room) is done */
		if (report == REPORT_PROGRESS)
			pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE,
										 (int64) lengthof(grid_ef) * cb.nq);
		qdbendscan(scan);
		IndexScanEnd(scan);
		scan = NULL;
	}
	PG_FINALLY();
	{
		QdbOverrideScanSettings(0, 0);
		QdbOverrideHiddenNode(InvalidOid, QDB_NO_NODE);
	}
	PG_END_TRY();
	UnregisterSnapshot(snapshot);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

void
QdbCalibrate(Relation heap, Relation index, int queries, int k, int seed, QdbCalibration *cal)
{
	calibrate(heap, index, queries, k, seed, REPORT_NOTICES, cal);
}

/*
 * The end of a build: calibrate with queries rows (seed 0, k 10) and keep
 * it, unless queries is 0 or the index has no compressor.  Nothing is kept
 * when no query had a neighbour (fewer than two rows).  The fit at the
 * build is what rows the compressor was not trained on would measure
 * (QdbFitExpected), the compressor having been trained on trained_rows
 * rows of the table.
 */
void
QdbCalibrateAtBuild(Relation heap, Relation index, int queries, double trained_rows)
{
	QdbCalibration cal;
	QdbMetaPageData meta;

	if (queries <= 0)
		return;
	QdbReadMeta(index, &meta);
	if (QdbMetaUntrained(&meta))
		return;
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, QDB_PHASE_CALIBRATE);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, 0);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, 0);
	calibrate(heap, index, queries, 10, 0, REPORT_PROGRESS, &cal);
	cal.fit_at_build = QdbFitExpected(cal.fit, trained_rows);
	if (cal.npoints > 0)
		QdbWriteCalibration(index, &cal);
}

/*
 * calibrate() as the table's owner in a restricted security context, as an
 * index build runs: the heap passes evaluate the index's predicate, which
 * must not run with a (superuser) caller's rights.
 */
static void
calibrate_as_owner(Relation heap, Relation index, int queries, int k, int seed,
				   Report report, QdbCalibration *cal)
{
	QdbAsRole	as;

	/* the predicate's functions run as the owner: not under the caller's path */
	QdbAsRoleBegin(&as, heap->rd_rel->relowner, 0);
	calibrate(heap, index, queries, k, seed, report, cal);
	QdbAsRoleEnd(&as);
}

/*
 * The calibration worker's measurement (calibrate_worker.c), for an index
 * whose calibration old is stale: k as before, as many queries as before
 * (at least the calibration_queries option, unless that is 0: then
 * nothing), seed 0; the fit at the build carried over, the count of
 * removed entries restarted.  A table left without rows keeps the old
 * one.  True, with the new calibration in *cal, when one was kept.
 */
bool
QdbRecalibrate(Relation heap, Relation index, const QdbCalibration *old, QdbCalibration *cal)
{
	int			queries = QdbGetCalibrationQueries(index);

	if (queries == 0)
		return false;
	calibrate_as_owner(heap, index, Max(queries, old->queries), old->k, 0, REPORT_NONE, cal);
	if (cal->npoints == 0)
		return false;
	/* an index calibrated before the fit: this calibration stands in for the build */
	cal->fit_at_build = old->fit_at_build > 0 ? old->fit_at_build :
		QdbFitExpected(cal->fit, cal->nodes);
	QdbWriteCalibration(index, cal);
	ereport(LOG,
			(errmsg("quantumdb: index \"%s\" calibrated again: %.0f nodes, %.0f at its last calibration, %.0f entries removed since; the compressor's coding error %.4g, %.4g expected at the build",
					RelationGetRelationName(index), cal->nodes, old->nodes, old->removed,
					cal->fit, cal->fit_at_build)));
	return true;
}

/*
 * The index relid names, opened (AccessShareLock) for the caller: a valid
 * quantumdb index of a table the caller owns (owner) or may read; and, when
 * heap is not NULL, its table.
 */
Relation
QdbOpenCalibratedIndex(Oid relid, bool owner, Relation *heap)
{
	Relation	index = QdbOpenIndexByOid(relid);

	if (owner)
	{
		if (!pg_class_ownercheck(index->rd_index->indrelid, GetUserId()))
			aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE,
						   get_rel_name(index->rd_index->indrelid));
	}
	else
	{
		AclResult	acl = pg_class_aclcheck(index->rd_index->indrelid, GetUserId(), ACL_SELECT);

		if (acl != ACLCHECK_OK)
			aclcheck_error(acl, OBJECT_TABLE, get_rel_name(index->rd_index->indrelid));
	}
	/*
	 * Not an index another backend still builds (CREATE INDEX CONCURRENTLY):
	 * its pages are not in the WAL yet, and its build rewrites the meta page
	 */
	if (!index->rd_index->indisready || !index->rd_index->indisvalid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" is not valid", RelationGetRelationName(index)),
				 errhint("Wait for its build to finish, or REINDEX it.")));
	if (heap)
		*heap = table_open(index->rd_index->indrelid, AccessShareLock);
	return index;
}

/* The calibration as rows: ef_search, rerank, recall, ms_per_query, k, queries, rows, taken_at */
static Datum
calibration_rows(FunctionCallInfo fcinfo, const QdbCalibration *cal)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < cal->npoints; i++)
	{
		Datum		values[8];
		bool		nulls[8] = {0};

		values[0] = Int32GetDatum(cal->points[i].ef_search);
		values[1] = Int32GetDatum(cal->points[i].rerank);
		values[2] = Float8GetDatum(cal->points[i].recall);
		values[3] = Float8GetDatum(cal->points[i].ms);
		values[4] = Int32GetDatum(cal->k);
		values[5] = Int32GetDatum(cal->queries);
		values[6] = Float8GetDatum(cal->live_rows);
		values[7] = TimestampTzGetDatum(cal->taken_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * quantumdb.calibrate(index regclass, queries integer, k integer, seed
 * integer): measures and keeps the index's calibration; its rows.  The
 * table's owner only: it changes what other sessions' scans do.
 */
Datum
quantumdb_calibrate(PG_FUNCTION_ARGS)
{
	int			queries = PG_GETARG_INT32(1);
	int			k = PG_GETARG_INT32(2);
	int			seed = PG_GETARG_INT32(3);
	Relation	heap;
	Relation	index;
	QdbCalibration cal;
	QdbMetaPageData meta;

	if (queries < 1 || queries > QDB_MAX_CALIBRATION_QUERIES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queries must be between 1 and %d, not %d",
						QDB_MAX_CALIBRATION_QUERIES, queries)));
	if (k < 1 || k > QDB_MAX_CALIBRATION_K)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be between 1 and %d, not %d", QDB_MAX_CALIBRATION_K, k)));
	PreventCommandIfReadOnly("quantumdb.calibrate()");
	PreventCommandDuringRecovery("quantumdb.calibrate()");
	index = QdbOpenCalibratedIndex(PG_GETARG_OID(0), true, &heap);
	/*
	 * The calibration goes to the meta page at once, as a sequence's next
	 * value does: a ROLLBACK keeps it, and it measures the rows this
	 * transaction sees, its own uncommitted ones too (session 60's hunt,
	 * /work/runs/hunt-s60a.md F1)
	 */
	if (IsTransactionBlock())
		ereport(WARNING,
				(errmsg("the calibration of index \"%s\" is kept even if this transaction rolls back",
						RelationGetRelationName(index)),
				 errdetail("It measures the rows this transaction sees, its own changes too, and is written to the index at once."),
				 errhint("Calibrate outside a transaction block to measure committed rows only.")));
	QdbReadMeta(index, &meta);
	if (QdbMetaUntrained(&meta))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" has no compressor: its scans are exact",
						RelationGetRelationName(index)),
				 errhint("REINDEX it once its table has rows enough to train one.")));
	calibrate_as_owner(heap, index, queries, k, seed, REPORT_NOTICES, &cal);
	{
		QdbCalibration old;

		/* the fit at the build stays the measure of a fit to come */
		cal.fit_at_build = QdbReadCalibrationQuiet(index, &old) && old.fit_at_build > 0 ?
			old.fit_at_build : QdbFitExpected(cal.fit, cal.nodes);
	}
	if (cal.npoints == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" cannot be calibrated: its table has fewer than two rows it indexes",
						RelationGetRelationName(index))));
	QdbWriteCalibration(index, &cal);
	QdbCheckFit(index, &cal, NOTICE);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	return calibration_rows(fcinfo, &cal);
}

/* quantumdb.calibration(index regclass): the kept calibration's rows (none: no rows). */
Datum
quantumdb_calibration(PG_FUNCTION_ARGS)
{
	Relation	index = QdbOpenCalibratedIndex(PG_GETARG_OID(0), false, NULL);
	QdbCalibration cal;

	if (!QdbReadCalibration(index, &cal))
		cal.npoints = 0;
	index_close(index, AccessShareLock);
	return calibration_rows(fcinfo, &cal);
}
