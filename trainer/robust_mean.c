/*
 * robust_mean.c
 *	  The centre of a training sample that a few rows far out of scale do
 *	  not drag away from the rest: each row's squared distance from the
 *	  coordinates' medians, and the mean of the rows within QDB_FAR_RATIO
 *	  times the median of those distances (of every row when all are).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qdb_internal.h"
#include "robust_mean.h"

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

/* the k-th smallest of v[0 .. n) (which it reorders), by Hoare's selection */
static double
select_kth(double *v, size_t n, size_t k)
{
	size_t		lo = 0,
				hi = n - 1;

	while (lo < hi)
	{
		double		pivot = v[lo + (hi - lo) / 2];
		size_t		i = lo,
					j = hi;

		while (i <= j)
		{
			while (v[i] < pivot)
				i++;
			while (v[j] > pivot)
				j--;
			if (i <= j)
			{
				double		t = v[i];

				v[i] = v[j];
				v[j] = t;
				i++;
				if (j == 0)
					break;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			break;
	}
	return v[k];
}

/*
 * centre (d): the median of each coordinate over at most MEDIAN_ROWS rows
 * spread over x.  Unlike the mean, rows far out of scale do not move it
 * while they are fewer than half: a mean they dragged along with them (all
 * far in one direction, as on non-negative data) was as far from the other
 * rows as from them, and none was left out (session 63's review,
 * /work/runs/review-s63.md F2: 50 of 2,000 rows in [0, 1] scaled by 1e9).
 */
#define MEDIAN_ROWS	2048
static void
median_of(const float *x, size_t n, int d, double *col, double *centre)
{
	size_t		step = n > MEDIAN_ROWS ? n / MEDIAN_ROWS : 1,
				m = 0,
				i;
	int			j;

	for (j = 0; j < d; j++)
	{
		m = 0;
		for (i = 0; i < n && m < MEDIAN_ROWS; i += step)
			col[m++] = x[i * d + j];
		centre[j] = select_kth(col, m, m / 2);
	}
}

int
qdb_robust_mean(const QdbAlloc *a, const float *x, size_t n, int d,
				float *mean, unsigned char *kept, size_t *nkept,
				const QdbProgressCtx *p)
{
	double	   *acc = qdb_malloc(a, d, sizeof(double));
	double	   *r = qdb_malloc(a, n, sizeof(double));
	double	   *sorted = qdb_malloc(a, n > MEDIAN_ROWS ? n : MEDIAN_ROWS, sizeof(double));
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
	median_of(x, n, d, sorted, acc);
	for (i = 0; i < n; i++)
	{
		double		s = 0;

		for (j = 0; j < d; j++)
		{
			double		v = (double) x[i * d + j] - acc[j];

			s += v * v;
		}
		r[i] = sorted[i] = s;
	}
	limit = select_kth(sorted, n, n / 2) * QDB_FAR_RATIO;
	/* with most rows at the centre (copies) every other would be far: none is */
	for (i = 0; i < n; i++)
	{
		kept[i] = !(limit > 0 && r[i] > limit);
		far += !kept[i];
	}
	mean_of(x, n, d, far > 0 ? kept : NULL, acc, mean);
	*nkept = n - far;
	qdb_free(a, acc);
	qdb_free(a, r);
	qdb_free(a, sorted);
	if (far > 0 && p)
		return qdb_progress_report_measure(p, QDB_FAR_STAGE, far < INT32_MAX ? (int) far : INT32_MAX,
										   n < INT32_MAX ? (int) n : INT32_MAX, limit,
										   "squared distance from the medians over");
	return QDB_OK;
}
