/*
 * test_pair.c
 *	  Symmetric code-to-code distances against brute force on the decoded
 *	  vectors (cosine: on the codebooks), for every metric and transform;
 *	  symmetry, zero self-distance, agreement with ADC (the query a decoded
 *	  code), bad arguments.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qdb_distance.h"
#include "qdb_internal.h"
#include "tap.h"
#include "test_util.h"

#define NCODES	100

/*
 * The pair distance by brute force in double: L2 and IP on the decoded
 * vectors, cosine as half the squared distance of the concatenated
 * centroids.
 */
static double
brute(const QdbModel *m, const uint8_t *a, const uint8_t *b,
	  const float *xa, const float *xb)
{
	double		s = 0;
	int			j;

	switch (m->metric)
	{
		case QDB_METRIC_L2:
			for (j = 0; j < m->dim; j++)
				s += ((double) xa[j] - xb[j]) * ((double) xa[j] - xb[j]);
			return sqrt(s);
		case QDB_METRIC_IP:
			for (j = 0; j < m->dim; j++)
				s += (double) xa[j] * xb[j];
			return -s;
		default:
			if (m->kind != QDB_KIND_NEURAL)
				return test_cosine_dist(xa, xb, m->dim);	/* the angle between them */
			for (j = 0; j < m->dim_pq; j++)
			{
				int			sq = j / m->dsub,
							t = j % m->dsub;
				double		e = (double) m->codebooks[(sq * QDB_KSUB + a[sq]) * m->dsub + t] -
					m->codebooks[(sq * QDB_KSUB + b[sq]) * m->dsub + t];

				s += e * e;
			}
			return s / 2;
	}
}

/*
 * Over all pairs of NCODES codes: the largest |pair - brute| relative to
 * scale (the largest |brute|), or with exact = 0 the smallest pair - brute
 * (an upper bound must not fall below); symmetry and zero self-distance;
 * for L2 and IP, ADC with the decoded vector as query.
 */
static void
check_model(const char *what, const QdbModel *m, const float *x, double tol,
			int exact)
{
	int			M = m->M;
	uint8_t    *codes = malloc((size_t) NCODES * M);
	float	   *dec = malloc(sizeof(float) * NCODES * m->dim);
	float	   *table = malloc(sizeof(float) * qdb_pair_table_floats(m));
	float	   *adc = malloc(sizeof(float) * qdb_table_floats(m));
	double		worst = 0,
				scale = 0,
				lowest = INFINITY,
				adc_worst = 0,
				adc_scale = 0;
	int			symmetric = 1,
				selfzero = 1;
	int			i,
				j;

	if (qdb_compute_codes(m, x, NCODES, codes) != QDB_OK ||
		qdb_decode(m, codes, NCODES, dec) != QDB_OK ||
		qdb_compute_pair_table(m, table) != QDB_OK)
	{
		tap_ok(0, "%s: encode, decode and pair table", what);
		goto done;
	}
	for (i = 0; i < NCODES; i++)
		for (j = 0; j < NCODES; j++)
		{
			const uint8_t *a = codes + i * M,
					   *b = codes + j * M;
			double		p = qdb_pair_distance(m, table, a, b);
			double		r = brute(m, a, b, dec + i * m->dim, dec + j * m->dim);

			scale = fmax(scale, fabs(r));
			worst = fmax(worst, fabs(p - r));
			lowest = fmin(lowest, p - r);
			if (qdb_pair_distance(m, table, b, a) != (float) p)
				symmetric = 0;
			if (i == j && m->metric != QDB_METRIC_IP && p != 0)
				selfzero = 0;
		}
	if (exact)
		tap_ok(worst <= tol * scale, "%s: pair = brute force (max err %.2g of %.3g)",
			   what, worst, scale);
	else
		tap_ok(lowest >= -tol * scale, "%s: pair >= brute force (min diff %.2g)",
			   what, lowest);
	tap_ok(symmetric && selfzero, "%s: d(a,b) == d(b,a)%s", what,
		   m->metric == QDB_METRIC_IP ? "" : ", d(a,a) == 0");

	if (exact)
	{
		/* L2 squared, since sqrt magnifies rounding near d(a,a) = 0 */
		for (i = 0; i < NCODES; i += 5)
		{
			float		bias;

			if (qdb_compute_distance_table(m, dec + i * m->dim, adc, &bias) != QDB_OK)
			{
				tap_ok(0, "%s: ADC table", what);
				goto done;
			}
			for (j = 0; j < NCODES; j++)
			{
				double		d1 = qdb_adc_distance(m, adc, bias, codes + j * M);
				double		d2 = qdb_pair_distance(m, table, codes + i * M, codes + j * M);

				if (m->metric == QDB_METRIC_L2)
				{
					d1 *= d1;
					d2 *= d2;
				}
				adc_scale = fmax(adc_scale, fabs(d2));
				adc_worst = fmax(adc_worst, fabs(d1 - d2));
			}
		}
		tap_ok(adc_worst <= tol * adc_scale,
			   "%s: ADC from decode(a) = pair distance%s (max err %.2g of %.3g)",
			   what, m->metric == QDB_METRIC_L2 ? ", squared" : "", adc_worst,
			   adc_scale);
	}
done:
	free(codes);
	free(dec);
	free(table);
	free(adc);
}

