/*
 * neural_train.c
 *	  The neural kind's training loop, shared by every backend: the math of
 *	  a step runs on ops (cpu or cuda), the rest here on the host.
 *
 * 1. OPQ on the whole sample gives mean, rotation A and codebooks.
 * 2. The encoder starts as exactly that transform: hidden unit j < T has
 *    weights A_j and bias beta_j - (A mean)_j with beta_j above every
 *    |A_j (x - mean)| of the sample, so relu passes it through unchanged and
 *    W2 = [I 0], b2 = -beta.  Units j >= T start random with zero output
 *    weights.  The decoder starts as A^T.  So epoch 0 is opq itself.
 * 3. Up to neural_rows rows of the sample are split into training and
 *    validation (a tenth, at most 1000).  Each training row's 3k nearest
 *    rows give its triplets: a positive among the k nearest, a negative
 *    among the next 2k (the rows a top-k search must keep out).
 * 4. Epochs of Adam steps.  The Gumbel temperature is annealed, not learnt:
 *    relative to each sub-quantizer's mean squared quantization error at
 *    the start, from 0.1 down to 0.01 geometrically over the epochs.  It
 *    sets how often the noise moves a hard code away from the nearest
 *    centroid (from 1, the noisy codes more than doubled the training
 *    reconstruction loss) and how the diversity loss's soft gradient
 *    spreads; a learnt one would follow whichever value lowers the losses
 *    at hand, not the noise level that keeps the hard sample meaningful.
 * 5. After every epoch the validation split's 10-recall@10 by ADC against
 *    the training rows decides: the best parameters are kept, and training
 *    stops after patience epochs without a better one.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>

#include "kmeans.h"
#include "neural_train.h"
#include "opq.h"
#include "qdb_distance.h"

#define VAL_MAX_ROWS		1000
#define VAL_K				10
#define TAU_START			0.1
#define TAU_END				0.01
#define ESTIMATE_ROWS		2000	/* rows for the temperature and margin scales */
#define MARGIN_SHARE		0.05f	/* triplet margin: share of |z_a - z_p|^2 */
#define HEARTBEAT_STEPS		8		/* steps between cancel checks */

typedef struct Trainer
{
	const QdbAlloc *a;
	const QdbTrainConfig *c;
	const QdbNeuralOps *ops;
	void	   *st;
	QdbProgressCtx p;
	QdbNeuralShape s;
	QdbNeuralLayout l;
	int			B;				/* anchors per step */
	int			max_rows;
	int			n_train,
				n_val;
	int			kk;				/* neighbours kept per row: 3 k */
	float	   *xs;				/* (n_train + n_val, D) rows as sampled */
	float	   *xc;				/* the same, centred */
	int		   *nbr;			/* (n_train, kk) */
	int		   *gt;				/* (n_val, VAL_K) */
	float	   *params,
			   *best;
	float	   *batch;			/* (3B, D) */
	uint8_t    *codes;			/* (n_train, M) */
	float	   *table;
	float	   *tau_scale,
			   *tau;			/* (M) */
	float		margin;
	QdbModel   *model;
	char	   *err;
	size_t		errlen;
} Trainer;

/* Lets the callback see a pending cancel during long work: QDB_OK or _CANCELLED. */
static int
heartbeat(Trainer *t, const char *stage)
{
	QdbEpochStats s;

	if (t->p.cb == NULL)
		return QDB_OK;
	memset(&s, 0, sizeof(s));
	s.stage = stage;
	s.seconds = qdb_now() - t->p.t0;
	s.heartbeat = 1;
	return t->p.cb(&s, t->p.arg) ? QDB_ERR_CANCELLED : QDB_OK;
}

static int
knn_cancel(void *arg)
{
	return heartbeat((Trainer *) arg, "neighbours") != QDB_OK;
}

static int
ops_failed(Trainer *t, int rc)
{
	if (rc != QDB_OK && t->err && t->errlen && t->st)
		snprintf(t->err, t->errlen, "%s backend: %s", t->ops->name,
				 t->ops->last_error(t->st));
	return rc;
}

