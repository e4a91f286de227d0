/*
 * test_neural.c
 *	  The neural kind: the cpu training step's gradients against finite
 *	  differences (for every loss whose forward is smooth in the parameters
 *	  it trains), Adam through the step table, the opq starting point, the
 *	  training loop's reports, best checkpoint, cancel, and the model's
 *	  round trip through safetensors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neural.h"
#include "qdb_internal.h"
#include "tap.h"
#include "test_util.h"

/* A small step: D 6, H 10, T 4 (M 2 of dsub 2), K 8, B 4 (12 rows). */
enum
{
	D = 6, H = 10, T = 4, M = 2, K = 8, B = 4, R = 3 * B
};

typedef struct StepCase
{
	const QdbNeuralOps *ops;
	void	   *st;
	QdbNeuralLayout l;
	float	   *params;
	float		x[R * D];
	float		tau[M];
	QdbNeuralStep step;
} StepCase;

static void
case_init(StepCase *c, uint64_t seed)
{
	QdbNeuralShape s = {D, H, T, M, K, T / M};
	QdbRng		rng;

	memset(c, 0, sizeof(*c));
	c->ops = qdb_neural_cpu_ops();
	qdb_neural_layout(&s, &c->l);
	c->params = malloc(sizeof(float) * c->l.total);
	qdb_rng_seed(&rng, seed);
	test_fill_gaussian(&rng, c->params, c->l.total, 2.0f);
	test_fill_gaussian(&rng, c->x, R * D, 1.0f);
	c->ops->create(&c->st, &s, R, NULL, NULL, 0);
	c->ops->set_params(c->st, c->params);
	c->tau[0] = 0.7f;
	c->tau[1] = 1.3f;
	c->step.triplets = B;
	c->step.tau = c->tau;
	c->step.noise_seed = seed * 7 + 1;
	c->step.margin = 0.5f;
}

static void
case_free(StepCase *c)
{
	c->ops->destroy(c->st);
	free(c->params);
}

static double
case_loss(StepCase *c)
{
	QdbNeuralLosses l;

	c->ops->set_params(c->st, c->params);
	c->ops->step(c->st, c->x, &c->step, &l);
	return l.total;
}

/*
 * Central differences of the total loss against the step's gradient for
 * parameters [from, to): the largest error relative to the largest
 * gradient.  *flips counts probes that changed a hard code (skipped).
 */
static double
fd_error(StepCase *c, size_t from, size_t to, int *probes)
{
	float	   *g = malloc(sizeof(float) * c->l.total);
	double		worst = 0.0,
				gmax = 1e-12;
	const float eps = 2e-3f;

	case_loss(c);
	c->ops->get_grads(c->st, g);
	*probes = 0;
	for (size_t i = from; i < to; i++)
		gmax = fmax(gmax, fabs(g[i]));
	for (size_t i = from; i < to; i++)
	{
		float		keep = c->params[i];
		double		lp,
					lm,
					num;

		c->params[i] = keep + eps;
		lp = case_loss(c);
		c->params[i] = keep - eps;
		lm = case_loss(c);
		c->params[i] = keep;
		num = (lp - lm) / (2.0 * eps);
		worst = fmax(worst, fabs(num - g[i]));
		(*probes)++;
	}
	case_loss(c);
	free(g);
	return worst / gmax;
}

