/*
 * graph_memory.c
 *	  The HNSW graph of a build, held in memory and filled by several
 *	  threads at once.
 *
 * The leader (the backend) prepares each batch: it grows the arrays, draws
 * the levels, copies the vectors and codes and allocates the lists.  Then
 * the batch's rows are inserted by the leader and up to
 * max_parallel_maintenance_workers helper threads together, each taking the
 * next row from a shared counter.  Threads touch no Postgres state: memory
 * comes from malloc, errors come back as status codes, signals are blocked.
 * A node's lists are changed under that node's spinlock, one lock held at a
 * time, and read without it; the entry point is read and set under a mutex.
 * Vectors and codes never change once a batch starts.  The leader looks for
 * a cancel or terminate before each row it takes and then stops every
 * thread taking rows (stop), so a batch of 1,024 rows at m 100 and
 * ef_construction 1000 no longer delays a cancel by seconds (session 59's
 * hunt, /work/runs/hunt-s59b.md: 3.1 s); the rows not taken stay unlinked
 * and the caller raises the cancel.
 */
#include "postgres.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include "miscadmin.h"

#include "graph.h"
#include "compressor.h"
#include "graph_memory.h"
#include "qdb_internal.h"

#define MAX_BUILD_THREADS	16

/* What one thread needs for one insertion at a time. */
typedef struct Worker
{
	QdbMemGraph *g;
	QdbModel	model;			/* the index's, with malloc for scratch */
	uint32	   *stamp;			/* (cap) visit marks */
	uint32		epoch;
	uint32		id;				/* the node being inserted */
	const float *qvec;			/* its vector, with exact distances */
	float	   *table;			/* its ADC table, in codes mode */
	float		bias;
	QdbLinkScratch link;
	int			status;
	bool		leader;			/* the backend's own thread */
	int			first;			/* the batch */
	int			count;
	/* a walk (QdbMemWalk): by ADC over these codes, counting distances */
	const uint8 *walk_codes;
	int64		walk_distances;
	QdbSearchScratch walk_scratch;
} Worker;

static inline void
node_lock(QdbMemGraph *g, uint32 id)
{
	volatile uint8 *l = &g->locks[id];

	while (__atomic_test_and_set(l, __ATOMIC_ACQUIRE))
	{
		while (__atomic_load_n(l, __ATOMIC_RELAXED))
			sched_yield();
	}
}

static inline void
node_unlock(QdbMemGraph *g, uint32 id)
{
	__atomic_clear(&g->locks[id], __ATOMIC_RELEASE);
}

/*
 * Distance between two vectors of the graph: exact between full vectors
 * (normalised under cosine), or L2 between their projections.
 */
static inline float
vector_distance(const QdbMemGraph *g, const float *a, const float *b)
{
	return QdbVectorDistance(g->metric, a, b, g->vec_dim);
}

/* Distance between nodes a and b of a graph with 16-bit vectors. */
static inline float
vec16_distance(const QdbMemGraph *g, uint32 a, uint32 b)
{
	return QdbVec16Distance(g->metric, g->vec16_dot, g->vec16_stride,
							g->vec16 + (Size) a * g->vec16_stride, &g->vec16_info[a],
							g->vec16 + (Size) b * g->vec16_stride, &g->vec16_info[b]);
}

static float
mem_distance(void *arg, uint32 id)
{
	Worker	   *w = arg;
	QdbMemGraph *g = w->g;

	if (g->vec16)
		return vec16_distance(g, w->id, id);
	if (g->vectors)
		return vector_distance(g, w->qvec, g->vectors + (Size) id * g->vec_dim);
	return qdb_adc_distance(&w->model, w->table, w->bias, g->codes + (Size) id * g->code_size);
}

