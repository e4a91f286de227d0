/*
 * test_adc.c
 *	  Asymmetric distances against brute force on the decoded vectors, for
 *	  every metric and transform, and the recall measure.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qdb_distance.h"
#include "qdb_internal.h"
#include "tap.h"
#include "test_util.h"

#define NQ	20

/*
 * The metric's distance from q to the decoded xhat, as qdb_trainer.h defines ADC
 * (cosine: 1 - q . xhat / (|q| |xhat|); kind neural's ||q/|q| - xhat||^2 / 2).
 */
static double
brute(const QdbModel *m, const float *q, const float *xhat)
{
	double		qq = 0,
				xx = 0,
				s = 0;
	int			j;

	for (j = 0; j < m->dim; j++)
	{
		qq += (double) q[j] * q[j];
		xx += (double) xhat[j] * xhat[j];
	}
	if (m->metric == QDB_METRIC_COSINE && m->kind != QDB_KIND_NEURAL)
	{
		for (j = 0; j < m->dim; j++)
			s += (double) q[j] * xhat[j];
		return 1 - s / sqrt(qq * xx);
	}
	for (j = 0; j < m->dim; j++)
	{
		switch (m->metric)
		{
			case QDB_METRIC_L2:
				s += ((double) q[j] - xhat[j]) * ((double) q[j] - xhat[j]);
				break;
			case QDB_METRIC_IP:
				s += (double) q[j] * xhat[j];
				break;
			case QDB_METRIC_COSINE:
				{
					double		e = q[j] / sqrt(qq) - xhat[j];

					s += e * e;
				}
				break;
		}
	}
	switch (m->metric)
	{
		case QDB_METRIC_L2:
			return sqrt(s);
		case QDB_METRIC_IP:
			return -s;
		default:
			return s / 2;
	}
}

/*
 * qdb_adc_distances gives qdb_adc_distance's floats bit for bit, for every
 * count from 0 to 21 (short blocks and whole ones) and all nb codes at once,
 * the codes taken out of order.
 */
static void
batch_same(const char *what, const QdbModel *m, const float *base, const float *queries,
		   const uint8_t *codes, size_t nb)
{
	float	   *table = malloc(sizeof(float) * qdb_table_floats(m));
	const uint8_t **ptr = malloc(sizeof(uint8_t *) * nb);
	float	   *out = malloc(sizeof(float) * nb);
	size_t		i,
				bad = 0,
				tried = 0;
	int			q,
				n;

	for (i = 0; i < nb; i++)
		ptr[i] = codes + ((i * 7) % nb) * m->M;
	for (q = 0; q < NQ; q++)
	{
		float		bias;

		if (qdb_compute_distance_table(m, queries + q * m->dim, table, &bias) != QDB_OK)
			break;
		for (n = 0; n <= 22; n++)
		{
			int			cnt = n == 22 ? (int) nb : n;

			qdb_adc_distances(m, table, bias, ptr, cnt, out);
			for (i = 0; i < (size_t) cnt; i++, tried++)
			{
				float		one = qdb_adc_distance(m, table, bias, ptr[i]);

				if (memcmp(&one, &out[i], sizeof(float)) != 0)
					bad++;
			}
		}
	}
	tap_ok(bad == 0 && tried > 0, "%s: batch ADC = one at a time, bit for bit (%zu of %zu differ)",
		   what, bad, tried);
	(void) base;
	free(table);
	free(ptr);
	free(out);
}

/*
 * For NQ queries against 200 codes: largest |adc - brute| relative to
 * scale (a typical distance), and the smallest adc - brute.
 */
