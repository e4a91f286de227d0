/*
 * pq.c
 *	  Product quantizer: M independent k-means of QDB_KSUB centroids, one per
 *	  sub-space of dsub = dim_pq / M consecutive dims.
 *
 * Input here is already transformed (centred, rotated, reduced or padded)
 * by the caller.  The sub-spaces train in parallel, one k-means per task
 * on a few threads; encoding splits the rows between threads, except for
 * a row or two (an index insert), encoded directly with no sgemm.  Threads
 * never allocate (the caller's allocator need not be thread-safe: in the
 * extension it is palloc) and never call the progress callback, which runs
 * in the calling thread as tasks finish and every QDB_TASK_POLL_MS between
 * (a cancel there stops every sub-space's k-means after its iteration under
 * way).  The results do not depend on the number of threads.
 */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "kmeans.h"
#include "pq.h"
#include "task_pool.h"
#include "qdb_distance.h"
#include "qdb_internal.h"

#define ENCODE_CHUNK_ROWS	4096	/* rows per encoding task */
#define ENCODE_DIRECT_ROWS	2		/* up to this many rows: no sgemm, no norms */
#define DIRECT_BLOCK		16		/* centroids per block of the short-dsub loop */
#define DIRECT_SHORT_DSUB	16		/* below this a kernel call costs more than its sums */

int
qdb_progress_report(const QdbProgressCtx *p, const char *stage,
					int iter, int iters, double loss)
{
	return qdb_progress_report_measure(p, stage, iter, iters, loss, NULL);
}

int
qdb_progress_report_measure(const QdbProgressCtx *p, const char *stage,
							int iter, int iters, double value, const char *measure)
{
	QdbEpochStats s;

	if (p == NULL || p->cb == NULL)
		return QDB_OK;
	s.stage = stage;
	s.iter = iter;
	s.iters = iters;
	s.loss = value;
	s.measure = measure;
	s.seconds = qdb_now() - p->t0;
	s.neural = NULL;
	s.heartbeat = 0;
	return p->cb(&s, p->arg) ? QDB_ERR_CANCELLED : QDB_OK;
}

int
qdb_progress_heartbeat(const QdbProgressCtx *p, const char *stage)
{
	QdbEpochStats s;

	if (p == NULL || p->cb == NULL)
		return QDB_OK;
	memset(&s, 0, sizeof(s));
	s.stage = stage;
	s.seconds = qdb_now() - p->t0;
	s.heartbeat = 1;
	return p->cb(&s, p->arg) ? QDB_ERR_CANCELLED : QDB_OK;
}

typedef struct PqTrainJob
{
	const float *y;				/* (n x dim_pq) */
	size_t		n;
	int			dim_pq;
	int			M;
	int			dsub;
	int			niter;
	int			max_points_per_centroid;
	uint64_t	seed;
	int			warm;
	float	   *codebooks;
	char	   *scratch;		/* per worker: sub-vectors, then k-means */
	size_t		scratch_size;
	double	   *obj;			/* (M) */
	int		   *status;			/* (M) */
	const QdbProgressCtx *p;
	const char *stage;
	double		loss;
	int			done;
	int			result;
	int			stop;			/* set (atomically) once cancelled: tasks end early */
	pthread_t	caller;			/* the thread that may call p */
} PqTrainJob;

static void
pq_train_task(void *arg, int m, int worker)
{
	PqTrainJob *job = arg;
	char	   *scratch = job->scratch + job->scratch_size * worker;
	float	   *sub = (float *) scratch;
	size_t		subbytes = (job->n * job->dsub * sizeof(float) + 63) & ~(size_t) 63;
	size_t		i;

	/*
	 * a thread of the pool watches job->stop; the calling thread (no pool:
	 * one thread) beats the progress callback itself
	 */
	int			caller = pthread_equal(pthread_self(), job->caller);

	/* k-means wants its points contiguous */
	for (i = 0; i < job->n; i++)
		memcpy(sub + i * job->dsub, job->y + i * job->dim_pq + (size_t) m * job->dsub,
			   sizeof(float) * job->dsub);
	/* a different stream per sub-space */
	job->status[m] = qdb_kmeans_run(scratch + subbytes, sub, job->n, job->dsub,
									QDB_KSUB, job->niter,
									job->max_points_per_centroid,
									job->seed ^ ((uint64_t) (m + 1) * UINT64_C(0x9E3779B97F4A7C15)),
									job->warm,
									job->codebooks + (size_t) m * QDB_KSUB * job->dsub,
									&job->obj[m], caller ? job->p : NULL, job->stage,
									&job->stop);
}

