/*
 * procrustes.h
 *	  The orthogonal Procrustes problem: the R with orthonormal columns
 *	  nearest to a cross-covariance, from its singular value decomposition.
 */
#ifndef QDB_PROCRUSTES_H
#define QDB_PROCRUSTES_H

#include "qdb_trainer.h"

/* Scratch for one shape (m x t, m >= t), reused across solves. */
typedef struct QdbProcrustes
{
	int			m;
	int			t;
	float	   *a;				/* (m x t): the input, destroyed by LAPACK */
	float	   *s;				/* (t) singular values */
	float	   *u;				/* (t x t) */
	float	   *vt;				/* (t x m) */
	float	   *work;
	int		   *iwork;			/* (8 t) */
	int			lwork;
} QdbProcrustes;

/* QDB_OK, QDB_ERR_ARG (m < t), QDB_ERR_NOMEM or QDB_ERR_LAPACK */
int			qdb_procrustes_init(QdbProcrustes *p, const QdbAlloc *a, int m, int t);
void		qdb_procrustes_free(QdbProcrustes *p, const QdbAlloc *a);

/*
 * R (m x t, row-major, orthonormal columns) maximising trace(R^T C) for C
 * (m x t, row-major): R = U V^T from C = U S V^T, which also minimises
 * ||Z R^T - Y|| when C = Y^T Z.  Divide and conquer (sgesdd): the
 * bidiagonal QR of sgesvd took minutes at a thousand dims.
 */
int			qdb_procrustes_solve(QdbProcrustes *p, const float *C, float *R);

#endif							/* QDB_PROCRUSTES_H */