/* Sets the encoder to the opq transform of step 2 and copies the rest. */
static int
init_from_opq(Trainer *t, const QdbModel *opq)
{
	QdbModel   *m = t->model;
	int			D = t->s.dim,
				T = t->s.dim_pq,
				H = t->s.hidden;
	int			nrows = t->n_train + t->n_val;
	float	   *u;
	QdbRng		rng;

	u = qdb_malloc(t->a, (size_t) nrows * T, sizeof(float));
	if (!u)
		return QDB_ERR_NOMEM;
	memcpy(m->mean, opq->mean, sizeof(float) * D);
	memcpy(m->codebooks, opq->codebooks, sizeof(float) * (size_t) QDB_KSUB * T);
	for (size_t i = 0; i < (size_t) nrows; i++)
		for (int j = 0; j < D; j++)
			t->xc[i * D + j] = t->xs[i * D + j] - m->mean[j];
	/* u = A (x - mean) for every row: beta must cover them all */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nrows, T, D, 1.0f,
				t->xc, D, opq->linear, D, 0.0f, u, T);
	qdb_rng_seed(&rng, t->c->seed ^ 0x6e657572616cULL);
	for (int j = 0; j < H; j++)
	{
		float	   *w = m->enc_w1 + (size_t) j * D;

		if (j < T)
		{
			float		mx = 0.0f;

			for (int i = 0; i < nrows; i++)
				mx = fmaxf(mx, fabsf(u[(size_t) i * T + j]));
			memcpy(w, opq->linear + (size_t) j * D, sizeof(float) * D);
			m->enc_b1[j] = 2.0f * mx + 1e-3f;
			m->enc_w2[(size_t) j * H + j] = 1.0f;
			m->enc_b2[j] = -m->enc_b1[j];
		}
		else
		{
			/* unit-length random directions: live units, silent until W2 learns */
			double		ss = 0.0;

			for (int i = 0; i < D; i++)
			{
				w[i] = (float) qdb_rng_gaussian(&rng);
				ss += (double) w[i] * w[i];
			}
			for (int i = 0; i < D; i++)
				w[i] /= (float) sqrt(ss);
		}
	}
	for (int i = 0; i < D; i++)
		for (int j = 0; j < T; j++)
			m->dec_w[(size_t) i * T + j] = opq->linear[(size_t) j * D + i];

	/* temperature scale: mean squared error of each sub-quantizer */
	for (int mm = 0; mm < t->s.M; mm++)
	{
		int			ds = t->s.dsub;
		int			ne = t->n_train < ESTIMATE_ROWS ? t->n_train : ESTIMATE_ROWS;
		double		sum = 0.0;

		for (int i = 0; i < ne; i++)
		{
			const float *zs = u + (size_t) i * T + (size_t) mm * ds;
			float		best = INFINITY;

			for (int k = 0; k < QDB_KSUB; k++)
				best = fminf(best, qdb_kernels.l2sq(zs, m->codebooks +
													((size_t) mm * QDB_KSUB + k) * ds, ds));
			sum += best;
		}
		t->tau_scale[mm] = (float) fmax(sum / ne, 1e-12);
	}

	/* margin: a share of the squared distance to the nearest neighbour */
	{
		int			ne = t->n_train < ESTIMATE_ROWS ? t->n_train : ESTIMATE_ROWS;
		double		sum = 0.0;

		for (int i = 0; i < ne; i++)
			sum += qdb_kernels.l2sq(u + (size_t) i * T, u + (size_t) t->nbr[(size_t) i * t->kk] * T, T);
		t->margin = MARGIN_SHARE * (float) (sum / ne);
	}
	qdb_free(t->a, u);
	return QDB_OK;
}

/*
 * Validation 10-recall@10 of the parameters in t->params: the training
 * rows encoded on ops, each validation row's ADC top 10 against the exact.
 */
static int
evaluate(Trainer *t, double *recall, double *entropy)
{
	int			M = t->s.M;
	size_t		hits = 0;
	int			rc;

	qdb_neural_unpack(t->model, t->params);
	for (int i0 = 0; i0 < t->n_train; i0 += t->max_rows)
	{
		int			b = t->n_train - i0 < t->max_rows ? t->n_train - i0 : t->max_rows;

		rc = t->ops->encode(t->st, t->xc + (size_t) i0 * t->s.dim, b,
							t->codes + (size_t) i0 * M);
		if (rc != QDB_OK)
			return ops_failed(t, rc);
	}
	for (int qi = 0; qi < t->n_val; qi++)
	{
		float		bias,
					dist[VAL_K];
		int			ids[VAL_K];
		int			len = 0;

		rc = qdb_compute_distance_table(t->model, t->xs + (size_t) (t->n_train + qi) * t->s.dim,
										t->table, &bias);
		if (rc != QDB_OK)
			return rc;
		for (int j = 0; j < t->n_train; j++)
		{
			qdb_topk_insert(dist, ids, &len, VAL_K,
							qdb_adc_distance(t->model, t->table, bias,
											 t->codes + (size_t) j * M), j);
		}
		for (int a = 0; a < len; a++)
			for (int g = 0; g < VAL_K; g++)
				hits += ids[a] == t->gt[(size_t) qi * VAL_K + g];
	}
	*recall = t->n_val > 0 ? (double) hits / ((double) t->n_val * VAL_K) : 0.0;

	/* code usage: entropy in bits of each sub-quantizer's histogram */
	*entropy = 0.0;
	for (int m = 0; m < M; m++)
	{
		int			hist[QDB_KSUB] = {0};

		for (int j = 0; j < t->n_train; j++)
			hist[t->codes[(size_t) j * M + m]]++;
		for (int k = 0; k < QDB_KSUB; k++)
			if (hist[k] > 0)
			{
				double		pk = (double) hist[k] / t->n_train;

				*entropy -= pk * log2(pk) / M;
			}
	}
	return QDB_OK;
}

