/*
 * test_rq.c
 *	  Kind rq (rq.h): ADC against brute force on the decoded vectors for
 *	  every metric (exact under ip; under l2 and cosine off by the norm
 *	  byte's rounding only), pair distances, the reconstruction error
 *	  against pq and opq on the same clustered sample, the safetensors
 *	  round trip, and the settings rq refuses; the beam's width and the
 *	  score-aware weight (rq_beam, rq_eta): what each lowers, that a model
 *	  keeps them through safetensors, and that the defaults write nothing.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qdb_distance.h"
#include "qdb_internal.h"
#include "rq.h"
#include "rq_beam.h"
#include "tap.h"
#include "test_util.h"

#define N		3000
#define D		24
#define NQ		10
#define NB		50

/* Clustered rows: 40 centres, unit noise around each, scaled by dim. */
static void
make_data(float *x, size_t n, int d, uint64_t seed)
{
	QdbRng		r;
	float		centres[40 * D];
	size_t		i;
	int			j;

	qdb_rng_seed(&r, seed);
	test_fill_gaussian(&r, centres, 40 * (size_t) d, 0.5f);
	for (i = 0; i < n; i++)
	{
		int			c = (int) qdb_rng_below(&r, 40);

		for (j = 0; j < d; j++)
			x[i * d + j] = centres[c * d + j] + (float) qdb_rng_gaussian(&r) * 0.3f *
				(1.0f + (float) j / d);
	}
}

static double
mse(const QdbModel *m, const float *x, size_t n)
{
	float	   *rec = test_reconstruct(m, x, n);
	double		s = 0;
	size_t		i;

	if (!rec)
		return INFINITY;
	for (i = 0; i < n; i++)
	{
		const float *xi = x + i * m->dim;
		float		xn[D];
		int			j;
		double		nn = 0;

		/* cosine reconstructs the normalised row */
		for (j = 0; j < m->dim; j++)
			nn += (double) xi[j] * xi[j];
		for (j = 0; j < m->dim; j++)
			xn[j] = m->metric == QDB_METRIC_COSINE ? xi[j] / (float) sqrt(nn) : xi[j];
		s += test_sqdist(xn, rec + i * m->dim, m->dim);
	}
	free(rec);
	return s / (double) n;
}

/*
 * qdb_encoder_codes on x (with every book's tables kept when they fit in
 * max_bytes) gives the codes of training's step, qdb_compute_codes_unkept.
 */
static void
check_encoder(const QdbModel *m, const float *x, size_t max_bytes, const char *name)
{
	uint8_t    *a = malloc((size_t) N * m->M),
			   *b = malloc((size_t) N * m->M);
	QdbEncoder *e = NULL;
	int			ok;

	ok = qdb_encoder_create(m, NULL, max_bytes, &e) == QDB_OK &&
		qdb_encoder_codes(e, x, N, a) == QDB_OK &&
		qdb_compute_codes_unkept(m, x, N, b) == QDB_OK;
	tap_ok(ok && memcmp(a, b, (size_t) N * m->M) == 0,
		   "%s: a batch encoder (tables %s) encodes as training's step", name,
		   max_bytes >= qdb_encoder_table_bytes(m) ? "kept" : "per call");
	qdb_encoder_free(e);
	free(a);
	free(b);
}

/*
 * Training's beam step (rq_lut.c: tables of codeword products) against
 * encoding's (rq.c: residuals): the same codes for the same rows, but
 * for rounding on near ties.  Rows: the sample less the model's mean.
 */
