/*
 * test_nn.c
 *	  The learned compressor's CPU layers: every backward against central
 *	  finite differences, the straight-through Gumbel assignment's hard
 *	  forward and its backward, loss values, and Adam on a quadratic and
 *	  with clipping.
 *
 * Finite differences: forwards run in float as in training; each loss is
 * summed in double, and each step divides by the difference of the two
 * float inputs actually used.  A gradient passes when its largest error is
 * within GRAD_TOL of its largest numeric entry (relative, per tensor).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "neural.h"
#include "nn.h"
#include "qdb_internal.h"
#include "tap.h"
#include "test_util.h"

#define GRAD_TOL	1e-3		/* relative, per tensor, float32 forward */
#define FD_STEP		1e-2		/* central-difference step */

/* The scalar whose gradient is checked, from the current inputs. */
typedef double (*LossFn) (void *ctx);

static void
fill(QdbRng *r, float *x, size_t n, float scale)
{
	test_fill_gaussian(r, x, n, 1.0f);
	for (size_t i = 0; i < n; i++)
		x[i] *= scale;
}

/* num (n) = central differences of f in each entry of x */
static void
fd_grad(LossFn f, void *ctx, float *x, size_t n, double *num)
{
	for (size_t i = 0; i < n; i++)
	{
		float		x0 = x[i];
		float		xp = (float) (x0 + FD_STEP),
					xm = (float) (x0 - FD_STEP);
		double		lp,
					lm;

		x[i] = xp;
		lp = f(ctx);
		x[i] = xm;
		lm = f(ctx);
		x[i] = x0;
		num[i] = (lp - lm) / ((double) xp - (double) xm);
	}
}

/* max |ana - num| / max |num| (absolute when num is all below 1e-6) */
static double
grad_err(const float *ana, const double *num, size_t n)
{
	double		worst = 0.0,
				scale = 1e-6;

	for (size_t i = 0; i < n; i++)
	{
		if (fabs(ana[i] - num[i]) > worst)
			worst = fabs(ana[i] - num[i]);
		if (fabs(num[i]) > scale)
			scale = fabs(num[i]);
	}
	return worst / scale;
}

/* Checks ana against finite differences of f in x; one TAP line */
static void
check_grad(const char *name, LossFn f, void *ctx, float *x, const float *ana,
		   size_t n)
{
	double	   *num = malloc(sizeof(double) * n);
	double		e;

	fd_grad(f, ctx, x, n, num);
	e = grad_err(ana, num, n);
	tap_ok(e <= GRAD_TOL, "%s: gradient matches finite differences (rel err %.2e)",
		   name, e);
	free(num);
}

static double
dot_d(const float *a, const float *r, size_t n)
{
	double		s = 0.0;

	for (size_t i = 0; i < n; i++)
		s += (double) a[i] * r[i];
	return s;
}

static double
max_abs_diff(const float *a, const float *b, size_t n)
{
	double		w = 0.0;

	for (size_t i = 0; i < n; i++)
		if (fabs((double) a[i] - b[i]) > w)
			w = fabs((double) a[i] - b[i]);
	return w;
}

/* ---------------------------------------------------------------- linear */

typedef struct LinearCtx
{
	int			B,
				C,
				OC;
	float	   *inp,			/* (B,C) */
			   *w,				/* (OC,C) */
			   *b,				/* (OC) */
			   *out,			/* (B,OC) */
			   *r;				/* (B,OC) random weights: L = <r, out> */
} LinearCtx;

static double
linear_loss(void *p)
{
	LinearCtx  *c = p;

	qdb_nn_linear_forward(c->out, c->inp, c->w, c->b, c->B, c->C, c->OC);
	return dot_d(c->out, c->r, (size_t) c->B * c->OC);
}

