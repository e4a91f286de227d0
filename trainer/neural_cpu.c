/*
 * neural_cpu.c
 *	  The cpu backend's training step of the neural kind (QdbNeuralOps): the
 *	  reference the cuda backend is checked against.  It chains the layers
 *	  of nn.c as neural.h defines the step; products go through BLAS.
 */
#include <math.h>
#include <stdio.h>

#include "neural.h"
#include "nn.h"
#include "pq.h"
#include "qdb_internal.h"

typedef struct CpuNeural
{
	const QdbAlloc *a;
	QdbNeuralShape s;
	QdbNeuralLayout l;
	int			max_rows;
	float	   *params,
			   *grads,
			   *adam_m,
			   *adam_v;
	/* activations and their gradients, max_rows rows each */
	float	   *hpre,			/* (R,H) */
			   *h,
			   *dh,
			   *dhpre,
			   *z,				/* (R,T) */
			   *q,
			   *dz,
			   *dq,
			   *xhat,			/* (R,D) */
			   *dxhat,
			   *zsub,			/* (M,R,dsub): z per sub-quantizer */
			   *qsub,			/* (R,dsub) */
			   *noise,			/* (R,K) */
			   *dsoft;			/* (R,K) */
	QdbGumbelActs *acts;		/* (M) */
	char		err[160];
} CpuNeural;

static void
cpu_destroy(void *st)
{
	CpuNeural  *c = st;
	const QdbAlloc *a;
	float	  **bufs[] = {&c->params, &c->grads, &c->adam_m, &c->adam_v, &c->hpre,
		&c->h, &c->dh, &c->dhpre, &c->z, &c->q, &c->dz, &c->dq, &c->xhat,
	&c->dxhat, &c->zsub, &c->qsub, &c->noise, &c->dsoft};

	if (c == NULL)
		return;
	a = c->a;
	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
		qdb_free(a, *bufs[i]);
	if (c->acts)
		for (int m = 0; m < c->s.M; m++)
			qdb_nn_gumbel_acts_free(a, &c->acts[m]);
	qdb_free(a, c->acts);
	qdb_free(a, c);
}

static int
cpu_create(void **st, const QdbNeuralShape *s, int max_rows, const QdbAlloc *a,
		   char *err, size_t errlen)
{
	CpuNeural  *c;
	size_t		R = (size_t) max_rows;
	int			ok = 1;

	if (st == NULL || s == NULL || max_rows < 1 || s->M < 1 || s->K < 1 ||
		s->dsub < 1 || s->dim_pq != s->M * s->dsub || s->dim < 1 || s->hidden < 1)
		return QDB_ERR_ARG;
	c = qdb_calloc(a, 1, sizeof(CpuNeural));
	if (c == NULL)
		return QDB_ERR_NOMEM;
	c->a = a;
	c->s = *s;
	c->max_rows = max_rows;
	qdb_neural_layout(s, &c->l);
#define ALLOC(f, n) ok &= (c->f = qdb_calloc(a, (n), sizeof(float))) != NULL
	ALLOC(params, c->l.total);
	ALLOC(grads, c->l.total);
	ALLOC(adam_m, c->l.total);
	ALLOC(adam_v, c->l.total);
	ALLOC(hpre, R * s->hidden);
	ALLOC(h, R * s->hidden);
	ALLOC(dh, R * s->hidden);
	ALLOC(dhpre, R * s->hidden);
	ALLOC(z, R * s->dim_pq);
	ALLOC(q, R * s->dim_pq);
	ALLOC(dz, R * s->dim_pq);
	ALLOC(dq, R * s->dim_pq);
	ALLOC(xhat, R * s->dim);
	ALLOC(dxhat, R * s->dim);
	ALLOC(zsub, R * s->dim_pq);
	ALLOC(qsub, R * s->dsub);
	ALLOC(noise, R * s->K);
	ALLOC(dsoft, R * s->K);
#undef ALLOC
	c->acts = ok ? qdb_calloc(a, s->M, sizeof(QdbGumbelActs)) : NULL;
	for (int m = 0; ok && c->acts && m < s->M; m++)
		ok = qdb_nn_gumbel_acts_init(a, &c->acts[m], max_rows, s->K) == QDB_OK;
	if (!ok || c->acts == NULL)
	{
		cpu_destroy(c);
		if (err && errlen)
			snprintf(err, errlen, "out of memory for the training state");
		return QDB_ERR_NOMEM;
	}
	*st = c;
	return QDB_OK;
}

static int
cpu_set_params(void *st, const float *params)
{
	CpuNeural  *c = st;

	memcpy(c->params, params, sizeof(float) * c->l.total);
	memset(c->adam_m, 0, sizeof(float) * c->l.total);
	memset(c->adam_v, 0, sizeof(float) * c->l.total);
	return QDB_OK;
}

