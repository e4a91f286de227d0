/*
 * test_opq.c
 *	  OPQ: never a worse reconstruction than PQ on the same data (plain,
 *	  padded, reduced, cosine), the shape of the learnt transform, the
 *	  balanced initial allocation, the default target_dim, progress stages
 *	  and cancellation.
 */
#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "opq.h"
#include "pca.h"
#include "qdb_distance.h"
#include "qdb_internal.h"
#include "tap.h"
#include "test_util.h"

/*
 * Correlated data: a random rotation of a Gaussian whose per-dim scales
 * fall geometrically, plus an offset; what OPQ is for.
 */
static float *
make_correlated(uint64_t seed, size_t n, int d)
{
	QdbRng		r;
	float	   *mix = malloc(sizeof(float) * d * d);
	float	   *x = malloc(sizeof(float) * n * d);
	float	   *z = malloc(sizeof(float) * d);
	size_t		i;
	int			j,
				t;

	qdb_rng_seed(&r, seed);
	test_fill_gaussian(&r, mix, (size_t) d * d, sqrtf((float) d));
	for (i = 0; i < n; i++)
	{
		for (t = 0; t < d; t++)
			z[t] = (float) qdb_rng_gaussian(&r) * powf(0.9f, (float) t);
		for (j = 0; j < d; j++)
		{
			float		v = 2.0f;

			for (t = 0; t < d; t++)
				v += mix[j * d + t] * z[t];
			x[i * d + j] = v;
		}
	}
	free(mix);
	free(z);
	return x;
}

/*
 * Data whose natural sub-vectors are meaningful: each group of 4 dims is
 * one of 16 patterns, like SIFT's histogram cells.
 */
static float *
make_blocky(uint64_t seed, size_t n, int d)
{
	QdbRng		r;
	float	   *pat = malloc(sizeof(float) * 16 * d);
	float	   *x = malloc(sizeof(float) * n * d);
	size_t		i;
	int			j;

	qdb_rng_seed(&r, seed);
	for (i = 0; i < (size_t) 16 * d; i++)
		pat[i] = (float) (qdb_rng_uniform(&r) < 0.3 ? qdb_rng_uniform(&r) * 4 : 0);
	for (i = 0; i < n; i++)
		for (j = 0; j < d; j += 4)
		{
			int			p = (int) qdb_rng_below(&r, 16);
			int			t;

			for (t = 0; t < 4 && j + t < d; t++)
				x[i * d + j + t] = pat[p * d + j + t] + 0.02f * (float) qdb_rng_gaussian(&r);
		}
	free(pat);
	return x;
}

/* mean squared reconstruction error in input space (cosine: of x/|x|) */
static double
mse(const QdbModel *m, const float *x, size_t n)
{
	int			d = m->dim;
	float	   *rec = test_reconstruct(m, x, n);
	double		err = 0;
	size_t		i;
	int			j;

	if (rec == NULL)
		return INFINITY;
	for (i = 0; i < n; i++)
	{
		double		s = 1;

		if (m->metric == QDB_METRIC_COSINE)
		{
			s = 0;
			for (j = 0; j < d; j++)
				s += (double) x[i * d + j] * x[i * d + j];
			s = 1 / sqrt(s);
		}
		for (j = 0; j < d; j++)
		{
			double		e = x[i * d + j] * s - rec[i * d + j];

			err += e * e;
		}
	}
	free(rec);
	return err / n;
}

static void
compare(const char *what, const float *x, size_t n, int dim, int M, int target,
		QdbMetric metric)
{
	QdbTrainConfig c;
	QdbModel	pq,
				opq;
	double		e_pq,
				e_opq;

	test_config(&c, QDB_KIND_PQ, metric, dim, M, 12);
	c.dim_pq = target;
	c.opq_iters = 8;
	if (test_train(&c, x, n, &pq, NULL, NULL) != QDB_OK)
	{
		tap_ok(0, "%s: pq trains", what);
		return;
	}
	c.kind = QDB_KIND_OPQ;
	if (test_train(&c, x, n, &opq, NULL, NULL) != QDB_OK)
	{
		tap_ok(0, "%s: opq trains", what);
		qdb_model_free(&pq);
		return;
	}
	e_pq = mse(&pq, x, n);
	e_opq = mse(&opq, x, n);
	/* the PQ and OPQ k-means draw different random numbers: 0.5% slack */
	tap_ok(e_opq <= e_pq * 1.005, "%s: OPQ MSE %.5g <= PQ MSE %.5g", what, e_opq, e_pq);
	tap_ok(opq.linear && opq.mean && test_orthonormal_deviation(&opq) < 1e-4,
		   "%s: OPQ transform %dx%d orthonormal (deviation %.2g)", what,
		   opq.dim_pq, opq.dim, test_orthonormal_deviation(&opq));
	qdb_model_free(&pq);
	qdb_model_free(&opq);
}

