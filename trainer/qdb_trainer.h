/*
 * qdb_trainer.h
 *	  Public interface of the QuantumDB trainer core: plain C, no Postgres
 *	  headers.  Shared by the extension (src/), the standalone CLI and the
 *	  cuda backend (cuda/).
 *
 * Every function returns a QdbStatus (0 = QDB_OK) and never calls exit,
 * abort or printf.  Memory comes from a QdbAlloc so that the extension can
 * account for it; NULL means the malloc-based default.
 */
#ifndef QDB_TRAINER_H
#define QDB_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#define QDB_TRAINER_API_VERSION 3	/* of the seam: QdbNeuralOps */
#define QDB_FORMAT_VERSION		2		/* newest serialized model format read */
#define QDB_MAX_DIM				16000	/* largest vector we accept */
#define QDB_KSUB				256		/* centroids per sub-quantizer */
#define QDB_NBITS				8		/* bits per sub-quantizer code */
#define QDB_MAX_SUBQUANTIZERS	256		/* largest M (sub-quantizers per code) */
#define QDB_MAX_HIDDEN			4096	/* widest neural encoder layer */

typedef enum QdbStatus
{
	QDB_OK = 0,
	QDB_ERR_ARG,				/* invalid argument or setting */
	QDB_ERR_NOMEM,				/* allocation failed */
	QDB_ERR_DATA,				/* data unusable (too few rows, NaN, zero vector) */
	QDB_ERR_FORMAT,				/* malformed serialized model */
	QDB_ERR_CHECKSUM,			/* serialized model fails its checksum */
	QDB_ERR_VERSION,			/* serialized model of an unknown version */
	QDB_ERR_LAPACK,				/* LAPACK routine failed */
	QDB_ERR_CANCELLED,			/* progress callback asked to stop */
	QDB_ERR_NO_DEVICE,			/* backend's device not present */
	QDB_ERR_DEVICE,				/* device library failure */
	QDB_ERR_UNSUPPORTED			/* not built */
} QdbStatus;

const char *qdb_status_string(int status);

typedef enum QdbKind
{
	QDB_KIND_PQ = 1,
	QDB_KIND_OPQ = 2,
	QDB_KIND_NEURAL = 3,
	QDB_KIND_RQ = 4				/* residual quantization (rq.h) */
} QdbKind;

#define QDB_KIND_LAST QDB_KIND_RQ

typedef enum QdbMetric
{
	QDB_METRIC_L2 = 1,			/* Euclidean distance */
	QDB_METRIC_IP = 2,			/* negative inner product */
	QDB_METRIC_COSINE = 3		/* 1 - cosine similarity */
} QdbMetric;

const char *qdb_kind_name(int kind);
int			qdb_kind_parse(const char *s, QdbKind *out);	/* QDB_OK or QDB_ERR_ARG */
const char *qdb_metric_name(int metric);
int			qdb_metric_parse(const char *s, QdbMetric *out);

/*
 * x (d floats) scaled to unit length into out (may be x), in double, so
 * that a finite row of any magnitude has a direction; QDB_ERR_DATA for a
 * zero or non-finite row (util.c).
 */
int			qdb_normalize(const float *x, int d, float *out);

typedef struct QdbAlloc
{
	void	   *(*alloc) (size_t size, void *st);	/* NULL on failure */
	void		(*free) (void *p, void *st);
	void	   *st;
} QdbAlloc;

extern const QdbAlloc qdb_default_alloc;	/* malloc / free */