static int
pq_train_done(void *arg, int m)
{
	PqTrainJob *job = arg;

	if (m == QDB_TASK_POLL)
	{
		/* a sub-space's k-means is long (kmeans_iters 1000: seconds) */
		job->result = qdb_progress_heartbeat(job->p, job->stage);
		if (job->result == QDB_OK)
			return 0;
		__atomic_store_n(&job->stop, 1, __ATOMIC_RELAXED);
		return 1;
	}
	if (job->status[m] != QDB_OK)
	{
		job->result = job->status[m];
		return 1;
	}
	job->loss += job->obj[m];
	job->done++;
	if (job->p)
	{
		job->result = qdb_progress_report(job->p, job->stage, job->done, job->M,
										  job->loss);
		if (job->result != QDB_OK)
			return 1;
	}
	return 0;
}

int
qdb_pq_train(const QdbAlloc *a, const float *y, size_t n, int dim_pq,
			 int M, int niter, int max_points_per_centroid,
			 uint64_t seed, int warm, float *codebooks,
			 const QdbProgressCtx *p, const char *stage)
{
	PqTrainJob	job;
	int			nworkers;
	int		   *order;
	QdbWorker  *workers;

	if (y == NULL || codebooks == NULL || M <= 0 || dim_pq <= 0 || dim_pq % M != 0)
		return QDB_ERR_ARG;
	if (n < QDB_KSUB)
		return QDB_ERR_DATA;
	memset(&job, 0, sizeof(job));
	job.y = y;
	job.n = n;
	job.dim_pq = dim_pq;
	job.M = M;
	job.dsub = dim_pq / M;
	job.niter = niter;
	job.max_points_per_centroid = max_points_per_centroid;
	job.seed = seed;
	job.warm = warm;
	job.codebooks = codebooks;
	job.p = p;
	job.stage = stage;
	job.result = QDB_OK;
	job.caller = pthread_self();
	job.scratch_size = ((n * job.dsub * sizeof(float) + 63) & ~(size_t) 63) +
		qdb_kmeans_scratch_size(n, job.dsub, QDB_KSUB, max_points_per_centroid);
	job.scratch_size = (job.scratch_size + 63) & ~(size_t) 63;

	nworkers = qdb_thread_count();
	if (nworkers > M)
		nworkers = M;
	job.scratch = qdb_malloc(a, nworkers, job.scratch_size);
	job.obj = qdb_calloc(a, M, sizeof(double));
	job.status = qdb_calloc(a, M, sizeof(int));
	order = qdb_malloc(a, M, sizeof(int));
	workers = qdb_malloc(a, nworkers, sizeof(QdbWorker));
	if (!job.scratch || !job.obj || !job.status || !order || !workers)
		job.result = QDB_ERR_NOMEM;
	else
		qdb_run_tasks(nworkers, M, pq_train_task, pq_train_done, &job, order, workers);

	qdb_free(a, workers);
	qdb_free(a, order);
	qdb_free(a, job.status);
	qdb_free(a, job.obj);
	qdb_free(a, job.scratch);
	return job.result;
}

typedef struct PqEncodeJob
{
	const float *codebooks;
	const float *cnorm;			/* (M x ksub) */
	int			dim_pq;
	int			M;
	int			dsub;
	const float *y;
	size_t		n;
	uint8_t    *codes;
	size_t		chunk;			/* rows per task: min(n, ENCODE_CHUNK_ROWS) */
	float	   *work;			/* per worker: min(chunk, QDB_ASSIGN_BLOCK) x ksub */
	int32_t    *labels;			/* per worker: chunk */
	float	   *dist;			/* per worker: chunk, or NULL */
	double	   *sse;			/* (tasks) */
} PqEncodeJob;

