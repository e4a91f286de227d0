/*
 * opq.c
 *	  Optimized product quantization (Ge et al., "Optimized Product
 *	  Quantization", 2014), trained the way Faiss's OPQMatrix does it but
 *	  started from the paper's parametric solution or the input's order.
 *
 * The sample is centred and projected on its t = min(dim_pq, dim) leading
 * principal directions P (all of them when there is no reduction): z =
 * P (x - mean).  An orthonormal R (dim_pq x t) then maps z to the PQ space,
 * y = R z, and the model's transform is A = R P with the PCA mean.
 *
 * R starts as the eigenvalue allocation: each principal direction goes to
 * the sub-space with the smallest product of variances so far, which makes
 * the sub-spaces about equally hard to quantize (far better than Faiss's
 * random rotation, which 20 rounds do not repair).  Without a reduction the
 * input's own order competes too (see choose_init).  Then OPQ alternates:
 *	 - train the PQ on y = R z with a few k-means iterations, warm-started
 *	   from the previous codebooks (the first time with the full count);
 *	 - encode, and move R to the orthogonal Procrustes solution: with G =
 *	   Yhat^T Z = U S V^T, R = U V^T minimises ||Z R^T - Yhat||
 *	   (procrustes.c; G from the codes, opq_cross.c).
 * The start and the alternations see at most the rows that keep one
 * alternation within OPQ_ROUND_BUDGET (a random subset; at a few hundred
 * dims or fewer rows, all of them): at high dims an alternation would
 * otherwise cost minutes of rotating and re-encoding the whole sample.
 * Last, the final PQ trains on every row with the full k-means iterations.
 * The (R, codebooks) pair with the lowest reconstruction error wins.
 */
#include <cblas.h>
#include <math.h>

#include "opq.h"
#include "pca.h"
#include "procrustes.h"
#include "qdb_internal.h"
#include "task_pool.h"

/*
 * Multiply-adds one alternation may cost: rotating its rows, opq_pq_iters
 * k-means iterations and one encoding, (t + (opq_pq_iters + 1) ksub)
 * dim_pq a row.  4.5e10 keeps every row of 114,000 at the default dim_pq
 * of 256 (qdb_config_dim_pq), whatever the input's dims; with dim_pq as
 * large as the input, 25,000 at 784 dims, 28,000 at 768, 10,000 at 1536.
 */
#define OPQ_ROUND_BUDGET	4.5e10

/*
 * The warm k-means of each alternation runs on at most this many rows per
 * centroid (a fresh random subset each time, as qdb_kmeans_run samples);
 * the encoding that feeds the Procrustes step still covers every round row.
 * Against 256 (the final PQ's), 64 trained fashion-mnist-784 in 0.88 of the
 * time, glove-100-angular and sift-photos-128 in 0.75 to 0.78, and raised
 * 10-recall@10 on each (+0.005, +0.004, +0.004 averaged over 2-3 seeds;
 * test/bench/train_ab.sh); 32 was faster still but lost 0.005 on glove.
 */
#define OPQ_ROUND_POINTS_PER_CENTROID	64

/* the alternations never see fewer rows than this (when there are more) */
#define OPQ_MIN_ROUND_ROWS	(16 * QDB_KSUB)

/*
 * The alternations stop before opq_iters once the last OPQ_STALL_WINDOW of
 * them (from the second on) lowered the reconstruction error by less than
 * OPQ_STALL_GAIN of it.
 * On glove-100-angular (the eigenvalue allocation already near the best
 * rotation) 50 alternations lowered it by 1.8% in all and 10-recall@10 not
 * at all (0 / 10 / 20 / 50 alternations: 0.4773 / 0.4806 / 0.4780 / 0.4749,
 * two seeds each) at 3 times the training time (on random samples, four
 * seeds of compressors.py, 0.004 less with the stop: about the seeds'
 * spread); on fashion-mnist-784 each 10 lowered it by 2% to 6% to the end
 * and were worth 0.02.  Tuned on those two sets; sift-photos-128 and
 * sap-fiori-minilm-384 were kept out ("A cheaper build" in RESULTS).
 */
