/*
 * opq_error.c
 *	  Kind opq under l2: the code's last byte holds the row's squared
 *	  error, so that a query's distance estimate is unbiased.
 *
 * With y = A (x - mean) and yhat its M - 1 sub-quantizers' centroids, the
 * row's squared error is e = ||x - mean||^2 - ||y||^2 (what the PCA left
 * out, when dim_pq < dim; else 0, not the difference's rounding, which
 * differs between one row's transform and a batch's) + ||y - yhat||^2.  For a query q,
 * ||q - x||^2 = ||q - xhat||^2 + e + 2 (q - xhat) . (xhat - x), and the
 * last term averages out over queries, so ||q - xhat||^2 + e estimates the
 * distance without the bias that makes rows that quantize badly look
 * near.  ADC adds e as one more table row, the same for every query (the
 * levels), and a pair of codes adds both rows' errors (pair.c): the sums
 * stay table lookups.
 *
 * The levels are 256 values of e: the means of 256 runs of the training
 * rows' errors in sorted order, each run as many rows (quantiles), so a
 * byte resolves the common errors finely and outliers still get a level.
 * They sit in the first float of each codeword of the last book (the rest
 * zero), sorted ascending; a row takes the nearest.
 *
 * On fashion-mnist-784 exhaustive ADC's 10-recall@10 rose from 0.6390
 * (Faiss OPQ16x8) to 0.6962 with the exact error added, and to 0.6824 with
 * 15 sub-quantizers and the error in a byte (test/bench/opq_error_sim.py);
 * quantumdb's opq from 0.6564 to 0.7035 ("The error byte" in
 * test/bench/RESULTS.md).
 */
#include <math.h>
#include <stdlib.h>

#include "opq.h"
#include "pca.h"
#include "pq.h"
#include "qdb_distance.h"
#include "qdb_internal.h"

#define ERROR_BLOCK_ROWS	4096
#define PILOT_BASE_ROWS		10000	/* the pilot's base (training) rows, at most */
#define PILOT_QUERIES		500		/* its held-out queries, at most */
#define PILOT_OPQ_ITERS		4		/* its alternations, at most */
#define PILOT_KMEANS_ITERS	10		/* its final k-means' iterations, at most */

/* the level of book (M - 1)'s codeword k */
static inline float
level_of(const QdbModel *m, int k)
{
	return m->codebooks[((size_t) (m->M - 1) * QDB_KSUB + k) * m->dsub];
}

/*
 * Squared errors of n rows (r centred, y their transform, pq codes of
 * books sub-quantizers at a stride of stride bytes) into e.
 */
static void
row_errors(const QdbModel *m, int books, const float *r, const float *y, size_t n,
		   const uint8_t *codes, int stride, float *yhat, float *e)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		const float *yi = y + i * m->dim_pq;
		const float *ri = r + i * m->dim;
		double		rr = 0,
					yy = 0,
					dropped = 0;
		int			j;

		/* in double: much of the difference cancels */
		if (m->dim_pq < m->dim)
		{
			for (j = 0; j < m->dim; j++)
				rr += (double) ri[j] * ri[j];
			for (j = 0; j < m->dim_pq; j++)
				yy += (double) yi[j] * yi[j];
			dropped = rr - yy;
		}
		qdb_pq_decode(m->codebooks, m->dim_pq, books, codes + i * stride, 1, yhat);
		e[i] = (float) ((dropped > 0 ? dropped : 0) +
						qdb_kernels.l2sq(yi, yhat, m->dim_pq));
	}
}

size_t
qdb_coding_error_floats(const QdbModel *m)
{
	return (size_t) m->dim + 2 * (size_t) m->dim_pq;
}

double
qdb_row_coding_error(const QdbModel *m, const float *x, const uint8_t *code, float *scratch,
					 double *energy)
{
	float	   *r = scratch;
	float	   *y = r + m->dim;
	float	   *yhat = y + m->dim_pq;
	float		e;
	double		rr = 0;

	*energy = 0;
	if (m->kind != QDB_KIND_PQ && m->kind != QDB_KIND_OPQ)
		return -1;
	for (int j = 0; j < m->dim; j++)
	{
		r[j] = x[j] - (m->mean ? m->mean[j] : 0.0f);
		rr += (double) r[j] * r[j];
	}
	*energy = rr;
	qdb_apply_linear(m, r, y);
	row_errors(m, qdb_model_books(m), r, y, 1, code, m->M, yhat, &e);
	return e;
}

