/*
 * test_pq.c
 *	  The pq kind through the CPU backend: round trip, padding, PCA
 *	  reduction, determinism across thread counts, progress and cancel,
 *	  settings and data checks; and the small helpers of util.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pq.h"
#include "qdb_distance.h"
#include "qdb_internal.h"
#include "tap.h"
#include "test_util.h"

/*
 * Structured data: 64 cluster centers in d dims with per-dim scales
 * falling from 1 to 0.2, plus small noise, so PQ has something to learn.
 */
static float *
make_data(uint64_t seed, size_t n, int d, float noise)
{
	QdbRng		r;
	float	   *centers = malloc(sizeof(float) * 64 * d);
	float	   *x = malloc(sizeof(float) * n * d);
	size_t		i;
	int			j;

	qdb_rng_seed(&r, seed);
	for (i = 0; i < (size_t) 64 * d; i++)
		centers[i] = (float) qdb_rng_gaussian(&r) * (1.0f - 0.8f * (float) (i % d) / d);
	for (i = 0; i < n; i++)
	{
		int			c = (int) qdb_rng_below(&r, 64);

		for (j = 0; j < d; j++)
			x[i * d + j] = centers[c * d + j] + noise * (float) qdb_rng_gaussian(&r) + 3.0f;
	}
	free(centers);
	return x;
}

/* ||x - decode(encode(x))||^2 / ||x - mean(x)||^2 over the rows */
static double
relative_mse(const QdbModel *m, const float *x, size_t n)
{
	int			d = m->dim;
	float	   *rec = test_reconstruct(m, x, n);
	double	   *mean = calloc(d, sizeof(double));
	double		err = 0,
				var = 0;
	size_t		i;
	int			j;

	if (rec == NULL)
	{
		free(mean);
		return INFINITY;
	}
	for (i = 0; i < n; i++)
		for (j = 0; j < d; j++)
			mean[j] += x[i * d + j] / n;
	for (i = 0; i < n * d; i++)
	{
		err += (x[i] - rec[i]) * (x[i] - rec[i]);
		var += (x[i] - mean[i % d]) * (x[i] - mean[i % d]);
	}
	free(rec);
	free(mean);
	return err / var;
}

static void
pq_config(QdbTrainConfig *c, int dim, int M)
{
	test_config(c, QDB_KIND_PQ, QDB_METRIC_L2, dim, M, 15);
}

static void
test_round_trip(void)
{
	QdbTrainConfig c;
	QdbModel	m;
	float	   *x = make_data(1, 4000, 32, 0.05f);
	double		rel;

	pq_config(&c, 32, 8);
	tap_ok(test_train(&c, x, 4000, &m, NULL, NULL) == QDB_OK, "pq 32d M=8 trains");
	tap_ok(m.linear == NULL && m.mean == NULL && m.dim_pq == 32 && m.dsub == 4 &&
		   qdb_code_size(&m) == 8, "pq model: no transform, dsub 4, 8-byte codes");
	rel = relative_mse(&m, x, 4000);
	tap_ok(rel < 0.05, "round-trip relative MSE %.4f < 0.05", rel);
	tap_ok(m.config.kind == QDB_KIND_PQ && m.config.kmeans_iters == 15,
		   "model keeps its settings");
	qdb_model_free(&m);
	tap_ok(m.codebooks == NULL, "qdb_model_free clears the model");
	qdb_model_free(&m);			/* twice is harmless */
	free(x);
}

static void
test_padding(void)
{
	QdbTrainConfig c;
	QdbModel	m;
	float	   *x = make_data(2, 3000, 30, 0.05f);
	int			zero = 1;
	int			k;
	double		rel;

	pq_config(&c, 30, 8);
	tap_ok(test_train(&c, x, 3000, &m, NULL, NULL) == QDB_OK, "pq 30d M=8 trains");
	tap_ok(m.dim_pq == 32 && m.linear == NULL && m.mean == NULL,
		   "30 dims padded to 32 without a transform");
	/* dims 30, 31 are the last two of sub-space 7 */
	for (k = 0; k < QDB_KSUB; k++)
		if (m.codebooks[(7 * QDB_KSUB + k) * 4 + 2] != 0 ||
			m.codebooks[(7 * QDB_KSUB + k) * 4 + 3] != 0)
			zero = 0;
	tap_ok(zero, "padded dims of the codebooks are zero");
	rel = relative_mse(&m, x, 3000);
	tap_ok(rel < 0.05, "padded round trip relative MSE %.4f < 0.05", rel);
	qdb_model_free(&m);
	free(x);
}

