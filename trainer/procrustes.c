/*
 * procrustes.c
 *	  Orthogonal Procrustes by sgesdd.
 *
 * LAPACK is column-major: the row-major C (m x t) it reads is C^T (t x m).
 * With C^T = U S V^T (U t x t, V^T t x m), C = V S U^T and the solution
 * R = V U^T, whose transpose U V^T (t x m, column-major) is R row-major.
 */
#include <cblas.h>

#include "procrustes.h"
#include "qdb_internal.h"

static int
gesdd(QdbProcrustes *p, float *work, int lwork)
{
	int			info = 0;

	sgesdd_("S", &p->t, &p->m, p->a, &p->t, p->s, p->u, &p->t, p->vt, &p->t,
			work, &lwork, p->iwork, &info);
	return info == 0 ? QDB_OK : QDB_ERR_LAPACK;
}

int
qdb_procrustes_init(QdbProcrustes *p, const QdbAlloc *a, int m, int t)
{
	float		wq = 0;
	int			status;

	memset(p, 0, sizeof(*p));
	if (t <= 0 || m < t)
		return QDB_ERR_ARG;
	p->m = m;
	p->t = t;
	p->a = qdb_malloc(a, (size_t) m * t, sizeof(float));
	p->s = qdb_malloc(a, t, sizeof(float));
	p->u = qdb_malloc(a, (size_t) t * t, sizeof(float));
	p->vt = qdb_malloc(a, (size_t) t * m, sizeof(float));
	p->iwork = qdb_malloc(a, (size_t) 8 * t, sizeof(int));
	if (!p->a || !p->s || !p->u || !p->vt || !p->iwork)
		return QDB_ERR_NOMEM;
	/* a workspace query */
	status = gesdd(p, &wq, -1);
	if (status != QDB_OK)
		return status;
	p->lwork = (int) wq + 1;
	p->work = qdb_malloc(a, p->lwork, sizeof(float));
	return p->work ? QDB_OK : QDB_ERR_NOMEM;
}

void
qdb_procrustes_free(QdbProcrustes *p, const QdbAlloc *a)
{
	qdb_free(a, p->a);
	qdb_free(a, p->s);
	qdb_free(a, p->u);
	qdb_free(a, p->vt);
	qdb_free(a, p->work);
	qdb_free(a, p->iwork);
	memset(p, 0, sizeof(*p));
}

int
qdb_procrustes_solve(QdbProcrustes *p, const float *C, float *R)
{
	int			status;

	memcpy(p->a, C, sizeof(float) * p->m * p->t);
	status = gesdd(p, p->work, p->lwork);
	if (status != QDB_OK)
		return status;
	cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, p->t, p->m, p->t,
				1.0f, p->u, p->t, p->vt, p->t, 0.0f, R, p->t);
	return QDB_OK;
}