int
qdb_opq_error_encode(const QdbModel *m, const float *r, const float *y, size_t n,
					 uint8_t *codes)
{
	int			books = m->M - 1;
	uint8_t    *pq = NULL;
	float	   *yhat = NULL;
	float	   *e = NULL;
	float		levels[QDB_KSUB];
	size_t		i;
	int			s,
				status;

	if (n == 0)
		return QDB_OK;
	qdb_distance_init();
	pq = qdb_malloc(m->alloc, n, books);
	yhat = qdb_malloc(m->alloc, m->dim_pq, sizeof(float));
	e = qdb_malloc(m->alloc, n, sizeof(float));
	if (!pq || !yhat || !e)
	{
		status = QDB_ERR_NOMEM;
		goto done;
	}
	status = qdb_pq_encode(m->alloc, m->codebooks, m->dim_pq, books, y, n, pq, NULL);
	if (status != QDB_OK)
		goto done;
	row_errors(m, books, r, y, n, pq, books, yhat, e);
	for (s = 0; s < QDB_KSUB; s++)
		levels[s] = level_of(m, s);
	for (i = 0; i < n; i++)
	{
		for (s = 0; s < books; s++)
			codes[i * m->M + s] = pq[i * books + s];
		codes[i * m->M + books] = qdb_nearest_level(levels, e[i]);
	}
done:
	qdb_free(m->alloc, e);
	qdb_free(m->alloc, yhat);
	qdb_free(m->alloc, pq);
	return status;
}

/* the 256 levels from n (>= 1) errors, sorted in place: means of equal runs */
static void
fit_levels(QdbModel *m, float *e, size_t n)
{
	int			k;

	qsort(e, n, sizeof(float), qdb_float_cmp);
	for (k = 0; k < QDB_KSUB; k++)
	{
		size_t		lo = n * (size_t) k / QDB_KSUB,
					hi = n * (size_t) (k + 1) / QDB_KSUB;
		double		sum = 0;
		size_t		i;

		if (hi <= lo)			/* fewer rows than levels: repeat the row's */
			hi = lo + 1 < n ? lo + 1 : n;
		if (lo >= hi)
			lo = hi - 1;
		for (i = lo; i < hi; i++)
			sum += e[i];
		m->codebooks[((size_t) (m->M - 1) * QDB_KSUB + k) * m->dsub] =
			(float) (sum / (double) (hi - lo));
	}
	/* means of sorted runs ascend; rounding must not break qdb_nearest_level */
	for (k = 1; k < QDB_KSUB; k++)
		if (level_of(m, k) < level_of(m, k - 1))
			m->codebooks[((size_t) (m->M - 1) * QDB_KSUB + k) * m->dsub] = level_of(m, k - 1);
}

int
qdb_opq_error_attach(const QdbAlloc *a, const float *x, size_t n, const QdbTrainConfig *c,
					 const QdbModel *inner, QdbModel *out, const QdbProgressCtx *p)
{
	int			books = inner->M;
	float	   *r = NULL;
	float	   *y = NULL;
	float	   *yhat = NULL;
	float	   *e = NULL;
	uint8_t    *codes = NULL;
	size_t		i0,
				i;
	int			j,
				status;

	status = qdb_model_alloc_coded(out, a, QDB_KIND_OPQ, QDB_METRIC_L2, inner->dim,
								   inner->dim_pq, books + 1, 1, 1, 1);
	if (status != QDB_OK)
		return status;
	if (n == 0 || inner->dsub != out->dsub || !inner->mean || !inner->linear)
	{
		qdb_model_free(out);
		return QDB_ERR_ARG;
	}
	memcpy(out->mean, inner->mean, sizeof(float) * inner->dim);
	memcpy(out->linear, inner->linear, sizeof(float) * inner->dim_pq * inner->dim);
	memcpy(out->codebooks, inner->codebooks,
		   sizeof(float) * (size_t) books * QDB_KSUB * inner->dsub);
	out->config = *c;
	out->config.opq_error = 1;

	qdb_distance_init();
	r = qdb_malloc(a, (size_t) ERROR_BLOCK_ROWS * inner->dim, sizeof(float));
	y = qdb_malloc(a, (size_t) ERROR_BLOCK_ROWS * inner->dim_pq, sizeof(float));
	yhat = qdb_malloc(a, inner->dim_pq, sizeof(float));
	codes = qdb_malloc(a, ERROR_BLOCK_ROWS, books);
	e = qdb_malloc(a, n, sizeof(float));
	if (!r || !y || !yhat || !codes || !e)
	{
		status = QDB_ERR_NOMEM;
		goto done;
	}
	for (i0 = 0; i0 < n; i0 += ERROR_BLOCK_ROWS)
	{
		size_t		b = n - i0 < ERROR_BLOCK_ROWS ? n - i0 : ERROR_BLOCK_ROWS;

		status = qdb_progress_heartbeat(p, "opq error");
		if (status == QDB_OK)
			status = qdb_model_transform(inner, x + i0 * inner->dim, b, y);
		if (status == QDB_OK)
			status = qdb_pq_encode(a, inner->codebooks, inner->dim_pq, books, y, b, codes,
								   NULL);
		if (status != QDB_OK)
			goto done;
		for (i = 0; i < b; i++)
			for (j = 0; j < inner->dim; j++)
				r[i * inner->dim + j] = x[(i0 + i) * inner->dim + j] - inner->mean[j];
		row_errors(out, books, r, y, b, codes, books, yhat, e + i0);
	}
	{
		double		sum = 0;

		for (i = 0; i < n; i++)
			sum += e[i];
		fit_levels(out, e, n);
		status = qdb_progress_report(p, "opq error", 1, 1, sum / (double) n);
	}
done:
	qdb_free(a, e);
	qdb_free(a, codes);
	qdb_free(a, yhat);
	qdb_free(a, y);
	qdb_free(a, r);
	if (status != QDB_OK)
		qdb_model_free(out);
	return status;
}

