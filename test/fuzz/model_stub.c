/*
 * model_stub.c
 *	  FUZZ-ONLY STAND-IN for trainer/model.c: just qdb_model_alloc and
 *	  qdb_model_free with the semantics qdb.h documents.  The Makefile uses
 *	  trainer/model.c instead whenever that file exists.
 */
#include <string.h>

#include "qdb_internal.h"

int			qdb_model_alloc(QdbModel *m, const QdbAlloc *a, QdbKind kind, QdbMetric metric,
							int dim, int dim_pq, int M, int with_mean, int with_linear);

int
qdb_model_alloc(QdbModel *m, const QdbAlloc *a, QdbKind kind, QdbMetric metric,
				int dim, int dim_pq, int M, int with_mean, int with_linear)
{
	memset(m, 0, sizeof(*m));
	if (dim < 1 || dim_pq < 1 || M < 1 || dim_pq % M != 0)
		return QDB_ERR_ARG;
	m->kind = kind;
	m->metric = metric;
	m->dim = dim;
	m->dim_pq = dim_pq;
	m->M = M;
	m->ksub = QDB_KSUB;
	m->dsub = dim_pq / M;
	m->alloc = a;
	m->codebooks = qdb_calloc(a, (size_t) M * QDB_KSUB * m->dsub, sizeof(float));
	if (with_mean)
		m->mean = qdb_calloc(a, (size_t) dim, sizeof(float));
	if (with_linear)
		m->linear = qdb_calloc(a, (size_t) dim_pq * dim, sizeof(float));
	if (m->codebooks == NULL || (with_mean && m->mean == NULL) ||
		(with_linear && m->linear == NULL))
	{
		qdb_model_free(m);
		return QDB_ERR_NOMEM;
	}
	return QDB_OK;
}

void
qdb_model_free(QdbModel *m)
{
	if (m == NULL)
		return;
	qdb_free(m->alloc, m->codebooks);
	qdb_free(m->alloc, m->mean);
	qdb_free(m->alloc, m->linear);
	memset(m, 0, sizeof(*m));
}