/* Training settings; qdb_train_config_init fills the defaults. */
typedef struct QdbTrainConfig
{
	QdbKind		kind;
	QdbMetric	metric;
	int			dim;			/* input dimensions */
	int			M;				/* sub-quantizers, default 16 (a 16-byte code) */
	int			dim_pq;			/* the encoder's output (SQL: target_dim), a
								 * multiple of M; 0: dim rounded up to one;
								 * less than dim: PCA reduction first */
	int			kmeans_iters;	/* Lloyd iterations per k-means, default 25 */
	int			opq_iters;		/* OPQ alternations, default 50 */
	int			opq_pq_iters;	/* k-means iterations inside each alternation, default 4 */
	int			max_points_per_centroid;	/* k-means subsample cap, default 256 */
	uint64_t	seed;			/* default 42 */
	/* kind neural (neural.h) */
	int			epochs;			/* most epochs, default 10 */
	int			batch_size;		/* anchors per step, default 256 */
	float		lr;				/* Adam learning rate, default 1e-4 */
	float		clip;			/* gradient global-norm clip, default 1 */
	int			hidden;			/* encoder hidden width; 0: 2 dim_pq, at most 1024 */
	int			k_neighbors;	/* triplet positives among the k nearest, default 10 */
	int			patience;		/* epochs without a better validation recall, default 3 */
	int			neural_rows;	/* rows of the sample the neural stage uses, default 20000 */
	float		w_recon,		/* loss weights: 0.3, 0.2, 0.1, 0.1, 0.3 */
				w_cluster,
				w_diversity,
				w_commit,
				w_triplet;
	/* kind rq (rq.h) */
	int			rq_beam;		/* partial codes kept by the beam search, default 8 */
	int			rq_refits;		/* joint refits of the books, default 16 (4
								 * before 0.8.0) */
	float		rq_eta;			/* cosine and ip: weight of the error along a
								 * row's direction, default 1 (plain l2) */
	/* kind opq under l2 (opq_error.c) */
	int			opq_error;		/* 1: the code's last byte holds the row's
								 * squared error, M - 1 sub-quantizers; 0: not;
								 * QDB_OPQ_ERROR_AUTO (default): 1 where a
								 * pilot finds it pays, with the default dim_pq */
} QdbTrainConfig;

#define QDB_OPQ_ERROR_AUTO	(-1)

/*
 * Kind opq under l2 spends the code's last byte on the row's squared error
 * (opq_error.c) when opq_error is 1: its sub-quantizers are the other
 * M - 1, and dim_pq is a multiple of those.  QDB_OPQ_ERROR_AUTO is decided
 * by training (0 with a dim_pq given), and counts as 0 until then.
 */
static inline int
qdb_config_error_byte(const QdbTrainConfig *c)
{
	return c->kind == QDB_KIND_OPQ && c->metric == QDB_METRIC_L2 && c->opq_error == 1 &&
		c->M >= 2;
}

/* sub-quantizers of a pq-style code (kinds pq, opq, neural) trained as c says */
static inline int
qdb_config_books(const QdbTrainConfig *c)
{
	return c->M - qdb_config_error_byte(c);
}

/* dim rounded up to a multiple of M: the widest dim_pq, and dim_pq 0's */
static inline int
qdb_padded_dim(int dim, int M)
{
	return (dim + M - 1) / M * M;
}

/*
 * The default dim_pq of the kinds that learn a transform (opq, rq, neural)
 * is at most this many dimensions per sub-quantizer (256 for 16 bytes),
 * reached by PCA: 256 codewords a sub-space cannot resolve more, and the
 * k-means and Procrustes steps then skip the dims that only add noise.  On
 * fashion-mnist-784 (25,000-row sample) opq's 10-recall@10 went from 0.620
 * (784 dims) to 0.644 (256) and its training from 43 s to 15 s.
 */
#define QDB_DEFAULT_DIMS_PER_SUB	16

/*
 * The dim_pq a training of c produces: c->dim_pq; by default dim padded
 * to a multiple of the sub-quantizers (M, or M - 1 with an error byte), capped for the learned kinds (above).
 */
static inline int
qdb_config_dim_pq(const QdbTrainConfig *c)
{
	int			books = qdb_config_books(c);
	int			padded = qdb_padded_dim(c->dim, books);
	int			cap = QDB_DEFAULT_DIMS_PER_SUB * books;

	if (c->dim_pq > 0)
		return c->dim_pq;
	return c->kind != QDB_KIND_PQ && padded > cap ? cap : padded;
}

void		qdb_train_config_init(QdbTrainConfig *c);
int			qdb_train_config_check(const QdbTrainConfig *c);	/* QDB_ERR_ARG if bad */

