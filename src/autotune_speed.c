/*
 * autotune_speed.c
 *	  The auto-tuner's speed term: a trial's codes walk an HNSW graph as an
 *	  index scan walks the index, and the walk is scored by what it finds
 *	  and what it costs.
 *
 * The graphs are built as CREATE INDEX builds its graph (exact distances
 * between the sample's rows; graph_memory.c), once per (m, ef_construction)
 * of the search space, over the first graph_rows training rows, and kept
 * for the run: a graph does not depend on the compressor, only the walk
 * does.  One thread builds each, so that a seed gives the same graphs.  A walk is a greedy descent and a layer-0 search of width
 * WALK_EF by ADC over the trial's codes, as a scan at ef_search 40.
 *
 * speed = walk recall x log(T_scan / T_walk) / log(N), clipped to [0, 1]:
 *  - walk recall: the share of exhaustive ADC's 10 nearest (over the
 *    graph's rows) that the walk's 10 nearest hold, ties counted;
 *  - T_walk: the walk's cost, counted, not timed (so that a seed gives the
 *    same run on any machine): NODE_SECONDS per ADC distance the walk
 *    computed (in the index each is a node read through the buffer
 *    manager: issue 11's profile of glove at ef_search 40 put node reads at
 *    about 60% of 2 ms per query, some 0.5 us a node) plus FLOP_SECONDS per
 *    operation of the query's table and transform (or encoder);
 *  - T_scan: an exact scan of the table's N rows, ROW_SECONDS per row
 *    (heap access, detoasting) plus its distance's 2 x dim operations.
 * 1 is a walk as cheap as one row of the exact scan, 0 one as dear as the
 * whole scan; a tenfold cheaper walk gains log(10) / log(N).  The measured
 * time per walk (in memory, so much cheaper than in the index) is
 * reported beside it, not scored.
 */
#include "postgres.h"

#include <math.h>

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "storage/itemid.h"
#include "utils/memutils.h"

#include "autotune.h"
#include "graph.h"
#include "index.h"
#include "qdb_internal.h"

#define WALK_EF			40
#define WALK_K			10
#define WALK_QUERIES	200
#define GRAPH_BATCH		500		/* rows inserted between checks of the deadline */

/* the cost model of the speed term (above) */
#define NODE_SECONDS	0.5e-6
#define FLOP_SECONDS	0.25e-9
#define ROW_SECONDS		0.2e-6

const int	tune_m[TUNE_NM] = {8, 12, 16, 24, 32};
const int	tune_efc[TUNE_NEFC] = {64, 128, 200};

/* Bytes a row takes in the index: a level-0 node and its line pointer. */
double
QdbTuneRowBytes(int code_size, int m)
{
	return (double) QdbNodeSize(code_size, m, 0, false) + sizeof(ItemIdData);
}

/* The graph for (tune_m[mi], tune_efc[ei]), built on first use. */
static QdbMemGraph *
tune_graph(QdbTune *t, const QdbModel *model, int mi, int ei, double *seconds)
{
	QdbMemGraph *g = t->graphs[mi][ei];
	int			m = tune_m[mi];
	int			n = t->graph_rows;
	double		level_mult = 1.0 / log((double) m);
	double		t0 = qdb_now();
	pg_prng_state rng;
	MemoryContext old;

	*seconds = 0;
	if (g != NULL)
		return g;
	old = MemoryContextSwitchTo(t->graph_cxt);
	g = palloc(sizeof(QdbMemGraph));
	QdbMemGraphInit(g, t->metric, t->dim, t->dim, 0, m, tune_efc[ei], QDB_MAX_LEVEL, NULL);
	g->nodes = palloc_extended(sizeof(QdbMemNode) * n, MCXT_ALLOC_HUGE);
	g->locks = palloc0(n);
	g->vectors = (float *) t->walk_x;	/* read only */
	g->cap = n;
	pg_prng_seed(&rng, t->seed);
	for (int i = 0; i < n; i++)
	{
		double		u = pg_prng_double(&rng);
		int			level = (int) floor(-log(u > 0 ? u : 1e-12) * level_mult);
		int			slots;

		level = Min(level, QDB_MAX_LEVEL);
		slots = QdbNodeSlots(m, level);
		g->nodes[i].level = level;
		ItemPointerSetInvalid(&g->nodes[i].tid);
		g->nodes[i].nb = palloc(sizeof(int32) * slots);
		memset(g->nodes[i].nb, 0xFF, sizeof(int32) * slots);	/* -1: empty */
	}
	g->n = n;
	MemoryContextSwitchTo(old);
	/*
	 * One thread: threads insert in a racing order, and a seed must give one
	 * graph.  In batches, to answer a cancel and stop at the deadline (the
	 * graph is then left unfinished, and unused: NULL).
	 */
	for (int first = 0; first < n; first += GRAPH_BATCH)
	{
		CHECK_FOR_INTERRUPTS();
		if (qdb_now() > t->deadline)
		{
			*seconds = qdb_now() - t0;
			return NULL;
		}
		g->batch_x = t->walk_x + (Size) first * t->dim;
		QdbReportStatus(QdbMemGraphInsert(g, model, first, Min(GRAPH_BATCH, n - first), 1),
						"could not build the auto-tuner's graph", NULL);
	}
	t->graphs[mi][ei] = g;
	*seconds = qdb_now() - t0;
	return g;
}