static int
mem_neighbors(void *arg, uint32 id, int level, uint32 *out)
{
	Worker	   *w = arg;
	QdbMemGraph *g = w->g;
	QdbMemNode *node = &g->nodes[id];
	int32	   *list;
	int			i,
				n = 0;

	if (level > node->level)
		return 0;
	/*
	 * Lists are kept packed: the first empty slot ends them.  Read without
	 * the lock: each slot is an aligned 4-byte word, so a reader racing a
	 * writer sees, per slot, the old or the new neighbour, which is as good
	 * for a walk; locking here made the cache lines of the lock bytes bounce
	 * between threads.
	 */
	list = node->nb + QdbLevelStart(g->m, level);
	for (i = 0; i < QdbLevelSlots(g->m, level); i++)
	{
		int32		v = __atomic_load_n(&list[i], __ATOMIC_RELAXED);

		if (v < 0)
			break;
		out[n++] = (uint32) v;
	}
	return n;
}

static bool
mem_visit(void *arg, uint32 id)
{
	Worker	   *w = arg;

	if (w->stamp[id] == w->epoch)
		return false;
	w->stamp[id] = w->epoch;
	return true;
}

static float
mem_pair(void *arg, uint32 a, uint32 b)
{
	Worker	   *w = arg;
	QdbMemGraph *g = w->g;

	if (g->vec16)
		return vec16_distance(g, a, b);
	if (g->vectors)
		return vector_distance(g, g->vectors + (Size) a * g->vec_dim,
							   g->vectors + (Size) b * g->vec_dim);
	return qdb_pair_distance(&w->model, g->pair, g->codes + (Size) a * g->code_size,
							 g->codes + (Size) b * g->code_size);
}

/* A layer search starts: the node being inserted is never its own find. */
static void
mem_new_layer(void *arg, int level)
{
	Worker	   *w = arg;

	w->stamp[w->id] = ++w->epoch;
}

/*
 * The vectors (or codes) of a list's nodes not yet visited, asked of the
 * memory before the walk reads the first of them, so that their cache
 * misses overlap instead of coming one after the other; the first
 * MEM_PREFETCH_BYTES of each, so that a wide vector's lines do not push
 * out the ones asked for before them.  With it, CREATE INDEX on
 * glove-100-angular (100 floats, every line asked for) took 0.91 of the
 * time it took without (3 runs each way, alternating, on an AMD EPYC:
 * test/bench/index.sh --build-only with a hook building the index again);
 * on fashion-mnist-784's 256-dim projections no difference showed above
 * the noise, with 256 or 512 bytes or the whole vector (an earlier try on
 * another machine had fashion's build slower with the whole vector).
 */
#define MEM_PREFETCH_BYTES 512

static void
mem_prefetch(void *arg, const uint32 *ids, int n)
{
	Worker	   *w = arg;
	QdbMemGraph *g = w->g;
	Size		bytes = g->vec16 ? sizeof(int16) * (Size) g->vec16_stride :
		g->vectors ? sizeof(float) * (Size) g->vec_dim : (Size) g->code_size;
	int			i;

	for (i = 0; i < n; i++)
	{
		const char *p;
		Size		off;

		if (w->stamp[ids[i]] == w->epoch)
			continue;
		if (g->vec16)
		{
			p = (const char *) (g->vec16 + (Size) ids[i] * g->vec16_stride);
			__builtin_prefetch(&g->vec16_info[ids[i]]);
		}
		else if (g->vectors)
			p = (const char *) (g->vectors + (Size) ids[i] * g->vec_dim);
		else
			p = (const char *) (g->codes + (Size) ids[i] * g->code_size);
		for (off = 0; off < bytes && off < MEM_PREFETCH_BYTES; off += 64)
			__builtin_prefetch(p + off);
	}
}

/*
 * The list of the nearest candidate left, asked of the memory while the
 * list being expanded is walked, so that reading it next does not wait.
 */
static void
mem_prefetch_list(void *arg, uint32 id, int level)
{
	Worker	   *w = arg;
	QdbMemGraph *g = w->g;
	const QdbMemNode *node = &g->nodes[id];

	if (level <= node->level)
	{
		const char *p = (const char *) (node->nb + QdbLevelStart(g->m, level));
		Size		bytes = sizeof(int32) * QdbLevelSlots(g->m, level);
		Size		off;

		for (off = 0; off < bytes; off += 64)
			__builtin_prefetch(p + off);
		__builtin_prefetch(p + bytes - 1);
	}
}