static void
check_lut_step(const QdbModel *m, const float *x, const char *name)
{
	float	   *y = malloc(sizeof(float) * N * m->dim_pq);
	uint8_t    *a = malloc((size_t) N * m->M),
			   *b = malloc((size_t) N * m->M);
	size_t		i,
				same = 0;
	int			j,
				ok;

	for (i = 0; i < N; i++)
		for (j = 0; j < m->dim_pq; j++)
			y[i * m->dim_pq + j] = j < m->dim ? x[i * m->dim + j] - m->mean[j] : 0.0f;
	ok = qdb_rq_encode_by(m, y, N, a, 0, NULL) == QDB_OK && qdb_rq_encode_by(m, y, N, b, 1, NULL) == QDB_OK;
	for (i = 0; ok && i < N; i++)
		same += memcmp(a + i * m->M, b + i * m->M, m->M) == 0;
	tap_ok(ok && same >= (size_t) (0.99 * N),
		   "%s: training's table step encodes as the residual step (%zu of %d rows the same)",
		   name, same, N);
	/* its AVX-512 and portable scores round alike: the very same codes */
	qdb_rq_lut_portable = 1;
	ok = ok && qdb_rq_encode_by(m, y, N, a, 1, NULL) == QDB_OK;
	qdb_rq_lut_portable = 0;
	tap_ok(ok && memcmp(a, b, (size_t) N * m->M) == 0,
		   "%s: the table step's portable scores give the same codes as its SIMD ones", name);
	/* a batch encoder: tables kept (or not, over its limit) change nothing */
	check_encoder(m, x, SIZE_MAX, name);
	check_encoder(m, x, 0, name);
	free(y);
	free(a);
	free(b);
}

/* The metric's distance from q to xhat, in double (cosine: ||q/|q| - xhat||^2 / 2). */
static double
brute(QdbMetric metric, const float *q, const float *xhat, int d)
{
	double		qq = 0,
				s = 0;
	int			j;

	for (j = 0; j < d; j++)
		qq += (double) q[j] * q[j];
	for (j = 0; j < d; j++)
	{
		double		qj = metric == QDB_METRIC_COSINE ? q[j] / sqrt(qq) : q[j];

		s += metric == QDB_METRIC_IP ? qj * xhat[j] : (qj - xhat[j]) * (qj - xhat[j]);
	}
	if (metric == QDB_METRIC_IP)
		return -s;
	return metric == QDB_METRIC_L2 ? sqrt(s) : s / 2;
}

