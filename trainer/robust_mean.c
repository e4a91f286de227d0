/*
 * robust_mean.c
 *	  The centre of a training sample that a few rows far out of scale do
 *	  not drag away from the rest: the mean, each row's squared distance
 *	  from it, and, if any row lies beyond QDB_FAR_RATIO times the median
 *	  of those, the mean again without such rows.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qdb_internal.h"
#include "robust_mean.h"

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* mean of the rows of x that kept marks (all when kept is NULL), in double */
static void
mean_of(const float *x, size_t n, int d, const unsigned char *kept, double *acc,
		float *mean)
{
	size_t		i,
				m = 0;
	int			j;

	memset(acc, 0, sizeof(double) * d);
	for (i = 0; i < n; i++)
	{
		if (kept && !kept[i])
			continue;
		for (j = 0; j < d; j++)
			acc[j] += x[i * d + j];
		m++;
	}
	for (j = 0; j < d; j++)
		mean[j] = (float) (acc[j] / m);
}

int
qdb_robust_mean(const QdbAlloc *a, const float *x, size_t n, int d,
				float *mean, unsigned char *kept, size_t *nkept,
				const QdbProgressCtx *p)
{
	double	   *acc = qdb_malloc(a, d, sizeof(double));
	double	   *r = qdb_malloc(a, n, sizeof(double));
	double	   *sorted = qdb_malloc(a, n, sizeof(double));
	double		limit;
	size_t		i,
				far = 0;
	int			j;

	if (!acc || !r || !sorted)
	{
		qdb_free(a, acc);
		qdb_free(a, r);
		qdb_free(a, sorted);
		return QDB_ERR_NOMEM;
	}
	mean_of(x, n, d, NULL, acc, mean);
	for (i = 0; i < n; i++)
	{
		double		s = 0;

		for (j = 0; j < d; j++)
		{
			double		v = (double) x[i * d + j] - acc[j] / n;

			s += v * v;
		}
		r[i] = sorted[i] = s;
	}
	qsort(sorted, n, sizeof(double), cmp_double);
	/* with most rows at the mean (copies) every other would be far: none is */
	limit = sorted[n / 2] * QDB_FAR_RATIO;
	for (i = 0; i < n; i++)
	{
		kept[i] = !(sorted[n / 2] > 0 && r[i] > limit);
		far += !kept[i];
	}
	if (far > 0)
		mean_of(x, n, d, kept, acc, mean);
	*nkept = n - far;
	qdb_free(a, acc);
	qdb_free(a, r);
	qdb_free(a, sorted);
	if (far > 0 && p)
		return qdb_progress_report_measure(p, QDB_FAR_STAGE, far < INT32_MAX ? (int) far : INT32_MAX,
										   n < INT32_MAX ? (int) n : INT32_MAX, limit,
										   "squared distance from the mean over");
	return QDB_OK;
}