static int
cpu_get_params(void *st, float *params)
{
	CpuNeural  *c = st;

	memcpy(params, c->params, sizeof(float) * c->l.total);
	return QDB_OK;
}

static int
cpu_get_grads(void *st, float *grads)
{
	CpuNeural  *c = st;

	memcpy(grads, c->grads, sizeof(float) * c->l.total);
	return QDB_OK;
}

/* z (rows,T) = encoder of x (rows,D); keeps hpre and h for the backward */
static void
encoder_forward(CpuNeural *c, const float *x, int rows)
{
	const QdbNeuralShape *s = &c->s;
	const float *p = c->params;

	qdb_nn_linear_forward(c->hpre, x, p + c->l.w1, p + c->l.b1, rows, s->dim, s->hidden);
	qdb_nn_relu_forward(c->h, c->hpre, (size_t) rows * s->hidden);
	qdb_nn_linear_forward(c->z, c->h, p + c->l.w2, p + c->l.b2, rows, s->hidden, s->dim_pq);
}

/* Sub-quantizer m's columns of a (rows,T) into sub (rows,dsub). */
static void
gather_sub(const float *a, float *sub, int rows, int T, int dsub, int m)
{
	for (int r = 0; r < rows; r++)
		memcpy(sub + (size_t) r * dsub, a + (size_t) r * T + (size_t) m * dsub,
			   sizeof(float) * dsub);
}

static int
cpu_step(void *st, const float *x, const QdbNeuralStep *step, QdbNeuralLosses *out)
{
	CpuNeural  *c = st;
	const QdbNeuralShape *s = &c->s;
	const QdbNeuralLayout *l = &c->l;
	const float *p = c->params;
	float	   *g = c->grads;
	int			B = step->triplets;
	int			R = 3 * B;
	int			T = s->dim_pq,
				K = s->K,
				ds = s->dsub;
	size_t		RT = (size_t) R * T;
	size_t		subsz = (size_t) R * ds;
	double		div = 0.0;
	float		gc = step->w_cluster * 2.0f / R;

	if (B < 1 || R > c->max_rows)
		return QDB_ERR_ARG;

	/* forward: encoder, the M assignments, decoder */
	encoder_forward(c, x, R);
	for (int m = 0; m < s->M; m++)
	{
		float	   *zs = c->zsub + m * subsz;
		float	   *qs = c->qsub;	/* staging for q_m, copied into q */
		int			rc;

		gather_sub(c->z, zs, R, T, ds, m);
		if (step->noise_seed)
			for (int r = 0; r < R; r++)
				for (int k = 0; k < K; k++)
					c->noise[(size_t) r * K + k] =
						qdb_gumbel_hash(step->noise_seed, QDB_GUMBEL_INDEX(r, m, k, s->M, K));
		rc = qdb_nn_gumbel_quantize_forward(qs, &c->acts[m], zs,
											p + l->codebooks + (size_t) m * K * ds,
											R, K, ds, step->tau[m],
											step->noise_seed ? c->noise : NULL, 1);
		if (rc != QDB_OK)
			return rc;
		for (int r = 0; r < R; r++)
			memcpy(c->q + (size_t) r * T + (size_t) m * ds, qs + (size_t) r * ds,
				   sizeof(float) * ds);
		div += qdb_nn_entropy_loss_forward(c->acts[m].soft, R, K);
	}
	qdb_nn_linear_forward(c->xhat, c->q, p + l->dec_w, p + l->dec_b, R, T, s->dim);

	out->recon = qdb_nn_mse_loss_forward(x, c->xhat, R, s->dim);
	out->commit = qdb_nn_commitment_loss_forward(c->z, c->q, R, T);
	out->cluster = out->commit;	/* the same distance; only the gradient differs */
	out->diversity = div / s->M;
	out->triplet = qdb_nn_triplet_loss_forward(c->z, c->q + (size_t) B * T,
											   c->q + (size_t) 2 * B * T, B, T,
											   step->margin);
	out->total = step->w_recon * out->recon + step->w_cluster * out->cluster +
		step->w_diversity * out->diversity + step->w_commit * out->commit +
		step->w_triplet * out->triplet;

	/* backward */
	memset(g, 0, sizeof(float) * l->total);
	memset(c->dxhat, 0, sizeof(float) * (size_t) R * s->dim);
	memset(c->dq, 0, sizeof(float) * RT);
	memset(c->dz, 0, sizeof(float) * RT);
	qdb_nn_mse_loss_backward(c->dxhat, x, c->xhat, R, s->dim, step->w_recon);
	qdb_nn_linear_backward(c->dq, g + l->dec_w, g + l->dec_b, c->dxhat, c->q,
						   p + l->dec_w, R, T, s->dim);
	qdb_nn_triplet_loss_backward(c->dz, c->dq + (size_t) B * T, c->dq + (size_t) 2 * B * T,
								 c->z, c->q + (size_t) B * T, c->q + (size_t) 2 * B * T,
								 B, T, step->margin, step->w_triplet);
	qdb_nn_commitment_loss_backward(c->dz, c->z, c->q, R, T, step->w_commit);
	for (int m = 0; m < s->M; m++)
	{
		float	   *cb = (float *) p + l->codebooks + (size_t) m * K * ds;
		float	   *dcb = g + l->codebooks + (size_t) m * K * ds;
		const float *zs = c->zsub + m * subsz;
		const int  *idx = c->acts[m].idx;

		/*
		 * Straight through: z gets dq as it is, and the chosen centroid gets
		 * dq (the exact gradient of q = c[idx]) plus the cluster loss's pull
		 * towards sg(z).
		 */
		for (int r = 0; r < R; r++)
			for (int j = 0; j < ds; j++)
			{
				size_t		o = (size_t) r * T + (size_t) m * ds + j;
				size_t		co = (size_t) idx[r] * ds + j;

				c->dz[o] += c->dq[o];
				dcb[co] += c->dq[o] + gc * (cb[co] - zs[(size_t) r * ds + j]);
			}
		/* diversity: through the soft assignment, to the codebooks */
		if (step->w_diversity > 0.0f)
		{
			memset(c->dsoft, 0, sizeof(float) * (size_t) R * K);
			qdb_nn_entropy_loss_backward(c->dsoft, c->acts[m].soft, R, K,
										 step->w_diversity / s->M);
			qdb_nn_gumbel_quantize_backward(NULL, dcb, NULL, c->dsoft, &c->acts[m],
											zs, cb, R, K, ds);
		}
	}
	memset(c->dh, 0, sizeof(float) * (size_t) R * s->hidden);
	memset(c->dhpre, 0, sizeof(float) * (size_t) R * s->hidden);
	qdb_nn_linear_backward(c->dh, g + l->w2, g + l->b2, c->dz, c->h, p + l->w2,
						   R, s->hidden, T);
	qdb_nn_relu_backward(c->dhpre, c->dh, c->hpre, (size_t) R * s->hidden);
	qdb_nn_linear_backward(NULL, g + l->w1, g + l->b1, c->dhpre, x, p + l->w1,
						   R, s->dim, s->hidden);
	return QDB_OK;
}

