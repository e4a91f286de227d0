/*
 * test_opq_error.c
 *	  Kind opq's error byte (opq_error.c): the code's last byte is the
 *	  row's nearest error level, ADC and pair distances add the levels,
 *	  decoding ignores the byte, the pilot takes the byte where rows'
 *	  errors spread and leaves it where they do not, the file keeps it and
 *	  refuses a bad key, and the settings are checked.
 */
#define _GNU_SOURCE				/* memmem */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "opq.h"
#include "qdb_distance.h"
#include "qdb_internal.h"
#include "tap.h"
#include "test_util.h"

#define DIM		32
#define ROWS	3000
#define QUERIES	200

/*
 * Rows about 20 centres: spread, each with its own noise level (log-uniform
 * in [0.1, 2]), so that a noisy row quantizes towards its centre and looks
 * nearer than it is, while a quiet one is quantized almost exactly; else
 * correlated Gaussian rows (scales falling 0.85 per dim) of one norm, whose
 * errors hardly differ.
 */
static float *
make_rows(uint64_t seed, size_t n, int spread)
{
	QdbRng		r;
	float	   *x = malloc(sizeof(float) * n * DIM);
	float	   *centres = malloc(sizeof(float) * 20 * DIM);
	size_t		i;
	int			j;

	qdb_rng_seed(&r, seed);
	test_fill_gaussian(&r, centres, 20 * DIM, 1.0f / 3.0f);
	for (i = 0; i < n; i++)
	{
		double		nn = 0,
					s;
		const float *c = centres + (size_t) (qdb_rng_uniform(&r) * 20) * DIM;

		s = exp(log(0.1) + qdb_rng_uniform(&r) * (log(2.0) - log(0.1)));
		for (j = 0; j < DIM; j++)
		{
			float		g = (float) qdb_rng_gaussian(&r);

			if (spread)
				x[i * DIM + j] = c[j] + (float) s * g;
			else
			{
				x[i * DIM + j] = g * powf(0.85f, (float) j);
				nn += (double) x[i * DIM + j] * x[i * DIM + j];
			}
		}
		if (!spread)
			for (j = 0; j < DIM; j++)
				x[i * DIM + j] = (float) (x[i * DIM + j] * 10.0 / sqrt(nn)) + 1.0f;
	}
	free(centres);
	return x;
}

static int
train(QdbModel *m, const float *x, size_t n, int opq_error)
{
	QdbTrainConfig c;

	test_config(&c, QDB_KIND_OPQ, QDB_METRIC_L2, DIM, 8, 10);
	c.opq_iters = 4;
	c.opq_error = opq_error;
	return test_train(&c, x, n, m, NULL, NULL);
}

static int
test_train_auto(const float *x, QdbModel *m, QdbProgress cb, void *arg)
{
	QdbTrainConfig c;

	test_config(&c, QDB_KIND_OPQ, QDB_METRIC_L2, DIM, 8, 10);
	c.opq_iters = 4;
	return test_train(&c, x, ROWS, m, cb, arg);
}

static float
level(const QdbModel *m, int k)
{
	return m->codebooks[((size_t) (m->M - 1) * QDB_KSUB + k) * m->dsub];
}