static int
report_epoch(Trainer *t, int epoch, QdbNeuralEpoch *e)
{
	QdbEpochStats s;

	if (t->p.cb == NULL)
		return QDB_OK;
	s.stage = "neural";
	s.iter = epoch;
	s.iters = t->c->epochs;
	s.loss = e->total;
	s.seconds = qdb_now() - t->p.t0;
	s.neural = e;
	s.heartbeat = 0;
	s.measure = NULL;
	e->device = t->ops->name;
	return t->p.cb(&s, t->p.arg) ? QDB_ERR_CANCELLED : QDB_OK;
}

/* One epoch of steps over the training rows in a seeded order. */
static int
run_epoch(Trainer *t, int epoch, int *step_no, QdbNeuralEpoch *e)
{
	const QdbTrainConfig *c = t->c;
	int			D = t->s.dim;
	int			k = c->k_neighbors;
	int		   *perm;
	QdbRng		rng;
	QdbNeuralStep step;
	double		tau_rel,
				t0,
				busy = 0.0;
	long		rows = 0;
	int			steps = 0,
				rc = QDB_OK;

	perm = qdb_malloc(t->a, t->n_train, sizeof(int));
	if (!perm)
		return QDB_ERR_NOMEM;
	qdb_rng_seed(&rng, c->seed * 1000003ULL + (uint64_t) epoch);
	for (int i = 0; i < t->n_train; i++)
		perm[i] = i;
	for (int i = t->n_train - 1; i > 0; i--)
	{
		int			j = (int) qdb_rng_below(&rng, (uint64_t) i + 1);
		int			tmp = perm[i];

		perm[i] = perm[j];
		perm[j] = tmp;
	}
	tau_rel = c->epochs > 1 ?
		TAU_START * pow(TAU_END / TAU_START, (double) (epoch - 1) / (c->epochs - 1)) : TAU_START;
	for (int m = 0; m < t->s.M; m++)
		t->tau[m] = (float) tau_rel * t->tau_scale[m];
	memset(&step, 0, sizeof(step));
	step.tau = t->tau;
	step.w_recon = c->w_recon;
	step.w_cluster = c->w_cluster;
	step.w_diversity = c->w_diversity;
	step.w_commit = c->w_commit;
	step.w_triplet = c->w_triplet;
	step.margin = t->margin;
	memset(e, 0, sizeof(*e));

	for (int i0 = 0; i0 < t->n_train && rc == QDB_OK; i0 += t->B)
	{
		int			B = t->n_train - i0 < t->B ? t->n_train - i0 : t->B;
		QdbNeuralLosses l;
		float		norm;

		for (int b = 0; b < B; b++)
		{
			int			a = perm[i0 + b];
			const int  *nb = t->nbr + (size_t) a * t->kk;
			int			pos = nb[qdb_rng_below(&rng, k)];
			int			neg = nb[k + qdb_rng_below(&rng, t->kk - k)];

			memcpy(t->batch + (size_t) b * D, t->xc + (size_t) a * D, sizeof(float) * D);
			memcpy(t->batch + (size_t) (B + b) * D, t->xc + (size_t) pos * D, sizeof(float) * D);
			memcpy(t->batch + (size_t) (2 * B + b) * D, t->xc + (size_t) neg * D, sizeof(float) * D);
		}
		step.triplets = B;
		step.noise_seed = qdb_rng_next(&rng) | 1;
		t0 = qdb_now();
		rc = ops_failed(t, t->ops->step(t->st, t->batch, &step, &l));
		if (rc == QDB_OK)
			rc = ops_failed(t, t->ops->adam(t->st, c->lr, ++*step_no, c->clip, &norm));
		busy += qdb_now() - t0;
		if (rc != QDB_OK)
			break;
		if (!isfinite(l.total))
		{
			snprintf(t->err, t->errlen, "the loss is not finite at epoch %d; lower lr", epoch);
			rc = QDB_ERR_DATA;
			break;
		}
		e->total += l.total;
		e->recon += l.recon;
		e->cluster += l.cluster;
		e->diversity += l.diversity;
		e->commit += l.commit;
		e->triplet += l.triplet;
		rows += 3L * B;
		if (++steps % HEARTBEAT_STEPS == 0)
			rc = heartbeat(t, "neural");
	}
	if (steps > 0)
	{
		e->total /= steps;
		e->recon /= steps;
		e->cluster /= steps;
		e->diversity /= steps;
		e->commit /= steps;
		e->triplet /= steps;
	}
	e->samples_per_sec = busy > 0 ? rows / busy : 0.0;
	e->tau = tau_rel;
	qdb_free(t->a, perm);
	return rc;
}