static void
test_versus_pq(void)
{
	float	   *x;

	x = make_correlated(1, 3000, 32);
	compare("correlated 32d M=8", x, 3000, 32, 8, 0, QDB_METRIC_L2);
	free(x);
	x = make_correlated(2, 3000, 30);
	compare("correlated 30d padded to 32", x, 3000, 30, 8, 0, QDB_METRIC_L2);
	free(x);
	x = make_correlated(3, 3000, 40);
	compare("correlated 40d PCA to 16", x, 3000, 40, 4, 16, QDB_METRIC_L2);
	free(x);
	x = make_blocky(4, 3000, 32);
	compare("blocky 32d (natural order good)", x, 3000, 32, 8, 0, QDB_METRIC_L2);
	free(x);
	x = make_correlated(5, 3000, 24);
	compare("correlated 24d cosine", x, 3000, 24, 6, 0, QDB_METRIC_COSINE);
	free(x);
}

static void
test_balanced_init(void)
{
	enum
	{
		T = 12, DP = 16, M = 4
	};
	float		ev[T];
	float		R[DP * T];
	double		logp[M] = {0};
	int			ok = 1;
	int			i,
				j;

	for (i = 0; i < T; i++)
		ev[i] = powf(0.5f, (float) i);
	qdb_opq_balanced_init(ev, T, DP, M, R);
	/* a selection: each column one 1, each row at most one */
	for (j = 0; j < T; j++)
	{
		int			ones = 0;

		for (i = 0; i < DP; i++)
		{
			if (R[i * T + j] == 1.0f)
			{
				ones++;
				logp[i / (DP / M)] += log(ev[j]);
			}
			else if (R[i * T + j] != 0.0f)
				ok = 0;
		}
		if (ones != 1)
			ok = 0;
	}
	for (i = 0; i < DP; i++)
	{
		int			ones = 0;

		for (j = 0; j < T; j++)
			ones += R[i * T + j] == 1.0f;
		if (ones > 1)
			ok = 0;
	}
	tap_ok(ok, "balanced init is a selection with orthonormal columns");
	{
		double		lo = INFINITY,
					hi = -INFINITY;

		for (i = 0; i < M; i++)
		{
			lo = fmin(lo, logp[i]);
			hi = fmax(hi, logp[i]);
		}
		/* 12 halving eigenvalues in 4 buckets: products within 2^3 */
		tap_ok(hi - lo <= 3 * log(2) + 1e-9, "variance products balanced (log spread %.2f)",
			   hi - lo);
	}
}

typedef struct Calls
{
	int			n;
	int			stop_at;
	char		log[256];
	int			kmeans_beats;	/* heartbeats of k-means iterations, not logged */
} Calls;

static int
progress(const QdbEpochStats *s, void *arg)
{
	Calls	   *c = arg;
	size_t		len = strlen(c->log);

	c->n++;
	/* one thread: each k-means iteration of a sub-space beats too (pq.c) */
	if (s->heartbeat && strcmp(s->stage, "pca") != 0)
		c->kmeans_beats++;
	else
		snprintf(c->log + len, sizeof(c->log) - len, "%s%d ", s->stage, s->iter);
	return c->stop_at && c->n >= c->stop_at;
}

