/*
 * neural.h
 *	  The learned compressor (kind "neural"): its parameters, the training
 *	  step every backend implements, and the training loop they share.
 *
 * Shapes are written with the letters of QdbNeuralShape, which the code
 * also uses for short locals: D = dim, H = hidden, T = dim_pq, M
 * sub-quantizers, K = ksub; R rows of a step, B anchors.
 *
 * Model, on rows x already normalised (cosine) and centred (x - mean):
 *   h    = relu(x W1^T + b1)				W1 (H,D), b1 (H)
 *   z    = h W2^T + b2						W2 (T,H), b2 (T): the encoder
 *   q_m  = codebook_m[argmax(-|z_m - c|^2 / tau_m + gumbel)]	(M,K,T/M)
 *   xhat = q Wd^T + bd						Wd (D,T), bd (D): the decoder
 * Encoding keeps only z and the nearest centroids; ADC compares the
 * encoded query z(q) with the centroids, as for pq and opq.
 *
 * One training step on R = 3B rows (anchors, then one positive and one
 * negative per anchor) computes, with sg() a stop-gradient:
 *   recon     = (1/R) sum_r |x_r - xhat_r|^2
 *   cluster   = (1/R) sum_r |sg(z_r) - q_r|^2	(moves the centroids only)
 *   commit    = (1/R) sum_r |z_r - sg(q_r)|^2	(moves the encoder only)
 *   diversity = (1/M) sum_m sum_k pbar_mk log pbar_mk, pbar_m the batch mean
 *               of the soft assignments (negative entropy of code usage)
 *   triplet   = (1/B) sum_b max(0, |z_a - q_p|^2 - |z_a - q_n|^2 + margin)
 *   total     = the weighted sum
 * and the gradients of total for every parameter.  The assignment's
 * forward is the hard Gumbel sample; its backward is straight through: dq
 * passes to z unchanged and to the chosen centroid c[idx] (the exact
 * gradient of q = c[idx]), and the diversity loss reaches the codebooks
 * through the soft assignment (nn.h's Gumbel backward with dq = NULL, dz
 * = NULL).  The soft path's gradient to z scales with 1/tau, and at the
 * temperatures where the hard sample is not mostly noise it swamped the
 * clipped update and lowered validation recall; README has the runs.  The
 * Gumbel noise is a function of (seed, element), so every backend draws
 * the same noise and parity tests can compare steps.
 */
#ifndef QDB_NEURAL_H
#define QDB_NEURAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "qdb_trainer.h"

typedef struct QdbNeuralShape
{
	int			dim;			/* D */
	int			hidden;			/* H */
	int			dim_pq;			/* T = M * dsub, the encoder's output */
	int			M;
	int			K;				/* QDB_KSUB */
	int			dsub;
} QdbNeuralShape;

/* Offsets (in floats) of each tensor in the flat parameter vector. */
typedef struct QdbNeuralLayout
{
	size_t		w1,
				b1,
				w2,
				b2,
				codebooks,
				dec_w,
				dec_b,
				total;
} QdbNeuralLayout;

/* In order, no padding; inline so that cuda/ takes the same layout. */
static inline void
qdb_neural_layout(const QdbNeuralShape *s, QdbNeuralLayout *l)
{
	size_t		at = 0;

	l->w1 = at;
	at += (size_t) s->hidden * s->dim;
	l->b1 = at;
	at += s->hidden;
	l->w2 = at;
	at += (size_t) s->dim_pq * s->hidden;
	l->b2 = at;
	at += s->dim_pq;
	l->codebooks = at;
	at += (size_t) s->M * s->K * s->dsub;
	l->dec_w = at;
	at += (size_t) s->dim * s->dim_pq;
	l->dec_b = at;
	at += s->dim;
	l->total = at;
}

/* neural_model.c: the parameters inside a QdbModel of kind neural */
void		qdb_neural_shape_of(const QdbModel *m, QdbNeuralShape *s);
void		qdb_neural_pack(const QdbModel *m, float *params);	/* layout.total */
void		qdb_neural_unpack(QdbModel *m, const float *params);
void		qdb_neural_encode_one(const QdbModel *m, const float *v, float *y);
int			qdb_neural_encode_rows(const QdbModel *m, const float *x, size_t n, float *y);
void		qdb_neural_decode_rows(const QdbModel *m, const float *y, size_t n, float *x);