/*
 * Arithmetic of one query's ADC table (and its transform or encoder) as an
 * index pays it: its compressor prepared (qdb_model_prepare), so the cosine
 * norm's table and A mean are not per query.
 */
static double
table_flops(const QdbModel *m)
{
	double		f = 2.0 * m->M * m->ksub * m->dsub;

	if (m->kind == QDB_KIND_NEURAL)
		f += 2.0 * ((double) m->hidden * m->dim + (double) m->dim_pq * m->hidden);
	else if (m->linear)
		f += 2.0 * m->dim_pq * m->dim;
	return f;
}

/* The k smallest of a row of ADC distances, ascending, into best (room for k). */
static int
push_best(float *best, int n, int k, float d)
{
	int			i;

	if (n == k && d >= best[k - 1])
		return n;
	i = n < k ? n++ : k - 1;
	while (i > 0 && best[i - 1] > d)
	{
		best[i] = best[i - 1];
		i--;
	}
	best[i] = d;
	return n;
}

/*
 * Scores model's walks on graph (mi, ei) into r: speed, walk_distances,
 * walk_us (see the file's comment), and graph_seconds; false when the graph
 * was not built before the deadline.
 */
bool
QdbTuneMeasureWalks(QdbTune *t, const QdbModel *model, int mi, int ei, QdbTrialResult *r)
{
	QdbMemGraph *g = tune_graph(t, model, mi, ei, &r->graph_seconds);
	int			n = t->graph_rows;
	int			nq = Min(t->n_val, WALK_QUERIES);
	uint8	   *codes;
	float	   *table;
	QdbCandidate out[WALK_EF];
	float		best[WALK_K];
	QdbMemWalker *walker;
	double		walk_seconds = 0,
				distances = 0,
				hits = 0,
				walk_cost,
				scan_cost,
				rows = Max(t->table_rows, 2.0);

	if (g == NULL)
		return false;
	codes = palloc_extended((Size) n * model->M, MCXT_ALLOC_HUGE);
	table = palloc(sizeof(float) * qdb_table_floats(model));
	QdbReportStatus(qdb_compute_codes(model, t->walk_x, n, codes),
					"could not encode the auto-tuner's graph rows", NULL);
	walker = QdbMemWalkerCreate(g, model, codes, QdbContextAlloc(CurrentMemoryContext));
	if (walker == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	for (int q = 0; q < nq; q++)
	{
		const float *query = t->walk_x + (Size) (n + q) * t->dim;
		double		t0 = qdb_now();
		int64		dist;
		int			found = QdbMemWalk(walker, query, WALK_EF, out, &dist);
		int			nbest = 0;
		float		bias;

		walk_seconds += qdb_now() - t0;
		if (found < 0)
			QdbReportStatus(-found, "could not walk the auto-tuner's graph", NULL);
		distances += dist;
		QdbReportStatus(qdb_compute_distance_table(model, query, table, &bias),
						"could not compute a query table", NULL);
		for (int i = 0; i < n; i++)
			nbest = push_best(best, nbest, WALK_K,
							  qdb_adc_distance(model, table, bias,
											   codes + (Size) i * model->M));
		/* a walk's row within exhaustive ADC's k-th distance is a hit (ties) */
		for (int i = 0; i < Min(found, WALK_K) && nbest > 0; i++)
			if (out[i].dist <= best[nbest - 1])
				hits++;
		CHECK_FOR_INTERRUPTS();
	}
	QdbMemWalkerFree(walker);
	pfree(codes);
	pfree(table);

	r->walk_distances = nq > 0 ? distances / nq : 0;
	r->walk_us = nq > 0 ? walk_seconds * 1e6 / nq : 0;
	walk_cost = r->walk_distances * NODE_SECONDS + table_flops(model) * FLOP_SECONDS;
	scan_cost = rows * (ROW_SECONDS + 2.0 * t->dim * FLOP_SECONDS);
	r->speed = nq > 0 ? hits / ((double) nq * Min(WALK_K, n)) : 0;
	r->speed *= Max(0.0, Min(1.0, log(scan_cost / walk_cost) / log(rows)));
	return true;
}