/*
 * mem_visit and mem_distance for a list's members; with 16-bit rows, the
 * new members' dot products four at a time (vec16_dot4: the same integers,
 * so the same distances).
 */
static int
mem_visit_distances(void *arg, const uint32 *ids, int n, uint32 *out, float *dist)
{
	Worker	   *w = arg;
	QdbMemGraph *g = w->g;
	int			i,
				k = 0;

	for (i = 0; i < n; i++)
		if (mem_visit(w, ids[i]))
			out[k++] = ids[i];	/* k <= i: ids[i] was read already */
	i = 0;
	if (g->vec16 && g->vec16_dot4)
	{
		const int16 *q = g->vec16 + (Size) w->id * g->vec16_stride;
		const QdbVec16Info *qi = &g->vec16_info[w->id];

		for (; i + 4 <= k; i += 4)
		{
			const int16 *b[4];
			int32		dot[4];
			int			j;

			for (j = 0; j < 4; j++)
				b[j] = g->vec16 + (Size) out[i + j] * g->vec16_stride;
			g->vec16_dot4(q, b, g->vec16_stride, dot);
			for (j = 0; j < 4; j++)
				dist[i + j] = QdbVec16FromDot(g->metric, dot[j], qi, &g->vec16_info[out[i + j]]);
		}
	}
	for (; i < k; i++)
		dist[i] = mem_distance(w, out[i]);
	return k;
}

/* Whether nodes a and b hold the same vector (or code): copies. */
static bool
mem_same(void *arg, uint32 a, uint32 b)
{
	Worker	   *w = arg;
	QdbMemGraph *g = w->g;

	if (g->vec16)
		return memcmp(&g->vec16_info[a], &g->vec16_info[b], sizeof(QdbVec16Info)) == 0 &&
			memcmp(g->vec16 + (Size) a * g->vec16_stride, g->vec16 + (Size) b * g->vec16_stride,
				   sizeof(int16) * g->vec16_stride) == 0;
	if (g->vectors)
		return memcmp(g->vectors + (Size) a * g->vec_dim, g->vectors + (Size) b * g->vec_dim,
					  sizeof(float) * g->vec_dim) == 0;
	return memcmp(g->codes + (Size) a * g->code_size, g->codes + (Size) b * g->code_size,
				  g->code_size) == 0;
}

static const QdbGraphOps mem_ops = {
	.distance = mem_distance,
	.neighbors = mem_neighbors,
	.visit = mem_visit,
	.pair = mem_pair,
	.new_layer = mem_new_layer,
	.prefetch = mem_prefetch,
	.prefetch_list = mem_prefetch_list,
	.visit_distances = mem_visit_distances,
	.same = mem_same
};

/* A walk's distance: ADC of the query's table over the walk's codes. */
static float
walk_distance(void *arg, uint32 id)
{
	Worker	   *w = arg;

	w->walk_distances++;
	return qdb_adc_distance(&w->model, w->table, w->bias,
							w->walk_codes + (Size) id * w->model.M);
}

static void
walk_new_layer(void *arg, int level)
{
	Worker	   *w = arg;

	++w->epoch;
}

static const QdbGraphOps walk_ops = {
	walk_distance, mem_neighbors, mem_visit, NULL, walk_new_layer, NULL, NULL
};

/*
 * Sets node id's lists to those planned (QdbLinkNode), keeping, while there
 * is room, the links other threads added to it meanwhile.
 */