static void
test_reduction(void)
{
	QdbTrainConfig c;
	QdbModel	m;
	QdbRng		r;
	size_t		n = 3000,
				i;
	int			d = 48,
				j,
				t;
	float	   *basis = malloc(sizeof(float) * 8 * d);
	float	   *x = malloc(sizeof(float) * n * d);
	float		maxdev = 0;
	double		rel;

	/* rank 8 plus tiny noise: a reduction to 16 dims loses nothing */
	qdb_rng_seed(&r, 4);
	test_fill_gaussian(&r, basis, (size_t) 8 * d, 1.0f);
	for (i = 0; i < n; i++)
	{
		float		coef[8];

		for (t = 0; t < 8; t++)
			coef[t] = (float) qdb_rng_gaussian(&r) * (t + 1);
		for (j = 0; j < d; j++)
		{
			float		v = 5.0f + 0.001f * (float) qdb_rng_gaussian(&r);

			for (t = 0; t < 8; t++)
				v += coef[t] * basis[t * d + j];
			x[i * d + j] = v;
		}
	}
	pq_config(&c, d, 4);
	c.dim_pq = 16;
	tap_ok(test_train(&c, x, n, &m, NULL, NULL) == QDB_OK, "pq 48d -> PCA 16 trains");
	tap_ok(m.linear != NULL && m.mean != NULL && m.dim_pq == 16,
		   "PCA reduction sets mean and linear (16 x 48)");
	maxdev = (float) test_orthonormal_deviation(&m);
	tap_ok(maxdev < 1e-4f, "PCA rows orthonormal (deviation %.2g)", maxdev);
	rel = relative_mse(&m, x, n);
	tap_ok(rel < 0.1, "reduced round trip relative MSE %.4f < 0.1", rel);
	qdb_model_free(&m);
	free(basis);
	free(x);
}

static void
test_threads(void)
{
	QdbTrainConfig c;
	QdbModel	m1,
				m3;
	float	   *x = make_data(5, 3000, 32, 0.1f);
	uint8_t    *c1 = malloc(3000 * 8);
	uint8_t    *c3 = malloc(3000 * 8);
	double		s1,
				s3;

	pq_config(&c, 32, 8);
	setenv("QDB_NUM_THREADS", "1", 1);
	test_train(&c, x, 3000, &m1, NULL, NULL);
	qdb_pq_encode(NULL, m1.codebooks, 32, 8, x, 3000, c1, &s1);
	setenv("QDB_NUM_THREADS", "3", 1);
	test_train(&c, x, 3000, &m3, NULL, NULL);
	qdb_pq_encode(NULL, m3.codebooks, 32, 8, x, 3000, c3, &s3);
	unsetenv("QDB_NUM_THREADS");
	tap_ok(memcmp(m1.codebooks, m3.codebooks, sizeof(float) * QDB_KSUB * 32) == 0,
		   "1 or 3 threads: identical codebooks");
	tap_ok(memcmp(c1, c3, 3000 * 8) == 0 && s1 == s3, "1 or 3 threads: identical codes");
	qdb_model_free(&m1);
	qdb_model_free(&m3);
	free(c1);
	free(c3);
	free(x);
}

typedef struct Calls
{
	int			n;
	int			stop_at;		/* return nonzero at this call; 0 never */
	int			in_order;
	char		stages[64];
	int			beats;			/* heartbeats, not counted in n */
	int			stop_beat;		/* return nonzero at this heartbeat; 0 never */
} Calls;