static void
trainer_free(Trainer *t)
{
	if (t->st)
		t->ops->destroy(t->st);
	t->st = NULL;
	qdb_free(t->a, t->xs);
	qdb_free(t->a, t->xc);
	qdb_free(t->a, t->nbr);
	qdb_free(t->a, t->gt);
	qdb_free(t->a, t->params);
	qdb_free(t->a, t->best);
	qdb_free(t->a, t->batch);
	qdb_free(t->a, t->codes);
	qdb_free(t->a, t->table);
	qdb_free(t->a, t->tau_scale);
	qdb_free(t->a, t->tau);
}

/* Step 3: the rows, the split, the triplet neighbours and the ground truth. */
static int
prepare_rows(Trainer *t, const float *x, size_t n)
{
	const QdbTrainConfig *c = t->c;
	int			D = c->dim;
	size_t		n_use = n < (size_t) c->neural_rows ? n : (size_t) c->neural_rows;
	int			rc;

	t->n_val = (int) (n_use / 10 < VAL_MAX_ROWS ? n_use / 10 : VAL_MAX_ROWS);
	t->n_train = (int) n_use - t->n_val;
	t->kk = 3 * c->k_neighbors;
	if (t->kk >= t->n_train || t->n_val < 1 || t->n_train <= VAL_K)
	{
		snprintf(t->err, t->errlen,
				 "%d training rows are too few for k_neighbors %d (3 k must stay below them)",
				 t->n_train, c->k_neighbors);
		return QDB_ERR_DATA;
	}
	t->xs = qdb_malloc(t->a, n_use * D, sizeof(float));
	t->xc = qdb_malloc(t->a, n_use * D, sizeof(float));
	t->nbr = qdb_malloc(t->a, (size_t) t->n_train * t->kk, sizeof(int));
	t->gt = qdb_malloc(t->a, (size_t) t->n_val * VAL_K, sizeof(int));
	if (!t->xs || !t->xc || !t->nbr || !t->gt)
		return QDB_ERR_NOMEM;
	if (n_use < n)
		qdb_sample_rows(x, n, D, n_use, c->seed ^ 0x6b6e6eULL, t->xs);
	else
		memcpy(t->xs, x, sizeof(float) * n_use * D);
	rc = qdb_knn_l2(t->a, t->xs, t->n_train, t->xs, t->n_train, D, t->kk, 1, t->nbr,
					knn_cancel, t);
	if (rc == QDB_OK)
		rc = qdb_knn_l2(t->a, t->xs, t->n_train, t->xs + (size_t) t->n_train * D,
						t->n_val, D, VAL_K, 0, t->gt, knn_cancel, t);
	if (rc == QDB_OK)
		rc = qdb_progress_report(&t->p, "neighbours", 1, 1, 0);
	return rc;
}