#define OPQ_STALL_WINDOW	10
#define OPQ_STALL_GAIN		0.01

/*
 * The greedy of the OPQ paper on log variances: largest first, each to the
 * sub-space with the smallest log-product so far that has room.  The logs
 * are shifted to start at 0 (the smallest variance) so that the greedy
 * does not depend on the data's scale: with variances below 1 the raw
 * products would keep feeding the sub-space that already holds the most.
 */
void
qdb_opq_balanced_init(const float *eigvals, int t, int dim_pq, int M, float *R)
{
	int			dsub = dim_pq / M;
	int			fill[QDB_MAX_SUBQUANTIZERS];
	double		sum[QDB_MAX_SUBQUANTIZERS];
	double		floor_ = (eigvals[0] > 0 ? eigvals[0] : 1.0) * 1e-12;
	double		base = log(eigvals[t - 1] > floor_ ? eigvals[t - 1] : floor_);
	int			i,
				m;

	memset(R, 0, sizeof(float) * dim_pq * t);
	for (m = 0; m < M; m++)
	{
		fill[m] = 0;
		sum[m] = 0;
	}
	for (i = 0; i < t; i++)
	{
		double		v = log(eigvals[i] > floor_ ? eigvals[i] : floor_) - base;
		int			best = -1;

		for (m = 0; m < M; m++)
			if (fill[m] < dsub && (best < 0 || sum[m] < sum[best]))
				best = m;
		R[(size_t) (best * dsub + fill[best]) * t + i] = 1.0f;
		fill[best]++;
		sum[best] += v;
	}
}

/* Scratch of the alternations. */
typedef struct OpqWork
{
	int			nworkers;		/* qdb_thread_count() */
	QdbWorker  *workers;		/* (nworkers) */
	int		   *order;			/* (nworkers) */
	float	   *z;				/* (n x t) */
	float	   *y;				/* (n x dim_pq) */
	uint8_t    *codes;			/* (n x M) */
	float	   *R;				/* (dim_pq x t) */
	float	   *bestR;
	float	   *bestcb;			/* (M x ksub x dsub) */
	float	   *sums;			/* (M x ksub x t): qdb_opq_cross's */
	float	   *C;				/* (dim_pq x t) */
	QdbProcrustes proc;
} OpqWork;

typedef struct RotateJob
{
	const float *z;
	size_t		n;
	int			t;
	const float *R;
	int			dim_pq;
	float	   *y;
	size_t		rows;			/* per task */
} RotateJob;

static void
rotate_task(void *arg, int task, int worker)
{
	RotateJob  *j = arg;
	size_t		i0 = (size_t) task * j->rows;
	size_t		b = j->n - i0 < j->rows ? j->n - i0 : j->rows;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) b, j->dim_pq, j->t,
				1.0f, j->z + i0 * j->t, j->t, j->R, j->t, 0.0f,
				j->y + i0 * j->dim_pq, j->dim_pq);
}

/*
 * y (n x dim_pq) = z (n x t) R^T, a block of rows per thread on the
 * trainer's threads (OpenBLAS one-threaded in each: see qdb_opq_train).
 */
static void
rotate(OpqWork *w, const float *z, size_t n, int t, const float *R, int dim_pq,
	   float *y)
{
	RotateJob	job;
	int			ntasks;

	job.z = z;
	job.n = n;
	job.t = t;
	job.R = R;
	job.dim_pq = dim_pq;
	job.y = y;
	job.rows = (n + w->nworkers - 1) / w->nworkers;
	if (job.rows == 0)
		return;
	ntasks = (int) ((n + job.rows - 1) / job.rows);
	qdb_run_tasks(ntasks, ntasks, rotate_task, NULL, &job, w->order, w->workers);
}