static void
check_model(const char *what, const QdbModel *m, const float *base,
			const float *queries, double tol, int exact)
{
	size_t		nb = 200;
	uint8_t    *codes = malloc(nb * m->M);
	float	   *dec = malloc(sizeof(float) * nb * m->dim);
	float	   *table = malloc(sizeof(float) * qdb_table_floats(m));
	double		worst = 0,
				scale = 0,
				lowest = INFINITY;
	size_t		i;
	int			q;

	if (qdb_compute_codes(m, base, nb, codes) != QDB_OK ||
		qdb_decode(m, codes, nb, dec) != QDB_OK)
	{
		tap_ok(0, "%s: encode and decode", what);
		return;
	}
	for (q = 0; q < NQ; q++)
	{
		float		bias;

		if (qdb_compute_distance_table(m, queries + q * m->dim, table, &bias) != QDB_OK)
		{
			tap_ok(0, "%s: distance table", what);
			return;
		}
		for (i = 0; i < nb; i++)
		{
			double		a = qdb_adc_distance(m, table, bias, codes + i * m->M);
			double		b = brute(m, queries + q * m->dim, dec + i * m->dim);

			scale = fmax(scale, fabs(b));
			worst = fmax(worst, fabs(a - b));
			lowest = fmin(lowest, a - b);
		}
	}
	batch_same(what, m, base, queries, codes, nb);
	if (exact)
		tap_ok(worst <= tol * scale, "%s: ADC = brute force on decoded (max err %.2g of %.3g)",
			   what, worst, scale);
	else
		tap_ok(lowest >= -tol * scale, "%s: ADC >= brute force on decoded (min diff %.2g)",
			   what, lowest);
	free(codes);
	free(dec);
	free(table);
}

static void
run(const char *what, QdbKind kind, QdbMetric metric, int dim, int M, int target,
	int exact)
{
	QdbTrainConfig c;
	QdbModel	m;
	float	   *x = test_correlated_data(dim * 7 + metric, 1500, dim);
	float	   *q = test_correlated_data(dim * 7 + metric + 1000, NQ, dim);

	test_config(&c, kind, metric, dim, M, 8);
	c.dim_pq = target;
	c.opq_iters = 3;
	if (test_train(&c, x, 1500, &m, NULL, NULL) != QDB_OK)
		tap_ok(0, "%s: trains", what);
	else
	{
		check_model(what, &m, x, q, 1e-4, exact);
		test_check_prepared(what, &m, q);
		check_model(what, &m, x, q, 1e-4, exact);
		qdb_model_free(&m);
	}
	free(x);
	free(q);
}

/*
 * batch_same alone, for the kinds whose ADC is not the decoded vector's
 * exactly (rq's norm byte, neural's latent space), at 16-byte codes.
 */
static void
run_batch(const char *what, QdbKind kind, QdbMetric metric, int dim, int M)
{
	QdbTrainConfig c;
	QdbModel	m;
	float	   *x = test_correlated_data(dim * 11 + metric, 1500, dim);
	float	   *q = test_correlated_data(dim * 11 + metric + 1000, NQ, dim);
	size_t		nb = 200;
	uint8_t    *codes = malloc(nb * 32);

	test_config(&c, kind, metric, dim, M, 4);
	c.opq_iters = 2;
	c.rq_refits = 1;
	c.epochs = 1;
	if (test_train(&c, x, 1500, &m, NULL, NULL) != QDB_OK ||
		qdb_compute_codes(&m, x, nb, codes) != QDB_OK)
		tap_ok(0, "%s: trains and encodes", what);
	else
	{
		batch_same(what, &m, x, q, codes, nb);
		qdb_model_free(&m);
	}
	free(codes);
	free(x);
	free(q);
}

/* Inserts (d, id) into the ascending top-k list dist/ids; ties keep the earlier id. */
static void
topk_insert(float *dist, int *ids, int k, float d, int id)
{
	int			t;

	for (t = k - 1; t >= 0 && d < dist[t]; t--)
		if (t + 1 < k)
		{
			dist[t + 1] = dist[t];
			ids[t + 1] = ids[t];
		}
	if (t + 1 < k)
	{
		dist[t + 1] = d;
		ids[t + 1] = id;
	}
}

/*
 * Under cosine, qdb_adc_recall ranks codes as qdb_adc_distance does (the
 * angle, from both of its tables): the same 5-recall@5 by brute force.
 */