static int
progress(const QdbEpochStats *s, void *arg)
{
	Calls	   *c = arg;

	if (s->heartbeat)
	{
		c->beats++;
		return c->stop_beat && c->beats >= c->stop_beat;
	}
	c->n++;
	if (strcmp(s->stage, "pq") != 0 || s->iter != c->n || s->iters != 8 ||
		!(s->loss > 0) || s->seconds < 0)
		c->in_order = 0;
	return c->stop_at && c->n >= c->stop_at;
}

static void
test_progress(void)
{
	QdbTrainConfig c;
	QdbModel	m;
	float	   *x = make_data(6, 2000, 16, 0.1f);
	Calls		calls = {0, 0, 1, "", 0, 0};

	pq_config(&c, 16, 8);
	setenv("QDB_NUM_THREADS", "1", 1);
	tap_ok(test_train(&c, x, 2000, &m, progress, &calls) == QDB_OK && calls.n == 8 &&
		   calls.in_order, "progress: one \"pq\" report per sub-space, in order");
	qdb_model_free(&m);

	calls.n = 0;
	calls.stop_at = 2;
	tap_ok(test_train(&c, x, 2000, &m, progress, &calls) == QDB_ERR_CANCELLED && calls.n == 2,
		   "callback returning nonzero cancels at once");
	tap_ok(m.codebooks == NULL && m.M == 0, "a cancelled training leaves the model empty");

	setenv("QDB_NUM_THREADS", "4", 1);
	calls.n = 0;
	calls.stop_at = 1;
	tap_ok(test_train(&c, x, 2000, &m, progress, &calls) == QDB_ERR_CANCELLED,
		   "cancel with worker threads");
	unsetenv("QDB_NUM_THREADS");
	free(x);
}

/*
 * A cancel during a sub-space's long k-means (kmeans_iters 1000 on 16,384
 * rows of 32 dims: seconds each) stops it after the iteration under way: one thread, at the
 * heartbeat it asked for; with threads, at the pool's next poll
 * (QDB_TASK_POLL_MS), where the tasks used to run to their end first.
 */
static void
test_cancel_long_kmeans(void)
{
	QdbTrainConfig c;
	QdbModel	m;
	float	   *x = make_data(7, 16384, 64, 0.1f);
	Calls		calls = {0, 0, 1, "", 0, 3};
	double		t0;
	int			status;

	test_config(&c, QDB_KIND_PQ, QDB_METRIC_L2, 64, 2, 1000);
	setenv("QDB_NUM_THREADS", "1", 1);
	status = test_train(&c, x, 16384, &m, progress, &calls);
	tap_ok(status == QDB_ERR_CANCELLED && calls.beats == 3 && calls.n == 0,
		   "one thread: a cancel at the third k-means iteration's heartbeat stops there");
	calls.beats = 0;
	calls.stop_beat = 1;
	setenv("QDB_NUM_THREADS", "2", 1);
	t0 = qdb_now();
	status = test_train(&c, x, 16384, &m, progress, &calls);
	tap_ok(status == QDB_ERR_CANCELLED && calls.beats == 1 && calls.n == 0,
		   "threads: a cancel at the pool's first poll stops both sub-spaces' k-means, "
		   "neither finished (%.2f s; they run about 3 s)", qdb_now() - t0);
	tap_ok(m.codebooks == NULL, "and leaves the model empty");
	unsetenv("QDB_NUM_THREADS");
	free(x);
}

