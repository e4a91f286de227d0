/*
 * test_procrustes.c
 *	  The Procrustes solver: a known rotation recovered, orthonormal
 *	  columns (square, rectangular, rank-deficient input), no nearby
 *	  orthogonal matrix scoring higher; and qdb_opq_cross against decoding
 *	  every row and multiplying.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "opq.h"
#include "procrustes.h"
#include "qdb_internal.h"
#include "tap.h"
#include "test_util.h"

/* Q (n x n) = Q G(i, j, angle): a Givens rotation of columns i and j */
static void
givens(float *Q, int n, int i, int j, double angle)
{
	double		c = cos(angle),
				s = sin(angle);
	int			r;

	for (r = 0; r < n; r++)
	{
		double		a = Q[r * n + i],
					b = Q[r * n + j];

		Q[r * n + i] = (float) (c * a - s * b);
		Q[r * n + j] = (float) (s * a + c * b);
	}
}

/* a random orthogonal n x n: many Givens rotations of the identity */
static void
random_orthogonal(uint64_t *st, float *Q, int n)
{
	int			k;

	memset(Q, 0, sizeof(float) * n * n);
	for (k = 0; k < n; k++)
		Q[k * n + k] = 1;
	for (k = 0; k < 8 * n; k++)
	{
		int			i = (int) (test_uniform(st) * n);
		int			j = (int) (test_uniform(st) * n);

		if (i != j)
			givens(Q, n, i, j, 2 * M_PI * test_uniform(st));
	}
}

/* max |R^T R - I| for R (m x t, row-major) */
static double
orthonormality_error(const float *R, int m, int t)
{
	double		worst = 0;
	int			i,
				j,
				r;

	for (i = 0; i < t; i++)
		for (j = 0; j < t; j++)
		{
			double		dot = 0;

			for (r = 0; r < m; r++)
				dot += (double) R[r * t + i] * R[r * t + j];
			worst = fmax(worst, fabs(dot - (i == j)));
		}
	return worst;
}

static double
trace_rtc(const float *R, const float *C, int m, int t)
{
	double		s = 0;
	size_t		i;

	for (i = 0; i < (size_t) m * t; i++)
		s += (double) R[i] * C[i];
	return s;
}

static void
test_known_rotation(void)
{
	int			n = 40;
	uint64_t	st = TEST_XORSHIFT_SEED;
	float	   *Q = malloc(sizeof(float) * n * n);
	float	   *C = malloc(sizeof(float) * n * n);
	float	   *R = malloc(sizeof(float) * n * n);
	QdbProcrustes p;
	double		worst = 0;
	int			i,
				j;

	/* C = Q diag(s), s > 0: its polar factor, the answer, is Q */
	random_orthogonal(&st, Q, n);
	for (i = 0; i < n; i++)
		for (j = 0; j < n; j++)
			C[i * n + j] = Q[i * n + j] * (float) (1.0 + j);
	tap_ok(qdb_procrustes_init(&p, NULL, n, n) == QDB_OK &&
		   qdb_procrustes_solve(&p, C, R) == QDB_OK, "solve %d x %d", n, n);
	for (i = 0; i < n * n; i++)
		worst = fmax(worst, fabs(R[i] - Q[i]));
	tap_ok(worst < 1e-4, "C = Q S gives back Q (max difference %.2g)", worst);
	tap_ok(orthonormality_error(R, n, n) < 1e-5, "R^T R = I");
	qdb_procrustes_free(&p, NULL);
	free(Q);
	free(C);
	free(R);
}

