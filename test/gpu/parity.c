/*
 * parity.c
 *	  The cuda backend's training math against the cpu reference: the
 *	  losses of one step, its gradients, the parameters after an epoch of
 *	  step + Adam, the embedding and the codes, on the same parameters,
 *	  batches and Gumbel noise.  Prints TAP-ish "ok N - ..." lines.
 *
 *	  usage: parity path/to/quantumdb_cuda.so
 *
 * Without the object or a device it prints "skip: <reason>" and exits 0;
 * otherwise it exits 1 when any check fails.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neural.h"
#include "qdb_internal.h"

#define BATCH		128			/* triplets per step: 384 rows */
#define EPOCH_STEPS	20
#define ENCODE_ROWS	2000
#define POOL_ROWS	4096
#define CLUSTERS	32

static int	ntests,
			nfailed;

static void
report(int ok, const char *fmt,...)
{
	va_list		ap;

	ntests++;
	if (!ok)
		nfailed++;
	printf("%s %d - ", ok ? "ok" : "not ok", ntests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n > 0 ? n : 1);

	if (p == NULL)
	{
		fprintf(stderr, "parity: out of memory\n");
		exit(2);
	}
	return p;
}

/* The two backends' states for one shape. */
typedef struct Pair
{
	const QdbNeuralOps *ops[2];	/* cpu, cuda */
	void	   *st[2];
	QdbNeuralShape s;
	QdbNeuralLayout l;
	float	   *pool;			/* (POOL_ROWS, D) clustered rows */
	int		   *cluster;		/* (POOL_ROWS) */
	float	   *tau;			/* (M) */
} Pair;

static const char *const tensor_names[] = {
	"w1", "b1", "w2", "b2", "codebooks", "dec_w", "dec_b"
};

static size_t
tensor_offset(const QdbNeuralLayout *l, int i)
{
	size_t		o[] = {l->w1, l->b1, l->w2, l->b2, l->codebooks, l->dec_w,
		l->dec_b, l->total};

	return o[i];
}

static void
fail_call(const Pair *p, int which, const char *what, int rc)
{
	fprintf(stderr, "parity: %s %s failed: %s (%s)\n", p->ops[which]->name, what,
			qdb_status_string(rc), p->ops[which]->last_error(p->st[which]));
	exit(1);
}

#define CALL(p, which, what, expr) \
	do { \
		int			rc_ = (expr); \
		if (rc_ != QDB_OK) \
			fail_call((p), (which), (what), rc_); \
	} while (0)

/* Clustered rows: a centre per cluster plus noise. */
static void
make_pool(Pair *p, QdbRng *rng)
{
	int			D = p->s.dim;
	float	   *centres = xmalloc(sizeof(float) * CLUSTERS * D);

	for (size_t i = 0; i < (size_t) CLUSTERS * D; i++)
		centres[i] = (float) qdb_rng_gaussian(rng);
	p->pool = xmalloc(sizeof(float) * POOL_ROWS * D);
	p->cluster = xmalloc(sizeof(int) * POOL_ROWS);
	for (int r = 0; r < POOL_ROWS; r++)
	{
		p->cluster[r] = (int) qdb_rng_below(rng, CLUSTERS);
		for (int j = 0; j < D; j++)
			p->pool[(size_t) r * D + j] = centres[(size_t) p->cluster[r] * D + j] +
				0.5f * (float) qdb_rng_gaussian(rng);
	}
	free(centres);
}

/*
 * A step's rows: B anchors, B positives (the anchor plus a little noise),
 * B negatives (half from the anchor's cluster, so that hinges are active).
 */
static void
make_batch(const Pair *p, QdbRng *rng, float *x)
{
	int			D = p->s.dim;

	for (int b = 0; b < BATCH; b++)
	{
		int			a = (int) qdb_rng_below(rng, POOL_ROWS);
		int			n;

		do
			n = (int) qdb_rng_below(rng, POOL_ROWS);
		while (n == a || ((b & 1) && p->cluster[n] != p->cluster[a]));
		for (int j = 0; j < D; j++)
		{
			float		av = p->pool[(size_t) a * D + j];

			x[(size_t) b * D + j] = av;
			x[(size_t) (BATCH + b) * D + j] = av + 0.1f * (float) qdb_rng_gaussian(rng);
			x[(size_t) (2 * BATCH + b) * D + j] = p->pool[(size_t) n * D + j];
		}
	}
}