/* One epoch of the neural kind, as its progress report carries it. */
typedef struct QdbNeuralEpoch
{
	double		total,			/* mean losses over the epoch's steps */
				recon,
				cluster,
				diversity,
				commit,
				triplet;
	double		code_entropy;	/* bits per sub-quantizer (at most 8), mean */
	double		val_recall;		/* 10-recall@10 of ADC on the validation split */
	double		samples_per_sec;	/* training rows through a step per second */
	double		tau;			/* Gumbel temperature (relative) of the epoch */
	int			best;			/* 1: the best checkpoint so far */
	const char *device;			/* "cpu" | "cuda" */
} QdbNeuralEpoch;

/* Progress of long work; the callback returns nonzero to stop (QDB_ERR_CANCELLED). */
typedef struct QdbEpochStats
{
	const char *stage;			/* "pca", "opq", "kmeans", ... */
	int			iter;			/* 1-based */
	int			iters;
	double		loss;			/* stage-specific: mean squared reconstruction error */
	const char *measure;		/* what loss is when not that, else NULL */
	double		seconds;		/* since training started */
	const QdbNeuralEpoch *neural;	/* stage "neural" (iter 0: the start), else NULL */
	int			heartbeat;		/* 1: only a chance to cancel, nothing to report */
} QdbEpochStats;

typedef int (*QdbProgress) (const QdbEpochStats *s, void *arg);

/*
 * A trained compressor.  Encoding: x -> (cosine: x/|x|) -> y = A (x - mean)
 * -> M sub-vectors of dsub dims -> nearest centroid of each.  A is
 * (dim_pq x dim); NULL means identity padded with zeros to dim_pq.
 */
typedef struct QdbModel
{
	QdbKind		kind;
	QdbMetric	metric;
	int			dim;			/* input dimensions */
	int			dim_pq;			/* M * dsub, what A (or the encoder) outputs */
	int			M;				/* sub-quantizers, one byte of code each */
	int			ksub;			/* QDB_KSUB */
	int			dsub;
	int			err_byte;		/* kind opq, l2: 1 when code byte M - 1 is the
								 * row's error level (opq_error.c), else 0 */
	float	   *mean;			/* (dim) or NULL */
	float	   *linear;			/* (dim_pq, dim) row-major, or NULL */
	float	   *codebooks;		/* (M, ksub, dsub) */
	/* kind neural: y = enc(x - mean) replaces A (x - mean); see neural.h */
	int			hidden;			/* H, or 0 */
	float	   *enc_w1;			/* (H, dim) */
	float	   *enc_b1;			/* (H) */
	float	   *enc_w2;			/* (dim_pq, H) */
	float	   *enc_b2;			/* (dim_pq) */
	float	   *dec_w;			/* (dim, dim_pq) */
	float	   *dec_b;			/* (dim) */
	QdbTrainConfig config;		/* settings it was trained with */
	int			opq_alternations;	/* kind opq: the alternations its training
									 * ran, fewer than config.opq_iters where
									 * its error stalled (opq.c); -1 where
									 * unknown (not kept in the model file) */
	const QdbAlloc *alloc;		/* what its arrays came from */
	/* what qdb_model_prepare keeps for query tables, else NULL */
	float	   *books_t;		/* the books transposed, (books, dsub, ksub) */
	float	   *norm_table;		/* cosine: (M, ksub) of ||xhat||^2 */
	float	   *mean_image;		/* cosine, kind neural: f(mean), (dim_pq) */
} QdbModel;

int			qdb_model_alloc(QdbModel *m, const QdbAlloc *a, QdbKind kind, QdbMetric metric,
							int dim, int dim_pq, int M, int with_mean, int with_linear);
/* kind neural: mean, encoder, codebooks and decoder, no linear map */
int			qdb_model_alloc_neural(QdbModel *m, const QdbAlloc *a, QdbMetric metric,
								   int dim, int dim_pq, int M, int hidden);
/* the same with err_byte 1 for an opq model under l2 whose last code byte is its error */
int			qdb_model_alloc_coded(QdbModel *m, const QdbAlloc *a, QdbKind kind,
								  QdbMetric metric, int dim, int dim_pq, int M, int err_byte,
								  int with_mean, int with_linear);
