/*
 * nn.h
 *	  CPU reference layers for the learned compressor (kind "neural"): a
 *	  linear layer, ReLU, straight-through Gumbel-softmax assignment to one
 *	  sub-quantizer's codebook, the training losses and Adam.
 *
 * Tensors are row-major float arrays; B is the batch.  Each layer is a
 * *_forward / *_backward pair, and every backward ADDS into its gradient
 * buffers (the caller zeroes them once per step), so that losses and layers
 * sharing a tensor simply sum.  Nothing here prints or aborts: functions
 * that can fail return a QdbStatus, the rest cannot fail.
 */
#ifndef QDB_NN_H
#define QDB_NN_H

#include <stddef.h>

#include "qdb_internal.h"
#include "qdb_trainer.h"

/*
 * out (B,OC) = inp (B,C) w^T + b, for w (OC,C) and b (OC); b may be NULL.
 * (C, not I: <complex.h>, which cblas.h pulls in, defines I.)
 */
void		qdb_nn_linear_forward(float *out, const float *inp, const float *w,
						   const float *b, int B, int C, int OC);

/*
 * Given dout (B,OC): dinp (B,C) += dout w, dw (OC,C) += dout^T inp,
 * db (OC) += column sums of dout.  dinp and db may be NULL (first layer,
 * no bias).
 */
void		qdb_nn_linear_backward(float *dinp, float *dw, float *db, const float *dout,
							const float *inp, const float *w, int B, int C, int OC);

/* out (n) = max(inp, 0); out may equal inp */
void		qdb_nn_relu_forward(float *out, const float *inp, size_t n);

/* dinp (n) += dout where inp > 0; inp is the forward's input */
void		qdb_nn_relu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/*
 * Activations the Gumbel assignment keeps for its backward pass, one
 * allocation split into named tensors (see qdb_nn_gumbel_acts_init).
 */
typedef struct QdbGumbelActs
{
	int			B;				/* rows allocated for */
	int			K;				/* centroids */
	float		tau;			/* temperature of the last forward */
	float	   *logits;			/* (B,K) -||z - c_k||^2 / tau, no noise */
	float	   *soft;			/* (B,K) softmax(logits + g) */
	float	   *dlogits;		/* (B,K) backward's scratch */
	int		   *idx;			/* (B) argmax of soft: the hard code */
} QdbGumbelActs;

/* Allocates acts for up to B rows of K centroids; QDB_ERR_ARG or _NOMEM */
int			qdb_nn_gumbel_acts_init(const QdbAlloc *a, QdbGumbelActs *acts, int B, int K);
void		qdb_nn_gumbel_acts_free(const QdbAlloc *a, QdbGumbelActs *acts);

/*
 * Assigns each sub-vector z (B,d) to codebook c (K,d):
 *   logits = -||z - c_k||^2 / tau, soft = softmax(logits + g),
 *   idx = argmax soft (lowest index on ties), hard = one-hot(idx),
 * with g = noise (B,K), standard Gumbel draws (neural.h has the hash that
 * makes them), or g = 0 when noise is NULL (evaluation).  tau > 0 is the temperature; the caller
 * anneals it.  With straight_through, q (B,d) = hard c = c[idx]; without,
 * q = soft c (the relaxed forward).  B may be below acts->B.
 * QDB_ERR_ARG on bad sizes or tau.
 */
int			qdb_nn_gumbel_quantize_forward(float *q, QdbGumbelActs *acts, const float *z,
									const float *c, int B, int K, int d,
									float tau, const float *noise, int straight_through);

/*
 * Straight-through backward, the same whichever forward ran: gradients
 * flow as if q = soft c.  Given dq (B,d), and dsoft_extra (B,K) from a
 * loss on the soft assignments (e.g. qdb_nn_entropy_loss_backward) or NULL:
 *   dsoft   = dq c^T + dsoft_extra
 *   dlogits = soft * (dsoft - rowsum(soft * dsoft))	(softmax)
 *   dz     += sum_k dlogits_k * -2 (z - c_k) / tau
 *   dc_k   += sum_b soft_bk dq_b + dlogits_bk * 2 (z_b - c_k) / tau
 * dq may be NULL (only dsoft_extra); dz or dc may be NULL.  z and c are
 * the forward's inputs.
 */
void		qdb_nn_gumbel_quantize_backward(float *dz, float *dc, const float *dq,
									 const float *dsoft_extra, QdbGumbelActs *acts,
									 const float *z, const float *c,
									 int B, int K, int d);

/*
 * Losses: *_forward returns the loss; *_backward adds weight times its
 * gradient, so weight is the loss's coefficient in the total.
 */

/* (1/B) sum_b ||x_b - xhat_b||^2 for x, xhat (B,D) */
float		qdb_nn_mse_loss_forward(const float *x, const float *xhat, int B, int D);
/* dxhat (B,D) += weight * 2 (xhat - x) / B; x is the data, no gradient */
void		qdb_nn_mse_loss_backward(float *dxhat, const float *x, const float *xhat,
							  int B, int D, float weight);

/* Commitment (1/B) sum_b ||z_b - sg(q_b)||^2 for z, q (B,d) */
float		qdb_nn_commitment_loss_forward(const float *z, const float *q, int B, int d);
/* dz (B,d) += weight * 2 (z - q) / B; q is under stop-gradient */
void		qdb_nn_commitment_loss_backward(float *dz, const float *z, const float *q,
									 int B, int d, float weight);

/*
 * Codebook usage: pbar (K) = mean over the batch of soft (B,K); returns
 * sum_k pbar_k log pbar_k, the negative entropy, so minimising it spreads
 * the batch over the codebook (0 log 0 counts as 0).
 */
float		qdb_nn_entropy_loss_forward(const float *soft, int B, int K);
/* dsoft (B,K) += weight * (log pbar_k + 1) / B: pass it to the Gumbel backward */
void		qdb_nn_entropy_loss_backward(float *dsoft, const float *soft, int B, int K,
								  float weight);

/*
 * Triplet: (1/B) sum_b max(0, ||a_b - p_b||^2 - ||a_b - n_b||^2 + margin)
 * for anchors a, positives p and negatives n (B,D).
 */
float		qdb_nn_triplet_loss_forward(const float *a, const float *p, const float *n,
								 int B, int D, float margin);
/*
 * For each active triplet (hinge > 0): da += 2 (n - p), dp += -2 (a - p),
 * dn += 2 (a - n), each times weight / B.  Any of da, dp, dn may be NULL.
 */
void		qdb_nn_triplet_loss_backward(float *da, float *dp, float *dn,
								  const float *a, const float *p, const float *n,
								  int B, int D, float margin, float weight);

/*
 * One Adam step (t >= 1, counting from 1) over n parameters with moments
 * m and v (zeroed before step 1).  When clip > 0 and the gradients' global
 * L2 norm exceeds it, the gradients are scaled to norm clip first (grads
 * itself is not changed).  Returns the norm before clipping.
 */
float		qdb_nn_adam_update(float *params, const float *grads, float *m, float *v,
						size_t n, float lr, float beta1, float beta2, float eps,
						int t, float clip);

#endif							/* QDB_NN_H */