static void
recall_by_adc_distance(QdbKind kind, const float *x, size_t nb, const float *q)
{
	QdbTrainConfig c;
	QdbModel	m;
	uint8_t    *codes = malloc(nb * 4);
	float	   *table;
	double		rec = -1,
				mine = 0;
	int			k = 5;

	test_config(&c, kind, QDB_METRIC_COSINE, 16, 4, 8);
	test_train(&c, x, nb, &m, NULL, NULL);
	table = malloc(sizeof(float) * qdb_table_floats(&m));
	qdb_adc_recall(&m, x, nb, q, 50, k, &rec);
	qdb_compute_codes(&m, x, nb, codes);
	for (size_t i = 0; i < 50; i++)
	{
		float		bias;
		int			ex[5],
					ad[5];
		float		exd[5],
					add[5];

		for (int a = 0; a < k; a++)
			exd[a] = add[a] = INFINITY;
		qdb_compute_distance_table(&m, q + i * 16, table, &bias);
		for (size_t j = 0; j < nb; j++)
		{
			topk_insert(exd, ex, k, test_cosine_dist(q + i * 16, x + j * 16, 16), (int) j);
			topk_insert(add, ad, k, qdb_adc_distance(&m, table, bias, codes + j * 4),
						(int) j);
		}
		for (int a = 0; a < k; a++)
			for (int b = 0; b < k; b++)
				mine += ex[a] == ad[b];
	}
	mine /= 50.0 * k;
	tap_ok(fabs(mine - rec) < 1e-9,
		   "%s cosine: recall ranks as qdb_adc_distance (%.3f vs %.3f by brute force)",
		   kind == QDB_KIND_PQ ? "pq" : "opq", rec, mine);
	qdb_model_free(&m);
	free(table);
	free(codes);
}

/*
 * Under cosine a row counts by its direction: scaling half the base rows
 * and the queries by 1e-40 (denormals), 1e-30 or 1e19 leaves the recall as
 * it was.  Summed in float, the norm of such a row overflows or vanishes
 * (1e-40 made every query's exact neighbours those rows: recall 0).
 */
static void
recall_scaled_rows(const float *x, size_t nb, const float *q)
{
	QdbTrainConfig c;
	QdbModel	m;
	const float scales[] = {1e-40f, 1e-30f, 1e19f};
	float	   *xs = malloc(sizeof(float) * nb * 16);
	float	   *qs = malloc(sizeof(float) * 50 * 16);
	double		base_rec = -1;

	test_config(&c, QDB_KIND_PQ, QDB_METRIC_COSINE, 16, 4, 8);
	test_train(&c, x, nb, &m, NULL, NULL);
	qdb_adc_recall(&m, x, nb, q, 50, 5, &base_rec);
	for (int s = 0; s < 3; s++)
	{
		double		rec = -1;
		int			st;

		for (size_t i = 0; i < nb * 16; i++)
			xs[i] = (i / 16) % 2 ? x[i] * scales[s] : x[i];
		for (size_t i = 0; i < 50 * 16; i++)
			qs[i] = (i / 16) % 2 ? q[i] * scales[s] : q[i];
		st = qdb_adc_recall(&m, xs, nb, qs, 50, 5, &rec);
		tap_ok(st == QDB_OK && fabs(rec - base_rec) < 0.02,
			   "cosine recall with rows scaled by %g: %.3f as unscaled %.3f",
			   scales[s], rec, base_rec);
	}
	qdb_model_free(&m);
	free(xs);
	free(qs);
}

/*
 * qdb_adc_recall_shared: the first call keeps each query's exact k-th
 * distance, a second model's call reads them back and gets
 * qdb_adc_recall's recall; kept distances that are wrong (every one
 * lowered below any distance) make it count no hit, so they are read.
 */