static int
mem_set_own_lists(void *arg, uint32 id, int level, const uint32 *lists, const int *nlist)
{
	Worker	   *w = arg;
	QdbMemGraph *g = w->g;
	int			l;

	node_lock(g, id);
	for (l = 0; l <= level; l++)
	{
		int			nslots = QdbLevelSlots(g->m, l);
		int32	   *list = g->nodes[id].nb + QdbLevelStart(g->m, l);
		const uint32 *sel = lists + QdbLevelStart(g->m, l);
		int32		merged[2 * QDB_MAX_M];
		int			n = 0,
					i,
					j;

		for (i = 0; i < nlist[l]; i++)
			merged[n++] = sel[i];
		for (i = 0; i < nslots && list[i] >= 0 && n < nslots; i++)
		{
			bool		dup = false;

			for (j = 0; j < nlist[l] && !dup; j++)
				dup = (int32) sel[j] == list[i];
			if (!dup)
				merged[n++] = list[i];
		}
		for (i = 0; i < nslots; i++)
			__atomic_store_n(&list[i], i < n ? merged[i] : -1, __ATOMIC_RELAXED);
	}
	node_unlock(g, id);
	return QDB_OK;
}

/* Links node b back to a at level as QdbPlanLink plans, under b's lock. */
static bool
mem_link_back(void *arg, uint32 b, uint32 a, int level, bool force, QdbMayDrop may_drop,
			  void *drop_arg, uint32 *tied)
{
	Worker	   *w = arg;
	QdbMemGraph *g = w->g;
	int			nslots = QdbLevelSlots(g->m, level);
	int32	   *list = g->nodes[b].nb + QdbLevelStart(g->m, level);
	uint32		want[2 * QDB_MAX_M];
	QdbLinkPlan plan;
	int			i;

	/* empty slots are -1, QDB_NO_ID as a uint32 */
	node_lock(g, b);
	/*
	 * no tie reported: the build links back every node it cannot reach at
	 * its end (index_reach.c), and keep_tied's extra links, each dropping a
	 * member of the new node's list, left 100 copies of one vector out of
	 * level 0 in 1 build of 6 that the repair did not mend
	 */
	if (tied)
		*tied = QDB_NO_ID;
	plan = QdbPlanLink(&mem_ops, w, b, (const uint32 *) list, nslots, a, force, may_drop,
					   drop_arg, want, NULL);
	/* readers load slots without the lock (mem_neighbors): store them atomically */
	if (plan == QDB_LINK_WRITE)
		for (i = 0; i < nslots; i++)
			__atomic_store_n(&list[i], (int32) want[i], __ATOMIC_RELAXED);
	node_unlock(g, b);
	return plan != QDB_LINK_REFUSED;
}

static const QdbLinkOps mem_link_ops = {mem_set_own_lists, mem_link_back};

#define ENTRY_WORD(id, level)	(((uint64) (uint32) (level) << 32) | (uint32) (id))
#define ENTRY_NONE				ENTRY_WORD(-1, -1)

/* An empty graph with these settings; the caller grows its arrays. */
void
QdbMemGraphInit(QdbMemGraph *g, QdbMetric metric, int dim, int vec_dim,
				int code_size, int m, int ef_construction, int max_level,
				const float *pair)
{
	memset(g, 0, sizeof(QdbMemGraph));
	g->metric = metric;
	g->dim = dim;
	g->vec_dim = vec_dim;
	g->code_size = code_size;
	g->m = m;
	g->ef_construction = ef_construction;
	g->max_level = max_level;
	g->pair = pair;
	g->entry = ENTRY_NONE;
}

/* The entry point (-1: the graph is empty) and its level. */
int
QdbMemGraphEntry(const QdbMemGraph *g, int *level)
{
	uint64		e = __atomic_load_n(&g->entry, __ATOMIC_ACQUIRE);

	*level = (int32) (e >> 32);
	return (int32) (uint32) e;
}