static void
test_bad_input(void)
{
	QdbTrainConfig c;
	QdbModel	m;
	float	   *x = make_data(7, 600, 16, 0.1f);

	qdb_train_config_init(&c);
	tap_ok(c.M == 16 && c.kmeans_iters == 25 && c.opq_iters == 50 &&
		   c.opq_pq_iters == 4 && c.max_points_per_centroid == 256 && c.seed == 42,
		   "config defaults");
	tap_ok(qdb_train_config_check(&c) == QDB_ERR_ARG, "dim 0 rejected");
	c.dim = 16;
	tap_ok(qdb_train_config_check(&c) == QDB_OK, "defaults with dim 16 pass");

#define BAD(field, value, what) \
	do { \
		QdbTrainConfig b = c; \
		b.field = value; \
		tap_ok(qdb_train_config_check(&b) == QDB_ERR_ARG && \
			   test_train(&b, x, 600, &m, NULL, NULL) == QDB_ERR_ARG, what); \
	} while (0)
	BAD(dim, QDB_MAX_DIM + 1, "dim above QDB_MAX_DIM rejected");
	BAD(M, 0, "M = 0 rejected");
	BAD(M, QDB_MAX_SUBQUANTIZERS + 1, "M above 256 rejected");
	BAD(dim_pq, 12, "target_dim not a multiple of M rejected");
	BAD(dim_pq, 32, "target_dim above the padded dim rejected");
	BAD(kmeans_iters, 0, "kmeans_iters = 0 rejected");
	BAD(opq_iters, -1, "negative opq_iters rejected");
	BAD(opq_pq_iters, 0, "opq_pq_iters = 0 rejected");
	BAD(max_points_per_centroid, 0, "max_points_per_centroid = 0 rejected");
	BAD(kind, 7, "unknown kind rejected");
	BAD(metric, 0, "unknown metric rejected");
#undef BAD

	c.kind = QDB_KIND_NEURAL;
	c.metric = QDB_METRIC_IP;
	tap_ok(test_train(&c, x, 600, &m, NULL, NULL) == QDB_ERR_ARG,
		   "neural with metric ip: QDB_ERR_ARG");
	c.metric = QDB_METRIC_L2;
	c.kind = QDB_KIND_PQ;
	tap_ok(test_train(&c, x, 255, &m, NULL, NULL) == QDB_ERR_DATA,
		   "fewer than 256 rows: QDB_ERR_DATA");
	x[100] = NAN;
	tap_ok(test_train(&c, x, 600, &m, NULL, NULL) == QDB_ERR_DATA, "NaN: QDB_ERR_DATA");
	x[100] = 0;
	c.metric = QDB_METRIC_COSINE;
	memset(x + 16 * 50, 0, sizeof(float) * 16);
	tap_ok(test_train(&c, x, 600, &m, NULL, NULL) == QDB_ERR_DATA,
		   "cosine with a zero vector: QDB_ERR_DATA");
	tap_ok(qdb_backend_train(NULL, x, 600, &c, &m, NULL, NULL) == QDB_ERR_ARG,
		   "no backend context: QDB_ERR_ARG");
	free(x);
}

