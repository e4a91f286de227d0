/*
 * train_driver.c
 *	  Training as every backend does it, whatever the device: checks the
 *	  data (finite values; no zero vector under cosine), draws the k-means
 *	  sample (max_points_per_centroid * 256 rows, seeded), L2-normalises it
 *	  under cosine and hands it to the kind's trainer: pq here, opq
 *	  (opq.c), neural (neural_train.c) with its steps on the device's ops.
 */
#include <float.h>
#include <math.h>

#include "kmeans.h"
#include "neural.h"
#include "opq.h"
#include "pca.h"
#include "pq.h"
#include "qdb_internal.h"
#include "rq.h"

/*
 * Finite values everywhere, no zero vector when cosine must divide, and
 * under l2 and ip no row whose squared length passes a quarter of FLT_MAX
 * (the extension says so first: QdbCheckLength).
 */
static int
check_data(const float *x, size_t n, int d, QdbMetric metric)
{
	size_t		i;
	int			j;

	for (i = 0; i < n; i++)
	{
		const float *xr = x + i * d;
		double		ss = 0;

		for (j = 0; j < d; j++)
		{
			if (!isfinite(xr[j]))
				return QDB_ERR_DATA;
			ss += (double) xr[j] * xr[j];
		}
		if (metric == QDB_METRIC_COSINE && !(ss > 0))
			return QDB_ERR_DATA;
		/* l2 and ip distances in single precision would overflow */
		if (metric != QDB_METRIC_COSINE && ss > FLT_MAX / 4.0)
			return QDB_ERR_DATA;
	}
	return QDB_OK;
}

/* pq: optional PCA reduction, else zero padding, then the product quantizer. */
static int
train_pq(const QdbAlloc *a, const float *x, size_t n, const QdbTrainConfig *c,
		 QdbModel *out, const QdbProgressCtx *p)
{
	int			d = c->dim;
	int			M = c->M;
	int			dim_pq = qdb_config_dim_pq(c);
	int			reduce = dim_pq < d;
	float	   *y = NULL;
	float	   *eigvecs = NULL;
	float	   *eigvals = NULL;
	size_t		i;
	int			status;

	status = qdb_model_alloc(out, a, QDB_KIND_PQ, c->metric, d, dim_pq, M,
							 reduce, reduce);
	if (status != QDB_OK)
		return status;
	y = qdb_malloc(a, n * dim_pq, sizeof(float));
	if (!y)
	{
		status = QDB_ERR_NOMEM;
		goto done;
	}

	if (reduce)
	{
		eigvecs = qdb_malloc(a, (size_t) d * d, sizeof(float));
		eigvals = qdb_malloc(a, d, sizeof(float));
		if (!eigvecs || !eigvals)
		{
			status = QDB_ERR_NOMEM;
			goto done;
		}
		status = qdb_pca_fit_report(a, x, n, d, dim_pq, out->mean, eigvecs, eigvals, p);
		if (status != QDB_OK)
			goto done;
		memcpy(out->linear, eigvecs, sizeof(float) * dim_pq * d);
		status = qdb_pca_project(a, x, n, d, out->mean, out->linear, dim_pq, y, p);
		if (status != QDB_OK)
			goto done;
	}
	else
	{
		for (i = 0; i < n; i++)
		{
			memcpy(y + i * dim_pq, x + i * d, sizeof(float) * d);
			memset(y + i * dim_pq + d, 0, sizeof(float) * (dim_pq - d));
		}
	}

	status = qdb_pq_train(a, y, n, dim_pq, M, c->kmeans_iters,
						  c->max_points_per_centroid, c->seed, 0,
						  out->codebooks, p, "pq");
	if (status != QDB_OK)
		goto done;

	/*
	 * Padded dims are zero in every input; a split perturbation may have
	 * left a trace in them, which decoding would drop anyway.
	 */
	if (!reduce && dim_pq > d)
	{
		int			dsub = dim_pq / M;
		int			s,
					k,
					t;

		for (s = d / dsub; s < M; s++)
			for (k = 0; k < QDB_KSUB; k++)
				for (t = 0; t < dsub; t++)
					if (s * dsub + t >= d)
						out->codebooks[((size_t) s * QDB_KSUB + k) * dsub + t] = 0;
	}
	out->config = *c;

done:
	qdb_free(a, eigvals);
	qdb_free(a, eigvecs);
	qdb_free(a, y);
	if (status != QDB_OK)
		qdb_model_free(out);
	return status;
}

/*
 * Training as every backend does it: checks, the seeded sample, cosine
 * normalisation, then the kind's trainer; the neural kind's steps run on
 * nn_ops.  err gets a sentence when there is more to say than the status.
 */
int
qdb_train_sample(const QdbAlloc *a, const float *x, size_t n, const QdbTrainConfig *c,
				 QdbModel *out, QdbProgress cb, void *arg,
				 const QdbNeuralOps *nn_ops, char *err, size_t errlen)
{
	QdbProgressCtx p;
	float	   *sample;
	size_t		ns;
	int			status;

	if (x == NULL || out == NULL)
		return QDB_ERR_ARG;
	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	if ((status = qdb_train_config_check(c)) != QDB_OK)
		return status;
	if (n < QDB_KSUB)
		return QDB_ERR_DATA;
	if ((status = check_data(x, n, c->dim, c->metric)) != QDB_OK)
		return status;
	p.cb = cb;
	p.arg = arg;
	p.t0 = qdb_now();

	ns = (size_t) c->max_points_per_centroid * QDB_KSUB;
	if (ns > n)
		ns = n;
	sample = qdb_malloc(a, ns * c->dim, sizeof(float));
	if (!sample)
		return QDB_ERR_NOMEM;
	if (ns < n)
		qdb_sample_rows(x, n, c->dim, ns, c->seed, sample);
	else
		memcpy(sample, x, sizeof(float) * n * c->dim);
	/* check_data refused zero rows */
	if (c->metric == QDB_METRIC_COSINE)
		for (size_t i = 0; i < ns; i++)
			(void) qdb_normalize(sample + i * c->dim, c->dim, sample + i * c->dim);

	if (c->kind == QDB_KIND_NEURAL)
		status = qdb_neural_train(a, sample, ns, c, nn_ops, out, cb, arg, err, errlen);
	else if (c->kind == QDB_KIND_OPQ)
		status = qdb_opq_train(a, sample, ns, c, out, &p);
	else if (c->kind == QDB_KIND_RQ)
		status = qdb_rq_train(a, sample, ns, c, out, &p);
	else
		status = train_pq(a, sample, ns, c, out, &p);
	qdb_free(a, sample);
	return status;
}