int
qdb_neural_train(const QdbAlloc *a, const float *x, size_t n, const QdbTrainConfig *c,
				 const QdbNeuralOps *ops, QdbModel *out, QdbProgress cb, void *arg,
				 char *err, size_t errlen)
{
	Trainer		t;
	QdbTrainConfig oc;
	QdbModel	opq;
	QdbNeuralEpoch e;
	double		best_recall,
				entropy;
	int			M = c->M;
	int			T = qdb_config_dim_pq(c);
	int			H = c->hidden > 0 ? c->hidden : (2 * T < 1024 ? 2 * T : 1024);
	int			since_best = 0,
				step_no = 0,
				rc;
	char		dummy[8];

	memset(&t, 0, sizeof(t));
	memset(&opq, 0, sizeof(opq));
	memset(out, 0, sizeof(*out));
	t.a = a;
	t.c = c;
	t.ops = ops;
	t.err = err ? err : dummy;
	t.errlen = err ? errlen : sizeof(dummy);
	t.p.cb = cb;
	t.p.arg = arg;
	t.p.t0 = qdb_now();
	if (ops == NULL || ops->version != QDB_TRAINER_API_VERSION)
		return QDB_ERR_ARG;
	if (H < T)
		H = T;
	if (c->hidden > 0 && c->hidden < T)
	{
		snprintf(t.err, t.errlen, "hidden %d is narrower than target_dim %d", c->hidden, T);
		return QDB_ERR_ARG;
	}

	/* 1: opq on the whole sample */
	oc = *c;
	oc.kind = QDB_KIND_OPQ;
	oc.dim_pq = T;
	oc.opq_error = 0;			/* the encoder's start: every byte a sub-quantizer */
	rc = qdb_opq_train(a, x, n, &oc, &opq, &t.p);
	if (rc == QDB_OK)
		rc = prepare_rows(&t, x, n);
	if (rc == QDB_OK)
		rc = qdb_model_alloc_neural(out, a, c->metric, c->dim, T, M, H);
	if (rc != QDB_OK)
		goto done;
	t.model = out;
	t.s.dim = c->dim;
	t.s.hidden = H;
	t.s.dim_pq = T;
	t.s.M = M;
	t.s.K = QDB_KSUB;
	t.s.dsub = T / M;
	qdb_neural_layout(&t.s, &t.l);
	t.B = c->batch_size < t.n_train ? c->batch_size : t.n_train;
	t.max_rows = 3 * t.B > 1024 ? 3 * t.B : 1024;
	t.params = qdb_malloc(a, t.l.total, sizeof(float));
	t.best = qdb_malloc(a, t.l.total, sizeof(float));
	t.batch = qdb_malloc(a, (size_t) 3 * t.B * c->dim, sizeof(float));
	t.codes = qdb_malloc(a, (size_t) t.n_train, M);
	t.table = qdb_malloc(a, qdb_table_floats(out), sizeof(float));
	t.tau_scale = qdb_malloc(a, M, sizeof(float));
	t.tau = qdb_malloc(a, M, sizeof(float));
	if (!t.params || !t.best || !t.batch || !t.codes || !t.table || !t.tau_scale || !t.tau)
	{
		rc = QDB_ERR_NOMEM;
		goto done;
	}
	rc = init_from_opq(&t, &opq);
	qdb_model_free(&opq);
	if (rc != QDB_OK)
		goto done;
	qdb_neural_pack(out, t.params);

	/* 2: the step's state on the backend, and the starting point's recall */
	rc = ops->create(&t.st, &t.s, t.max_rows, a, t.err, t.errlen);
	if (rc == QDB_OK)
		rc = ops_failed(&t, ops->set_params(t.st, t.params));
	if (rc == QDB_OK)
		rc = evaluate(&t, &best_recall, &entropy);
	if (rc != QDB_OK)
		goto done;
	memcpy(t.best, t.params, sizeof(float) * t.l.total);
	memset(&e, 0, sizeof(e));
	e.val_recall = best_recall;
	e.code_entropy = entropy;
	e.best = 1;
	rc = report_epoch(&t, 0, &e);

	/* 3: epochs, keeping the best */
	for (int epoch = 1; rc == QDB_OK && epoch <= c->epochs; epoch++)
	{
		rc = run_epoch(&t, epoch, &step_no, &e);
		if (rc == QDB_OK)
			rc = ops_failed(&t, ops->get_params(t.st, t.params));
		if (rc == QDB_OK)
			rc = evaluate(&t, &e.val_recall, &e.code_entropy);
		if (rc != QDB_OK)
			break;
		e.best = e.val_recall > best_recall;
		if (e.best)
		{
			best_recall = e.val_recall;
			memcpy(t.best, t.params, sizeof(float) * t.l.total);
			since_best = 0;
		}
		else
			since_best++;
		rc = report_epoch(&t, epoch, &e);
		if (since_best >= c->patience)
			break;
	}
	if (rc == QDB_OK)
	{
		qdb_neural_unpack(out, t.best);
		out->config = *c;
		out->config.dim_pq = T;
		out->config.hidden = H;
	}

done:
	qdb_model_free(&opq);
	trainer_free(&t);
	if (rc != QDB_OK)
		qdb_model_free(out);
	return rc;
}