static void
shared_recall(const QdbModel *m, const float *x, size_t nb, const float *q, int k)
{
	QdbTrainConfig c;
	QdbModel	other;
	float		kth[50];
	int			known = 0;
	double		rec = -1,
				rec2 = -1,
				plain = -2;
	double		expect = -3;
	int			st;

	qdb_adc_recall(m, x, nb, q, 50, k, &expect);
	st = qdb_adc_recall_shared(m, x, nb, q, 50, k, kth, &known, &rec);
	tap_ok(st == QDB_OK && known == 1 && fabs(rec - expect) < 1e-12,
		   "shared recall, first model: the exact search runs and is kept (%.3f)", rec);
	test_config(&c, QDB_KIND_OPQ, QDB_METRIC_L2, 16, 4, 8);
	test_train(&c, x, nb, &other, NULL, NULL);
	qdb_adc_recall(&other, x, nb, q, 50, k, &plain);
	st = qdb_adc_recall_shared(&other, x, nb, q, 50, k, kth, &known, &rec2);
	tap_ok(st == QDB_OK && fabs(rec2 - plain) < 1e-12,
		   "shared recall, second model: the kept distances give qdb_adc_recall's (%.3f vs %.3f)",
		   rec2, plain);
	for (int i = 0; i < 50; i++)
		kth[i] = -1.0f;
	st = qdb_adc_recall_shared(&other, x, nb, q, 50, k, kth, &known, &rec2);
	tap_ok(st == QDB_OK && rec2 == 0.0, "shared recall: the kept distances are the ones read (%.3f)",
		   rec2);
	tap_ok(qdb_adc_recall_shared(&other, x, nb, q, 50, k, kth, NULL, &rec2) == QDB_ERR_ARG,
		   "shared recall: kth without known is QDB_ERR_ARG");
	qdb_model_free(&other);

	/* cosine, 600 queries (the base's own rows: blocks past the first) */
	{
		QdbModel	cm[2];
		float	   *kk = malloc(sizeof(float) * 600);
		int			ok = 1;

		known = 0;
		for (int v = 0; v < 2; v++)
		{
			test_config(&c, v ? QDB_KIND_OPQ : QDB_KIND_PQ, QDB_METRIC_COSINE, 16, 4, 8);
			test_train(&c, x, nb, &cm[v], NULL, NULL);
			qdb_adc_recall(&cm[v], x, nb, x, 600, k, &plain);
			ok &= qdb_adc_recall_shared(&cm[v], x, nb, x, 600, k, kk, &known, &rec2) == QDB_OK &&
				fabs(rec2 - plain) < 1e-12;
			qdb_model_free(&cm[v]);
		}
		tap_ok(ok && known == 1,
			   "shared recall under cosine, 600 queries: pq then opq as qdb_adc_recall");
		free(kk);
	}
}

static void
test_recall(void)
{
	QdbTrainConfig c;
	QdbModel	m;
	size_t		nb = 1000,
				i,
				j;
	float	   *x = test_correlated_data(42, nb, 16);
	float	   *q = test_correlated_data(43, 50, 16);
	uint8_t    *codes = malloc(nb * 4);
	float	   *table = malloc(sizeof(float) * 4 * QDB_KSUB);
	double		rec = -1,
				mine = 0;
	int			k = 5;
	int			st;

	test_config(&c, QDB_KIND_PQ, QDB_METRIC_L2, 16, 4, 8);
	test_train(&c, x, nb, &m, NULL, NULL);
	st = qdb_adc_recall(&m, x, nb, q, 50, k, &rec);
	tap_ok(st == QDB_OK && rec > 0.2 && rec <= 1, "recall 5-recall@5 in range (%.3f)", rec);

	/* the same by brute force (random data: no ties) */
	qdb_compute_codes(&m, x, nb, codes);
	for (i = 0; i < 50; i++)
	{
		float		bias;
		int			ex[5],
					ad[5];
		float		exd[5],
					add[5];
		int			a,
					b;

		for (a = 0; a < k; a++)
			exd[a] = add[a] = INFINITY;
		qdb_compute_distance_table(&m, q + i * 16, table, &bias);
		for (j = 0; j < nb; j++)
		{
			topk_insert(exd, ex, k, test_sqdist(q + i * 16, x + j * 16, 16), (int) j);
			topk_insert(add, ad, k, qdb_adc_distance(&m, table, bias, codes + j * 4),
						(int) j);
		}
		for (a = 0; a < k; a++)
			for (b = 0; b < k; b++)
				mine += ex[a] == ad[b];
	}
	mine /= 50.0 * k;
	tap_ok(fabs(mine - rec) < 1e-9, "recall matches a brute-force count (%.3f vs %.3f)",
		   rec, mine);

	/* the base queried against itself with every row twice: ties everywhere */
	{
		float	   *dup = malloc(sizeof(float) * 400 * 16);

		for (i = 0; i < 400; i++)
			memcpy(dup + i * 16, x + (i / 2) * 16, sizeof(float) * 16);
		st = qdb_adc_recall(&m, dup, 400, x, 50, 2, &rec);
		tap_ok(st == QDB_OK && rec > 0.5,
			   "duplicated base: a tied pair found by ADC counts fully (%.3f)", rec);
		free(dup);
	}
	tap_ok(qdb_adc_recall(&m, x, nb, q, 50, 0, &rec) == QDB_ERR_ARG,
		   "k = 0: QDB_ERR_ARG");
	shared_recall(&m, x, nb, q, k);
	recall_by_adc_distance(QDB_KIND_OPQ, x, nb, q);
	recall_by_adc_distance(QDB_KIND_PQ, x, nb, q);
	recall_scaled_rows(x, nb, q);
	st = qdb_adc_recall(&m, x, 3, q, 2, 10, &rec);
	tap_ok(st == QDB_OK && rec == 1.0, "k above the base size: every row counts (%.3f)", rec);
	qdb_model_free(&m);
	free(x);
	free(q);
	free(codes);
	free(table);
}