static void
check_metric(QdbMetric metric, const float *x)
{
	const char *name = qdb_metric_name(metric);
	QdbTrainConfig c;
	QdbModel	m,
				pq,
				back;
	uint8_t    *codes = malloc((size_t) N * 16);
	float	   *dec = malloc(sizeof(float) * N * D);
	float	   *table = malloc(sizeof(float) * 16 * QDB_KSUB);
	float	   *pair;
	uint8_t    *blob = NULL;
	size_t		bloblen = 0;
	char		err[200];
	double		worst = 0,
				worst_norm = 0,
				worst_pair = 0,
				asym = 0,
				e_rq,
				e_pq,
				e_opq;
	int			qi,
				i,
				ok;

	test_config(&c, QDB_KIND_RQ, metric, D, 8, 10);
	ok = test_train(&c, x, N, &m, NULL, NULL) == QDB_OK;
	tap_ok(ok && m.kind == QDB_KIND_RQ && m.dsub == D && qdb_code_size(&m) == 8,
		   "%s: rq trains 8-byte codes of full-width codewords", name);
	if (!ok)
		return;
	check_lut_step(&m, x, name);
	test_check_prepared(name, &m, x);
	qdb_compute_codes(&m, x, N, codes);
	qdb_decode(&m, codes, N, dec);

	/* ADC from a query's table against the decoded rows */
	for (qi = 0; qi < NQ; qi++)
	{
		const float *q = x + (size_t) (N - 1 - qi) * D;
		float		bias;

		qdb_compute_distance_table(&m, q, table, &bias);
		for (i = 0; i < NB; i++)
		{
			const uint8_t *code = codes + i * 8;
			double		a = qdb_adc_distance(&m, table, bias, code);
			double		b = brute(metric, q, dec + (size_t) i * D, D);
			double		yy = 0,
						e;
			int			j;

			/*
			 * l2 and cosine: the norm byte's level stands for ||yhat||^2
			 * (no linear map here, so yhat = xhat - mean), and ADC is off
			 * by exactly their difference: under l2 in the squared
			 * distance, under cosine in ||xhat||^2 (1 - q . xhat / ||xhat||)
			 */
			for (j = 0; j < D; j++)
				yy += ((double) dec[(size_t) i * D + j] - m.mean[j]) *
					((double) dec[(size_t) i * D + j] - m.mean[j]);
			if (metric != QDB_METRIC_IP)
			{
				double		corr = m.codebooks[((size_t) 7 * QDB_KSUB + code[7]) * D] - yy;

				if (fabs(corr) / yy > worst_norm)
					worst_norm = fabs(corr) / yy;
				if (metric == QDB_METRIC_L2)
					b = sqrt(b * b + corr);
				else
				{
					double		qq = 0,
								qx = 0,
								xx = 0;

					for (j = 0; j < D; j++)
					{
						double		xj = dec[(size_t) i * D + j];

						qq += (double) q[j] * q[j];
						qx += (double) q[j] * xj;
						xx += xj * xj;
					}
					b = 1 - qx / sqrt(qq * (xx + corr));
				}
			}
			/*
			 * relative to the distance, or, for one near 0 (ip), to the
			 * size of the products its lookups sum: float rounding of those
			 * under AVX2's kernels reached 1.4e-4 of an ip distance of
			 * about 0.01 against the 1e-3 floor alone
			 */
			{
				double		qq = 0,
							xx = 0;

				for (j = 0; j < D; j++)
				{
					qq += (double) q[j] * q[j];
					xx += (double) dec[(size_t) i * D + j] * dec[(size_t) i * D + j];
				}
				e = fabs(a - b) / (fabs(b) + 1e-3 + 1e-3 * sqrt(qq * xx));
			}
			if (e > worst)
				worst = e;
		}
	}
	tap_ok(worst < 1e-4 && worst_norm < 0.1,
		   "%s: ADC matches the decoded rows (worst relative error %.2g; norm levels off "
		   "by %.2g at most)", name, worst, worst_norm);

	/* pair distances: symmetric, and as far apart as the decoded rows */
	pair = malloc(sizeof(float) * qdb_pair_table_floats(&m));
	qdb_compute_pair_table(&m, pair);
	for (i = 0; i < NB; i++)
	{
		const uint8_t *ca = codes + i * 8,
				   *cb = codes + (i + NB) * 8;
		double		d_ab = qdb_pair_distance(&m, pair, ca, cb),
					d_ba = qdb_pair_distance(&m, pair, cb, ca),
					want;

		if (fabs(d_ab - d_ba) > asym)
			asym = fabs(d_ab - d_ba);
		if (metric == QDB_METRIC_IP)
			want = brute(metric, dec + (size_t) i * D, dec + (size_t) (i + NB) * D, D);
		else if (metric == QDB_METRIC_COSINE)
			/* the angle between the decoded rows (qdb_adc_distance's) */
			want = test_cosine_dist(dec + (size_t) i * D, dec + (size_t) (i + NB) * D, D);
		else
		{
			want = test_sqdist(dec + (size_t) i * D, dec + (size_t) (i + NB) * D, D);
			want = metric == QDB_METRIC_L2 ? sqrt(want) : want / 2;
		}
		if (fabs(d_ab - want) / (fabs(want) + 1e-3) > worst_pair)
			worst_pair = fabs(d_ab - want) / (fabs(want) + 1e-3);
	}
	tap_ok(asym == 0 && worst_pair < 1e-3,
		   "%s: pair distances are symmetric and match the decoded rows (%.2g)",
		   name, worst_pair);
	free(pair);

	/* a smaller reconstruction error than pq and opq with the same bytes */
	e_rq = mse(&m, x, N);
	test_config(&c, QDB_KIND_PQ, metric, D, 8, 10);
	e_pq = test_train(&c, x, N, &pq, NULL, NULL) == QDB_OK ? mse(&pq, x, N) : INFINITY;
	qdb_model_free(&pq);
	test_config(&c, QDB_KIND_OPQ, metric, D, 8, 10);
	c.opq_iters = 10;
	e_opq = test_train(&c, x, N, &pq, NULL, NULL) == QDB_OK ? mse(&pq, x, N) : INFINITY;
	qdb_model_free(&pq);
	tap_ok(e_rq < e_pq && e_rq < e_opq,
		   "%s: rq's error %.4g is below pq's %.4g and opq's %.4g", name, e_rq, e_pq, e_opq);

	/* safetensors: the parsed model gives the same codes */
	ok = qdb_model_serialize(&m, NULL, &blob, &bloblen) == QDB_OK &&
		qdb_model_parse(blob, bloblen, NULL, &back, err, sizeof(err)) == QDB_OK;
	if (ok)
	{
		uint8_t    *again = malloc((size_t) N * 8);

		ok = back.kind == QDB_KIND_RQ &&
			qdb_compute_codes(&back, x, N, again) == QDB_OK &&
			memcmp(again, codes, (size_t) N * 8) == 0;
		free(again);
		qdb_model_free(&back);
	}
	tap_ok(ok, "%s: a serialized rq model parses back to the same codes", name);
	free(blob);
	blob = NULL;

	/* without its mean an rq model is refused (ADC reads it) */
	{
		float	   *mean = m.mean;
		int			st;

		m.mean = NULL;
		st = qdb_model_serialize(&m, NULL, &blob, &bloblen);
		m.mean = mean;
		if (st != QDB_OK)
		{
			/* the writer refuses it already */
			tap_ok(1, "%s: an rq model without its mean is refused (by the writer)", name);
		}
		else
		{
			st = qdb_model_parse(blob, bloblen, NULL, &back, err, sizeof(err));
			tap_ok(st != QDB_OK, "%s: an rq file without its mean is refused (%s)", name, err);
			if (st == QDB_OK)
				qdb_model_free(&back);
		}
		free(blob);
	}
	qdb_model_free(&m);
	free(codes);
	free(dec);
	free(table);
}