static void
test_util(void)
{
	QdbKind		k;
	QdbMetric	mt;
	QdbRng		r1,
				r2;
	int			ok = 1,
				i;
	double		sum = 0;
	int			hist[10] = {0};

	tap_ok(qdb_kind_parse("opq", &k) == QDB_OK && k == QDB_KIND_OPQ &&
		   qdb_kind_parse("pq", &k) == QDB_OK && k == QDB_KIND_PQ &&
		   qdb_kind_parse("neural", &k) == QDB_OK && k == QDB_KIND_NEURAL &&
		   qdb_kind_parse("ivf", &k) == QDB_ERR_ARG && qdb_kind_parse(NULL, &k) == QDB_ERR_ARG,
		   "kind names parse");
	tap_ok(strcmp(qdb_kind_name(QDB_KIND_OPQ), "opq") == 0 &&
		   strcmp(qdb_kind_name(99), "unknown") == 0, "kind names print");
	tap_ok(qdb_metric_parse("l2", &mt) == QDB_OK && mt == QDB_METRIC_L2 &&
		   qdb_metric_parse("ip", &mt) == QDB_OK && mt == QDB_METRIC_IP &&
		   qdb_metric_parse("cosine", &mt) == QDB_OK && mt == QDB_METRIC_COSINE &&
		   qdb_metric_parse("l1", &mt) == QDB_ERR_ARG &&
		   strcmp(qdb_metric_name(QDB_METRIC_IP), "ip") == 0, "metric names");
	for (i = QDB_OK; i <= QDB_ERR_UNSUPPORTED; i++)
		if (qdb_status_string(i) == NULL || strcmp(qdb_status_string(i), "unknown status") == 0)
			ok = 0;
	tap_ok(ok && strcmp(qdb_status_string(-5), "unknown status") == 0,
		   "every status has a message");

	qdb_rng_seed(&r1, 123);
	qdb_rng_seed(&r2, 123);
	ok = 1;
	for (i = 0; i < 100000; i++)
	{
		double		u = qdb_rng_uniform(&r1);
		uint64_t	b = qdb_rng_below(&r2, 10);

		if (u < 0 || u >= 1 || b >= 10)
			ok = 0;
		sum += u;
		hist[b]++;
	}
	for (i = 0; i < 10; i++)
		if (hist[i] < 9500 || hist[i] > 10500)
			ok = 0;
	tap_ok(ok && fabs(sum / 100000 - 0.5) < 0.01, "rng: uniform in [0,1), below(10) even");
	qdb_rng_seed(&r1, 5);
	qdb_rng_seed(&r2, 5);
	tap_ok(qdb_rng_next(&r1) == qdb_rng_next(&r2) && qdb_rng_below(&r1, 0) == 0,
		   "rng: seeded streams repeat");
	{
		double		s = 0,
					s2 = 0;

		for (i = 0; i < 100000; i++)
		{
			double		g = qdb_rng_gaussian(&r1);

			s += g;
			s2 += g * g;
		}
		tap_ok(fabs(s / 100000) < 0.02 && fabs(s2 / 100000 - 1) < 0.03,
			   "rng: gaussian mean 0, variance 1");
	}
	tap_ok(qdb_now() > 0, "clock runs");
}

/*
 * Encoding a row or two at a time (an index insert) takes a direct path;
 * its codes must be the batch path's, or an equally near centroid where
 * rounding decides a tie.  Distances are rechecked in double on the
 * transformed rows.
 */
static void
check_small_batches(const char *what, QdbKind kind, QdbMetric metric, int dim, int M)
{
	QdbTrainConfig c;
	QdbModel	m;
	size_t		n = 500,
				i;
	float	   *x = make_data(dim + M, 3000, dim, 0.3f);
	uint8_t    *batch = malloc(n * M);
	uint8_t    *one = malloc(n * M);
	uint8_t    *two = malloc(n * M);
	float	   *y;
	size_t		differ = 0,
				unequal = 0;
	double		worst = 0;
	int			st = QDB_OK;

	test_config(&c, kind, metric, dim, M, 8);
	c.opq_iters = 3;
	if (test_train(&c, x, 3000, &m, NULL, NULL) != QDB_OK)
	{
		tap_ok(0, "%s: trains", what);
		free(x);
		free(batch);
		free(one);
		free(two);
		return;
	}
	y = malloc(sizeof(float) * n * m.dim_pq);
	st |= qdb_compute_codes(&m, x, n, batch);
	for (i = 0; i < n; i++)
		st |= qdb_compute_codes(&m, x + i * dim, 1, one + i * M);
	for (i = 0; i < n; i += 2)
		st |= qdb_compute_codes(&m, x + i * dim, 2, two + i * M);
	st |= qdb_model_transform(&m, x, n, y);
	tap_ok(st == QDB_OK, "%s: one and two rows at a time encode", what);

	for (i = 0; i < n * M; i++)
	{
		const uint8_t *alt[2] = {one, two};
		int			v;

		for (v = 0; v < 2; v++)
		{
			const float *ys = y + (i / M) * m.dim_pq + (i % M) * m.dsub;
			const float *cb = m.codebooks + (i % M) * QDB_KSUB * m.dsub;
			double		d1 = 0,
						d2 = 0;
			int			t;

			if (alt[v][i] == batch[i])
				continue;
			differ++;
			for (t = 0; t < m.dsub; t++)
			{
				double		e1 = (double) ys[t] - cb[batch[i] * m.dsub + t];
				double		e2 = (double) ys[t] - cb[alt[v][i] * m.dsub + t];

				d1 += e1 * e1;
				d2 += e2 * e2;
			}
			worst = fmax(worst, fabs(d1 - d2) / fmax(fmax(d1, d2), 1e-30));
			if (fabs(d1 - d2) > 1e-5 * fmax(d1, d2))
				unequal++;
		}
	}
	tap_ok(differ <= n * M * 2 / 1000,
		   "%s: one and two at a time give the batch codes (%zu of %zu differ)",
		   what, differ, 2 * n * M);
	tap_ok(unequal == 0, "%s: where they differ the centroids are equally near "
		   "(worst relative gap %.2g)", what, worst);
	qdb_model_free(&m);
	free(x);
	free(y);
	free(batch);
	free(one);
	free(two);
}

