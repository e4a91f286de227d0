/*
 * test_util.h
 *	  Helpers shared by the trainer's unit tests: a small xorshift generator
 *	  for tests that keep away from the library's RNG, Gaussian fills, a
 *	  squared distance, a training config in one call, training through the
 *	  CPU backend, and the encode-decode round trip behind the tests' error
 *	  measures.  Static inline, since each test binary is one file.
 */
#ifndef QDB_TEST_UTIL_H
#define QDB_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qdb_internal.h"
#include "tap.h"

#define TEST_XORSHIFT_SEED	0x9e3779b97f4a7c15ULL

/* One xorshift64 step; returns the new state.  Seed with TEST_XORSHIFT_SEED. */
static inline uint64_t
test_xorshift(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

/* Uniform in [0, 1) from the top 53 bits of the next xorshift state. */
static inline double
test_uniform(uint64_t *state)
{
	return (test_xorshift(state) >> 11) * (1.0 / 9007199254740992.0);
}

/*
 * n draws of N(0, 1), each divided by div: 1 for unit variance, sqrt(d) for
 * a random d x d mixing matrix (dividing, not multiplying by 1/div, keeps
 * the rounding the tests were written with).
 */
static inline void
test_fill_gaussian(QdbRng *r, float *x, size_t n, float div)
{
	size_t		i;

	for (i = 0; i < n; i++)
		x[i] = (float) qdb_rng_gaussian(r) / div;
}

/* Squared L2 distance as a plain loop with one float sum: the tests' reference. */
static inline float
test_sqdist(const float *a, const float *b, int d)
{
	float		s = 0;
	int			j;

	for (j = 0; j < d; j++)
		s += (a[j] - b[j]) * (a[j] - b[j]);
	return s;
}

/* 1 - cosine of a and b, in double (the angle cosine ADC takes) */
static inline double
test_cosine_dist(const float *a, const float *b, int d)
{
	double		ab = 0,
				aa = 0,
				bb = 0;

	for (int j = 0; j < d; j++)
	{
		ab += (double) a[j] * b[j];
		aa += (double) a[j] * a[j];
		bb += (double) b[j] * b[j];
	}
	return 1 - ab / sqrt(aa * bb);
}

/* qdb_train_config_init plus the fields every training test sets. */
static inline void
test_config(QdbTrainConfig *c, QdbKind kind, QdbMetric metric, int dim, int M,
			int kmeans_iters)
{
	qdb_train_config_init(c);
	c->kind = kind;
	c->metric = metric;
	c->dim = dim;
	c->M = M;
	c->kmeans_iters = kmeans_iters;
}

/* Trains through the CPU backend as the extension would; -1 if it won't open. */
static inline int
test_train(const QdbTrainConfig *c, const float *x, size_t n, QdbModel *m,
		   QdbProgress cb, void *arg)
{
	QdbBackend *be;
	char		err[128];
	int			st;

	if (qdb_backend_open(&be, qdb_neural_cpu_ops(), NULL, err, sizeof(err)) != QDB_OK)
		return -1;
	st = qdb_backend_train(be, x, n, c, m, cb, arg);
	qdb_backend_close(be);
	return st;
}

/* decode(encode(x)) as a malloc'd n x dim array, or NULL when either fails. */
static inline float *
test_reconstruct(const QdbModel *m, const float *x, size_t n)
{
	uint8_t    *codes = malloc(n * m->M);
	float	   *rec = malloc(sizeof(float) * n * m->dim);

	if (qdb_compute_codes(m, x, n, codes) != QDB_OK ||
		qdb_decode(m, codes, n, rec) != QDB_OK)
	{
		free(rec);
		rec = NULL;
	}
	free(codes);
	return rec;
}

/*
 * Largest |G - I| over the smaller Gram matrix of the dim_pq x dim map
 * (A A^T when it has no more rows than columns, else A^T A).
 */
static inline double
test_orthonormal_deviation(const QdbModel *m)
{
	int			rows = m->dim_pq,
				cols = m->dim;
	int			by_rows = rows <= cols;
	int			k = by_rows ? rows : cols;
	double		worst = 0;
	int			i,
				j,
				l;

	for (i = 0; i < k; i++)
		for (j = 0; j < k; j++)
		{
			double		s = 0;

			for (l = 0; l < (by_rows ? cols : rows); l++)
				s += by_rows ?
					(double) m->linear[i * cols + l] * m->linear[j * cols + l] :
					(double) m->linear[l * cols + i] * m->linear[l * cols + j];
			if (fabs(s - (i == j)) > worst)
				worst = fabs(s - (i == j));
		}
	return worst;
}

/*
 * qdb_model_prepare on m: the unprepared model's query table up to rounding
 * (the norm table under cosine, every kind, float for float), its
 * books kept transposed and a norm table under cosine alone.  m stays
 * prepared.
 */
static inline void
test_check_prepared(const char *what, QdbModel *m, const float *query)
{
	size_t		nt = qdb_table_floats(m),
				i;
	float	   *a = malloc(sizeof(float) * nt);
	float	   *b = malloc(sizeof(float) * nt);
	float		bias_a = 0,
				bias_b = 1;
	int			keeps = m->metric == QDB_METRIC_COSINE;
	double		scale = 1,
				worst = 0;
	int			ok;

	ok = m->books_t == NULL && m->norm_table == NULL &&
		qdb_compute_distance_table(m, query, a, &bias_a) == QDB_OK &&
		qdb_model_prepare(m) == QDB_OK && m->books_t != NULL &&
		qdb_compute_distance_table(m, query, b, &bias_b) == QDB_OK;
	for (i = 0; ok && i < nt; i++)
	{
		scale = fmax(scale, fabs(a[i]));
		worst = fmax(worst, fabs((double) a[i] - b[i]));
	}
	tap_ok(ok && (m->norm_table != NULL) == keeps && worst <= 1e-5 * scale &&
		   bias_a == bias_b &&
		   (!keeps || memcmp(a + nt / 2, b + nt / 2, sizeof(float) * nt / 2) == 0),
		   "%s: a prepared model (%s) gives the same query table (max diff %.2g of %.3g)",
		   what, keeps ? "books transposed, norm table kept" : "books transposed",
		   worst, scale);
	free(a);
	free(b);
}

/*
 * n rows of d correlated dimensions with falling variance, offset from 0:
 * a random mix of Gaussians, the t-th weighted by 0.85^t (malloc'd).
 */
static inline float *
test_correlated_data(uint64_t seed, size_t n, int d)
{
	QdbRng		r;
	float	   *mix = malloc(sizeof(float) * d * d);
	float	   *x = malloc(sizeof(float) * n * d);
	size_t		i;
	int			j,
				t;

	qdb_rng_seed(&r, seed);
	test_fill_gaussian(&r, mix, (size_t) d * d, sqrtf((float) d));
	for (i = 0; i < n; i++)
		for (j = 0; j < d; j++)
		{
			float		v = 1.0f;

			for (t = 0; t < d; t++)
				v += mix[j * d + t] * (float) qdb_rng_gaussian(&r) * powf(0.85f, (float) t);
			x[i * d + j] = v;
		}
	free(mix);
	return x;
}

#endif							/* QDB_TEST_UTIL_H */