/* Inserts node id (vector, code, level and empty lists already in place). */
static void
insert_node(Worker *w, uint32 id)
{
	QdbMemGraph *g = w->g;
	int			level = g->nodes[id].level;
	uint64		e = ENTRY_NONE;
	int			entry,
				entry_level;

	/* the first node becomes the entry point */
	if (__atomic_compare_exchange_n(&g->entry, &e, ENTRY_WORD(id, level), false,
									__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return;
	entry = QdbMemGraphEntry(g, &entry_level);

	w->id = id;
	w->qvec = g->vectors ? g->vectors + (Size) id * g->vec_dim : NULL;
	if (!g->vectors && !g->vec16)
	{
		int			rc = qdb_compute_distance_table(&w->model, g->batch_x + (Size) (id - w->first) * g->dim,
													w->table, &w->bias);

		if (rc != QDB_OK)
		{
			w->status = rc;
			return;
		}
	}
	w->status = QdbLinkNode(&mem_ops, w, &mem_link_ops, w, id, level, entry, entry_level,
							&w->link);
	if (w->status != QDB_OK)
		return;

	/* a node above the entry point's level becomes the entry point */
	e = __atomic_load_n(&g->entry, __ATOMIC_ACQUIRE);
	while ((int32) (e >> 32) < level &&
		   !__atomic_compare_exchange_n(&g->entry, &e, ENTRY_WORD(id, level), false,
										__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
}

static void *
worker_run(void *arg)
{
	Worker	   *w = arg;
	QdbMemGraph *g = w->g;

	for (;;)
	{
		int			i;

		/* a cancel the backend would act on: no thread takes another row */
		if (w->leader && (QueryCancelPending || ProcDiePending) &&
			INTERRUPTS_CAN_BE_PROCESSED())
			__atomic_store_n(&g->stop, 1, __ATOMIC_RELAXED);
		if (__atomic_load_n(&g->stop, __ATOMIC_RELAXED))
			break;
		i = __atomic_fetch_add(&g->next, 1, __ATOMIC_RELAXED);
		if (i >= w->count || w->status != QDB_OK)
			break;
		insert_node(w, w->first + i);
	}
	return NULL;
}

static void
worker_free(Worker *w)
{
	free(w->stamp);
	free(w->table);
	QdbLinkScratchFree(&w->link);
}

static bool
worker_init(Worker *w, QdbMemGraph *g, const QdbModel *model, int first, int count)
{
	memset(w, 0, sizeof(Worker));
	w->g = g;
	w->model = *model;
	w->model.alloc = &qdb_default_alloc;
	w->first = first;
	w->count = count;
	w->stamp = calloc(g->cap, sizeof(uint32));
	w->table = malloc(sizeof(float) * qdb_table_floats(model));
	return QdbLinkScratchInit(&w->link, &qdb_default_alloc, g->m, g->ef_construction,
							  g->max_level) && w->stamp && w->table;
}

/*
 * Inserts nodes first .. first + count - 1 with nthreads threads (the
 * caller's included).  batch_x holds their input vectors (for ADC tables in
 * codes mode).  Returns a QdbStatus: QDB_ERR_CANCELLED when a cancel or
 * terminate became pending (QdbReportStatus raises it), the rest unlinked.
 */
int
QdbMemGraphInsert(QdbMemGraph *g, const QdbModel *model, int first, int count, int nthreads)
{
	Worker		workers[MAX_BUILD_THREADS];
	pthread_t	threads[MAX_BUILD_THREADS];
	bool		started[MAX_BUILD_THREADS] = {0};
	sigset_t	all,
				old;
	int			status = QDB_OK,
				t;

	nthreads = Max(1, Min(nthreads, MAX_BUILD_THREADS));
	nthreads = Min(nthreads, Max(count / 64, 1));	/* small batches: one thread */
	for (t = 0; t < nthreads; t++)
	{
		if (!worker_init(&workers[t], g, model, first, count))
		{
			while (t >= 0)
				worker_free(&workers[t--]);
			return QDB_ERR_NOMEM;
		}
		/* the workers share visit marks of nothing: a stamp array each */
		workers[t].epoch = 0;
	}
	workers[0].leader = true;
	g->next = 0;
	g->stop = 0;

	/* helpers must never take a Postgres signal */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (t = 1; t < nthreads; t++)
		started[t] = pthread_create(&threads[t], NULL, worker_run, &workers[t]) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	worker_run(&workers[0]);
	for (t = 1; t < nthreads; t++)
		if (started[t])
			pthread_join(threads[t], NULL);
	/* a thread that failed to start leaves its rows to the others */
	for (t = 0; t < nthreads; t++)
		if (workers[t].status != QDB_OK)
			status = workers[t].status;
	if (status == QDB_OK && g->stop)
		status = QDB_ERR_CANCELLED;
	if (status == QDB_OK && g->next < count)
		worker_run(&workers[0]);
	if (status == QDB_OK && g->stop)
		status = QDB_ERR_CANCELLED;
	for (t = 0; t < nthreads; t++)
		worker_free(&workers[t]);
	return status;
}

/*
 * A walker of a finished graph, as a scan walks an index: the query's ADC
 * table of model over codes (one per node, model's code size; any
 * compressor's, not only the graph's own), a greedy descent from the entry
 * point, a layer-0 search of width ef.  The auto-tuner measures walks with
 * it (autotune_speed.c).  Memory from alloc; NULL when there is none.
 */
QdbMemWalker *
QdbMemWalkerCreate(const QdbMemGraph *g, const QdbModel *model, const uint8 *codes,
				   const QdbAlloc *alloc)
{
	Worker	   *w = qdb_malloc(alloc, 1, sizeof(Worker));

	if (w == NULL)
		return NULL;
	memset(w, 0, sizeof(Worker));
	w->g = (QdbMemGraph *) g;
	w->model = *model;
	w->model.alloc = alloc;
	w->walk_codes = codes;
	w->stamp = qdb_malloc(alloc, Max(g->n, 1), sizeof(uint32));
	w->table = qdb_malloc(alloc, qdb_table_floats(model), sizeof(float));
	QdbSearchScratchInit(&w->walk_scratch, alloc);
	if (w->stamp == NULL || w->table == NULL)
	{
		QdbMemWalkerFree((QdbMemWalker *) w);
		return NULL;
	}
	memset(w->stamp, 0, sizeof(uint32) * Max(g->n, 1));
	return (QdbMemWalker *) w;
}

void
QdbMemWalkerFree(QdbMemWalker *walker)
{
	Worker	   *w = (Worker *) walker;
	const QdbAlloc *alloc;

	if (w == NULL)
		return;
	alloc = w->model.alloc;
	QdbSearchScratchFree(&w->walk_scratch);
	qdb_free(alloc, w->stamp);
	qdb_free(alloc, w->table);
	qdb_free(alloc, w);
}

/*
 * Walks for query (the model's input dimensions): the nearest ef nodes by
 * ADC, nearest first, into out (room for ef).  Returns how many, or a
 * negative QdbStatus; *distances gets the ADC distances computed.
 */
int
QdbMemWalk(QdbMemWalker *walker, const float *query, int ef, QdbCandidate *out,
		   int64 *distances)
{
	Worker	   *w = (Worker *) walker;
	const QdbMemGraph *g = w->g;
	QdbCandidate cur;
	int			level,
				entry,
				n,
				rc;

	*distances = 0;
	entry = QdbMemGraphEntry(g, &level);
	if (entry < 0)
		return 0;
	rc = qdb_compute_distance_table(&w->model, query, w->table, &w->bias);
	if (rc != QDB_OK)
		return -rc;
	w->walk_distances = 0;
	cur.id = (uint32) entry;
	cur.dist = walk_distance(w, cur.id);
	if (QdbDescend(&walk_ops, w, &cur, level, 0, 2 * g->m, &w->walk_scratch) < 0)
		return -QDB_ERR_NOMEM;
	walk_new_layer(w, 0);
	n = QdbSearchLayer(&walk_ops, w, &cur, 1, ef, 0, 2 * g->m, out, &w->walk_scratch);
	*distances = w->walk_distances;
	return n < 0 ? -QDB_ERR_NOMEM : n;
}