static void
test_step_gradients(void)
{
	StepCase	c;
	double		e;
	int			n;

	case_init(&c, 1);
	c.step.w_recon = 1.0f;
	e = fd_error(&c, c.l.dec_w, c.l.total, &n);
	tap_ok(e < 1e-2, "reconstruction: decoder gradient matches differences (%d probes, err %.1e)", n, e);
	c.step.w_recon = 0.0f;

	c.step.w_commit = 1.0f;
	e = fd_error(&c, c.l.w1, c.l.codebooks, &n);
	tap_ok(e < 1e-2, "commitment: encoder gradient matches differences (%d probes, err %.1e)", n, e);
	c.step.w_commit = 0.0f;

	c.step.w_cluster = 1.0f;
	e = fd_error(&c, c.l.codebooks, c.l.dec_w, &n);
	tap_ok(e < 1e-2, "cluster: codebook gradient matches differences (%d probes, err %.1e)", n, e);
	c.step.w_cluster = 0.0f;

	/* the soft assignments are smooth in the codebooks; the encoder gets none */
	c.step.w_diversity = 1.0f;
	e = fd_error(&c, c.l.codebooks, c.l.dec_w, &n);
	tap_ok(e < 1e-2, "diversity: codebook gradient matches differences (%d probes, err %.1e)", n, e);
	{
		float	   *g = malloc(sizeof(float) * c.l.total);
		int			zero = 1;

		case_loss(&c);
		c.ops->get_grads(c.st, g);
		for (size_t i = c.l.w1; i < c.l.codebooks; i++)
			zero &= g[i] == 0.0f;
		tap_ok(zero, "diversity: no gradient reaches the encoder");
		free(g);
	}
	c.step.w_diversity = 0.0f;

	/* straight through: the decoder's dq reaches b2 unchanged */
	c.step.w_recon = 1.0f;
	{
		float	   *g = malloc(sizeof(float) * c.l.total);
		double		worst = 0.0;

		case_loss(&c);
		c.ops->get_grads(c.st, g);
		/* d total / d b2 = sum over rows of dq = sum_r dxhat_r Wd: by dec_b's gradient */
		for (int t = 0; t < T; t++)
		{
			double		want = 0.0;

			for (int i = 0; i < D; i++)
				want += (double) g[c.l.dec_b + i] * c.params[c.l.dec_w + (size_t) i * T + t];
			worst = fmax(worst, fabs(want - g[c.l.b2 + t]));
		}
		tap_ok(worst < 1e-4, "straight through: b2's gradient is the decoder's dq summed (err %.1e)", worst);
		free(g);
	}
	c.step.w_recon = 0.0f;
	case_free(&c);
}

static void
test_step_losses(void)
{
	StepCase	c;
	QdbNeuralLosses l;
	float	   *g;
	float	   *p2;
	float		norm;
	double		ss = 0.0,
				moved = 0.0;
	int			same;

	case_init(&c, 2);
	c.step.w_recon = 0.3f;
	c.step.w_cluster = 0.2f;
	c.step.w_diversity = 0.1f;
	c.step.w_commit = 0.1f;
	c.step.w_triplet = 0.3f;
	c.ops->step(c.st, c.x, &c.step, &l);
	tap_ok(fabs(l.total - (0.3 * l.recon + 0.2 * l.cluster + 0.1 * l.diversity +
						   0.1 * l.commit + 0.3 * l.triplet)) < 1e-5 &&
		   l.cluster == l.commit && l.diversity <= 0.0 && l.diversity >= -log(K) - 1e-6 &&
		   l.triplet >= 0.0, "step: total is the weighted sum; diversity within [-log K, 0]");

	g = malloc(sizeof(float) * c.l.total);
	p2 = malloc(sizeof(float) * c.l.total);
	c.ops->get_grads(c.st, g);
	for (size_t i = 0; i < c.l.total; i++)
		ss += (double) g[i] * g[i];
	c.ops->adam(c.st, 1e-3f, 1, 0.0f, &norm);
	c.ops->get_params(c.st, p2);
	for (size_t i = 0; i < c.l.total; i++)
		moved = fmax(moved, fabs(p2[i] - c.params[i]));
	tap_ok(fabs(norm - sqrt(ss)) < 1e-4 * sqrt(ss) && moved <= 1.01e-3 && moved > 0.9e-3,
		   "adam: reports the gradient norm %.3g; first step moves at most lr (%.2e)", norm, moved);

	/* the same seed, the same step; another seed, other codes */
	c.ops->set_params(c.st, c.params);
	c.ops->step(c.st, c.x, &c.step, &l);
	{
		QdbNeuralLosses l2;

		c.ops->step(c.st, c.x, &c.step, &l2);
		same = l.total == l2.total;
		c.step.noise_seed += 1000;
		c.ops->step(c.st, c.x, &c.step, &l2);
		tap_ok(same && l.total != l2.total, "step: noise is a function of its seed");
	}
	free(g);
	free(p2);
	case_free(&c);
}