static void
run(const char *what, QdbKind kind, QdbMetric metric, int dim, int M, int target,
	int exact)
{
	QdbTrainConfig c;
	QdbModel	m;
	float	   *x = test_correlated_data(dim * 11 + metric, 1500, dim);

	test_config(&c, kind, metric, dim, M, 8);
	c.dim_pq = target;
	c.opq_iters = 3;
	if (test_train(&c, x, 1500, &m, NULL, NULL) != QDB_OK)
		tap_ok(0, "%s: trains", what);
	else
	{
		check_model(what, &m, x, 1e-4, exact);
		qdb_model_free(&m);
	}
	free(x);
}

static void
test_errors(void)
{
	QdbTrainConfig c;
	QdbModel	m,
				bad;
	float	   *x = test_correlated_data(60, 600, 8);
	float	   *table;

	test_config(&c, QDB_KIND_PQ, QDB_METRIC_IP, 8, 2, 3);
	test_train(&c, x, 600, &m, NULL, NULL);
	table = malloc(sizeof(float) * qdb_pair_table_floats(&m));
	tap_ok(qdb_pair_table_floats(&m) == 2 * QDB_KSUB * QDB_KSUB + 2 * QDB_KSUB + 1 &&
		   qdb_pair_table_floats(NULL) == 0,
		   "pair table of M*ksub*ksub + M*ksub + 1 floats; 0 without a model");
	tap_ok(qdb_compute_pair_table(NULL, table) == QDB_ERR_ARG &&
		   qdb_compute_pair_table(&m, NULL) == QDB_ERR_ARG,
		   "NULL model or table: QDB_ERR_ARG");
	bad = m;
	bad.metric = (QdbMetric) 99;
	tap_ok(qdb_compute_pair_table(&bad, table) == QDB_ERR_ARG, "unknown metric: QDB_ERR_ARG");
	bad = m;
	bad.codebooks = NULL;
	tap_ok(qdb_compute_pair_table(&bad, table) == QDB_ERR_ARG, "no codebooks: QDB_ERR_ARG");
	bad = m;
	bad.dsub = 3;
	tap_ok(qdb_compute_pair_table(&bad, table) == QDB_ERR_ARG,
		   "M * dsub != dim_pq: QDB_ERR_ARG");
	qdb_model_free(&m);
	free(table);
	free(x);
}

int
main(void)
{
	qdb_distance_init();
	run("pq L2 32d M=8", QDB_KIND_PQ, QDB_METRIC_L2, 32, 8, 0, 1);
	run("pq L2 30d padded", QDB_KIND_PQ, QDB_METRIC_L2, 30, 8, 0, 1);
	run("opq L2 32d M=8", QDB_KIND_OPQ, QDB_METRIC_L2, 32, 8, 0, 1);
	run("opq L2 40d PCA to 16", QDB_KIND_OPQ, QDB_METRIC_L2, 40, 4, 16, 1);
	run("pq L2 40d PCA to 16", QDB_KIND_PQ, QDB_METRIC_L2, 40, 4, 16, 1);
	run("pq IP 32d M=8", QDB_KIND_PQ, QDB_METRIC_IP, 32, 8, 0, 1);
	run("pq IP 30d padded", QDB_KIND_PQ, QDB_METRIC_IP, 30, 8, 0, 1);
	run("opq IP 32d", QDB_KIND_OPQ, QDB_METRIC_IP, 32, 8, 0, 1);
	run("opq IP 40d PCA to 16", QDB_KIND_OPQ, QDB_METRIC_IP, 40, 4, 16, 1);
	run("pq IP 40d PCA to 16", QDB_KIND_PQ, QDB_METRIC_IP, 40, 4, 16, 1);
	run("pq cosine 24d", QDB_KIND_PQ, QDB_METRIC_COSINE, 24, 6, 0, 1);
	run("pq cosine 30d padded", QDB_KIND_PQ, QDB_METRIC_COSINE, 30, 8, 0, 1);
	run("opq cosine 32d", QDB_KIND_OPQ, QDB_METRIC_COSINE, 32, 8, 0, 1);
	run("opq cosine 40d PCA to 16", QDB_KIND_OPQ, QDB_METRIC_COSINE, 40, 4, 16, 1);
	/* dim_pq > dim: A has orthonormal columns, the codebook sum over-counts */
	run("opq L2 30d padded", QDB_KIND_OPQ, QDB_METRIC_L2, 30, 8, 0, 0);
	test_errors();
	return tap_done();
}