static void
test_shape_and_codes(const float *x)
{
	QdbModel	m;
	uint8_t    *codes = malloc((size_t) ROWS * 8);
	float	   *rec = malloc(sizeof(float) * ROWS * DIM);
	float	   *rec2 = malloc(sizeof(float) * DIM);
	float	   *table;
	float		bias;
	int			ok_level = 1,
				ok_sorted = 1,
				ok_adc = 1,
				ok_pair = 1,
				ok_sym = 1;
	float	   *pair;
	int			k;

	tap_ok(train(&m, x, ROWS, 1) == QDB_OK, "opq_error 1 trains");
	tap_ok(m.err_byte == 1 && m.M == 8 && qdb_code_size(&m) == 8 &&
		   m.dim_pq % 7 == 0 && m.dsub == m.dim_pq / 7 && m.config.opq_error == 1,
		   "8 code bytes: 7 sub-quantizers of %d dims over dim_pq %d, the error byte last",
		   m.dsub, m.dim_pq);
	for (k = 1; k < QDB_KSUB; k++)
		ok_sorted &= level(&m, k) >= level(&m, k - 1);
	tap_ok(ok_sorted && level(&m, 0) >= 0 && level(&m, QDB_KSUB - 1) > level(&m, 0),
		   "the 256 levels ascend from %g to %g", level(&m, 0), level(&m, QDB_KSUB - 1));

	tap_ok(qdb_compute_codes(&m, x, ROWS, codes) == QDB_OK &&
		   qdb_decode(&m, codes, ROWS, rec) == QDB_OK, "encode and decode");
	/*
	 * With padding (dim_pq > dim) the whole error is ||x - xhat||^2, up to
	 * the rotation's rounding on ||x - mean||^2 (1e-5 of it here).
	 */
	for (size_t i = 0; i < ROWS; i++)
	{
		float		e = test_sqdist(x + i * DIM, rec + i * DIM, DIM);
		float		tol = 1e-5f * test_sqdist(x + i * DIM, m.mean, DIM);
		float		mine = fabsf(level(&m, codes[i * 8 + 7]) - e);

		for (k = 0; k < QDB_KSUB; k++)
			if (fabsf(level(&m, k) - e) < mine - tol)
				ok_level = 0;
	}
	tap_ok(ok_level, "each row's last byte is the level nearest its squared error");

	/* qdb_row_coding_error (the calibration's fit under ip): ||x - xhat||^2 and ||x - mean||^2 */
	{
		float	   *scratch = malloc(sizeof(float) * qdb_coding_error_floats(&m));
		int			ok_err = 1;
		double		worst = 0;

		for (size_t i = 0; i < ROWS; i++)
		{
			double		energy;
			double		e = qdb_row_coding_error(&m, x + i * DIM, codes + i * 8, scratch, &energy);
			double		want = test_sqdist(x + i * DIM, rec + i * DIM, DIM);
			double		want_energy = test_sqdist(x + i * DIM, m.mean, DIM);
			double		tol = 1e-4 * want_energy + 1e-6;

			if (fabs(e - want) > tol || fabs(energy - want_energy) > tol)
				ok_err = 0;
			if (fabs(e - want) > worst)
				worst = fabs(e - want);
		}
		tap_ok(ok_err, "qdb_row_coding_error: each row's squared distance to its reconstruction and its squared length less the mean (worst %.1e)",
			   worst);
		free(scratch);
	}

	/*
	 * decoding ignores the error byte: one row decoded alone with its byte
	 * and with another (the same path both times: a batch may round
	 * differently, as under valgrind, whose CPU has no AVX-512)
	 */
	{
		float		alone[DIM];
		int			same;

		same = qdb_decode(&m, codes, 1, alone) == QDB_OK;
		codes[7] ^= 0x55;
		same &= qdb_decode(&m, codes, 1, rec2) == QDB_OK &&
			memcmp(rec2, alone, sizeof(float) * DIM) == 0;
		codes[7] ^= 0x55;
		tap_ok(same, "decoding ignores the error byte");
	}

	table = malloc(sizeof(float) * qdb_table_floats(&m));
	tap_ok(qdb_compute_distance_table(&m, x + (ROWS - 1) * DIM, table, &bias) == QDB_OK,
		   "a query's table");
	for (size_t i = 0; i < 100; i++)
	{
		double		want = test_sqdist(x + (ROWS - 1) * DIM, rec + i * DIM, DIM) +
			level(&m, codes[i * 8 + 7]);
		double		got = qdb_adc_distance(&m, table, bias, codes + i * 8);

		if (fabs(got * got - want) > 1e-3 * want + 1e-4)
			ok_adc = 0;
	}
	tap_ok(ok_adc, "ADC: ||q - xhat||^2 plus the row's level");

	pair = malloc(sizeof(float) * qdb_pair_table_floats(&m));
	tap_ok(qdb_compute_pair_table(&m, pair) == QDB_OK, "the pair table");
	for (size_t i = 0; i < 50; i++)
		for (size_t j = 0; j < 50; j++)
		{
			const uint8_t *a = codes + i * 8,
					   *b = codes + j * 8;
			double		want = test_sqdist(rec + i * DIM, rec + j * DIM, DIM) +
				level(&m, a[7]) + level(&m, b[7]);
			double		got = qdb_pair_distance(&m, pair, a, b);

			if (fabs(got * got - want) > 1e-3 * want + 1e-4)
				ok_pair = 0;
			if (got != qdb_pair_distance(&m, pair, b, a))
				ok_sym = 0;
		}
	tap_ok(ok_pair, "pair distance: ||xhat_a - xhat_b||^2 plus both levels");
	tap_ok(ok_sym, "pair distance is symmetric");

	/* the file keeps the byte; a bad key is refused */
	{
		uint8_t    *blob;
		size_t		len;
		QdbModel	back;
		char		err[256];
		uint8_t    *codes2 = malloc((size_t) ROWS * 8);
		char	   *at;

		tap_ok(qdb_model_serialize(&m, NULL, &blob, &len) == QDB_OK, "serialize");
		tap_ok(qdb_model_parse(blob, len, NULL, &back, err, sizeof(err)) == QDB_OK &&
			   back.err_byte == 1 && back.config.opq_error == 1 &&
			   qdb_compute_codes(&back, x, ROWS, codes2) == QDB_OK &&
			   memcmp(codes, codes2, (size_t) ROWS * 8) == 0,
			   "parsed back: the error byte and the same codes (%s)", err);
		qdb_model_free(&back);
		at = memmem(blob, len, "\"opq.error_byte\":\"1\"", 20);
		tap_ok(at != NULL, "the file says opq.error_byte 1");
		if (at)
		{
			at[18] = '2';
			tap_ok(qdb_model_parse(blob, len, NULL, &back, err, sizeof(err)) ==
				   QDB_ERR_FORMAT && strstr(err, "opq.error_byte") != NULL,
				   "opq.error_byte 2 is refused: %s", err);
		}
		free(blob);
		free(codes2);
	}
	free(pair);
	free(table);
	free(rec2);
	free(rec);
	free(codes);
	qdb_model_free(&m);
}