/* He-style encoder, codebooks from the embeddings of random rows. */
static float *
make_params(Pair *p, QdbRng *rng)
{
	const QdbNeuralShape *s = &p->s;
	const QdbNeuralLayout *l = &p->l;
	float	   *w = xmalloc(sizeof(float) * l->total);
	float	   *z = xmalloc(sizeof(float) * POOL_ROWS * s->dim_pq);

	for (size_t i = 0; i < l->total; i++)
		w[i] = 0.0f;
	for (size_t i = 0; i < (size_t) s->hidden * s->dim; i++)
		w[l->w1 + i] = (float) (qdb_rng_gaussian(rng) * sqrt(2.0 / s->dim));
	for (int i = 0; i < s->hidden; i++)
		w[l->b1 + i] = (float) (0.01 * qdb_rng_gaussian(rng));
	for (size_t i = 0; i < (size_t) s->dim_pq * s->hidden; i++)
		w[l->w2 + i] = (float) (qdb_rng_gaussian(rng) * sqrt(1.0 / s->hidden));
	for (int i = 0; i < s->dim_pq; i++)
		w[l->b2 + i] = (float) (0.01 * qdb_rng_gaussian(rng));
	for (size_t i = 0; i < (size_t) s->dim * s->dim_pq; i++)
		w[l->dec_w + i] = (float) (qdb_rng_gaussian(rng) * sqrt(1.0 / s->dim_pq));

	/* z of the pool on the cpu, then each centroid a random row's sub-vector */
	CALL(p, 0, "set_params", p->ops[0]->set_params(p->st[0], w));
	CALL(p, 0, "embed", p->ops[0]->embed(p->st[0], p->pool, ENCODE_ROWS, z));
	for (int m = 0; m < s->M; m++)
		for (int k = 0; k < s->K; k++)
		{
			int			r = (int) qdb_rng_below(rng, ENCODE_ROWS);

			for (int j = 0; j < s->dsub; j++)
				w[l->codebooks + ((size_t) m * s->K + k) * s->dsub + j] =
					z[(size_t) r * s->dim_pq + (size_t) m * s->dsub + j] +
					0.05f * (float) qdb_rng_gaussian(rng);
		}
	free(z);
	return w;
}

static void
set_both(Pair *p, const float *w)
{
	for (int i = 0; i < 2; i++)
		CALL(p, i, "set_params", p->ops[i]->set_params(p->st[i], w));
}

static QdbNeuralStep
step_settings(const Pair *p, uint64_t seed, float w_diversity)
{
	QdbNeuralStep st;

	memset(&st, 0, sizeof(st));
	st.triplets = BATCH;
	st.tau = p->tau;
	st.noise_seed = seed;
	st.w_recon = 0.3f;
	st.w_cluster = 0.2f;
	st.w_diversity = w_diversity;
	st.w_commit = 0.1f;
	st.w_triplet = 0.3f;
	st.margin = 20.0f;		/* about a third of the hinges active */
	return st;
}

static double
rel(double got, double want)
{
	return fabs(got - want) / fmax(fabs(want), 1e-3);
}

static void
check_losses(Pair *p, const float *x, uint64_t seed, float w_diversity,
			 const char *tag)
{
	QdbNeuralStep st = step_settings(p, seed, w_diversity);
	QdbNeuralLosses L[2];
	double		worst = 0.0;
	const double *a = &L[0].total,
			   *b = &L[1].total;

	for (int i = 0; i < 2; i++)
		CALL(p, i, "step", p->ops[i]->step(p->st[i], x, &st, &L[i]));
	/* the six doubles of QdbNeuralLosses, in order */
	for (int i = 0; i < 6; i++)
		worst = fmax(worst, rel(b[i], a[i]));
	printf("# %s cpu : total %.6f recon %.6f cluster %.6f diversity %.6f commit %.6f triplet %.6f\n",
		   tag, L[0].total, L[0].recon, L[0].cluster, L[0].diversity, L[0].commit,
		   L[0].triplet);
	printf("# %s cuda: total %.6f recon %.6f cluster %.6f diversity %.6f commit %.6f triplet %.6f\n",
		   tag, L[1].total, L[1].recon, L[1].cluster, L[1].diversity, L[1].commit,
		   L[1].triplet);
	report(worst <= 1e-3, "%s: losses of one step, worst relative diff %.3g (<= 1e-3)",
		   tag, worst);
}