static void
test_errors(void)
{
	QdbTrainConfig c;
	QdbModel	m;
	float	   *x = test_correlated_data(50, 600, 8);
	float		zero[8] = {0};
	float		table[4 * QDB_KSUB];
	float		bias;

	test_config(&c, QDB_KIND_PQ, QDB_METRIC_COSINE, 8, 2, 3);
	test_train(&c, x, 600, &m, NULL, NULL);
	tap_ok(qdb_table_floats(&m) == 4 * QDB_KSUB && qdb_code_size(&m) == 2,
		   "cosine: tables of 2 x M x 256 floats (the query's terms, the norm's), code of M bytes");
	tap_ok(qdb_compute_distance_table(&m, zero, table, &bias) == QDB_ERR_DATA,
		   "cosine: zero query is QDB_ERR_DATA");
	{
		uint8_t		code[2];

		tap_ok(qdb_compute_codes(&m, zero, 1, code) == QDB_ERR_DATA,
			   "cosine: encoding a zero vector is QDB_ERR_DATA");
	}
	tap_ok(qdb_compute_distance_table(NULL, x, table, &bias) == QDB_ERR_ARG &&
		   qdb_compute_distance_table(&m, NULL, table, &bias) == QDB_ERR_ARG,
		   "NULL model or query: QDB_ERR_ARG");
	qdb_model_free(&m);
	free(x);
}

/*
 * Queries past float's range: under l2 a query whose squares overflow is
 * infinitely far from every code (its table's inf - inf made ADC 0, every
 * row nearest); under ip the table keeps the NaN of inf + -inf dot
 * products (not +inf, which -sum made the nearest of all) and ADC makes
 * such a sum far.
 */
static void
test_overflow(void)
{
	QdbTrainConfig c;
	QdbModel	m;
	float	   *x = test_correlated_data(77, 1500, 4);
	float		q[4] = {1e19f, 1e19f, 1e19f, 1e19f};
	float	   *table = malloc(sizeof(float) * 2 * QDB_KSUB);
	float		bias;
	uint8_t		code[2];
	int			all_inf = 1,
				nan_entries = 0,
				nan_far = 1;

	test_config(&c, QDB_KIND_OPQ, QDB_METRIC_L2, 4, 2, 5);
	c.opq_iters = 2;
	if (test_train(&c, x, 1500, &m, NULL, NULL) == QDB_OK &&
		qdb_compute_distance_table(&m, q, table, &bias) == QDB_OK)
	{
		for (int k = 0; k < QDB_KSUB; k++)
		{
			code[0] = code[1] = (uint8_t) k;
			all_inf &= isinf(qdb_adc_distance(&m, table, bias, code)) &&
				qdb_adc_distance(&m, table, bias, code) > 0;
		}
		tap_ok(all_inf, "opq l2: a query of 1e19s is infinitely far from every code");
		qdb_model_free(&m);
	}
	else
		tap_ok(0, "opq l2: trains");
	test_config(&c, QDB_KIND_PQ, QDB_METRIC_IP, 4, 2, 5);
	q[0] = 3e38f;
	q[1] = -3e38f;
	q[2] = q[3] = 1;
	if (test_train(&c, x, 1500, &m, NULL, NULL) == QDB_OK &&
		qdb_compute_distance_table(&m, q, table, &bias) == QDB_OK)
	{
		for (int k = 0; k < QDB_KSUB; k++)
		{
			if (!isnan(table[k]))
				continue;
			nan_entries++;
			code[0] = (uint8_t) k;
			code[1] = 0;
			nan_far &= isinf(qdb_adc_distance(&m, table, bias, code)) &&
				qdb_adc_distance(&m, table, bias, code) > 0;
		}
		tap_ok(nan_entries > 0 && nan_far,
			   "pq ip: inf + -inf entries stay NaN and their codes are far (%d entries)",
			   nan_entries);
		qdb_model_free(&m);
	}
	else
		tap_ok(0, "pq ip: trains");
	free(table);
	free(x);
}