/* R = the orthogonal Procrustes solution for Z R^T ~ Yhat (the codes) */
static int
procrustes(OpqWork *w, size_t n, int t, int dim_pq, int M,
		   const float *codebooks)
{
	qdb_opq_cross(codebooks, dim_pq, M, w->codes, w->z, n, t, w->sums, w->C);
	return qdb_procrustes_solve(&w->proc, w->C, w->R);
}

static void
free_work(const QdbAlloc *a, OpqWork *w)
{
	qdb_free(a, w->z);
	qdb_free(a, w->y);
	qdb_free(a, w->codes);
	qdb_free(a, w->R);
	qdb_free(a, w->bestR);
	qdb_free(a, w->bestcb);
	qdb_free(a, w->sums);
	qdb_free(a, w->C);
	qdb_free(a, w->workers);
	qdb_free(a, w->order);
	qdb_procrustes_free(&w->proc, a);
}

static int
alloc_work(const QdbAlloc *a, OpqWork *w, size_t n, int t, int dim_pq, int M)
{
	size_t		cbfloats = (size_t) QDB_KSUB * dim_pq;

	memset(w, 0, sizeof(*w));
	w->z = qdb_malloc(a, n * t, sizeof(float));
	w->y = qdb_malloc(a, n * dim_pq, sizeof(float));
	w->codes = qdb_malloc(a, n * M, 1);
	w->R = qdb_malloc(a, (size_t) dim_pq * t, sizeof(float));
	w->bestR = qdb_malloc(a, (size_t) dim_pq * t, sizeof(float));
	w->bestcb = qdb_malloc(a, cbfloats, sizeof(float));
	w->sums = qdb_malloc(a, (size_t) M * QDB_KSUB * t, sizeof(float));
	w->C = qdb_malloc(a, (size_t) dim_pq * t, sizeof(float));
	w->nworkers = qdb_thread_count();
	w->workers = qdb_malloc(a, w->nworkers, sizeof(QdbWorker));
	w->order = qdb_malloc(a, w->nworkers, sizeof(int));
	if (!w->z || !w->y || !w->codes || !w->R || !w->bestR || !w->bestcb ||
		!w->sums || !w->C || !w->workers || !w->order)
		return QDB_ERR_NOMEM;
	return qdb_procrustes_init(&w->proc, a, dim_pq, t);
}

/* Rows the start and the alternations learn R on (see the top). */
static size_t
rotation_rows(size_t n, int t, int dim_pq, int opq_pq_iters)
{
	double		per_row = ((double) t + (opq_pq_iters + 1.0) * QDB_KSUB) * dim_pq;
	double		rows = OPQ_ROUND_BUDGET / per_row;

	if (rows < OPQ_MIN_ROUND_ROWS)
		rows = OPQ_MIN_ROUND_ROWS;
	return rows < (double) n ? (size_t) rows : n;
}

/*
 * Moves a uniform random choice of m of z's n rows (of t floats) to its
 * front, by the first m steps of a Fisher-Yates shuffle.  The order of the
 * rows matters to nothing else: the final PQ uses them all.
 */
static void
front_sample(float *z, size_t n, int t, size_t m, uint64_t seed)
{
	QdbRng		rng;
	size_t		i;
	int			j;

	qdb_rng_seed(&rng, seed);
	for (i = 0; i < m; i++)
	{
		size_t		k = i + qdb_rng_below(&rng, n - i);
		float	   *a = z + i * t;
		float	   *b = z + k * t;

		for (j = 0; j < t && k != i; j++)
		{
			float		tmp = a[j];

			a[j] = b[j];
			b[j] = tmp;
		}
	}
}

static inline uint64_t
stage_seed(uint64_t seed, int stage)
{
	return seed + (uint64_t) stage * UINT64_C(0xD1B54A32D192ED03);
}