/*
 * The table step's two score functions, on random inputs: bit for bit the
 * same scores and masks (a fused multiply-add in one of them would round
 * the anisotropic term once instead of twice).
 */
static void
check_lut_scores(void)
{
#if defined(__x86_64__)
	enum
	{
		BOOKS = 7
	};
	float	   *X = malloc(sizeof(float) * BOOKS * QDB_KSUB * QDB_KSUB);
	float		yd[QDB_KSUB],
				cn[QDB_KSUB],
				ud[QDB_KSUB],
				s1[QDB_KSUB],
				s2[QDB_KSUB];
	uint16_t	m1[QDB_KSUB / 16],
				m2[QDB_KSUB / 16];
	uint8_t		code[BOOKS];
	QdbRng		r;
	int			trial,
				k,
				bad = 0;

	if (!__builtin_cpu_supports("avx512f"))
	{
		tap_ok(1, "# SKIP no AVX-512 on this CPU: one score function only");
		free(X);
		return;
	}
	qdb_rng_seed(&r, 11);
	test_fill_gaussian(&r, X, (size_t) BOOKS * QDB_KSUB * QDB_KSUB, 0.3f);
	for (trial = 0; trial < 200; trial++)
	{
		test_fill_gaussian(&r, yd, QDB_KSUB, 1.0f);
		test_fill_gaussian(&r, cn, QDB_KSUB, 1.0f);
		test_fill_gaussian(&r, ud, QDB_KSUB, 1.0f);
		for (k = 0; k < BOOKS; k++)
			code[k] = (uint8_t) qdb_rng_below(&r, QDB_KSUB);
		qdb_rq_lut_scores(yd, X, code, trial % (BOOKS + 1), 3.7f, cn, trial % 2 ? ud : NULL,
						  0.37f, 1.9f, 4.0f, trial % 3 == 0, s1, m1);
		qdb_rq_lut_scores_avx512(yd, X, code, trial % (BOOKS + 1), 3.7f, cn,
								 trial % 2 ? ud : NULL, 0.37f, 1.9f, 4.0f, trial % 3 == 0, s2, m2);
		bad += memcmp(s1, s2, sizeof(s1)) != 0 || memcmp(m1, m2, sizeof(m1)) != 0;
	}
	tap_ok(bad == 0, "the table step's portable and AVX-512 scores agree bit for bit "
		   "(%d of 200 partial codes differ)", bad);
	free(X);
#else
	tap_ok(1, "# SKIP not x86-64: one score function only");
#endif
}