static void
test_linear(uint64_t seed, int B, int C, int OC)
{
	QdbRng		rng;
	LinearCtx	c = {.B = B, .C = C, .OC = OC};
	float	   *dinp = calloc((size_t) B * C, sizeof(float));
	float	   *dw = calloc((size_t) OC * C, sizeof(float));
	float	   *db = calloc(OC, sizeof(float));
	float	   *dw2 = calloc((size_t) OC * C, sizeof(float));
	double		worst = 0.0;

	qdb_rng_seed(&rng, seed);
	c.inp = malloc(sizeof(float) * B * C);
	c.w = malloc(sizeof(float) * OC * C);
	c.b = malloc(sizeof(float) * OC);
	c.out = malloc(sizeof(float) * B * OC);
	c.r = malloc(sizeof(float) * B * OC);
	fill(&rng, c.inp, (size_t) B * C, 1.0f);
	fill(&rng, c.w, (size_t) OC * C, 0.5f);
	fill(&rng, c.b, OC, 0.5f);
	fill(&rng, c.r, (size_t) B * OC, 1.0f);

	qdb_nn_linear_forward(c.out, c.inp, c.w, c.b, B, C, OC);
	for (int i = 0; i < B; i++)
		for (int o = 0; o < OC; o++)
		{
			double		s = c.b[o];

			for (int j = 0; j < C; j++)
				s += (double) c.inp[i * C + j] * c.w[o * C + j];
			if (fabs(s - c.out[i * OC + o]) > worst)
				worst = fabs(s - c.out[i * OC + o]);
		}
	tap_ok(worst < 1e-5, "linear %dx%d->%d: forward equals the plain sum (%.1e)",
		   B, C, OC, worst);

	qdb_nn_linear_backward(dinp, dw, db, c.r, c.inp, c.w, B, C, OC);
	check_grad("linear dinp", linear_loss, &c, c.inp, dinp, (size_t) B * C);
	check_grad("linear dw", linear_loss, &c, c.w, dw, (size_t) OC * C);
	check_grad("linear db", linear_loss, &c, c.b, db, OC);

	/* a second backward adds; NULL dinp and db leave dw's share unchanged */
	qdb_nn_linear_backward(NULL, dw2, NULL, c.r, c.inp, c.w, B, C, OC);
	tap_ok(max_abs_diff(dw, dw2, (size_t) OC * C) == 0.0,
		   "linear: dw with dinp and db NULL equals dw with them");
	qdb_nn_linear_backward(NULL, dw2, NULL, c.r, c.inp, c.w, B, C, OC);
	worst = 0.0;
	for (int t = 0; t < OC * C; t++)
		if (fabs(dw2[t] - 2.0f * dw[t]) > worst)
			worst = fabs(dw2[t] - 2.0f * dw[t]);
	tap_ok(worst < 1e-5, "linear: backward accumulates into dw");

	free(c.inp);
	free(c.w);
	free(c.b);
	free(c.out);
	free(c.r);
	free(dinp);
	free(dw);
	free(db);
	free(dw2);
}

/* ------------------------------------------------------------------ relu */

typedef struct ReluCtx
{
	size_t		n;
	float	   *inp,
			   *out,
			   *r;
} ReluCtx;

static double
relu_loss(void *p)
{
	ReluCtx    *c = p;

	qdb_nn_relu_forward(c->out, c->inp, c->n);
	return dot_d(c->out, c->r, c->n);
}

static void
test_relu(void)
{
	enum
	{
		N = 24
	};
	QdbRng		rng;
	float		inp[N],
				out[N],
				r[N],
				dinp[N] = {0};
	ReluCtx		c = {N, inp, out, r};
	int			good = 1,
				pos = 0;

	qdb_rng_seed(&rng, 11);
	fill(&rng, inp, N, 1.0f);
	fill(&rng, r, N, 1.0f);
	/* away from the kink by more than the step */
	for (int i = 0; i < N; i++)
		if (fabsf(inp[i]) < 0.1f)
			inp[i] += inp[i] < 0 ? -0.1f : 0.1f;
	qdb_nn_relu_forward(out, inp, N);
	for (int i = 0; i < N; i++)
	{
		good &= out[i] == (inp[i] > 0 ? inp[i] : 0.0f);
		pos += inp[i] > 0;
	}
	tap_ok(good && pos > 0 && pos < N, "relu: forward is max(x, 0) (%d of %d positive)",
		   pos, N);
	qdb_nn_relu_backward(dinp, r, inp, N);
	check_grad("relu dinp", relu_loss, &c, inp, dinp, N);
	memcpy(out, inp, sizeof(out));
	qdb_nn_relu_forward(out, out, N);
	good = 1;
	for (int i = 0; i < N; i++)
		good &= out[i] == (inp[i] > 0 ? inp[i] : 0.0f);
	tap_ok(good, "relu: forward in place");
}

/* ------------------------------------------- two-layer MLP with MSE loss */

typedef struct MlpCtx
{
	int			B,
				D,
				H;
	/* parameters: one allocation split into named tensors */
	float	   *params;
	float	   *w1;				/* (H,D) */
	float	   *b1;				/* (H) */
	float	   *w2;				/* (D,H) */
	float	   *b2;				/* (D) */
	/* activations */
	float	   *x;				/* (B,D) */
	float	   *h;				/* (B,H) pre-activation */
	float	   *a;				/* (B,H) relu(h) */
	float	   *y;				/* (B,D) reconstruction */
} MlpCtx;