/* y = R z, PQ training (niter, warm or not), codes of y; sse of the codes */
static int
train_round(const QdbAlloc *a, OpqWork *w, const QdbTrainConfig *c, size_t n,
			int t, int dim_pq, int niter, int warm, uint64_t seed,
			float *codebooks, double *sse, const QdbProgressCtx *p)
{
	int			status;

	rotate(w, w->z, n, t, w->R, dim_pq, w->y);
	status = qdb_pq_train(a, w->y, n, dim_pq, c->M, niter,
						  warm && c->max_points_per_centroid > OPQ_ROUND_POINTS_PER_CENTROID ?
						  OPQ_ROUND_POINTS_PER_CENTROID : c->max_points_per_centroid,
						  seed, warm, codebooks,
						  p, "opq start");
	if (status == QDB_OK)
		status = qdb_pq_encode(a, codebooks, dim_pq, c->M, w->y, n,
							   w->codes, sse);
	return status;
}

/*
 * The starting rotation: the balanced eigenvalue allocation, or, without a
 * reduction, the input's own order (y = x - mean, what plain PQ sees) when
 * a PQ trained on it reconstructs better.  Data whose natural sub-vectors
 * are meaningful (SIFT's cells of orientation histograms) favour the
 * latter by far; embeddings favour the balanced start.  Leaves R, the
 * codebooks and the codes of the winner, and its sse.
 */
static int
choose_init(const QdbAlloc *a, OpqWork *w, const QdbTrainConfig *c, size_t n,
			int d, int t, int dim_pq, const float *eigvecs, const float *eigvals,
			float *codebooks, double *sse, const QdbProgressCtx *p)
{
	size_t		cbfloats = (size_t) QDB_KSUB * dim_pq;
	double		sse_balanced;
	int			status;
	int			i,
				j;

	qdb_opq_balanced_init(eigvals, t, dim_pq, c->M, w->R);
	status = train_round(a, w, c, n, t, dim_pq, c->kmeans_iters, 0,
						 stage_seed(c->seed, 1), codebooks, sse, p);
	if (status != QDB_OK || t < d)
		return status;

	sse_balanced = *sse;
	memcpy(w->bestR, w->R, sizeof(float) * dim_pq * t);
	memcpy(w->bestcb, codebooks, sizeof(float) * cbfloats);

	/* z = P (x - mean) with P orthogonal, so x - mean = P^T z */
	memset(w->R, 0, sizeof(float) * dim_pq * t);
	for (i = 0; i < d; i++)
		for (j = 0; j < t; j++)
			w->R[(size_t) i * t + j] = eigvecs[(size_t) j * d + i];
	status = train_round(a, w, c, n, t, dim_pq, c->kmeans_iters, 0,
						 stage_seed(c->seed, 1), codebooks, sse, p);
	if (status != QDB_OK || *sse <= sse_balanced)
		return status;

	/* the balanced start won: put it back, with its codes */
	memcpy(w->R, w->bestR, sizeof(float) * dim_pq * t);
	memcpy(codebooks, w->bestcb, sizeof(float) * cbfloats);
	rotate(w, w->z, n, t, w->R, dim_pq, w->y);
	return qdb_pq_encode(a, codebooks, dim_pq, c->M, w->y, n,
						 w->codes, sse);
}

static int	opq_train(const QdbAlloc *a, const float *x, size_t n,
					  const QdbTrainConfig *c, const QdbPcaFit *fit, QdbModel *out,
					  const QdbProgressCtx *p);

int
qdb_opq_train(const QdbAlloc *a, const float *x, size_t n,
			  const QdbTrainConfig *c, QdbModel *out, const QdbProgressCtx *p)
{
	return qdb_opq_train_fitted(a, x, n, c, NULL, out, p);
}