typedef struct QdbNeuralStep
{
	int			triplets;		/* B; the rows are 3B */
	const float *tau;			/* (M) temperature of each sub-quantizer */
	uint64_t	noise_seed;		/* 0: no Gumbel noise */
	float		w_recon,
				w_cluster,
				w_diversity,
				w_commit,
				w_triplet;
	float		margin;			/* triplet margin, squared-distance units */
} QdbNeuralStep;

typedef struct QdbNeuralLosses
{
	double		total,
				recon,
				cluster,
				diversity,
				commit,
				triplet;
} QdbNeuralLosses;

/*
 * The math of training, implemented by the cpu (neural_cpu.c) and the cuda
 * (cuda/) backends: the one table of the training seam that differs per
 * device (qdb_trainer.h).  Host pointers everywhere; a backend keeps its own
 * copies of parameters, gradients, Adam moments and activations.  Each
 * function returns a QdbStatus; on QDB_ERR_DEVICE last_error says why.
 * The cuda object exports it, so any change bumps QDB_TRAINER_API_VERSION.
 */
struct QdbNeuralOps
{
	int			version;		/* QDB_TRAINER_API_VERSION */
	const char *name;			/* "cpu" | "cuda" */
	/* state for batches of up to max_rows rows (max_rows >= 3 * triplets) */
	int			(*create) (void **st, const QdbNeuralShape *s, int max_rows,
						   const QdbAlloc *a, char *err, size_t errlen);
	void		(*destroy) (void *st);	/* frees host and device memory */
	/* params (layout.total): upload; zeroes the Adam moments */
	int			(*set_params) (void *st, const float *params);
	int			(*get_params) (void *st, float *params);
	int			(*get_grads) (void *st, float *grads);
	/* x (3B, D): forward and backward of one step; gradients start from 0 */
	int			(*step) (void *st, const float *x, const QdbNeuralStep *step,
						 QdbNeuralLosses *out);
	/* Adam (beta1 0.9, beta2 0.999, eps 1e-8), t from 1, global-norm clip */
	int			(*adam) (void *st, float lr, int t, float clip, float *grad_norm);
	/* z (rows, T) of x (rows, D), rows <= max_rows */
	int			(*embed) (void *st, const float *x, int rows, float *z);
	/* codes (rows, M): nearest centroid of each sub-vector of z(x) */
	int			(*encode) (void *st, const float *x, int rows, uint8_t *codes);
	const char *(*last_error) (void *st);
};

/* The entry point of the cuda backend's shared object (dlsym). */
typedef const QdbNeuralOps *(*QdbNeuralOpsEntry) (int version);
#define QDB_CUDA_ENTRY_SYMBOL	"qdb_cuda_neural_ops"

/*
 * Standard Gumbel noise for element i of a step seeded with seed: a
 * splitmix64 hash mapped into (0, 1), then -log(-log u).  Plain C that nvcc
 * compiles for the device too.
 */
#ifdef __CUDACC__
#define QDB_HOST_DEVICE __host__ __device__
#else
#define QDB_HOST_DEVICE
#endif

static inline QDB_HOST_DEVICE float
qdb_gumbel_hash(uint64_t seed, uint64_t i)
{
	uint64_t	z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
	double		u;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	z ^= z >> 31;
	u = ((double) (z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
	return (float) -log(-log(u));
}

/*
 * Gumbel noise element index of (row r, sub-quantizer m, centroid k) in a
 * step of M sub-quantizers of K centroids.
 */
#define QDB_GUMBEL_INDEX(r, m, k, M, K) \
	(((uint64_t) (r) * (uint64_t) (M) + (uint64_t) (m)) * (uint64_t) (K) + (uint64_t) (k))

/*
 * Trains the neural kind on x (n rows of c->dim, normalised under cosine)
 * with ops: PCA/OPQ initialisation on the CPU, then epochs of steps on
 * ops, a validation split, the best checkpoint and early stopping.
 * out gets a model of kind neural allocated with a.
 */
int			qdb_neural_train(const QdbAlloc *a, const float *x, size_t n,
							 const QdbTrainConfig *c, const QdbNeuralOps *ops,
							 QdbModel *out, QdbProgress cb, void *arg,
							 char *err, size_t errlen);

/*
 * train_driver.c: training as every backend does it (checks, sample, cosine
 * normalisation, the kind's trainer), the neural kind's steps on nn_ops.
 */
int			qdb_train_sample(const QdbAlloc *a, const float *x, size_t n,
							 const QdbTrainConfig *c, QdbModel *out, QdbProgress cb,
							 void *arg, const QdbNeuralOps *nn_ops, char *err,
							 size_t errlen);

#endif							/* QDB_NEURAL_H */