/* The mean squared error along each row's direction (cosine: the normalised row). */
static double
parallel_mse(const QdbModel *m, const float *x, size_t n)
{
	float	   *rec = test_reconstruct(m, x, n);
	double		s = 0;
	size_t		i;
	int			j;

	if (!rec)
		return INFINITY;
	for (i = 0; i < n; i++)
	{
		const float *xi = x + i * m->dim;
		double		nn = 0,
					par = 0;

		for (j = 0; j < m->dim; j++)
			nn += (double) xi[j] * xi[j];
		for (j = 0; j < m->dim; j++)
			par += (xi[j] / sqrt(nn) - rec[i * m->dim + j]) * (xi[j] / sqrt(nn));
		s += par * par;
	}
	free(rec);
	return s / (double) n;
}

static int
train_rq(QdbModel *m, const float *x, int beam, float eta, int refits)
{
	QdbTrainConfig c;

	test_config(&c, QDB_KIND_RQ, QDB_METRIC_COSINE, D, 6, 10);
	c.rq_beam = beam;
	c.rq_eta = eta;
	c.rq_refits = refits;
	return test_train(&c, x, N, m, NULL, NULL) == QDB_OK;
}

static void
check_beam_and_eta(const float *x)
{
	QdbModel	m8,
				m32,
				me,
				r0,
				back;
	QdbTrainConfig c;
	uint8_t    *blob = NULL,
			   *c1 = malloc((size_t) N * 6),
			   *c2 = malloc((size_t) N * 6);
	size_t		bloblen = 0;
	char		err[200];
	int			ok;

	ok = train_rq(&m8, x, 8, 1.0f, 4) && train_rq(&m32, x, 32, 1.0f, 4) &&
		train_rq(&me, x, 8, 3.0f, 4) && train_rq(&r0, x, 8, 1.0f, 0);
	tap_ok(ok, "rq trains with beams of 8 and 32, with eta 3 and without refits");
	if (!ok)
		return;
	check_lut_step(&m8, x, "cosine, beam 8");
	check_lut_step(&m32, x, "cosine, beam 32");
	check_lut_step(&me, x, "cosine, beam 8, eta 3");
	tap_ok(mse(&m8, x, N) < mse(&r0, x, N),
		   "4 refits reconstruct better than none (%.4g < %.4g)", mse(&m8, x, N), mse(&r0, x, N));
	tap_ok(mse(&m32, x, N) < mse(&m8, x, N),
		   "a beam of 32 reconstructs better than one of 8 (%.4g < %.4g)",
		   mse(&m32, x, N), mse(&m8, x, N));
	tap_ok(parallel_mse(&me, x, N) < 0.8 * parallel_mse(&m8, x, N),
		   "eta 3 cuts the error along the rows (%.4g against %.4g at eta 1)",
		   parallel_mse(&me, x, N), parallel_mse(&m8, x, N));

	/* the defaults write no rq key (older readers read such a model) */
	ok = qdb_model_serialize(&m8, NULL, &blob, &bloblen) == QDB_OK &&
		memmem(blob, bloblen, "\"rq.", 4) == NULL;
	tap_ok(ok, "a model with the default beam and eta and 4 refits has no rq.* metadata");
	free(blob);

	/*
	 * the default refits (16 since 0.8.0) are written, and a file without
	 * rq.refits (as 0.6.0 and 0.7.0 wrote at their default) reads as 4
	 */
	m8.config.rq_refits = QDB_RQ_REFITS;
	ok = qdb_model_serialize(&m8, NULL, &blob, &bloblen) == QDB_OK &&
		memmem(blob, bloblen, "\"rq.refits\":\"16\"", strlen("\"rq.refits\":\"16\"")) != NULL &&
		qdb_model_parse(blob, bloblen, NULL, &back, err, sizeof(err)) == QDB_OK;
	if (ok)
	{
		ok = back.config.rq_refits == 16;
		qdb_model_free(&back);
	}
	tap_ok(ok, "the default of 16 refits is written as rq.refits and parses back");
	free(blob);
	blob = NULL;
	m8.config.rq_refits = 4;
	ok = qdb_model_serialize(&m8, NULL, &blob, &bloblen) == QDB_OK &&
		qdb_model_parse(blob, bloblen, NULL, &back, err, sizeof(err)) == QDB_OK;
	if (ok)
	{
		ok = back.config.rq_refits == 4;
		qdb_model_free(&back);
	}
	tap_ok(ok, "a model without rq.refits reads as 4 refits");
	free(blob);

	/* the settings survive safetensors, and the encoder uses them */
	me.config.rq_beam = 16;
	me.config.rq_refits = 7;
	ok = qdb_model_serialize(&me, NULL, &blob, &bloblen) == QDB_OK &&
		qdb_model_parse(blob, bloblen, NULL, &back, err, sizeof(err)) == QDB_OK;
	if (ok)
	{
		ok = back.config.rq_beam == 16 && back.config.rq_eta == 3.0f &&
			back.config.rq_refits == 7 &&
			qdb_compute_codes(&back, x, N, c1) == QDB_OK &&
			qdb_compute_codes(&me, x, N, c2) == QDB_OK &&
			memcmp(c1, c2, (size_t) N * 6) == 0;
		back.config.rq_eta = 1.0f;
		ok = ok && qdb_compute_codes(&back, x, N, c1) == QDB_OK &&
			memcmp(c1, c2, (size_t) N * 6) != 0;
		qdb_model_free(&back);
	}
	tap_ok(ok, "rq.beam 16, rq.eta 3 and rq.refits 7 parse back and encode as before "
		   "(and eta changes codes)");
	free(blob);

	test_config(&c, QDB_KIND_RQ, QDB_METRIC_L2, D, 6, 10);
	c.rq_eta = 2.0f;
	tap_ok(qdb_train_config_check(&c) == QDB_ERR_ARG, "eta above 1 under l2 is refused");
	c.metric = QDB_METRIC_COSINE;
	tap_ok(qdb_train_config_check(&c) == QDB_OK, "eta 2 under cosine is allowed");
	c.rq_eta = 0.5f;
	tap_ok(qdb_train_config_check(&c) == QDB_ERR_ARG, "eta below 1 is refused");
	c.rq_eta = 1.0f;
	c.rq_beam = QDB_RQ_BEAM_MAX + 1;
	tap_ok(qdb_train_config_check(&c) == QDB_ERR_ARG, "a beam over %d is refused", QDB_RQ_BEAM_MAX);
	c.rq_beam = QDB_RQ_BEAM;
	c.rq_refits = QDB_RQ_REFITS_MAX + 1;
	tap_ok(qdb_train_config_check(&c) == QDB_ERR_ARG, "more than %d refits are refused",
		   QDB_RQ_REFITS_MAX);
	test_config(&c, QDB_KIND_OPQ, QDB_METRIC_COSINE, D, 6, 10);
	c.rq_eta = 2.0f;
	tap_ok(qdb_train_config_check(&c) == QDB_ERR_ARG, "eta for another kind is refused");
	qdb_model_free(&m8);
	qdb_model_free(&m32);
	qdb_model_free(&me);
	qdb_model_free(&r0);
	free(c1);
	free(c2);
}