static double
mlp_loss(void *p)
{
	MlpCtx	   *c = p;

	qdb_nn_linear_forward(c->h, c->x, c->w1, c->b1, c->B, c->D, c->H);
	qdb_nn_relu_forward(c->a, c->h, (size_t) c->B * c->H);
	qdb_nn_linear_forward(c->y, c->a, c->w2, c->b2, c->B, c->H, c->D);
	return qdb_nn_mse_loss_forward(c->x, c->y, c->B, c->D);
}

static void
test_mlp(void)
{
	enum
	{
		B = 5, D = 6, H = 8
	};
	size_t		np = H * D + H + D * H + D;
	QdbRng		rng;
	MlpCtx		c = {.B = B, .D = D, .H = H};
	float	   *grads = calloc(np, sizeof(float));
	float		h[B * H],
				a[B * H],
				y[B * D],
				x[B * D];
	float		dy[B * D] = {0},
				da[B * H] = {0},
				dh[B * H] = {0};

	qdb_rng_seed(&rng, 12);
	c.params = malloc(sizeof(float) * np);
	c.w1 = c.params;
	c.b1 = c.w1 + H * D;
	c.w2 = c.b1 + H;
	c.b2 = c.w2 + D * H;
	c.x = x;
	c.h = h;
	c.a = a;
	c.y = y;
	fill(&rng, c.params, np, 0.5f);
	fill(&rng, x, B * D, 1.0f);

	mlp_loss(&c);
	/* keep pre-activations away from the ReLU kink for the differences */
	for (int i = 0; i < B * H; i++)
		if (fabsf(h[i]) < 0.15f)
			c.b1[i % H] += 0.3f;
	mlp_loss(&c);
	qdb_nn_mse_loss_backward(dy, x, y, B, D, 1.0f);
	qdb_nn_linear_backward(da, grads + H * D + H, grads + H * D + H + D * H,
					dy, a, c.w2, B, H, D);
	qdb_nn_relu_backward(dh, da, h, B * H);
	qdb_nn_linear_backward(NULL, grads, grads + H * D, dh, x, c.w1, B, D, H);

	check_grad("mlp w1", mlp_loss, &c, c.w1, grads, H * D);
	check_grad("mlp b1", mlp_loss, &c, c.b1, grads + H * D, H);
	check_grad("mlp w2", mlp_loss, &c, c.w2, grads + H * D + H, D * H);
	check_grad("mlp b2", mlp_loss, &c, c.b2, grads + H * D + H + D * H, D);
	free(c.params);
	free(grads);
}

/* ---------------------------------------------------------------- gumbel */

typedef struct GumbelCtx
{
	int			B,
				K,
				d;
	float		tau;
	int			noise;			/* reseed to noise_seed before each forward */
	uint64_t	noise_seed;
	int			straight_through;
	int			use_entropy;	/* L = <r, q> (+ entropy of soft) */
	QdbGumbelActs	acts;
	float	   *z,				/* (B,d) */
			   *c,				/* (K,d) */
			   *q,				/* (B,d) */
			   *r,				/* (B,d) */
			   *g;				/* (B,K) Gumbel noise from noise_seed */
} GumbelCtx;

static double
gumbel_loss(void *p)
{
	GumbelCtx  *g = p;
	double		l = 0.0;

	qdb_nn_gumbel_quantize_forward(g->q, &g->acts, g->z, g->c, g->B, g->K, g->d,
							g->tau, g->noise ? g->g : NULL, g->straight_through);
	if (g->r)
		l += dot_d(g->q, g->r, (size_t) g->B * g->d);
	if (g->use_entropy)
		l += qdb_nn_entropy_loss_forward(g->acts.soft, g->B, g->K);
	return l;
}

static void
gumbel_ctx_init(GumbelCtx *g, uint64_t seed, int B, int K, int d, float tau)
{
	QdbRng		rng;

	memset(g, 0, sizeof(*g));
	g->B = B;
	g->K = K;
	g->d = d;
	g->tau = tau;
	g->noise_seed = seed ^ 0x5555;
	qdb_nn_gumbel_acts_init(NULL, &g->acts, B, K);
	g->z = malloc(sizeof(float) * B * d);
	g->c = malloc(sizeof(float) * K * d);
	g->q = malloc(sizeof(float) * B * d);
	g->r = malloc(sizeof(float) * B * d);
	g->g = malloc(sizeof(float) * B * K);
	for (int t = 0; t < B * K; t++)
		g->g[t] = qdb_gumbel_hash(g->noise_seed, (uint64_t) t);
	qdb_rng_seed(&rng, seed);
	/* spread comparable to tau so that soft is neither flat nor one-hot */
	fill(&rng, g->z, (size_t) B * d, 0.6f);
	fill(&rng, g->c, (size_t) K * d, 0.6f);
	fill(&rng, g->r, (size_t) B * d, 1.0f);
}