int
qdb_opq_train_fitted(const QdbAlloc *a, const float *x, size_t n,
					 const QdbTrainConfig *c, const QdbPcaFit *fit, QdbModel *out,
					 const QdbProgressCtx *p)
{
	QdbTrainConfig inner_c;
	QdbModel	inner;
	int			status;

	/* the error byte by a pilot: only for the default dims (qdb_trainer.h) */
	if (c->opq_error == QDB_OPQ_ERROR_AUTO && c->metric == QDB_METRIC_L2 && c->M >= 2 &&
		c->dim_pq == 0)
	{
		int			use;

		status = qdb_opq_error_choose(a, x, n, c, p, &use);
		if (status != QDB_OK)
			return status;
		inner_c = *c;
		inner_c.opq_error = use;
		return qdb_opq_train_fitted(a, x, n, &inner_c, fit, out, p);
	}
	if (!qdb_config_error_byte(c))
	{
		inner_c = *c;
		inner_c.opq_error = 0;
		return opq_train(a, x, n, &inner_c, fit, out, p);
	}
	/* the M - 1 sub-quantizers first, then the error byte (opq_error.c) */
	inner_c = *c;
	inner_c.opq_error = 0;
	inner_c.M = c->M - 1;
	inner_c.dim_pq = qdb_config_dim_pq(c);
	status = opq_train(a, x, n, &inner_c, fit, &inner, p);
	if (status != QDB_OK)
		return status;
	status = qdb_opq_error_attach(a, x, n, c, &inner, out, p);
	if (status == QDB_OK)
		out->opq_alternations = inner.opq_alternations;
	qdb_model_free(&inner);
	return status;
}