/*
 * A refit's normal equations (qdb_rq_normal_equations) against one pass of
 * increments over the rows, as the refit made them before: the same counts
 * below the diagonal and on it, nothing above it, and the same sums of
 * rows, bit for bit (each sum adds its rows in the same order).
 */
static void
check_normal_equations(const float *x)
{
	enum
	{
		BOOKS = 5, STRIDE = 7, ROWS = 2000
	};
	int			K = BOOKS * QDB_KSUB;
	uint8_t    *codes = malloc((size_t) ROWS * STRIDE);
	float	   *G = calloc((size_t) K * K, sizeof(float));
	float	   *R = calloc((size_t) K * D, sizeof(float));
	float	   *G0 = calloc((size_t) K * K, sizeof(float));
	float	   *R0 = calloc((size_t) K * D, sizeof(float));
	QdbRng		r;
	size_t		i;
	int			s,
				t,
				j,
				lower = 1,
				upper = 1;

	if (!codes || !G || !R || !G0 || !R0)
	{
		tap_ok(0, "room for the normal equations' test");
		return;
	}
	qdb_rng_seed(&r, 11);
	for (i = 0; i < (size_t) ROWS * STRIDE; i++)
		codes[i] = (uint8_t) qdb_rng_below(&r, i % 3 ? 256 : 9);	/* some codewords shared */
	for (i = 0; i < ROWS; i++)
		for (s = 0; s < BOOKS; s++)
		{
			int			ks = s * QDB_KSUB + codes[i * STRIDE + s];

			for (j = 0; j < D; j++)
				R0[(size_t) j * K + ks] += x[i * D + j];
			G0[(size_t) ks * K + ks] += 1.0f;
			for (t = s + 1; t < BOOKS; t++)
				G0[(size_t) ks * K + t * QDB_KSUB + codes[i * STRIDE + t]] += 1.0f;
		}
	tap_ok(qdb_rq_normal_equations(&qdb_default_alloc, codes, STRIDE, BOOKS, x, ROWS, D, G,
								   R) == QDB_OK, "the normal equations of 5 books are built");
	for (s = 0; s < K; s++)
		for (t = 0; t < K; t++)
		{
			float		g = G[(size_t) s * K + t];	/* column s, row t */

			if (t >= s && g != G0[(size_t) s * K + t])
				lower = 0;
			if (t < s && g != 0.0f)
				upper = 0;
		}
	tap_ok(lower && upper, "their counts are one pass's, below the diagonal and on it only");
	tap_ok(memcmp(R, R0, sizeof(float) * K * D) == 0,
		   "their sums of rows are one pass's, bit for bit");
	free(codes);
	free(G);
	free(R);
	free(G0);
	free(R0);
}