static void
gumbel_ctx_free(GumbelCtx *g)
{
	qdb_nn_gumbel_acts_free(NULL, &g->acts);
	free(g->z);
	free(g->c);
	free(g->q);
	free(g->r);
	free(g->g);
}

/* dz, dc (zeroed here) from backward after the forward in gumbel_loss */
static void
gumbel_grads(GumbelCtx *g, float *dz, float *dc)
{
	float	   *dsoft = NULL;

	memset(dz, 0, sizeof(float) * g->B * g->d);
	memset(dc, 0, sizeof(float) * g->K * g->d);
	gumbel_loss(g);
	if (g->use_entropy)
	{
		dsoft = calloc((size_t) g->B * g->K, sizeof(float));
		qdb_nn_entropy_loss_backward(dsoft, g->acts.soft, g->B, g->K, 1.0f);
	}
	qdb_nn_gumbel_quantize_backward(dz, dc, g->r, dsoft, &g->acts, g->z, g->c,
							 g->B, g->K, g->d);
	free(dsoft);
}

/* The soft (relaxed) path's gradient against differences, in z and c */
static void
test_gumbel_soft(const char *name, uint64_t seed, int B, int K, int d,
				 float tau, int noise, int with_r, int use_entropy)
{
	GumbelCtx	g;
	float	   *dz = malloc(sizeof(float) * B * d);
	float	   *dc = malloc(sizeof(float) * K * d);
	char		label[96];

	gumbel_ctx_init(&g, seed, B, K, d, tau);
	g.noise = noise;
	g.use_entropy = use_entropy;
	if (!with_r)
	{
		free(g.r);
		g.r = NULL;
	}
	gumbel_grads(&g, dz, dc);
	snprintf(label, sizeof(label), "gumbel %s dz", name);
	check_grad(label, gumbel_loss, &g, g.z, dz, (size_t) B * d);
	snprintf(label, sizeof(label), "gumbel %s dc", name);
	check_grad(label, gumbel_loss, &g, g.c, dc, (size_t) K * d);
	gumbel_ctx_free(&g);
	free(dz);
	free(dc);
}

/* Hard forward: nearest centroid, q = c[idx]; backward = soft-path backward */
static void
test_gumbel_hard(uint64_t seed, int B, int K, int d, float tau)
{
	GumbelCtx	g;
	float	   *dz_soft = malloc(sizeof(float) * B * d);
	float	   *dc_soft = malloc(sizeof(float) * K * d);
	float	   *dz_hard = malloc(sizeof(float) * B * d);
	float	   *dc_hard = malloc(sizeof(float) * K * d);
	int			nearest = 1,
				argmax = 1,
				exact;

	gumbel_ctx_init(&g, seed, B, K, d, tau);
	gumbel_grads(&g, dz_soft, dc_soft);
	g.straight_through = 1;
	gumbel_grads(&g, dz_hard, dc_hard);
	for (int i = 0; i < B; i++)
	{
		int			best = 0;

		for (int k = 1; k < K; k++)
			if (test_sqdist(g.z + i * d, g.c + k * d, d) <
				test_sqdist(g.z + i * d, g.c + best * d, d))
				best = k;
		nearest &= g.acts.idx[i] == best;
		for (int k = 0; k < K; k++)
			argmax &= g.acts.logits[i * K + k] <= g.acts.logits[i * K + g.acts.idx[i]];
	}
	tap_ok(nearest, "gumbel hard B=%d K=%d d=%d: code is the nearest centroid", B, K, d);
	tap_ok(argmax, "gumbel hard: code is the argmax of the logits");
	exact = 1;
	for (int i = 0; i < B; i++)
		exact &= memcmp(g.q + i * d, g.c + g.acts.idx[i] * d, sizeof(float) * d) == 0;
	tap_ok(exact, "gumbel hard: q is exactly the chosen centroid");
	tap_ok(memcmp(dz_soft, dz_hard, sizeof(float) * B * d) == 0 &&
		   memcmp(dc_soft, dc_hard, sizeof(float) * K * d) == 0,
		   "gumbel hard: straight-through backward equals the soft-path backward");
	gumbel_ctx_free(&g);
	free(dz_soft);
	free(dc_soft);
	free(dz_hard);
	free(dc_hard);
}

