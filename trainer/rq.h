/*
 * rq.h
 *	  Residual quantization (kind rq): an additive code whose every byte
 *	  picks one full-width codeword, encoded by beam search.
 *
 * A model of kind rq keeps the mean, an optional PCA map (dim_pq < dim)
 * and M books of QDB_KSUB codewords of dim_pq floats each: codebooks is
 * (M, ksub, dim_pq) and dsub == dim_pq; the mean is always there.  Under
 * ip all M bytes pick codewords and y ~ sum of the M chosen ones.  Under
 * l2 and cosine the first M - 1 do, and the last byte is the squared norm
 * of that sum, quantized to 256 levels kept in the first column of the
 * last book (the rest of that book is zero), so that the distance stays a
 * sum of lookups: ||r_q - yhat||^2 = ||r_q||^2 - 2 sum <A r_q, c> +
 * ||yhat||^2; under cosine the level stands for ||yhat||^2 in the angle
 * to the decoded vector (adc.c).
 */
#ifndef QDB_RQ_H
#define QDB_RQ_H

#include "pq.h"

/*
 * Partial codes kept per row while encoding (training and every insert):
 * the model's rq_beam, QDB_RQ_BEAM when unset (models of before the
 * setting), at most QDB_RQ_BEAM_MAX.
 */
#ifndef QDB_RQ_BEAM
#define QDB_RQ_BEAM		8
#endif
#define QDB_RQ_BEAM_MAX	32
/*
 * joint refits of the books after the greedy pass: the model's rq_refits.
 * 16 since release 0.8.0; a model file without rq.refits was trained with
 * QDB_RQ_REFITS_UNSTATED, the default before (safetensors_read.c).
 */
#define QDB_RQ_REFITS	16
#define QDB_RQ_REFITS_UNSTATED	4
#define QDB_RQ_REFITS_MAX	64
/* the largest rq_eta (the weight of the error along a row's direction) */
#define QDB_RQ_ETA_MAX	16.0f

/* rq_refits, where -1 (unset) or out of range is the default */
static inline int
qdb_rq_refits(const QdbTrainConfig *c)
{
	return c->rq_refits >= 0 && c->rq_refits <= QDB_RQ_REFITS_MAX ? c->rq_refits : QDB_RQ_REFITS;
}

static inline int
qdb_rq_beam(const QdbTrainConfig *c)
{
	return c->rq_beam > 0 && c->rq_beam <= QDB_RQ_BEAM_MAX ? c->rq_beam : QDB_RQ_BEAM;
}

/* books that hold codewords: M under ip, M - 1 under l2 and cosine */
static inline int
qdb_rq_books(const QdbModel *m)
{
	return m->metric == QDB_METRIC_IP ? m->M : m->M - 1;
}

/* the beam and the refits weigh the error along a row's direction (rq_aniso.c) */
static inline int
qdb_rq_config_anisotropic(const QdbTrainConfig *c)
{
	return c->metric != QDB_METRIC_L2 && c->rq_eta > 1.0f;
}

static inline int
qdb_rq_anisotropic(const QdbModel *m)
{
	return m->metric != QDB_METRIC_L2 && qdb_rq_config_anisotropic(&m->config);
}

/* beam, eta and refits all at their defaults (the catalog's settings show none) */
static inline int
qdb_rq_settings_default(const QdbTrainConfig *c)
{
	return qdb_rq_beam(c) == QDB_RQ_BEAM && !(c->rq_eta > 1.0f) &&
		qdb_rq_refits(c) == QDB_RQ_REFITS;
}

/* floats of beam state one row takes while encoding (codes, errors, directions) */
static inline size_t
qdb_rq_row_floats(const QdbModel *m)
{
	size_t		B = (size_t) qdb_rq_beam(&m->config);

	return B * ((size_t) m->M + 12) / 4 + (qdb_rq_anisotropic(m) ? (size_t) m->dim_pq + B : 0);
}

/* x (n x dim) is normalised already under cosine (as qdb_train_sample does) */
int			qdb_rq_train(const QdbAlloc *a, const float *x, size_t n,
						 const QdbTrainConfig *c, QdbModel *out,
						 const QdbProgressCtx *p);

/* codes (n x M) of y (n x dim_pq, the transform's output) */
int			qdb_rq_encode(const QdbModel *m, const float *y, size_t n, uint8_t *codes);

/* y (n x dim_pq) = the sum of the codewords of each code */
void		qdb_rq_decode(const QdbModel *m, const uint8_t *codes, size_t n, float *y);

#endif							/* QDB_RQ_H */