/* exhaustive ADC's 10-recall@10 of QUERIES rows held out after the base */
static double
recall_of(const QdbModel *m, const float *x)
{
	double		r = -1;

	if (qdb_adc_recall(m, x, ROWS, x + (size_t) ROWS * DIM, QUERIES, 10, &r) != QDB_OK)
		return -1;
	return r;
}

static void
test_pilot(void)
{
	for (int spread = 1; spread >= 0; spread--)
	{
		float	   *x = make_rows(spread ? 11 : 12, ROWS + QUERIES, spread);
		QdbModel	on,
					off,
					aut;
		double		r_on,
					r_off;

		tap_ok(train(&on, x, ROWS, 1) == QDB_OK && train(&off, x, ROWS, 0) == QDB_OK &&
			   train(&aut, x, ROWS, QDB_OPQ_ERROR_AUTO) == QDB_OK, "%s rows: three trainings",
			   spread ? "spread" : "even");
		r_on = recall_of(&on, x);
		r_off = recall_of(&off, x);
		tap_ok(spread ? r_on > r_off + 0.02 : r_off > r_on,
			   "%s rows: 10-recall@10 %.4f with the byte, %.4f without", spread ? "spread" : "even",
			   r_on, r_off);
		tap_ok(aut.err_byte == spread && aut.config.opq_error == spread,
			   "%s rows: the pilot %s the byte", spread ? "spread" : "even",
			   spread ? "takes" : "leaves");
		qdb_model_free(&on);
		qdb_model_free(&off);
		qdb_model_free(&aut);
		free(x);
	}
}

/* the first call: what it was, and a cancel */
static int
cancel_first(const QdbEpochStats *s, void *arg)
{
	char	   *seen = arg;

	if (seen[0] == '\0')
		snprintf(seen, 64, "%s%s", s->stage, s->heartbeat ? " (heartbeat)" : "");
	return 1;
}