void		qdb_model_free(QdbModel *m);	/* safe on a zeroed model */
/*
 * For a model that will not change again (one loaded to search with): keeps
 * its books transposed, so that a query's table row is built for 256
 * codewords at once (adc_rows.c), and under cosine (kinds pq, opq and rq)
 * the part of the table that depends on the model alone, ||xhat||^2, which
 * qdb_compute_distance_table then copies instead of computing.  The tables
 * are the unprepared model's up to rounding.  Changing the model's arrays
 * after this is a bug; qdb_model_free frees what it keeps.
 */
int			qdb_model_prepare(QdbModel *m);
/* bytes per code: M (the index's code_size is this byte count) */
size_t		qdb_code_size(const QdbModel *m);

/* y (n x dim_pq) = transform of x (n x dim); QDB_ERR_DATA on a zero vector under cosine. */
int			qdb_model_transform(const QdbModel *m, const float *x, size_t n, float *y);
int			qdb_compute_codes(const QdbModel *m, const float *x, size_t n, uint8_t *codes);

/*
 * Encoding many rows with one model in batches (CREATE INDEX): kind rq
 * encodes by its training step (tables of codeword products, rq_lut.c),
 * which costs a fraction of a row's beam from residuals, with every book's
 * tables built once here when they take at most max_table_bytes
 * (qdb_encoder_table_bytes), else per batch.  The codes are
 * qdb_compute_codes' but for rounding on near ties (a row inserted later
 * may get another code of the same error).  Other kinds encode as
 * qdb_compute_codes.  From a (NULL: m's allocator); m must outlive it.
 */
typedef struct QdbEncoder QdbEncoder;
size_t		qdb_encoder_table_bytes(const QdbModel *m);
int			qdb_encoder_create(const QdbModel *m, const QdbAlloc *a, size_t max_table_bytes,
							   QdbEncoder **out);
int			qdb_encoder_codes(const QdbEncoder *e, const float *x, size_t n, uint8_t *codes);
void		qdb_encoder_free(QdbEncoder *e);	/* NULL is fine */
/* x (n x dim): mean + A^T (centroids), the reconstruction in input space. */
int			qdb_decode(const QdbModel *m, const uint8_t *codes, size_t n, float *x);
/*
 * Kinds pq and opq (opq_error.c): the squared distance from row x (unit
 * length under cosine) to the reconstruction of its code, whatever the
 * metric, without BLAS, and in *energy the squared length of x less the
 * model's mean; scratch holds qdb_coding_error_floats(m) floats.  An error
 * byte's level is not counted.  -1 for another kind.
 */
size_t		qdb_coding_error_floats(const QdbModel *m);
double		qdb_row_coding_error(const QdbModel *m, const float *x, const uint8_t *code,
								 float *scratch, double *energy);

/*
 * Asymmetric distance: table is qdb_table_floats floats, bias one per-query
 * constant.  qdb_adc_distance returns the metric's distance to the decoded
 * vector x': L2 sqrt(max(0, sum + bias)), IP -(sum + bias); cosine
 * 1 - (sum + bias) / sqrt(nsum), the cosine distance of the normalised
 * query to x', from two tables of M x ksub floats (sum: q . x', nsum:
 * ||x'||^2; see adc.c; kind neural: in its latent space, about the mean's
 * image).
 */
size_t		qdb_table_floats(const QdbModel *m);
int			qdb_compute_distance_table(const QdbModel *m, const float *query,
									   float *table, float *bias);
float		qdb_adc_distance(const QdbModel *m, const float *table, float bias,
							 const uint8_t *code);
/* qdb_adc_distance of codes[0 .. n) into out, the same floats, faster */
void		qdb_adc_distances(const QdbModel *m, const float *table, float bias,
							  const uint8_t *const *codes, int n, float *out);