static void
test_small_batches(void)
{
	double		s1,
				s2,
				sb;
	float	   *x = make_data(9, 2000, 32, 0.1f);
	QdbTrainConfig c;
	QdbModel	m;
	uint8_t		cb[8 * 3],
				c1[8],
				c2[8 * 2];

	check_small_batches("pq 100d M=16 (dsub 7)", QDB_KIND_PQ, QDB_METRIC_L2, 100, 16);
	check_small_batches("pq 64d M=2 (dsub 32)", QDB_KIND_PQ, QDB_METRIC_L2, 64, 2);
	check_small_batches("opq cosine 40d M=8", QDB_KIND_OPQ, QDB_METRIC_COSINE, 40, 8);

	/* an exact tie: centroid 200 copied to 100, the row equal to it */
	{
		QdbModel	t;
		QdbRng		r;
		float		row[8];
		uint8_t		one[2],
					many[2 * 4];
		float		rows[8 * 4];
		int			j;

		qdb_model_alloc(&t, NULL, QDB_KIND_PQ, QDB_METRIC_L2, 8, 8, 2, 0, 0);
		qdb_rng_seed(&r, 11);
		test_fill_gaussian(&r, t.codebooks, QDB_KSUB * 8, 1);
		for (j = 0; j < 2; j++)
		{
			memcpy(t.codebooks + (j * QDB_KSUB + 100) * 4,
				   t.codebooks + (j * QDB_KSUB + 200) * 4, sizeof(float) * 4);
			memcpy(row + j * 4, t.codebooks + (j * QDB_KSUB + 200) * 4, sizeof(float) * 4);
		}
		for (j = 0; j < 4; j++)
			memcpy(rows + j * 8, row, sizeof(row));
		qdb_compute_codes(&t, row, 1, one);
		qdb_compute_codes(&t, rows, 4, many);
		tap_ok(one[0] == 100 && one[1] == 100 && many[0] == 100 && many[7] == 100,
			   "a tie goes to the lower index on both paths (%d %d, %d %d)",
			   one[0], one[1], many[0], many[7]);
		qdb_model_free(&t);
	}

	/* the squared error comes back on the direct path too */
	pq_config(&c, 32, 8);
	test_train(&c, x, 2000, &m, NULL, NULL);
	qdb_pq_encode(NULL, m.codebooks, 32, 8, x, 3, cb, &sb);
	qdb_pq_encode(NULL, m.codebooks, 32, 8, x, 1, c1, &s1);
	qdb_pq_encode(NULL, m.codebooks, 32, 8, x + 32, 2, c2, &s2);
	tap_ok(memcmp(cb, c1, 8) == 0 && memcmp(cb + 8, c2, 16) == 0 &&
		   fabs(s1 + s2 - sb) <= 1e-4 * sb,
		   "direct path: codes and squared error of the batch (%.6g + %.6g vs %.6g)",
		   s1, s2, sb);
	qdb_model_free(&m);
	free(x);
}

int
main(void)
{
	qdb_distance_init();
	test_round_trip();
	test_padding();
	test_reduction();
	test_threads();
	test_small_batches();
	test_progress();
	test_cancel_long_kmeans();
	test_bad_input();
	test_util();
	return tap_done();
}