int
main(void)
{
	float	   *x = malloc(sizeof(float) * N * D);
	QdbTrainConfig c;
	QdbKind		k;

	make_data(x, N, D, 7);
	check_metric(QDB_METRIC_L2, x);
	check_metric(QDB_METRIC_IP, x);
	check_metric(QDB_METRIC_COSINE, x);
	check_beam_and_eta(x);
	check_lut_scores();
	check_normal_equations(x);

	test_config(&c, QDB_KIND_RQ, QDB_METRIC_L2, D, 1, 10);
	tap_ok(qdb_train_config_check(&c) == QDB_ERR_ARG,
		   "l2 with one byte (no room beside the norm) is refused");
	c.metric = QDB_METRIC_COSINE;
	tap_ok(qdb_train_config_check(&c) == QDB_ERR_ARG,
		   "cosine with one byte is refused too (its last byte is the norm as well)");
	c.metric = QDB_METRIC_IP;
	tap_ok(qdb_train_config_check(&c) == QDB_OK, "ip with one byte is allowed");
	tap_ok(qdb_kind_parse("rq", &k) == QDB_OK && k == QDB_KIND_RQ &&
		   strcmp(qdb_kind_name(QDB_KIND_RQ), "rq") == 0, "the kind is spelt rq");
	free(x);
	return tap_done();
}