/* Clustered data: 24 centres in 32 dims plus noise. */
static float *
make_data(int n, int d)
{
	QdbRng		rng;
	float	   *c = malloc(sizeof(float) * 24 * d);
	float	   *x = malloc(sizeof(float) * (size_t) n * d);

	qdb_rng_seed(&rng, 5);
	test_fill_gaussian(&rng, c, (size_t) 24 * d, 1.0f);
	for (int i = 0; i < n; i++)
	{
		int			k = (int) qdb_rng_below(&rng, 24);

		for (int j = 0; j < d; j++)
			x[(size_t) i * d + j] = c[k * d + j] + 0.3f * (float) qdb_rng_gaussian(&rng);
	}
	free(c);
	return x;
}

typedef struct Log
{
	int			epochs_seen;
	int			last_epoch;
	double		recall[16];
	double		entropy[16];
	double		sps[16];
	int			best[16];
	int			cancel_at;		/* stop at this epoch; 0 never */
} Log;

static int
log_progress(const QdbEpochStats *s, void *arg)
{
	Log		   *g = arg;

	if (s->neural == NULL)
		return 0;
	if (s->iter < 16)
	{
		g->recall[s->iter] = s->neural->val_recall;
		g->entropy[s->iter] = s->neural->code_entropy;
		g->sps[s->iter] = s->neural->samples_per_sec;
		g->best[s->iter] = s->neural->best;
	}
	g->epochs_seen++;
	g->last_epoch = s->iter;
	return g->cancel_at > 0 && s->iter == g->cancel_at;
}