static void
check_grads(Pair *p, const char *tag)
{
	size_t		n = p->l.total;
	float	   *g[2];
	double		gmax = 0.0,
				dmax = 0.0;
	char		detail[512];
	int			len = 0;

	for (int i = 0; i < 2; i++)
	{
		g[i] = xmalloc(sizeof(float) * n);
		CALL(p, i, "get_grads", p->ops[i]->get_grads(p->st[i], g[i]));
	}
	for (size_t i = 0; i < n; i++)
		gmax = fmax(gmax, fabs(g[0][i]));
	for (int t = 0; t < 7; t++)
	{
		double		d = 0.0;

		for (size_t i = tensor_offset(&p->l, t); i < tensor_offset(&p->l, t + 1); i++)
			d = fmax(d, fabs((double) g[1][i] - g[0][i]));
		dmax = fmax(dmax, d);
		len += snprintf(detail + len, sizeof(detail) - len, " %s %.2g",
						tensor_names[t], gmax > 0 ? d / gmax : d);
	}
	printf("# %s grads: max |g| %.4g; max diff / max |g| per tensor:%s\n",
		   tag, gmax, detail);
	report(gmax > 0 && dmax / gmax <= 1e-3,
		   "%s: gradients, max diff / max |g| = %.3g (<= 1e-3)", tag,
		   gmax > 0 ? dmax / gmax : INFINITY);
	free(g[0]);
	free(g[1]);
}

static void
check_epoch(Pair *p, const float *w0, QdbRng *rng, const char *tag)
{
	size_t		n = p->l.total;
	int			R = 3 * BATCH;
	float	   *x = xmalloc(sizeof(float) * R * p->s.dim);
	float	   *w[2];
	float		norm[2] = {0, 0};
	double		pmax = 0.0,
				dmax = 0.0,
				upd = 0.0,
				updiff = 0.0;

	set_both(p, w0);
	for (int t = 1; t <= EPOCH_STEPS; t++)
	{
		QdbNeuralStep st = step_settings(p, 1000 + t, 0.1f);

		make_batch(p, rng, x);
		for (int i = 0; i < 2; i++)
		{
			QdbNeuralLosses L;

			CALL(p, i, "step", p->ops[i]->step(p->st[i], x, &st, &L));
			CALL(p, i, "adam", p->ops[i]->adam(p->st[i], 1e-3f, t, 1.0f, &norm[i]));
		}
	}
	for (int i = 0; i < 2; i++)
	{
		w[i] = xmalloc(sizeof(float) * n);
		CALL(p, i, "get_params", p->ops[i]->get_params(p->st[i], w[i]));
	}
	for (size_t i = 0; i < n; i++)
	{
		pmax = fmax(pmax, fabs(w[0][i]));
		dmax = fmax(dmax, fabs((double) w[1][i] - w[0][i]));
		upd += fabs((double) w[0][i] - w0[i]);
		updiff += fabs((double) w[1][i] - w[0][i]);
	}
	printf("# %s epoch: last grad norm cpu %.5g cuda %.5g; mean |update| %.3g\n",
		   tag, norm[0], norm[1], upd / n);
	report(dmax / pmax <= 1e-2,
		   "%s: params after %d steps of step+adam, max diff / max |p| = %.3g (<= 1e-2)",
		   tag, EPOCH_STEPS, dmax / pmax);
	/* a robust look at the updates themselves: a few sign flips do not count */
	report(upd > 0 && updiff / upd <= 0.1,
		   "%s: updates after %d steps, mean |diff| / mean |update| = %.3g (<= 0.1)",
		   tag, EPOCH_STEPS, upd > 0 ? updiff / upd : INFINITY);
	free(w[0]);
	free(w[1]);
	free(x);
}

static void
check_encode(Pair *p, const float *w, const char *tag)
{
	int			T = p->s.dim_pq,
				M = p->s.M;
	float	   *z[2];
	uint8_t    *codes[2];
	double		zmax = 0.0,
				zdiff = 0.0;
	size_t		same = 0,
				total = (size_t) ENCODE_ROWS * M;

	set_both(p, w);
	for (int i = 0; i < 2; i++)
	{
		z[i] = xmalloc(sizeof(float) * ENCODE_ROWS * T);
		codes[i] = xmalloc(total);
		CALL(p, i, "embed", p->ops[i]->embed(p->st[i], p->pool, ENCODE_ROWS, z[i]));
		CALL(p, i, "encode", p->ops[i]->encode(p->st[i], p->pool, ENCODE_ROWS, codes[i]));
	}
	for (size_t i = 0; i < (size_t) ENCODE_ROWS * T; i++)
	{
		zmax = fmax(zmax, fabs(z[0][i]));
		zdiff = fmax(zdiff, fabs((double) z[1][i] - z[0][i]));
	}
	for (size_t i = 0; i < total; i++)
		same += codes[0][i] == codes[1][i];
	report(zdiff / zmax <= 1e-4, "%s: embed of %d rows, max diff / max |z| = %.3g (<= 1e-4)",
		   tag, ENCODE_ROWS, zdiff / zmax);
	report(same >= 0.99 * total, "%s: encode of %d rows, %.4f%% of codes agree (>= 99%%)",
		   tag, ENCODE_ROWS, 100.0 * same / total);
	for (int i = 0; i < 2; i++)
	{
		free(z[i]);
		free(codes[i]);
	}
}