/* Noise: seeded, moves some codes, code stays argmax of soft, rows sum to 1 */
static void
test_gumbel_noise(void)
{
	enum
	{
		B = 64, K = 16, D = 4
	};
	QdbGumbelActs	a1,
				a2,
				a0;
	QdbRng		rng;
	float		z[B * D],
				c[K * D],
				q[B * D],
				g1[B * K],
				g2[B * K];
	int			moved = 0,
				argmax = 1,
				same;
	double		worst_sum = 0.0;

	qdb_rng_seed(&rng, 21);
	fill(&rng, z, B * D, 1.0f);
	fill(&rng, c, K * D, 1.0f);
	qdb_nn_gumbel_acts_init(NULL, &a0, B, K);
	qdb_nn_gumbel_acts_init(NULL, &a1, B, K);
	qdb_nn_gumbel_acts_init(NULL, &a2, B, K);
	qdb_nn_gumbel_quantize_forward(q, &a0, z, c, B, K, D, 1.0f, NULL, 1);
	for (int t = 0; t < B * K; t++)
	{
		g1[t] = qdb_gumbel_hash(99, (uint64_t) t);
		g2[t] = qdb_gumbel_hash(99, (uint64_t) t);
	}
	qdb_nn_gumbel_quantize_forward(q, &a1, z, c, B, K, D, 1.0f, g1, 1);
	qdb_nn_gumbel_quantize_forward(q, &a2, z, c, B, K, D, 1.0f, g2, 1);
	same = memcmp(a1.soft, a2.soft, sizeof(float) * B * K) == 0 &&
		memcmp(a1.idx, a2.idx, sizeof(int) * B) == 0;
	tap_ok(same, "gumbel noise: the same seed gives the same assignment");
	for (int i = 0; i < B; i++)
	{
		double		s = 0.0;

		moved += a1.idx[i] != a0.idx[i];
		for (int k = 0; k < K; k++)
		{
			argmax &= a1.soft[i * K + k] <= a1.soft[i * K + a1.idx[i]];
			s += a1.soft[i * K + k];
		}
		if (fabs(s - 1.0) > worst_sum)
			worst_sum = fabs(s - 1.0);
	}
	tap_ok(moved > 0 && moved < B, "gumbel noise: moves some codes (%d of %d)", moved, B);
	tap_ok(argmax, "gumbel noise: code is the argmax of the noisy soft assignment");
	tap_ok(worst_sum < 1e-5, "gumbel: soft rows sum to 1 (%.1e)", worst_sum);
	qdb_nn_gumbel_acts_free(NULL, &a0);
	qdb_nn_gumbel_acts_free(NULL, &a1);
	qdb_nn_gumbel_acts_free(NULL, &a2);
}

/* Production sizes: K = 256, hard codes are nearest centroids */
static void
test_gumbel_k256(void)
{
	enum
	{
		B = 64, K = 256, D = 4
	};
	QdbGumbelActs	acts;
	QdbRng		rng;
	float	   *c = malloc(sizeof(float) * K * D);
	float		z[B * D],
				q[B * D];
	int			good;

	qdb_rng_seed(&rng, 31);
	fill(&rng, z, B * D, 1.0f);
	fill(&rng, c, K * D, 1.0f);
	good = qdb_nn_gumbel_acts_init(NULL, &acts, B, K) == QDB_OK &&
		qdb_nn_gumbel_quantize_forward(q, &acts, z, c, B, K, D, 0.1f, NULL, 1) == QDB_OK;
	for (int i = 0; good && i < B; i++)
	{
		float		bd = test_sqdist(z + i * D, c + acts.idx[i] * D, D);

		for (int k = 0; k < K; k++)
			good &= test_sqdist(z + i * D, c + k * D, D) >= bd;
	}
	tap_ok(good, "gumbel K=256 tau=0.1: every code is a nearest centroid");
	qdb_nn_gumbel_acts_free(NULL, &acts);
	free(c);
}

static void
test_gumbel_args(void)
{
	QdbGumbelActs	acts;
	float		z[4] = {0},
				c[8] = {0},
				q[4];

	tap_ok(qdb_nn_gumbel_acts_init(NULL, &acts, 0, 4) == QDB_ERR_ARG &&
		   qdb_nn_gumbel_acts_init(NULL, &acts, 2, 0) == QDB_ERR_ARG,
		   "gumbel: acts for no rows or no centroids is QDB_ERR_ARG");
	qdb_nn_gumbel_acts_init(NULL, &acts, 2, 4);
	tap_ok(qdb_nn_gumbel_quantize_forward(q, &acts, z, c, 2, 4, 2, 0.0f, NULL, 1) == QDB_ERR_ARG &&
		   qdb_nn_gumbel_quantize_forward(q, &acts, z, c, 2, 4, 2, NAN, NULL, 1) == QDB_ERR_ARG,
		   "gumbel: tau 0 or NaN is QDB_ERR_ARG");
	tap_ok(qdb_nn_gumbel_quantize_forward(q, &acts, z, c, 3, 4, 1, 1.0f, NULL, 1) == QDB_ERR_ARG &&
		   qdb_nn_gumbel_quantize_forward(q, &acts, z, c, 2, 3, 1, 1.0f, NULL, 1) == QDB_ERR_ARG,
		   "gumbel: more rows or other K than allocated is QDB_ERR_ARG");
	tap_ok(qdb_nn_gumbel_quantize_forward(q, &acts, z, c, 1, 4, 2, 1.0f, NULL, 1) == QDB_OK,
		   "gumbel: fewer rows than allocated is fine");
	qdb_nn_gumbel_acts_free(NULL, &acts);
}