static int
opq_train(const QdbAlloc *a, const float *x, size_t n,
		  const QdbTrainConfig *c, const QdbPcaFit *fit, QdbModel *out,
		  const QdbProgressCtx *p)
{
	int			d = c->dim;
	int			M = c->M;
	int			dim_pq = qdb_config_dim_pq(c);
	int			t = dim_pq < d ? dim_pq : d;
	size_t		cbfloats = (size_t) QDB_KSUB * dim_pq;
	size_t		nr = rotation_rows(n, t, dim_pq, c->opq_pq_iters);
	float	   *own_eigvecs = NULL;	/* the fit, when it is made here */
	float	   *own_eigvals = NULL;
	const float *eigvecs;
	const float *eigvals;
	double		best = INFINITY;
	double		sse = 0;
	double		recent[OPQ_STALL_WINDOW];
	int			blas_threads = 0;
	OpqWork		w;
	int			status;
	int			it;

	memset(&w, 0, sizeof(w));
	status = qdb_model_alloc(out, a, QDB_KIND_OPQ, c->metric, d, dim_pq, M, 1, 1);
	if (status != QDB_OK)
		return status;
	status = alloc_work(a, &w, n, t, dim_pq, M);
	if (status != QDB_OK)
		goto done;
	if (fit)
	{
		memcpy(out->mean, fit->mean, sizeof(float) * d);
		eigvecs = fit->eigvecs;
		eigvals = fit->eigvals;
	}
	else
	{
		own_eigvecs = qdb_malloc(a, (size_t) d * d, sizeof(float));
		own_eigvals = qdb_malloc(a, d, sizeof(float));
		if (!own_eigvecs || !own_eigvals)
		{
			status = QDB_ERR_NOMEM;
			goto done;
		}
		status = qdb_pca_fit_report(a, x, n, d, t, out->mean, own_eigvecs, own_eigvals, p);
		if (status != QDB_OK)
			goto done;
		eigvecs = own_eigvecs;
		eigvals = own_eigvals;
	}
	status = qdb_pca_project(a, x, n, d, out->mean, eigvecs, t, w.z, p);
	if (status != QDB_OK)
		goto done;
	if (nr < n)
		front_sample(w.z, n, t, nr, stage_seed(c->seed, -1));

	/*
	 * The start and the alternations hold OpenBLAS to one thread.  Each
	 * alternation's rotation, run on two, woke OpenBLAS's own thread, which
	 * then spun (sched_yield) through the k-means on the product
	 * quantizer's threads that followed, on the same cores: 22% of the
	 * CPU samples of `perf record qdb-train train --kind opq` on
	 * fashion-mnist-784.  Held to one, fashion trained in 9.2 s, not 10.6.
	 */
	blas_threads = openblas_get_num_threads();
	openblas_set_num_threads(1);
	status = choose_init(a, &w, c, nr, d, t, dim_pq, eigvecs, eigvals,
						 out->codebooks, &sse, p);
	if (status != QDB_OK)
		goto done;

	for (it = 1; it <= c->opq_iters; it++)
	{
		double		mse;

		/* the first round's PQ comes from choose_init */
		if (it > 1)
		{
			status = train_round(a, &w, c, nr, t, dim_pq, c->opq_pq_iters, 1,
								 stage_seed(c->seed, it), out->codebooks, &sse,
								 NULL);
			if (status != QDB_OK)
				goto done;
		}
		mse = sse / nr;
		if (mse < best)
		{
			best = mse;
			memcpy(w.bestR, w.R, sizeof(float) * dim_pq * t);
			memcpy(w.bestcb, out->codebooks, sizeof(float) * cbfloats);
		}
		status = qdb_progress_report(p, "opq", it, c->opq_iters, mse);
		if (status != QDB_OK)
			goto done;
		status = procrustes(&w, nr, t, dim_pq, M, out->codebooks);
		if (status != QDB_OK)
			goto done;
		/*
		 * recent[] holds the error of alternation it - OPQ_STALL_WINDOW.  The
		 * first alternation's PQ is choose_init's, trained from scratch with
		 * the full k-means iterations, unlike the warm rounds after it: the
		 * window starts at the second.  An infinite error, then or now,
		 * stops nothing.
		 */
		if (it > OPQ_STALL_WINDOW + 1)
		{
			double		old = recent[it % OPQ_STALL_WINDOW];

			if (isfinite(old) && isfinite(mse) && old - mse <= OPQ_STALL_GAIN * old)
			{
				/* said, since the progress of the alternations ends short */
				status = qdb_progress_report(p, "opq stalled", it, c->opq_iters, mse);
				if (status != QDB_OK)
					goto done;
				break;
			}
		}
		recent[it % OPQ_STALL_WINDOW] = mse;
	}

	openblas_set_num_threads(blas_threads);
	blas_threads = 0;
	/* it is one past the last alternation unless the stall stopped them at it */
	out->opq_alternations = it > c->opq_iters ? c->opq_iters : it;

	rotate(&w, w.z, n, t, w.R, dim_pq, w.y);
	status = qdb_pq_train(a, w.y, n, dim_pq, M, c->kmeans_iters,
						  c->max_points_per_centroid, stage_seed(c->seed, 0),
						  1, out->codebooks, p, "pq");
	if (status != QDB_OK)
		goto done;
	status = qdb_pq_encode(a, out->codebooks, dim_pq, M, w.y, n, w.codes, &sse);
	if (status != QDB_OK)
		goto done;
	if (sse / n > best)
	{
		memcpy(w.R, w.bestR, sizeof(float) * dim_pq * t);
		memcpy(out->codebooks, w.bestcb, sizeof(float) * cbfloats);
	}

	/* A = R P: the rotation applied after the projection */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dim_pq, d, t,
				1.0f, w.R, t, eigvecs, d, 0.0f, out->linear, d);
	out->config = *c;

done:
	if (blas_threads > 0)
		openblas_set_num_threads(blas_threads);
	free_work(a, &w);
	qdb_free(a, own_eigvals);
	qdb_free(a, own_eigvecs);
	if (status != QDB_OK)
		qdb_model_free(out);
	return status;
}