/* counts the pilot's heartbeats; cancels at the cancel_at-th */
typedef struct PilotBeats
{
	int			beats;
	int			cancel_at;
} PilotBeats;

static int
cancel_at_beat(const QdbEpochStats *s, void *arg)
{
	PilotBeats *b = arg;

	if (s->heartbeat && strcmp(s->stage, "opq error pilot") == 0)
		return ++b->beats == b->cancel_at;
	return 0;
}

/*
 * The pilot's PCA and trainings stay quiet but stop on a cancel: at its
 * first heartbeat (its PCA, fitted once for both ways) and at the middle
 * one of a whole pilot's (within its trainings).
 */
static void
test_pilot_cancel(void)
{
	float	   *x = make_rows(14, ROWS, 1);
	QdbModel	m;
	char		seen[64] = "";
	PilotBeats	b = {0, -1};
	int			all,
				st;

	memset(&m, 0, sizeof(m));
	tap_ok(test_train_auto(x, &m, cancel_first, seen) == QDB_ERR_CANCELLED &&
		   strcmp(seen, "opq error pilot (heartbeat)") == 0 && m.codebooks == NULL,
		   "a cancel at the pilot's first heartbeat stops it (first call: %s)", seen);
	st = test_train_auto(x, &m, cancel_at_beat, &b);
	tap_ok(st == QDB_OK && b.beats > 4, "a whole pilot beats %d times", b.beats);
	qdb_model_free(&m);
	all = b.beats;
	b.beats = 0;
	b.cancel_at = all / 2;
	st = test_train_auto(x, &m, cancel_at_beat, &b);
	tap_ok(st == QDB_ERR_CANCELLED && b.beats == all / 2 && m.codebooks == NULL,
		   "a cancel at its heartbeat %d of %d stops it", all / 2, all);
	free(x);
}

static void
test_settings(void)
{
	QdbTrainConfig c;
	QdbModel	m;
	float	   *x = make_rows(13, 600, 1);

	test_config(&c, QDB_KIND_OPQ, QDB_METRIC_L2, DIM, 8, 5);
	tap_ok(c.opq_error == QDB_OPQ_ERROR_AUTO, "the default is the pilot's choice");
	c.opq_error = 1;
	c.dim_pq = 32;				/* a multiple of 8, not of the 7 sub-quantizers */
	tap_ok(qdb_train_config_check(&c) == QDB_ERR_ARG,
		   "opq_error 1 wants target_dim a multiple of M - 1");
	c.dim_pq = 28;
	tap_ok(qdb_train_config_check(&c) == QDB_OK, "28 = 4 x 7 is fine");
	c.opq_error = 2;
	tap_ok(qdb_train_config_check(&c) == QDB_ERR_ARG, "opq_error 2 is refused");
	/* a target_dim given: the pilot does not run, no byte */
	c.opq_error = QDB_OPQ_ERROR_AUTO;
	c.dim_pq = 16;
	c.opq_iters = 2;
	tap_ok(test_train(&c, x, 600, &m, NULL, NULL) == QDB_OK && m.err_byte == 0 &&
		   m.dim_pq == 16, "with a target_dim of 16 and the default: no error byte");
	qdb_model_free(&m);
	/* other kinds and metrics never have one */
	c.dim_pq = 0;
	c.metric = QDB_METRIC_COSINE;
	c.opq_error = 1;
	tap_ok(test_train(&c, x, 600, &m, NULL, NULL) == QDB_OK && m.err_byte == 0,
		   "opq_error 1 under cosine: no error byte");
	qdb_model_free(&m);
	c.metric = QDB_METRIC_L2;
	c.kind = QDB_KIND_PQ;
	tap_ok(test_train(&c, x, 600, &m, NULL, NULL) == QDB_OK && m.err_byte == 0,
		   "opq_error 1 for kind pq: no error byte");
	qdb_model_free(&m);
	free(x);
}

int
main(void)
{
	float	   *x;

	setenv("QDB_NUM_THREADS", "2", 1);
	x = make_rows(10, ROWS, 1);
	test_shape_and_codes(x);
	free(x);
	test_pilot();
	test_pilot_cancel();
	test_settings();
	return tap_done();
}