/* Returns 0, or 1 with *skip set when the cuda state cannot be made. */
static int
run_shape(const QdbNeuralOps *cuda, int dim, int M, char *skip, size_t skiplen)
{
	Pair		p;
	QdbRng		rng;
	char		err[256] = "";
	char		tag[64],
				tag0[80];
	int			rc;
	float	   *x,
			   *w0;

	memset(&p, 0, sizeof(p));
	p.ops[0] = qdb_neural_cpu_ops();
	p.ops[1] = cuda;
	p.s.dim = dim;
	p.s.dim_pq = dim;
	p.s.hidden = 2 * dim;
	p.s.M = M;
	p.s.K = QDB_KSUB;
	p.s.dsub = dim / M;
	qdb_neural_layout(&p.s, &p.l);
	snprintf(tag, sizeof(tag), "D=%d T=%d H=%d M=%d", dim, p.s.dim_pq, p.s.hidden, M);
	snprintf(tag0, sizeof(tag0), "%s w_diversity=0", tag);

	rc = cuda->create(&p.st[1], &p.s, ENCODE_ROWS, NULL, err, sizeof(err));
	if (rc == QDB_ERR_NO_DEVICE)
	{
		snprintf(skip, skiplen, "no CUDA device (%s)", err);
		return 1;
	}
	if (rc != QDB_OK)
	{
		report(0, "%s: cuda create: %s (%s)", tag, qdb_status_string(rc), err);
		return 0;
	}
	rc = p.ops[0]->create(&p.st[0], &p.s, ENCODE_ROWS, NULL, err, sizeof(err));
	if (rc != QDB_OK)
	{
		fprintf(stderr, "parity: cpu create: %s (%s)\n", qdb_status_string(rc), err);
		exit(1);
	}

	qdb_rng_seed(&rng, 42 + dim);
	make_pool(&p, &rng);
	p.tau = xmalloc(sizeof(float) * M);
	for (int m = 0; m < M; m++)
		p.tau[m] = 1.0f + 0.25f * (m % 4);
	w0 = make_params(&p, &rng);
	x = xmalloc(sizeof(float) * 3 * BATCH * dim);
	make_batch(&p, &rng, x);

	set_both(&p, w0);
	/* without the diversity weight the backends skip the soft backward */
	check_losses(&p, x, 12345, 0.0f, tag0);
	check_grads(&p, tag0);
	check_losses(&p, x, 0, 0.1f, tag);
	check_losses(&p, x, 12345, 0.1f, tag);
	check_grads(&p, tag);
	check_epoch(&p, w0, &rng, tag);
	{
		float	   *w = xmalloc(sizeof(float) * p.l.total);

		CALL(&p, 0, "get_params", p.ops[0]->get_params(p.st[0], w));
		check_encode(&p, w, tag);
		free(w);
	}

	for (int i = 0; i < 2; i++)
		p.ops[i]->destroy(p.st[i]);
	free(x);
	free(w0);
	free(p.pool);
	free(p.cluster);
	free(p.tau);
	return 0;
}

int
main(int argc, char **argv)
{
	void	   *so;
	QdbNeuralOpsEntry entry;
	const QdbNeuralOps *cuda;
	char		skip[512];
	static const int shapes[][2] = {{64, 8}, {128, 16}};

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 2)
	{
		fprintf(stderr, "usage: %s path/to/quantumdb_cuda.so\n", argv[0]);
		return 2;
	}
	so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (so == NULL)
	{
		printf("skip: cannot load %s: %s\n", argv[1], dlerror());
		return 0;
	}
	entry = (QdbNeuralOpsEntry) dlsym(so, QDB_CUDA_ENTRY_SYMBOL);
	if (entry == NULL)
	{
		printf("not ok 1 - %s exports no %s\n", argv[1], QDB_CUDA_ENTRY_SYMBOL);
		return 1;
	}
	cuda = entry(QDB_TRAINER_API_VERSION);
	if (cuda == NULL || entry(QDB_TRAINER_API_VERSION + 1) != NULL ||
		cuda->version != QDB_TRAINER_API_VERSION)
	{
		printf("not ok 1 - the entry point does not check the ops version\n");
		return 1;
	}

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		if (run_shape(cuda, shapes[i][0], shapes[i][1], skip, sizeof(skip)))
		{
			printf("skip: %s\n", skip);
			return 0;
		}
	printf("# %d passed, %d failed\n", ntests - nfailed, nfailed);
	return nfailed ? 1 : 0;
}