int
main(void)
{
	qdb_distance_init();
	test_overflow();
	run("pq L2 32d M=8", QDB_KIND_PQ, QDB_METRIC_L2, 32, 8, 0, 1);
	run("pq L2 30d padded", QDB_KIND_PQ, QDB_METRIC_L2, 30, 8, 0, 1);
	run("opq L2 32d M=8", QDB_KIND_OPQ, QDB_METRIC_L2, 32, 8, 0, 1);
	run("opq L2 40d PCA to 16", QDB_KIND_OPQ, QDB_METRIC_L2, 40, 4, 16, 1);
	run("pq L2 40d PCA to 16", QDB_KIND_PQ, QDB_METRIC_L2, 40, 4, 16, 1);
	run("opq IP 32d", QDB_KIND_OPQ, QDB_METRIC_IP, 32, 8, 0, 1);
	run("pq IP 30d padded", QDB_KIND_PQ, QDB_METRIC_IP, 30, 8, 0, 1);
	run("opq IP 40d PCA to 16", QDB_KIND_OPQ, QDB_METRIC_IP, 40, 4, 16, 1);
	run("opq cosine 32d", QDB_KIND_OPQ, QDB_METRIC_COSINE, 32, 8, 0, 1);
	run("pq cosine 24d", QDB_KIND_PQ, QDB_METRIC_COSINE, 24, 6, 0, 1);
	/* no A, 30 dims in 8 sub-spaces of 4: the last one's padding counts 0 */
	run("pq cosine 30d padded", QDB_KIND_PQ, QDB_METRIC_COSINE, 30, 8, 0, 1);
	run("opq cosine 40d PCA to 16", QDB_KIND_OPQ, QDB_METRIC_COSINE, 40, 4, 16, 1);
	/* dim_pq > dim: A has orthonormal columns, ADC over-counts ||(I - AA^T) c||^2 */
	run("opq L2 30d padded", QDB_KIND_OPQ, QDB_METRIC_L2, 30, 8, 0, 0);
	run_batch("opq L2 64d M=16", QDB_KIND_OPQ, QDB_METRIC_L2, 64, 16);
	run_batch("rq L2 64d M=16", QDB_KIND_RQ, QDB_METRIC_L2, 64, 16);
	run_batch("rq cosine 64d M=16", QDB_KIND_RQ, QDB_METRIC_COSINE, 64, 16);
	run_batch("rq IP 64d M=16", QDB_KIND_RQ, QDB_METRIC_IP, 64, 16);
	run_batch("neural L2 64d M=16", QDB_KIND_NEURAL, QDB_METRIC_L2, 64, 16);
	run_batch("neural cosine 64d M=16", QDB_KIND_NEURAL, QDB_METRIC_COSINE, 64, 16);
	/* the portable table rows (adc_rows.c) where the CPU would pick AVX-512 */
	setenv("QDB_SIMD", "scalar", 1);
	qdb_distance_init();
	run("opq L2 32d M=8, scalar", QDB_KIND_OPQ, QDB_METRIC_L2, 32, 8, 0, 1);
	run("opq cosine 32d, scalar", QDB_KIND_OPQ, QDB_METRIC_COSINE, 32, 8, 0, 1);
	unsetenv("QDB_SIMD");
	qdb_distance_init();
	test_recall();
	test_errors();
	return tap_done();
}