/*
 * Symmetric distance between two codes (linking index nodes), in the units
 * of qdb_adc_distance, from per-sub-quantizer centroid-pair tables.  With
 * xhat = mean + A^T c: L2 ||xhat_a - xhat_b||, IP -(xhat_a . xhat_b),
 * cosine (kinds pq, opq, rq) the angle 1 - xhat_a . xhat_b / (|xhat_a|
 * |xhat_b|), as qdb_adc_distance, and 0 for equal codes; cosine, kind
 * neural, ||xhat_a - xhat_b||^2 / 2.  Exact when A has orthonormal rows or
 * is NULL (padded dims do not count); with orthonormal columns (dim_pq >
 * dim) the sums run over the codebooks: an upper bound for L2, an estimate
 * for IP and cosine.  The table is (M, ksub, ksub) pair terms (dot products
 * for IP and the angle, squared distances else), (M, ksub) per-code bias
 * terms (IP and the angle: (A mean) . c, else 0) and one constant (IP and
 * the angle: |mean|^2, else 0).  qdb_pair_distance(a, b) ==
 * qdb_pair_distance(b, a).
 */
size_t		qdb_pair_table_floats(const QdbModel *m);	/* M*ksub*ksub + M*ksub + 1 */
/* QDB_OK, QDB_ERR_ARG or QDB_ERR_NOMEM */
int			qdb_compute_pair_table(const QdbModel *m, float *table);
float		qdb_pair_distance(const QdbModel *m, const float *table,
							  const uint8_t *a, const uint8_t *b);

/*
 * 10-recall@10 (k-recall@k) of exhaustive ADC: for each of nq queries, the
 * share of its k exact nearest (among nb base vectors, by the model's metric)
 * found among the k best by ADC over the base's codes.  The base's codes
 * are computed for the call and not kept: kind rq computes them by its
 * training's step (rq_lut.c), which may part from encoding's on a near tie.
 */
int			qdb_adc_recall(const QdbModel *m, const float *base, size_t nb,
						   const float *queries, size_t nq, int k, double *recall);

/*
 * qdb_adc_recall for several models of one metric on the same base, queries
 * and k: the exact search, which depends on none of the models, runs once.
 * With *known 0 each query's exact k-th distance is computed and kept in kth
 * (nq floats), and *known set to 1 when the call succeeds; with 1 they are
 * read from kth.  The recall is the same as qdb_adc_recall's.
 */
int			qdb_adc_recall_shared(const QdbModel *m, const float *base, size_t nb,
								  const float *queries, size_t nq, int k,
								  float *kth, int *known, double *recall);

/*
 * The training seam.  What differs per device is one table, the neural
 * kind's training step (QdbNeuralOps, neural.h): the cpu one built in, the
 * cuda one in a shared object loaded with dlopen.  A QdbBackend is training
 * opened on one of them (backend.c); the work itself is device-independent
 * (train_driver.c), and pq and opq always run on the CPU.
 */
typedef struct QdbNeuralOps QdbNeuralOps;
typedef struct QdbBackend QdbBackend;

const QdbNeuralOps *qdb_neural_cpu_ops(void);

/*
 * The cuda step: dlopens path (its shared object) once and checks its
 * version.  QDB_ERR_UNSUPPORTED when the file is missing or unusable; err
 * says which.  A missing GPU shows when the backend is opened.
 */
int			qdb_cuda_backend(const char *path, const QdbNeuralOps **out,
							 char *err, size_t errlen);

/*
 * Opens training on ops; QDB_ERR_NO_DEVICE (cuda) when its device cannot
 * hold a state, with err saying why.
 */
int			qdb_backend_open(QdbBackend **out, const QdbNeuralOps *ops,
							 const QdbAlloc *a, char *err, size_t errlen);
int			qdb_backend_train(QdbBackend *b, const float *x, size_t n,
							  const QdbTrainConfig *c, QdbModel *out,
							  QdbProgress cb, void *arg);
const char *qdb_backend_name(const QdbBackend *b);	/* "cpu" | "cuda" */
/* what the last failed call of b said, or "" */
const char *qdb_backend_last_error(const QdbBackend *b);
void		qdb_backend_close(QdbBackend *b);	/* safe on NULL */

/* safetensors: 8-byte little-endian header length, JSON header, tensor bytes. */
int			qdb_model_serialize(const QdbModel *m, const QdbAlloc *a,
								uint8_t **out, size_t *outlen);
/* Treats buf as hostile; on failure err says what is wrong. */
int			qdb_model_parse(const uint8_t *buf, size_t len, const QdbAlloc *a,
							QdbModel *out, char *err, size_t errlen);

#endif							/* QDB_TRAINER_H */