static void
test_random_and_deficient(void)
{
	int			m = 48,
				t = 36;
	uint64_t	st = TEST_XORSHIFT_SEED;
	float	   *C = malloc(sizeof(float) * m * t);
	float	   *R = malloc(sizeof(float) * m * t);
	float	   *R2 = malloc(sizeof(float) * m * t);
	QdbProcrustes p;
	double		best,
				higher = 0;
	int			i,
				k;

	for (i = 0; i < m * t; i++)
		C[i] = (float) (test_uniform(&st) - 0.5);
	tap_ok(qdb_procrustes_init(&p, NULL, m, t) == QDB_OK &&
		   qdb_procrustes_solve(&p, C, R) == QDB_OK, "solve %d x %d", m, t);
	tap_ok(orthonormality_error(R, m, t) < 1e-5, "orthonormal columns (%d x %d)", m, t);

	/* R G for small Givens rotations G of its columns: never a higher trace */
	best = trace_rtc(R, C, m, t);
	for (k = 0; k < 200; k++)
	{
		int			a = (int) (test_uniform(&st) * t);
		int			b = (a + 1 + (int) (test_uniform(&st) * (t - 1))) % t;

		memcpy(R2, R, sizeof(float) * m * t);
		/* the rows of R2 are t wide: rotate columns a and b row by row */
		for (i = 0; i < m; i++)
		{
			double		angle = (k % 2 ? 1 : -1) * 0.01 * (1 + k % 7);
			double		x = R2[i * t + a],
						y = R2[i * t + b];

			R2[i * t + a] = (float) (cos(angle) * x - sin(angle) * y);
			R2[i * t + b] = (float) (sin(angle) * x + cos(angle) * y);
		}
		higher = fmax(higher, trace_rtc(R2, C, m, t) - best);
	}
	tap_ok(higher <= 1e-5 * fabs(best), "no nearby rotation scores higher (by %.2g of %.4g)",
		   higher, best);

	/* zero columns (a direction without variance): still orthonormal */
	for (i = 0; i < m; i++)
		C[i * t + 3] = C[i * t + 7] = 0;
	tap_ok(qdb_procrustes_solve(&p, C, R) == QDB_OK &&
		   orthonormality_error(R, m, t) < 1e-5, "rank-deficient C: orthonormal columns");
	qdb_procrustes_free(&p, NULL);
	tap_ok(qdb_procrustes_init(&p, NULL, t, m) == QDB_ERR_ARG, "more columns than rows refused");
	free(C);
	free(R);
	free(R2);
}

static void
test_cross(void)
{
	int			M = 4,
				dim_pq = 16,
				t = 12;
	size_t		n = 700,
				i;
	uint64_t	st = TEST_XORSHIFT_SEED;
	float	   *cb = malloc(sizeof(float) * QDB_KSUB * dim_pq);
	float	   *z = malloc(sizeof(float) * n * t);
	uint8_t    *codes = malloc(n * M);
	float	   *yhat = malloc(sizeof(float) * n * dim_pq);
	float	   *sums = malloc(sizeof(float) * M * QDB_KSUB * t);
	float	   *C = malloc(sizeof(float) * dim_pq * t);
	double		worst = 0;
	int			r,
				j;

	for (i = 0; i < (size_t) QDB_KSUB * dim_pq; i++)
		cb[i] = (float) test_uniform(&st);
	for (i = 0; i < n * t; i++)
		z[i] = (float) (test_uniform(&st) - 0.5);
	for (i = 0; i < n * M; i++)
		codes[i] = (uint8_t) (test_uniform(&st) * QDB_KSUB);
	qdb_pq_decode(cb, dim_pq, M, codes, n, yhat);
	qdb_opq_cross(cb, dim_pq, M, codes, z, n, t, sums, C);
	for (r = 0; r < dim_pq; r++)
		for (j = 0; j < t; j++)
		{
			double		ref = 0;

			for (i = 0; i < n; i++)
				ref += (double) yhat[i * dim_pq + r] * z[i * t + j];
			worst = fmax(worst, fabs(ref - C[r * t + j]));
		}
	tap_ok(worst < 1e-3, "cross-covariance from code sums = Yhat^T Z (max difference %.2g)",
		   worst);
	free(cb);
	free(z);
	free(codes);
	free(yhat);
	free(sums);
	free(C);
}

int
main(void)
{
	test_known_rotation();
	test_random_and_deficient();
	test_cross();
	return tap_done();
}