static void
test_progress(void)
{
	QdbTrainConfig c;
	QdbModel	m;
	float	   *x = make_correlated(6, 1000, 16);
	Calls		calls;
	int			stops[] = {1, 3, 10, 13};
	int			i,
				status;

	test_config(&c, QDB_KIND_OPQ, QDB_METRIC_L2, 16, 4, 5);
	c.opq_iters = 3;
	c.opq_error = 0;			/* the pilot's reports: test_opq_error.c */
	setenv("QDB_NUM_THREADS", "1", 1);
	memset(&calls, 0, sizeof(calls));
	status = test_train(&c, x, 1000, &m, progress, &calls);
	tap_ok(status == QDB_OK &&
		   strcmp(calls.log, "pca0 pca1 pca0 opq start1 opq start2 opq start3 opq start4 "
				  "opq start1 opq start2 opq start3 opq start4 "
				  "opq1 opq2 opq3 pq1 pq2 pq3 pq4 ") == 0 && calls.kmeans_beats > 0,
		   "progress: pca once (a heartbeat, iter 0, per block of the covariance "
		   "and of the projection), opq start per sub-space of both starts, opq "
		   "per round, pq per sub-space (%s), and %d heartbeats of k-means "
		   "iterations between", calls.log, calls.kmeans_beats);
	qdb_model_free(&m);

	for (i = 0; i < 4; i++)
	{
		int			blas = openblas_get_num_threads();

		memset(&calls, 0, sizeof(calls));
		calls.stop_at = stops[i];
		tap_ok(test_train(&c, x, 1000, &m, progress, &calls) == QDB_ERR_CANCELLED &&
			   calls.n == stops[i] && m.codebooks == NULL,
			   "cancel at report %d returns QDB_ERR_CANCELLED at once", stops[i]);
		/* the alternations hold OpenBLAS to one thread: given back on cancel */
		tap_ok(openblas_get_num_threads() == blas,
			   "cancel at report %d leaves OpenBLAS's threads as they were (%d, %d)",
			   stops[i], openblas_get_num_threads(), blas);
	}
	unsetenv("QDB_NUM_THREADS");

	c.opq_iters = 0;
	tap_ok(test_train(&c, x, 1000, &m, NULL, NULL) == QDB_OK && m.linear != NULL,
		   "opq_iters = 0: the initial rotation and a PQ");
	qdb_model_free(&m);

	c.opq_iters = 3;
	c.seed = 9;
	{
		QdbModel	m2;

		test_train(&c, x, 1000, &m, NULL, NULL);
		test_train(&c, x, 1000, &m2, NULL, NULL);
		tap_ok(memcmp(m.linear, m2.linear, sizeof(float) * 16 * 16) == 0 &&
			   memcmp(m.codebooks, m2.codebooks, sizeof(float) * QDB_KSUB * 16) == 0,
			   "same seed, same OPQ model");
		qdb_model_free(&m);
		qdb_model_free(&m2);
	}
	free(x);
}

/* The reports of one training's alternations, and of a stop */
typedef struct Alternations
{
	int			n;				/* "opq" reports */
	int			stalled;		/* "opq stalled" reports */
	int			stalled_iter;	/* the last one's count */
	int			stalled_iters;	/* and its total */
	bool		cancel_stall;	/* cancel at the stop's report */
} Alternations;

static int
count_alternations(const QdbEpochStats *s, void *arg)
{
	Alternations *a = arg;

	if (strcmp(s->stage, "opq") == 0)
		a->n++;
	else if (strcmp(s->stage, "opq stalled") == 0)
	{
		a->stalled++;
		a->stalled_iter = s->iter;
		a->stalled_iters = s->iters;
		return a->cancel_stall;
	}
	return 0;
}

/*
 * The alternations stop once ten of them (from the second) lowered the
 * reconstruction error by less than 1%: soon after the twelfth on isotropic
 * Gaussian data (no rotation quantizes it better than another; what the
 * warm k-means still gains keeps it going a few more), never on the blocky
 * data mixed by a random rotation, which each alternation keeps un-mixing;
 * and never before the twelfth.
 */