static void
pq_encode_task(void *arg, int task, int worker)
{
	PqEncodeJob *job = arg;
	size_t		i0 = (size_t) task * ENCODE_CHUNK_ROWS;
	size_t		b = job->n - i0 < ENCODE_CHUNK_ROWS ? job->n - i0 : ENCODE_CHUNK_ROWS;
	size_t		wrows = job->chunk < QDB_ASSIGN_BLOCK ? job->chunk : QDB_ASSIGN_BLOCK;
	float	   *work = job->work + (size_t) worker * wrows * QDB_KSUB;
	int32_t    *labels = job->labels + (size_t) worker * job->chunk;
	float	   *dist = job->dist ? job->dist + (size_t) worker * job->chunk : NULL;
	double		total = 0;
	int			m;

	for (m = 0; m < job->M; m++)
	{
		size_t		r;

		qdb_nearest_centroids(job->y + i0 * job->dim_pq + (size_t) m * job->dsub, b,
							  job->dsub, job->dim_pq,
							  job->codebooks + (size_t) m * QDB_KSUB * job->dsub,
							  job->cnorm + (size_t) m * QDB_KSUB, QDB_KSUB, work,
							  labels, dist);
		for (r = 0; r < b; r++)
		{
			job->codes[(i0 + r) * job->M + m] = (uint8_t) labels[r];
			if (dist)
				total += dist[r];
		}
	}
	job->sse[task] = total;
}

/* nearest of the QDB_KSUB centroids c (ksub x dsub) to ys; *dist its distance */
static int
nearest_direct(const float *ys, const float *c, int dsub, float *dist)
{
	float		best = INFINITY;
	int			arg = 0;
	int			k,
				k0,
				j,
				t;

	if (dsub >= DIRECT_SHORT_DSUB)
	{
		for (k = 0; k < QDB_KSUB; k++)
		{
			float		d = qdb_kernels.l2sq(ys, c + (size_t) k * dsub, dsub);

			if (d < best)
			{
				best = d;
				arg = k;
			}
		}
		*dist = best;
		return arg;
	}

	/* short sub-vectors: sums across a block of centroids, which vectorise */
	for (k0 = 0; k0 < QDB_KSUB; k0 += DIRECT_BLOCK)
	{
		const float *cb = c + (size_t) k0 * dsub;
		float		acc[DIRECT_BLOCK] = {0};

		for (t = 0; t < dsub; t++)
		{
			float		yt = ys[t];

			for (j = 0; j < DIRECT_BLOCK; j++)
			{
				float		e = yt - cb[j * dsub + t];

				acc[j] += e * e;
			}
		}
		for (j = 0; j < DIRECT_BLOCK; j++)
		{
			if (acc[j] < best)
			{
				best = acc[j];
				arg = k0 + j;
			}
		}
	}
	*dist = best;
	return arg;
}

/*
 * A row or two (an index insert) against every centroid directly: the
 * sgemm path's packing and the centroid norms it recomputes on every call
 * cost more than the distances themselves (from 3 rows of 100 dims on,
 * sgemm wins again).  Ties go to the lowest index, as in
 * qdb_nearest_centroids; codes differ from the batch path's only where two
 * centroids are equally near up to rounding.
 */
static void
pq_encode_direct(const float *codebooks, int dim_pq, int M, const float *y,
				 size_t n, uint8_t *codes, double *sse)
{
	int			dsub = dim_pq / M;
	double		total = 0;
	size_t		i;
	int			m;

	for (i = 0; i < n; i++)
		for (m = 0; m < M; m++)
		{
			float		d;

			codes[i * M + m] = (uint8_t)
				nearest_direct(y + i * dim_pq + (size_t) m * dsub,
							   codebooks + (size_t) m * QDB_KSUB * dsub, dsub, &d);
			total += d;
		}
	if (sse)
		*sse = total;
}

