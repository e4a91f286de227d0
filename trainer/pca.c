/*
 * pca.c
 *	  PCA for the OPQ initialisation and for dimension reduction.
 *
 * The covariance is accumulated block by block from centred rows (sgemm),
 * which avoids the cancellation of E[xx^T] - mean mean^T on data far from
 * the origin; ssyevd_ then gives every eigenpair at once.  The mean and
 * the covariance leave out rows far out of scale (robust_mean.h).
 */
#include <cblas.h>

#include "pca.h"
#include "robust_mean.h"
#include "qdb_internal.h"

#define PCA_BLOCK_ROWS	4096

int
qdb_pca_fit(const QdbAlloc *a, const float *x, size_t n, int d,
			float *mean, float *eigvecs, float *eigvals, const QdbProgressCtx *p)
{
	unsigned char *kept;
	size_t		nkept;
	float	   *buf;
	float	   *w = NULL;
	float	   *work = NULL;
	int		   *iwork = NULL;
	float		wq;
	int			iwq;
	int			lwork = -1,
				liwork = -1,
				info = 0;
	int			status = QDB_OK;
	size_t		i0,
				i;
	int			j;

	if (x == NULL || mean == NULL || eigvecs == NULL || eigvals == NULL ||
		d <= 0 || n == 0)
		return QDB_ERR_ARG;
	kept = qdb_malloc(a, n, 1);
	buf = qdb_malloc(a, (size_t) PCA_BLOCK_ROWS * d, sizeof(float));
	w = qdb_malloc(a, d, sizeof(float));
	if (!kept || !buf || !w)
	{
		status = QDB_ERR_NOMEM;
		goto done;
	}

	/* rows far out of scale are left out of the mean and the covariance */
	status = qdb_robust_mean(a, x, n, d, mean, kept, &nkept, p);
	if (status != QDB_OK)
		goto done;

	for (i0 = 0; i0 < n; i0 += PCA_BLOCK_ROWS)
	{
		size_t		end = n - i0 < PCA_BLOCK_ROWS ? n : i0 + PCA_BLOCK_ROWS,
					b = 0;

		for (i = i0; i < end; i++)
		{
			if (!kept[i])
				continue;
			for (j = 0; j < d; j++)
				buf[b * d + j] = x[i * d + j] - mean[j];
			b++;
		}
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, (int) b,
					1.0f / nkept, buf, d, buf, d, i0 == 0 ? 0.0f : 1.0f, eigvecs, d);
		status = qdb_progress_heartbeat(p, "pca");
		if (status != QDB_OK)
			goto done;
	}

	/* symmetric, so row- and column-major agree; eigenvalues come ascending */
	ssyevd_("V", "U", &d, eigvecs, &d, w, &wq, &lwork, &iwq, &liwork, &info);
	if (info != 0)
	{
		status = QDB_ERR_LAPACK;
		goto done;
	}
	lwork = (int) wq + 1;
	liwork = iwq;
	work = qdb_malloc(a, lwork, sizeof(float));
	iwork = qdb_malloc(a, liwork, sizeof(int));
	if (!work || !iwork)
	{
		status = QDB_ERR_NOMEM;
		goto done;
	}
	ssyevd_("V", "U", &d, eigvecs, &d, w, work, &lwork, iwork, &liwork, &info);
	if (info != 0)
	{
		status = QDB_ERR_LAPACK;
		goto done;
	}

	/*
	 * Column i of the column-major result is row i here: reverse the rows
	 * for decreasing order.
	 */
	for (j = 0; j < d / 2; j++)
	{
		float	   *r1 = eigvecs + (size_t) j * d;
		float	   *r2 = eigvecs + (size_t) (d - 1 - j) * d;
		int			t;

		for (t = 0; t < d; t++)
		{
			float		tmp = r1[t];

			r1[t] = r2[t];
			r2[t] = tmp;
		}
	}
	for (j = 0; j < d; j++)
		eigvals[j] = w[d - 1 - j] > 0 ? w[d - 1 - j] : 0;

done:
	qdb_free(a, iwork);
	qdb_free(a, work);
	qdb_free(a, w);
	qdb_free(a, buf);
	qdb_free(a, kept);
	return status;
}

int
qdb_pca_fit_report(const QdbAlloc *a, const float *x, size_t n, int d, int keep,
				   float *mean, float *eigvecs, float *eigvals, const QdbProgressCtx *p)
{
	double		discarded = 0;
	int			status;
	int			j;

	status = qdb_pca_fit(a, x, n, d, mean, eigvecs, eigvals, p);
	if (status != QDB_OK)
		return status;
	for (j = keep; j < d; j++)
		discarded += eigvals[j];
	return qdb_progress_report(p, "pca", 1, 1, discarded);
}

int
qdb_pca_project(const QdbAlloc *a, const float *x, size_t n, int d,
				const float *mean, const float *P, int t, float *z,
				const QdbProgressCtx *p)
{
	float	   *buf = NULL;
	int			status = QDB_OK;
	size_t		i0,
				i;
	int			j;

	if (x == NULL || P == NULL || z == NULL || d <= 0 || t <= 0)
		return QDB_ERR_ARG;
	if (mean)
	{
		buf = qdb_malloc(a, (size_t) PCA_BLOCK_ROWS * d, sizeof(float));
		if (!buf)
			return QDB_ERR_NOMEM;
	}
	for (i0 = 0; i0 < n; i0 += PCA_BLOCK_ROWS)
	{
		size_t		b = n - i0 < PCA_BLOCK_ROWS ? n - i0 : PCA_BLOCK_ROWS;
		const float *src = x + i0 * d;

		if (mean)
		{
			for (i = 0; i < b; i++)
				for (j = 0; j < d; j++)
					buf[i * d + j] = src[i * d + j] - mean[j];
			src = buf;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) b, t, d,
					1.0f, src, d, P, d, 0.0f, z + i0 * t, t);
		status = qdb_progress_heartbeat(p, "pca");
		if (status != QDB_OK)
			break;
	}
	qdb_free(a, buf);
	return status;
}