static int
cpu_adam(void *st, float lr, int t, float clip, float *grad_norm)
{
	CpuNeural  *c = st;
	float		norm;

	norm = qdb_nn_adam_update(c->params, c->grads, c->adam_m, c->adam_v, c->l.total,
							  lr, 0.9f, 0.999f, 1e-8f, t, clip);
	if (grad_norm)
		*grad_norm = norm;
	return isfinite(norm) ? QDB_OK : QDB_ERR_DATA;
}

/* Runs the encoder over rows <= max_rows; 1 when there are none. */
static int
encode_rows(CpuNeural *c, const float *x, int rows)
{
	if (rows < 0 || rows > c->max_rows)
		return QDB_ERR_ARG;
	if (rows == 0)
		return 1;
	encoder_forward(c, x, rows);
	return QDB_OK;
}

static int
cpu_embed(void *st, const float *x, int rows, float *z)
{
	CpuNeural  *c = st;
	int			rc = encode_rows(c, x, rows);

	if (rc == QDB_OK)
		memcpy(z, c->z, sizeof(float) * (size_t) rows * c->s.dim_pq);
	return rc == 1 ? QDB_OK : rc;
}

static int
cpu_encode(void *st, const float *x, int rows, uint8_t *codes)
{
	CpuNeural  *c = st;
	int			rc = encode_rows(c, x, rows);

	if (rc == QDB_OK)
		rc = qdb_pq_encode(c->a, c->params + c->l.codebooks, c->s.dim_pq, c->s.M,
						   c->z, rows, codes, NULL);
	return rc == 1 ? QDB_OK : rc;
}

static const char *
cpu_last_error(void *st)
{
	CpuNeural  *c = st;

	return c && c->err[0] ? c->err : "no error";
}

static const QdbNeuralOps cpu_ops = {
	QDB_TRAINER_API_VERSION,
	"cpu",
	cpu_create,
	cpu_destroy,
	cpu_set_params,
	cpu_get_params,
	cpu_get_grads,
	cpu_step,
	cpu_adam,
	cpu_embed,
	cpu_encode,
	cpu_last_error
};

const QdbNeuralOps *
qdb_neural_cpu_ops(void)
{
	return &cpu_ops;
}