/* ---------------------------------------------------------------- losses */

typedef struct PairCtx
{
	int			B,
				D;
	float	   *x,
			   *y;
	int			commitment;
} PairCtx;

static double
pair_loss(void *p)
{
	PairCtx    *c = p;

	return c->commitment ? qdb_nn_commitment_loss_forward(c->x, c->y, c->B, c->D) :
		qdb_nn_mse_loss_forward(c->x, c->y, c->B, c->D);
}

static void
test_mse_commitment(void)
{
	enum
	{
		B = 4, D = 7
	};
	QdbRng		rng;
	float		x[B * D],
				y[B * D],
				dy[B * D] = {0},
				dz[B * D] = {0};
	PairCtx		c = {B, D, x, y, 0};
	double		ref = 0.0;

	qdb_rng_seed(&rng, 41);
	fill(&rng, x, B * D, 1.0f);
	fill(&rng, y, B * D, 1.0f);
	for (int i = 0; i < B; i++)
		ref += test_sqdist(x + i * D, y + i * D, D);
	ref /= B;
	tap_ok(fabs(qdb_nn_mse_loss_forward(x, y, B, D) - ref) < 1e-5 * ref,
		   "mse: mean over the batch of squared distances");
	qdb_nn_mse_loss_backward(dy, x, y, B, D, 1.0f);
	check_grad("mse dxhat", pair_loss, &c, y, dy, B * D);

	/* commitment: z is x, q is y; only z gets a gradient */
	c.commitment = 1;
	tap_ok(fabs(qdb_nn_commitment_loss_forward(x, y, B, D) - ref) < 1e-5 * ref,
		   "commitment: mean over the batch of ||z - q||^2");
	qdb_nn_commitment_loss_backward(dz, x, y, B, D, 1.0f);
	check_grad("commitment dz", pair_loss, &c, x, dz, B * D);
	memset(dz, 0, sizeof(dz));
	qdb_nn_commitment_loss_backward(dz, x, y, B, D, 0.25f);
	for (int t = 0; t < B * D; t++)
		dy[t] = 0.25f * 2.0f * (x[t] - y[t]) / B;
	tap_ok(max_abs_diff(dz, dy, B * D) < 1e-6, "commitment: weight scales the gradient");
}

typedef struct EntropyCtx
{
	int			B,
				K;
	float	   *soft;
} EntropyCtx;

static double
entropy_loss(void *p)
{
	EntropyCtx *c = p;

	return qdb_nn_entropy_loss_forward(c->soft, c->B, c->K);
}

static void
test_entropy(void)
{
	enum
	{
		B = 5, K = 6
	};
	QdbRng		rng;
	float		soft[B * K],
				dsoft[B * K] = {0};
	EntropyCtx	c = {B, K, soft};

	for (int t = 0; t < B * K; t++)
		soft[t] = 1.0f / K;
	tap_ok(fabs(qdb_nn_entropy_loss_forward(soft, B, K) + log(K)) < 1e-6,
		   "entropy: uniform usage gives -log K");
	memset(soft, 0, sizeof(soft));
	for (int i = 0; i < B; i++)
		soft[i * K + 2] = 1.0f;
	tap_ok(qdb_nn_entropy_loss_forward(soft, B, K) == 0.0f,
		   "entropy: every row on one centroid gives 0");
	for (int i = 0; i < B; i++)
		soft[i * K + i % K] = 1.0f, soft[i * K + 2] = (i % K == 2);
	tap_ok(qdb_nn_entropy_loss_forward(soft, B, K) < -1.5f,
		   "entropy: rows on different centroids score lower than on one");

	qdb_rng_seed(&rng, 51);
	for (int i = 0; i < B; i++)
	{
		double		s = 0.0;

		for (int k = 0; k < K; k++)
			s += soft[i * K + k] = 0.2f + (float) qdb_rng_uniform(&rng);
		for (int k = 0; k < K; k++)
			soft[i * K + k] /= (float) s;
	}
	qdb_nn_entropy_loss_backward(dsoft, soft, B, K, 1.0f);
	check_grad("entropy dsoft", entropy_loss, &c, soft, dsoft, B * K);
}