static void
test_stall(void)
{
	QdbTrainConfig c;
	QdbModel	m;
	QdbRng		r;
	float	   *iso = malloc(sizeof(float) * 4000 * 32);
	float	   *blocky = make_blocky(12, 4000, 32);
	float	   *mixed = malloc(sizeof(float) * 4000 * 32);
	float		v[32];
	Alternations a;
	int			st,
				k,
				j,
				blas = openblas_get_num_threads();
	size_t		i;

	qdb_rng_seed(&r, 13);
	test_fill_gaussian(&r, iso, (size_t) 4000 * 32, 1);
	/* a rotation: three random Householder reflections */
	memcpy(mixed, blocky, sizeof(float) * 4000 * 32);
	for (k = 0; k < 3; k++)
	{
		float		vv;

		test_fill_gaussian(&r, v, 32, 1);
		vv = cblas_sdot(32, v, 1, v, 1);
		for (i = 0; i < 4000; i++)
		{
			float		f = 2 * cblas_sdot(32, mixed + i * 32, 1, v, 1) / vv;

			for (j = 0; j < 32; j++)
				mixed[i * 32 + j] -= f * v[j];
		}
	}
	test_config(&c, QDB_KIND_OPQ, QDB_METRIC_L2, 32, 8, 5);
	c.opq_iters = 50;

	memset(&a, 0, sizeof(a));
	st = test_train(&c, iso, 4000, &m, count_alternations, &a);
	tap_ok(st == QDB_OK && a.n >= 12 && a.n <= 20 && a.stalled == 1 &&
		   a.stalled_iter == a.n && a.stalled_iters == 50,
		   "isotropic data: the alternations stop between the 12th and the 20th of 50, "
		   "and one report says so with their count (%d; %d reports, %d/%d)",
		   a.n, a.stalled, a.stalled_iter, a.stalled_iters);
	tap_ok(st == QDB_OK && m.opq_alternations == a.n,
		   "the model keeps the alternations run (%d, reported %d)", m.opq_alternations, a.n);
	{
		uint8_t    *blob = NULL;
		size_t		len = 0;
		QdbModel	back;
		char		err[256];

		memset(&back, 0, sizeof(back));
		st = qdb_model_serialize(&m, NULL, &blob, &len);
		if (st == QDB_OK)
			st = qdb_model_parse(blob, len, NULL, &back, err, sizeof(err));
		tap_ok(st == QDB_OK && back.opq_alternations == -1 &&
			   back.config.opq_iters == 50,
			   "a model read from its file does not know them (-1; %d)", back.opq_alternations);
		qdb_model_free(&back);
		qdb_free(NULL, blob);
	}
	qdb_model_free(&m);
	memset(&a, 0, sizeof(a));
	a.cancel_stall = true;
	st = test_train(&c, iso, 4000, &m, count_alternations, &a);
	tap_ok(st == QDB_ERR_CANCELLED && a.stalled == 1 && m.codebooks == NULL &&
		   openblas_get_num_threads() == blas,
		   "a cancel at the stop's report cancels, OpenBLAS's threads as they were (%d, %d)",
		   openblas_get_num_threads(), blas);
	memset(&a, 0, sizeof(a));
	st = test_train(&c, mixed, 4000, &m, count_alternations, &a);
	tap_ok(st == QDB_OK && a.n == 50 && a.stalled == 0 && m.opq_alternations == 50,
		   "mixed blocky data: all 50 alternations, no stop, and the model says 50 (%d, %d, %d)",
		   a.n, a.stalled, m.opq_alternations);
	qdb_model_free(&m);
	c.opq_iters = 11;
	memset(&a, 0, sizeof(a));
	st = test_train(&c, iso, 4000, &m, count_alternations, &a);
	tap_ok(st == QDB_OK && a.n == 11 && a.stalled == 0,
		   "isotropic data, opq_iters 11: all 11, no stop (%d, %d)", a.n, a.stalled);
	qdb_model_free(&m);
	free(iso);
	free(blocky);
	free(mixed);
}

/*
 * The default dim_pq: padded dim for pq, at most QDB_DEFAULT_DIMS_PER_SUB
 * per sub-quantizer for the learned kinds, an explicit one as given; and
 * a training with the default reduces by PCA with orthonormal rows.
 */
