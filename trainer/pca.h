/*
 * pca.h
 *	  Principal component analysis: mean and covariance eigenvectors of a
 *	  training sample, and projection onto the leading components.
 */
#ifndef QDB_PCA_H
#define QDB_PCA_H

#include <stddef.h>

#include "pq.h"
#include "qdb_trainer.h"

/*
 * mean (d), eigvecs (d x d, row i the i-th eigenvector) and eigvals (d) of
 * the covariance of x (n x d), by decreasing eigenvalue.  This and
 * qdb_pca_project give p (may be NULL) a heartbeat per block of rows, and
 * return QDB_ERR_CANCELLED when it asks to stop.
 */
int			qdb_pca_fit(const QdbAlloc *a, const float *x, size_t n, int d,
						float *mean, float *eigvecs, float *eigvals,
						const QdbProgressCtx *p);

/* qdb_pca_fit, then the "pca" progress report of the variance past keep */
int			qdb_pca_fit_report(const QdbAlloc *a, const float *x, size_t n, int d,
							   int keep, float *mean, float *eigvecs, float *eigvals,
							   const QdbProgressCtx *p);

/* z (n x t) = (x - mean) P^T for P (t x d); mean may be NULL */
int			qdb_pca_project(const QdbAlloc *a, const float *x, size_t n, int d,
							const float *mean, const float *P, int t, float *z,
							const QdbProgressCtx *p);

#endif							/* QDB_PCA_H */
