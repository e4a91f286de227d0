/*
 * rq_aniso.h
 *	  Score-aware (anisotropic) residual quantization under cosine and ip:
 *	  the rows' directions, and the refit of the books under the weighted
 *	  loss (see rq.c for where they are used).
 */
#ifndef QDB_RQ_ANISO_H
#define QDB_RQ_ANISO_H

#include "pq.h"

/* The codes a refit fits the books to, and the weight along each row's u. */
typedef struct QdbRqAniso
{
	const uint8_t *codes;		/* (n, stride, M): each row's code first */
	int			stride;			/* codes per row in codes (the beam's width) */
	int			M;
	int			nbooks;
	const float *U;				/* (n, D) unit directions */
	float		eta;			/* > 1 */
} QdbRqAniso;

/*
 * U (n x dim_pq): the unit direction of each row of y (n x dim_pq, the
 * transform's output, centred) in the space of the codewords: y plus the
 * transformed mean, normalised (zero for a zero row).
 */
int			qdb_rq_directions(const QdbModel *m, const float *y, size_t n, float *U);

/*
 * X (K x D, column-major, K = nbooks * 256): from the isotropic least
 * squares solution, conjugate gradients on the normal equations of
 * sum_i (y_i - B_i X)^T W_i (y_i - B_i X) + lambda ||X||^2, W_i = I +
 * (eta - 1) u_i u_i^T, preconditioned by chol (the Cholesky factor, LAPACK
 * "L", of the isotropic system's matrix with the same ridge).
 */
int			qdb_rq_aniso_refit(const QdbAlloc *a, const QdbRqAniso *an, const float *y,
							   size_t n, int K, int D, float lambda, const float *chol,
							   float *X, const QdbProgressCtx *p);

#endif							/* QDB_RQ_ANISO_H */