int
qdb_pq_encode(const QdbAlloc *a, const float *codebooks, int dim_pq,
			  int M, const float *y, size_t n, uint8_t *codes, double *sse)
{
	PqEncodeJob job;
	float	   *cnorm;
	int			ntasks,
				nworkers,
				status = QDB_OK;
	int		   *order;
	QdbWorker  *workers;
	int			m;

	if (codebooks == NULL || y == NULL || codes == NULL || M <= 0 ||
		dim_pq <= 0 || dim_pq % M != 0)
		return QDB_ERR_ARG;
	if (n == 0)
	{
		if (sse)
			*sse = 0;
		return QDB_OK;
	}
	if (n <= ENCODE_DIRECT_ROWS)
	{
		pq_encode_direct(codebooks, dim_pq, M, y, n, codes, sse);
		return QDB_OK;
	}
	if ((n + ENCODE_CHUNK_ROWS - 1) / ENCODE_CHUNK_ROWS > INT32_MAX)
		return QDB_ERR_ARG;
	ntasks = (int) ((n + ENCODE_CHUNK_ROWS - 1) / ENCODE_CHUNK_ROWS);
	/* one task (a single vector, say) runs here: no thread, small buffers */
	nworkers = ntasks > 1 ? qdb_thread_count() : 1;
	if (nworkers > ntasks)
		nworkers = ntasks;

	memset(&job, 0, sizeof(job));
	job.codebooks = codebooks;
	job.dim_pq = dim_pq;
	job.M = M;
	job.dsub = dim_pq / M;
	job.y = y;
	job.n = n;
	job.codes = codes;
	job.chunk = n < ENCODE_CHUNK_ROWS ? n : ENCODE_CHUNK_ROWS;
	job.cnorm = cnorm = qdb_malloc(a, (size_t) M * QDB_KSUB, sizeof(float));
	job.work = qdb_malloc(a, (size_t) nworkers *
						  (job.chunk < QDB_ASSIGN_BLOCK ? job.chunk : QDB_ASSIGN_BLOCK) *
						  QDB_KSUB, sizeof(float));
	job.labels = qdb_malloc(a, (size_t) nworkers * job.chunk, sizeof(int32_t));
	if (sse)
		job.dist = qdb_malloc(a, (size_t) nworkers * job.chunk, sizeof(float));
	job.sse = qdb_calloc(a, ntasks, sizeof(double));
	order = qdb_malloc(a, ntasks, sizeof(int));
	workers = qdb_malloc(a, nworkers, sizeof(QdbWorker));
	if (!cnorm || !job.work || !job.labels || (sse && !job.dist) || !job.sse ||
		!order || !workers)
		status = QDB_ERR_NOMEM;
	else
	{
		for (m = 0; m < M; m++)
			qdb_centroid_norms(codebooks + (size_t) m * QDB_KSUB * job.dsub, QDB_KSUB,
							   job.dsub, cnorm + (size_t) m * QDB_KSUB);
		qdb_run_tasks(nworkers, ntasks, pq_encode_task, NULL, &job, order, workers);
		if (sse)
		{
			double		total = 0;
			int			t;

			/* summed in task order: the same total for any thread count */
			for (t = 0; t < ntasks; t++)
				total += job.sse[t];
			*sse = total;
		}
	}
	qdb_free(a, workers);
	qdb_free(a, order);
	qdb_free(a, job.sse);
	qdb_free(a, job.dist);
	qdb_free(a, job.labels);
	qdb_free(a, job.work);
	qdb_free(a, cnorm);
	return status;
}

void
qdb_pq_decode(const float *codebooks, int dim_pq, int M,
			  const uint8_t *codes, size_t n, float *y)
{
	int			dsub = dim_pq / M;
	size_t		i;
	int			m;

	for (i = 0; i < n; i++)
		for (m = 0; m < M; m++)
			memcpy(y + i * dim_pq + (size_t) m * dsub,
				   codebooks + ((size_t) m * QDB_KSUB + codes[i * M + m]) * dsub,
				   sizeof(float) * dsub);
}