typedef struct TripletCtx
{
	int			T,
				D;
	float		margin;
	float	   *a,
			   *p,
			   *n;
} TripletCtx;

static double
triplet_loss(void *ctx)
{
	TripletCtx *c = ctx;

	return qdb_nn_triplet_loss_forward(c->a, c->p, c->n, c->T, c->D, c->margin);
}

static void
test_triplet(void)
{
	enum
	{
		T = 5, D = 4
	};
	QdbRng		rng;
	float		a[T * D],
				p[T * D],
				n[T * D];
	float		da[T * D] = {0},
				dp[T * D] = {0},
				dn[T * D] = {0},
				da_all[T * D];
	TripletCtx	c = {T, D, 1.0f, a, p, n};
	double		ref = 0.0;
	int			active = 0,
				zero_inactive = 1;

	qdb_rng_seed(&rng, 61);
	fill(&rng, a, T * D, 1.0f);
	fill(&rng, p, T * D, 0.5f);
	fill(&rng, n, T * D, 0.5f);
	for (int t = 0; t < T * D; t++)
	{
		p[t] += a[t];			/* positives near their anchors */
		n[t] += a[t] * (t < D ? -2.0f : 0.6f);	/* triplet 0: far negative */
	}
	for (int t = 0; t < T; t++)
	{
		double		h = test_sqdist(a + t * D, p + t * D, D) -
			test_sqdist(a + t * D, n + t * D, D) + c.margin;

		tap_diag("triplet %d hinge %.3f", t, h);
		if (h > 0)
			ref += h, active++;
	}
	ref /= T;
	tap_ok(fabs(qdb_nn_triplet_loss_forward(a, p, n, T, D, c.margin) - ref) < 1e-5,
		   "triplet: loss is the mean hinge (%d of %d active)", active, T);
	qdb_nn_triplet_loss_backward(da, dp, dn, a, p, n, T, D, c.margin, 1.0f);
	check_grad("triplet da", triplet_loss, &c, a, da, T * D);
	check_grad("triplet dp", triplet_loss, &c, p, dp, T * D);
	check_grad("triplet dn", triplet_loss, &c, n, dn, T * D);
	for (int j = 0; j < D; j++)
		zero_inactive &= da[j] == 0.0f && dp[j] == 0.0f && dn[j] == 0.0f;
	tap_ok(active > 0 && active < T && zero_inactive,
		   "triplet: an inactive triplet gets no gradient");
	memcpy(da_all, da, sizeof(da));
	memset(da, 0, sizeof(da));
	qdb_nn_triplet_loss_backward(da, NULL, NULL, a, p, n, T, D, c.margin, 1.0f);
	tap_ok(max_abs_diff(da, da_all, T * D) == 0.0,
		   "triplet: dp and dn may be NULL");
}

/* ------------------------------------------------------------------ adam */

/* Double-precision Adam step, the formula written out */
static void
adam_ref(double *x, const double *g, double *m, double *v, int n, double lr,
		 double b1, double b2, double eps, int t)
{
	for (int i = 0; i < n; i++)
	{
		m[i] = b1 * m[i] + (1 - b1) * g[i];
		v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
		x[i] -= lr * (m[i] / (1 - pow(b1, t))) / (sqrt(v[i] / (1 - pow(b2, t))) + eps);
	}
}

static void
test_adam(void)
{
	enum
	{
		N = 8, STEPS = 1000
	};
	float		x[N],
				g[N],
				m[N] = {0},
				v[N] = {0},
				target[N],
				curv[N];
	double		xd[N],
				gd[N],
				md[N] = {0},
				vd[N] = {0};
	QdbRng		rng;
	double		worst = 0.0;

	/* f(x) = sum_i curv_i (x_i - target_i)^2 with curvatures 0.1 .. 10 */
	qdb_rng_seed(&rng, 71);
	fill(&rng, target, N, 2.0f);
	for (int i = 0; i < N; i++)
	{
		curv[i] = powf(10.0f, -1.0f + 2.0f * i / (N - 1));
		x[i] = 0.0f;
		xd[i] = 0.0;
	}
	for (int t = 1; t <= 5; t++)
	{
		for (int i = 0; i < N; i++)
		{
			g[i] = 2.0f * curv[i] * (x[i] - target[i]);
			gd[i] = 2.0 * curv[i] * (xd[i] - target[i]);
		}
		qdb_nn_adam_update(x, g, m, v, N, 0.05f, 0.9f, 0.999f, 1e-8f, t, 0.0f);
		adam_ref(xd, gd, md, vd, N, 0.05, 0.9, 0.999, 1e-8, t);
	}
	for (int i = 0; i < N; i++)
		if (fabs(x[i] - xd[i]) > worst)
			worst = fabs(x[i] - xd[i]);
	tap_ok(worst < 1e-5, "adam: 5 steps match the double formula (%.1e)", worst);

	for (int t = 6; t <= STEPS; t++)
	{
		for (int i = 0; i < N; i++)
			g[i] = 2.0f * curv[i] * (x[i] - target[i]);
		qdb_nn_adam_update(x, g, m, v, N, t <= STEPS / 2 ? 0.05f : 0.005f,
					0.9f, 0.999f, 1e-8f, t, 0.0f);
	}
	worst = 0.0;
	for (int i = 0; i < N; i++)
		if (fabs(x[i] - target[i]) > worst)
			worst = fabs(x[i] - target[i]);
	tap_ok(worst < 1e-2, "adam: reaches the quadratic's minimum in %d steps (max err %.1e)",
		   STEPS, worst);
}