static void
test_default_dim(void)
{
	QdbTrainConfig c;
	QdbModel	m;
	float	   *x;

	qdb_train_config_init(&c);
	c.dim = 784;
	c.kind = QDB_KIND_PQ;
	tap_ok(qdb_config_dim_pq(&c) == 784, "pq keeps 784 dims by default");
	c.kind = QDB_KIND_OPQ;
	tap_ok(qdb_config_dim_pq(&c) == 256, "opq: 784 dims become 256 by default");
	c.kind = QDB_KIND_RQ;
	c.dim = 300;
	tap_ok(qdb_config_dim_pq(&c) == 256, "rq: 300 dims become 256 by default");
	c.kind = QDB_KIND_NEURAL;
	c.dim = 250;
	tap_ok(qdb_config_dim_pq(&c) == 256, "neural: 250 dims pad to 256, no reduction");
	c.kind = QDB_KIND_OPQ;
	c.dim = 100;
	tap_ok(qdb_config_dim_pq(&c) == 112, "opq: 100 dims pad to 112");
	c.M = 8;
	c.dim = 784;
	tap_ok(qdb_config_dim_pq(&c) == 128, "8 sub-quantizers: 128 dims by default");
	c.dim_pq = 392;
	tap_ok(qdb_config_dim_pq(&c) == 392, "an explicit target_dim is kept");

	x = make_correlated(11, 2000, 80);
	test_config(&c, QDB_KIND_OPQ, QDB_METRIC_L2, 80, 4, 5);
	c.opq_iters = 2;
	tap_ok(test_train(&c, x, 2000, &m, NULL, NULL) == QDB_OK && m.dim_pq == 64 &&
		   m.linear != NULL && test_orthonormal_deviation(&m) < 1e-4,
		   "opq with 4 sub-quantizers on 80 dims trains a 64 x 80 orthonormal map");
	qdb_model_free(&m);
	free(x);
}

/*
 * A PCA fitted beforehand on the same rows (as the error byte's pilot fits
 * one for both its ways) gives the model a training that fits its own
 * gives, byte for byte, with and without the error byte; a fit of other
 * rows is used, not ignored.
 */
static void
test_fitted(void)
{
	QdbTrainConfig c;
	QdbModel	m,
				mf;
	float	   *x = make_correlated(17, 3000, 48);
	float	   *other = make_correlated(18, 3000, 48);
	float		mean[48],
				eigvals[48];
	float	   *eigvecs = malloc(sizeof(float) * 48 * 48);
	QdbPcaFit	fit = {mean, eigvecs, eigvals};
	int			err_byte;

	for (err_byte = 0; err_byte < 2; err_byte++)
	{
		test_config(&c, QDB_KIND_OPQ, QDB_METRIC_L2, 48, 4, 5);
		c.opq_iters = 3;
		c.opq_error = err_byte;
		tap_ok(qdb_pca_fit(NULL, x, 3000, 48, mean, eigvecs, eigvals, NULL) == QDB_OK &&
			   qdb_opq_train(NULL, x, 3000, &c, &m, NULL) == QDB_OK &&
			   qdb_opq_train_fitted(NULL, x, 3000, &c, &fit, &mf, NULL) == QDB_OK &&
			   m.M == mf.M && m.err_byte == err_byte && mf.err_byte == err_byte &&
			   memcmp(m.mean, mf.mean, sizeof(float) * 48) == 0 &&
			   memcmp(m.linear, mf.linear, sizeof(float) * m.dim_pq * 48) == 0 &&
			   memcmp(m.codebooks, mf.codebooks,
					  sizeof(float) * (m.M - m.err_byte) * QDB_KSUB * m.dsub) == 0,
			   "error byte %d: a PCA fitted beforehand on the rows gives the same model",
			   err_byte);
		qdb_model_free(&mf);
		tap_ok(qdb_pca_fit(NULL, other, 3000, 48, mean, eigvecs, eigvals, NULL) == QDB_OK &&
			   qdb_opq_train_fitted(NULL, x, 3000, &c, &fit, &mf, NULL) == QDB_OK &&
			   memcmp(m.mean, mf.mean, sizeof(float) * 48) != 0,
			   "error byte %d: a fit of other rows is the one used", err_byte);
		qdb_model_free(&mf);
		qdb_model_free(&m);
	}
	free(eigvecs);
	free(x);
	free(other);
}

int
main(void)
{
	qdb_distance_init();
	test_versus_pq();
	test_balanced_init();
	test_default_dim();
	test_progress();
	test_stall();
	test_fitted();
	return tap_done();
}