/* the pilot's trainings report nothing but may be cancelled: heartbeats */
static int
pilot_progress(const QdbEpochStats *s, void *arg)
{
	const QdbProgressCtx *outer = arg;
	QdbEpochStats h;

	memset(&h, 0, sizeof(h));
	h.stage = "opq error pilot";
	h.seconds = qdb_now() - outer->t0;
	h.heartbeat = 1;
	return outer->cb(&h, outer->arg);
}

/*
 * Whether the error byte pays on these rows (c->opq_error QDB_OPQ_ERROR_AUTO):
 * a pilot trains a short opq both ways on up to PILOT_BASE_ROWS of x and
 * compares exhaustive ADC's 10-recall@10 of up to PILOT_QUERIES rows held
 * out at x's end, searching all of the rest of x.  A row's error varies
 * little where the rows' norms do (sift-photos-128: the byte cost 3.6
 * points as a 16th sub-quantizer) and much where they spread
 * (fashion-mnist-784: it gained 4.8); the pilot measures which, for a
 * fifth to a third of opq's training time.  The search must be as dense
 * as the index's: searching only the pilot's own rows, it chose the byte
 * for glove-100 under l2, which lost 3.5 points there on the set's
 * queries; and trained on 5,000 rows it saw fashion-mnist's gain as noise.
 * Too few rows for a pilot: no error byte (*use 0).
 */
int
qdb_opq_error_choose(const QdbAlloc *a, const float *x, size_t n, const QdbTrainConfig *c,
					 const QdbProgressCtx *p, int *use)
{
	size_t		nq = n / 10 < PILOT_QUERIES ? n / 10 : PILOT_QUERIES;
	size_t		nb = n - nq < PILOT_BASE_ROWS ? n - nq : PILOT_BASE_ROWS;
	size_t		nsearch = n - nq;
	double		recall[2] = {0, 0};
	float		kth[PILOT_QUERIES];	/* the queries' exact 10th distances, for both */
	int			kth_known = 0;
	QdbProgressCtx quiet = {0};
	float	   *mean,
			   *eigvecs,
			   *eigvals;
	QdbPcaFit	fit;
	int			v,
				status;

	*use = 0;
	if (nq < 10 || nb < 2 * QDB_KSUB)
		return QDB_OK;
	if (p && p->cb)
	{
		quiet.cb = pilot_progress;
		quiet.arg = (void *) p;
		quiet.t0 = p->t0;
	}
	/* both ways train on the same nb rows: one PCA of them */
	mean = qdb_malloc(a, c->dim, sizeof(float));
	eigvecs = qdb_malloc(a, (size_t) c->dim * c->dim, sizeof(float));
	eigvals = qdb_malloc(a, c->dim, sizeof(float));
	status = mean && eigvecs && eigvals ? QDB_OK : QDB_ERR_NOMEM;
	if (status == QDB_OK)
		status = qdb_pca_fit(a, x, nb, c->dim, mean, eigvecs, eigvals,
							 quiet.cb ? &quiet : NULL);
	fit.mean = mean;
	fit.eigvecs = eigvecs;
	fit.eigvals = eigvals;
	for (v = 0; v < 2 && status == QDB_OK; v++)
	{
		QdbTrainConfig pc = *c;
		QdbModel	m;

		pc.opq_error = v;
		pc.opq_iters = c->opq_iters < PILOT_OPQ_ITERS ? c->opq_iters : PILOT_OPQ_ITERS;
		pc.kmeans_iters = c->kmeans_iters < PILOT_KMEANS_ITERS ? c->kmeans_iters :
			PILOT_KMEANS_ITERS;
		/* quiet: the pilot's stages are not the training's */
		status = qdb_opq_train_fitted(a, x, nb, &pc, &fit, &m, quiet.cb ? &quiet : NULL);
		if (status != QDB_OK)
			break;
		status = qdb_adc_recall_shared(&m, x, nsearch, x + nsearch * c->dim, nq, 10,
									   kth, &kth_known, &recall[v]);
		qdb_model_free(&m);
		if (status == QDB_OK)
			status = qdb_progress_report_measure(p, v ? "opq error pilot, with" :
												 "opq error pilot, without", v + 1, 2,
												 recall[v], "10-recall@10");
	}
	qdb_free(a, mean);
	qdb_free(a, eigvecs);
	qdb_free(a, eigvals);
	if (status == QDB_OK)
		*use = recall[1] > recall[0];
	return status;
}