static void
test_training(void)
{
	const int	n = 3000,
				d = 32;
	float	   *x = make_data(n, d);
	QdbTrainConfig c;
	QdbModel	opq,
				opq_cos,
				nn,
				back;
	Log			log;
	uint8_t    *c1 = malloc((size_t) n * 8),
			   *c2 = malloc((size_t) n * 8),
			   *blob = NULL;
	size_t		len = 0,
				agree = 0;
	double		best = 0.0;
	int			ok_best = 1,
				rc;
	char		err[256];

	test_config(&c, QDB_KIND_OPQ, QDB_METRIC_L2, d, 8, 10);
	c.opq_iters = 5;
	c.epochs = 0;
	c.k_neighbors = 5;
	tap_ok(test_train(&c, x, n, &opq, NULL, NULL) == QDB_OK, "opq trains");
	c.kind = QDB_KIND_NEURAL;
	memset(&log, 0, sizeof(log));
	rc = test_train(&c, x, n, &nn, log_progress, &log);
	tap_ok(rc == QDB_OK && nn.kind == QDB_KIND_NEURAL && nn.hidden == 64 && !nn.linear,
		   "neural with 0 epochs trains (hidden %d)", nn.hidden);
	qdb_compute_codes(&opq, x, n, c1);
	qdb_compute_codes(&nn, x, n, c2);
	for (size_t i = 0; i < (size_t) n * 8; i++)
		agree += c1[i] == c2[i];
	tap_ok(agree >= (size_t) n * 8 * 99 / 100,
		   "epoch 0 is the opq model: %zu of %d code bytes agree", agree, n * 8);
	tap_ok(log.epochs_seen == 1 && log.recall[0] > 0.3 && log.entropy[0] > 3.0 &&
		   log.entropy[0] <= 8.0, "epoch 0 reported: recall %.3f, entropy %.2f bits",
		   log.recall[0], log.entropy[0]);
	qdb_model_free(&nn);
	/*
	 * under cosine: at epoch 0 its distances are opq's (the angle about the
	 * mean's image in its latent space is opq's angle to the decoded
	 * vector; the latent ||z - c||^2 / 2 of before was not); its tables,
	 * books transposed and norm table kept
	 */
	c.metric = QDB_METRIC_COSINE;
	c.kind = QDB_KIND_OPQ;
	rc = test_train(&c, x, n, &opq_cos, NULL, NULL);
	c.kind = QDB_KIND_NEURAL;
	if (rc == QDB_OK && test_train(&c, x, n, &nn, NULL, NULL) == QDB_OK)
	{
		size_t		nt = qdb_table_floats(&nn);
		float	   *ta = malloc(sizeof(float) * nt),
				   *tb = malloc(sizeof(float) * qdb_table_floats(&opq_cos));
		float		ba = 0,
					bb = 0;
		double		worst = 0;
		size_t		same = 0;

		qdb_compute_codes(&opq_cos, x, n, c1);
		qdb_compute_codes(&nn, x, n, c2);
		for (int q = 0; q < 20; q++)
		{
			qdb_compute_distance_table(&nn, x + (size_t) (n - 1 - q) * d, ta, &ba);
			qdb_compute_distance_table(&opq_cos, x + (size_t) (n - 1 - q) * d, tb, &bb);
			for (int i = 0; i < n; i++)
			{
				if (memcmp(c1 + (size_t) i * 8, c2 + (size_t) i * 8, 8) != 0)
					continue;
				same++;
				worst = fmax(worst, fabs((double) qdb_adc_distance(&nn, ta, ba, c2 + (size_t) i * 8) -
										 qdb_adc_distance(&opq_cos, tb, bb, c1 + (size_t) i * 8)));
			}
		}
		tap_ok(same >= (size_t) 20 * n * 9 / 10 && worst < 1e-3,
			   "neural cosine at epoch 0: opq's distances (%zu code pairs the same, max diff %.2g)",
			   same, worst);
		free(ta);
		free(tb);
		test_check_prepared("neural cosine", &nn, x);
	}
	else
		tap_ok(0, "opq and neural cosine train");
	qdb_model_free(&nn);
	qdb_model_free(&opq_cos);
	c.metric = QDB_METRIC_L2;

	c.epochs = 3;
	c.patience = 10;
	memset(&log, 0, sizeof(log));
	rc = test_train(&c, x, n, &nn, log_progress, &log);
	for (int e = 0; e <= 3; e++)
	{
		ok_best &= log.best[e] == (e == 0 || log.recall[e] > best);
		if (log.best[e])
			best = log.recall[e];
	}
	tap_ok(rc == QDB_OK && log.epochs_seen == 4 && log.sps[1] > 0.0,
		   "3 epochs: 4 reports, %.0f samples/s", log.sps[1]);
	tap_ok(ok_best, "an epoch is marked best exactly when its recall beats every earlier one");

	/* round trip: the same bytes and the same codes */
	rc = qdb_model_serialize(&nn, NULL, &blob, &len);
	tap_ok(rc == QDB_OK && qdb_model_parse(blob, len, NULL, &back, err, sizeof(err)) == QDB_OK,
		   "neural model serializes and parses (%zu bytes)", len);
	qdb_compute_codes(&nn, x, n, c1);
	qdb_compute_codes(&back, x, n, c2);
	tap_ok(memcmp(c1, c2, (size_t) n * 8) == 0 && back.hidden == nn.hidden &&
		   memcmp(back.enc_w1, nn.enc_w1, sizeof(float) * nn.hidden * d) == 0 &&
		   memcmp(back.dec_b, nn.dec_b, sizeof(float) * d) == 0,
		   "parsed neural model gives the same codes");
	test_check_prepared("neural l2", &back, x);
	qdb_model_free(&back);
	blob[len - 1] ^= 1;
	tap_ok(qdb_model_parse(blob, len, NULL, &back, err, sizeof(err)) == QDB_ERR_CHECKSUM,
		   "a flipped decoder byte fails the checksum");
	free(blob);
	qdb_model_free(&back);
	qdb_model_free(&nn);

	/* cancel from the callback at epoch 1 */
	memset(&log, 0, sizeof(log));
	log.cancel_at = 1;
	rc = test_train(&c, x, n, &nn, log_progress, &log);
	tap_ok(rc == QDB_ERR_CANCELLED && log.last_epoch == 1 && nn.codebooks == NULL,
		   "cancel at epoch 1 stops with QDB_ERR_CANCELLED and no model");

	c.hidden = 16;
	tap_ok(test_train(&c, x, n, &nn, NULL, NULL) == QDB_ERR_ARG,
		   "hidden narrower than target_dim: QDB_ERR_ARG");
	free(c1);
	free(c2);
	free(x);
	qdb_model_free(&opq);
}

int
main(void)
{
	test_step_gradients();
	test_step_losses();
	test_training();
	return tap_done();
}
