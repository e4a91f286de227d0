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
 * Vectors and codes never change once a batch starts.
 */
#include "postgres.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include "qdb_distance.h"
#include "index.h"

#define MAX_BUILD_THREADS	16

/* What one thread needs for one insertion at a time. */
typedef struct Worker
{
	QdbMemGraph *g;
	QdbModel	model;			/* the index's, with malloc for scratch */
	uint32	   *stamp;			/* (cap) visit marks */
	uint32		epoch;
	const float *qvec;			/* the row being inserted */
	float	   *table;			/* its ADC table, in codes mode */
	float		bias;
	QdbSearchScratch scratch;
	QdbCandidate *found;		/* (ef_construction) */
	QdbCandidate *entries;
	int			status;
	int			first;			/* the batch */
	int			count;
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

/* Exact distance between two full vectors (normalised under cosine). */
static inline float
vector_distance(const QdbMemGraph *g, const float *a, const float *b)
{
	switch (g->metric)
	{
		case QDB_METRIC_L2:
			return sqrtf(qdb_kernels.l2sq(a, b, g->dim));
		case QDB_METRIC_IP:
			return -qdb_kernels.dot(a, b, g->dim);
		default:
			return 1.0f - qdb_kernels.dot(a, b, g->dim);
	}
}

static float
mem_distance(void *arg, uint32 id)
{
	Worker	   *w = arg;
	QdbMemGraph *g = w->g;

	if (g->vectors)
		return vector_distance(g, w->qvec, g->vectors + (Size) id * g->dim);
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

	if (g->vectors)
		return vector_distance(g, g->vectors + (Size) a * g->dim, g->vectors + (Size) b * g->dim);
	return qdb_pair_distance(&w->model, g->pair, g->codes + (Size) a * g->code_size,
							 g->codes + (Size) b * g->code_size);
}

static const QdbGraphOps mem_ops = {mem_distance, mem_neighbors, mem_visit, mem_pair};

/*
 * Links node b back to a at level, pruning b's list by the heuristic if
 * full; with force, a gets in at the cost of b's farthest neighbour.
 * Returns whether b links to a.  Holds b's lock throughout.
 */
static bool
mem_backlink(Worker *w, uint32 b, uint32 a, int level, bool force)
{
	QdbMemGraph *g = w->g;
	int			nslots = QdbLevelSlots(g->m, level);
	int32	   *list = g->nodes[b].nb + QdbLevelStart(g->m, level);
	QdbCandidate cand[2 * QDB_MAX_M + 1];
	QdbCandidate sel[2 * QDB_MAX_M];
	int			ncand = 0,
				nsel,
				i;
	bool		linked = false;

	node_lock(g, b);
	for (i = 0; i < nslots; i++)
	{
		if (list[i] == (int32) a)
		{
			node_unlock(g, b);
			return true;
		}
		if (list[i] < 0)
		{
			list[i] = a;
			node_unlock(g, b);
			return true;
		}
	}
	for (i = 0; i < nslots; i++)
	{
		cand[ncand].id = list[i];
		cand[ncand].dist = mem_pair(w, b, list[i]);
		ncand++;
	}
	cand[ncand].id = a;
	cand[ncand].dist = mem_pair(w, b, a);
	ncand++;
	QdbSortCandidates(cand, ncand);
	if (force)
	{
		/* the nearest others, and a */
		for (i = 0, nsel = 0; i < ncand && nsel < nslots - 1; i++)
			if (cand[i].id != a)
				sel[nsel++] = cand[i];
		sel[nsel].id = a;
		nsel++;
	}
	else
		nsel = QdbSelectNeighbors(&mem_ops, w, cand, ncand, nslots, sel);
	for (i = 0; i < nslots; i++)
	{
		list[i] = i < nsel ? (int32) sel[i].id : -1;
		linked |= i < nsel && sel[i].id == a;
	}
	node_unlock(g, b);
	return linked;
}

/*
 * Sets node id's list at level to sel, keeping links other threads added
 * meanwhile while there is room.
 */
static void
set_own_list(Worker *w, uint32 id, int level, const QdbCandidate *sel, int nsel)
{
	QdbMemGraph *g = w->g;
	int			nslots = QdbLevelSlots(g->m, level);
	int32	   *list = g->nodes[id].nb + QdbLevelStart(g->m, level);
	int32		merged[2 * QDB_MAX_M];
	int			n = 0,
				i,
				j;

	node_lock(g, id);
	for (i = 0; i < nsel; i++)
		merged[n++] = sel[i].id;
	for (i = 0; i < nslots && list[i] >= 0 && n < nslots; i++)
	{
		bool		dup = false;

		for (j = 0; j < nsel && !dup; j++)
			dup = (int32) sel[j].id == list[i];
		if (!dup)
			merged[n++] = list[i];
	}
	for (i = 0; i < nslots; i++)
		list[i] = i < n ? merged[i] : -1;
	node_unlock(g, id);
}

/* Inserts node id (vector, code, level and empty lists already in place). */
static void
insert_node(Worker *w, uint32 id)
{
	QdbMemGraph *g = w->g;
	int			level = g->nodes[id].level;
	int			entry,
				entry_level,
				nfound = 1,
				l,
				i;
	QdbCandidate cur;
	QdbCandidate sel[2 * QDB_MAX_M];

	pthread_mutex_lock(&g->entry_lock);
	entry = g->entry;
	entry_level = g->entry_level;
	if (entry < 0)
	{
		g->entry = id;
		g->entry_level = level;
		pthread_mutex_unlock(&g->entry_lock);
		return;
	}
	pthread_mutex_unlock(&g->entry_lock);

	w->qvec = g->vectors ? g->vectors + (Size) id * g->dim : NULL;
	if (!g->vectors)
	{
		int			rc = qdb_compute_distance_table(&w->model, g->batch_x + (Size) (id - w->first) * g->dim,
													w->table, &w->bias);

		if (rc != QDB_OK)
		{
			w->status = rc;
			return;
		}
	}
	w->stamp[id] = ++w->epoch;	/* never a candidate of itself */
	cur.id = entry;
	cur.dist = mem_distance(w, entry);
	for (l = entry_level; l > level; l--)
	{
		QdbCandidate best;

		w->stamp[id] = ++w->epoch;
		if (QdbSearchLayer(&mem_ops, w, &cur, 1, 1, l, 2 * g->m, &best, &w->scratch) > 0)
			cur = best;
	}
	w->found[0] = cur;
	for (l = Min(level, entry_level); l >= 0; l--)
	{
		int			nsel;
		bool		linked = false;

		memcpy(w->entries, w->found, sizeof(QdbCandidate) * nfound);
		w->stamp[id] = ++w->epoch;
		nfound = QdbSearchLayer(&mem_ops, w, w->entries, nfound, g->ef_construction, l,
								2 * g->m, w->found, &w->scratch);
		nsel = QdbSelectNeighbors(&mem_ops, w, w->found, nfound, QdbLevelSlots(g->m, l), sel);
		set_own_list(w, id, l, sel, nsel);
		for (i = 0; i < nsel; i++)
			linked |= mem_backlink(w, sel[i].id, id, l, false);
		/* every node keeps a way in */
		if (!linked && nsel > 0)
			mem_backlink(w, sel[0].id, id, l, true);
	}
	if (level > entry_level)
	{
		pthread_mutex_lock(&g->entry_lock);
		if (level > g->entry_level)
		{
			g->entry = id;
			g->entry_level = level;
		}
		pthread_mutex_unlock(&g->entry_lock);
	}
}

static void *
worker_run(void *arg)
{
	Worker	   *w = arg;
	QdbMemGraph *g = w->g;

	for (;;)
	{
		int			i = __atomic_fetch_add(&g->next, 1, __ATOMIC_RELAXED);

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
	free(w->found);
	free(w->entries);
	QdbSearchScratchFree(&w->scratch);
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
	w->found = malloc(sizeof(QdbCandidate) * g->ef_construction);
	w->entries = malloc(sizeof(QdbCandidate) * g->ef_construction);
	return w->stamp && w->table && w->found && w->entries &&
		QdbSearchScratchInit(&w->scratch, g->ef_construction, 2 * g->m);
}

/*
 * Inserts nodes first .. first + count - 1 with nthreads threads (the
 * caller's included).  batch_x holds their input vectors (for ADC tables in
 * codes mode).  Returns a QdbStatus.
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
	g->next = 0;

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
	if (status == QDB_OK && g->next < count)
		worker_run(&workers[0]);
	for (t = 0; t < nthreads; t++)
		worker_free(&workers[t]);
	return status;
}