static void
test_adam_clip(void)
{
	enum
	{
		N = 4
	};
	const float g[N] = {3.0f, -4.0f, 0.0f, 12.0f};	/* norm 13 */
	float		x[N] = {0},
				m[N] = {0},
				v[N] = {0},
				x2[N] = {0},
				m2[N] = {0},
				v2[N] = {0},
				gs[N];
	float		norm;
	int			good = 1;

	/* eps = lr >> |g| makes the first step lr g / (|g| + eps), close to g */
	norm = qdb_nn_adam_update(x, g, m, v, N, 1e6f, 0.9f, 0.999f, 1e6f, 1, 6.5f);
	tap_ok(norm == 13.0f, "adam clip: returns the norm before clipping");
	for (int i = 0; i < N; i++)
		gs[i] = g[i] * 0.5f;
	qdb_nn_adam_update(x2, gs, m2, v2, N, 1e6f, 0.9f, 0.999f, 1e6f, 1, 0.0f);
	tap_ok(max_abs_diff(m, m2, N) == 0.0 && max_abs_diff(v, v2, N) < 1e-7,
		   "adam clip: moments see the gradient scaled to norm clip");
	tap_ok(max_abs_diff(x, x2, N) < 1e-5 && fabsf(x[3]) > 1.0f,
		   "adam clip: the update is that of the scaled gradient");
	for (int i = 0; i < N; i++)
		x2[i] = m2[i] = v2[i] = 0.0f;
	qdb_nn_adam_update(x2, g, m2, v2, N, 1e6f, 0.9f, 0.999f, 1e6f, 1, 0.0f);
	for (int i = 0; i < N; i++)
		good &= g[i] == 0.0f || fabsf(x[i] / x2[i] - 0.5f) < 1e-4f;
	tap_ok(good, "adam clip: halves the update of the unclipped step");
	memset(x, 0, sizeof(x));
	memset(m, 0, sizeof(m));
	memset(v, 0, sizeof(v));
	norm = qdb_nn_adam_update(x, g, m, v, N, 1e6f, 0.9f, 0.999f, 1e6f, 1, 20.0f);
	tap_ok(norm == 13.0f && max_abs_diff(x, x2, N) == 0.0,
		   "adam clip: a norm under clip leaves the step alone");
}

int
main(void)
{
	test_linear(1, 4, 5, 3);
	test_linear(2, 3, 8, 6);
	test_relu();
	test_mlp();

	/* soft path, no noise, tau folded into the logits */
	test_gumbel_soft("soft tau=0.7", 3, 4, 5, 3, 0.7f, 0, 1, 0);
	test_gumbel_soft("soft tau=2", 4, 3, 5, 6, 2.0f, 0, 1, 0);
	/* fixed noise is a constant shift: the soft path stays differentiable */
	test_gumbel_soft("soft+noise", 5, 5, 5, 4, 1.0f, 1, 1, 0);
	/* entropy of the soft assignments alone, through dsoft_extra */
	test_gumbel_soft("entropy", 6, 5, 5, 3, 0.8f, 0, 0, 1);
	test_gumbel_soft("q+entropy", 7, 4, 5, 3, 0.8f, 0, 1, 1);
	test_gumbel_hard(8, 5, 5, 3, 0.7f);
	test_gumbel_hard(9, 4, 7, 8, 1.5f);
	test_gumbel_noise();
	test_gumbel_k256();
	test_gumbel_args();

	test_mse_commitment();
	test_entropy();
	test_triplet();
	test_adam();
	test_adam_clip();
	return tap_done();
}
