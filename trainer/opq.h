/*
 * opq.h
 *	  Optimized product quantization: a learnt orthogonal transform (after
 *	  an optional PCA reduction) in front of the product quantizer.
 */
#ifndef QDB_OPQ_H
#define QDB_OPQ_H

#include <stddef.h>
#include <stdint.h>

#include "pq.h"
#include "qdb_trainer.h"

/*
 * Trains an OPQ model on x (n x c->dim, already L2-normalised under the
 * cosine metric, n at most the k-means sample size) into out, which this
 * allocates with a.  On failure out is left zeroed.
 */
int			qdb_opq_train(const QdbAlloc *a, const float *x, size_t n,
						  const QdbTrainConfig *c, QdbModel *out,
						  const QdbProgressCtx *p);

/* A PCA of the rows an OPQ training is given (qdb_pca_fit's three outputs). */
typedef struct QdbPcaFit
{
	const float *mean;			/* (dim) */
	const float *eigvecs;		/* (dim x dim), row i the i-th eigenvector */
	const float *eigvals;		/* (dim), decreasing */
} QdbPcaFit;

/*
 * qdb_opq_train with the PCA of exactly x's n rows already fitted (fit
 * NULL: fitted here), so that trainings of several settings on the same
 * rows (the error byte's pilot) fit it once; the model is the same.
 */
int			qdb_opq_train_fitted(const QdbAlloc *a, const float *x, size_t n,
								 const QdbTrainConfig *c, const QdbPcaFit *fit,
								 QdbModel *out, const QdbProgressCtx *p);

/*
 * opq_error.c: out, allocated with a, is inner (an opq model of M - 1
 * sub-quantizers under l2, trained on x) with c's M code bytes, the last
 * the row's squared error, its levels fitted on x's rows.
 */
int			qdb_opq_error_attach(const QdbAlloc *a, const float *x, size_t n,
								 const QdbTrainConfig *c, const QdbModel *inner,
								 QdbModel *out, const QdbProgressCtx *p);

/*
 * opq_error.c: *use 1 when a pilot on x's rows finds the error byte raises
 * exhaustive ADC's recall (c->opq_error QDB_OPQ_ERROR_AUTO), else 0.
 */
int			qdb_opq_error_choose(const QdbAlloc *a, const float *x, size_t n,
								 const QdbTrainConfig *c, const QdbProgressCtx *p,
								 int *use);

/*
 * R (dim_pq x t, orthonormal columns): a selection that spreads the t
 * principal directions (eigvals, decreasing) over M sub-spaces of dim_pq/M
 * slots so that the products of their variances are balanced (the OPQ
 * paper's parametric solution); slots left over are zero rows.
 */
void		qdb_opq_balanced_init(const float *eigvals, int t, int dim_pq, int M,
								  float *R);

/*
 * C (dim_pq x t) = Yhat^T z for the rows Yhat that codes (n x M) decode to
 * under codebooks, without decoding them (opq_cross.c); sums is scratch of
 * M * QDB_KSUB * t floats.
 */
void		qdb_opq_cross(const float *codebooks, int dim_pq, int M,
						  const uint8_t *codes, const float *z, size_t n, int t,
						  float *sums, float *C);

#endif							/* QDB_OPQ_H */
