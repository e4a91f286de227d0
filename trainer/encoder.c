/*
 * encoder.c
 *	  Encoding many rows with one model in batches (qdb_trainer.h).
 *
 * A row's kind-rq code comes from a beam over residuals (rq.c): every
 * partial code of the beam is multiplied by the next book.  Training's step
 * (rq_lut.c) takes the same scores from tables of codeword products, one
 * multiply per row and book; its tables, built per call, cost as much as
 * encoding a few hundred rows by residuals, so a batch encoder keeps every
 * book's tables (105 of 256 x 256 floats for 16 bytes with a norm byte:
 * 27.5 MB) when its caller allows that much, and its batches then pay
 * only their rows.
 */
#include <string.h>

#include "qdb_internal.h"
#include "rq_beam.h"

struct QdbEncoder
{
	const QdbModel *m;
	const QdbAlloc *a;
	float	   *tables;			/* kind rq's, every book's; or NULL */
};

size_t
qdb_encoder_table_bytes(const QdbModel *m)
{
	if (m == NULL || m->kind != QDB_KIND_RQ)
		return 0;
	return qdb_rq_all_tables_floats(m) * sizeof(float);
}

int
qdb_encoder_create(const QdbModel *m, const QdbAlloc *a, size_t max_table_bytes,
				   QdbEncoder **out)
{
	QdbEncoder *e;
	size_t		bytes;
	int			status;

	*out = NULL;
	if ((status = qdb_model_check(m)) != QDB_OK)
		return status;
	a = a ? a : m->alloc;
	e = qdb_calloc(a, 1, sizeof(QdbEncoder));
	if (!e)
		return QDB_ERR_NOMEM;
	e->m = m;
	e->a = a;
	bytes = qdb_encoder_table_bytes(m);
	if (bytes > 0 && bytes <= max_table_bytes)
	{
		e->tables = qdb_rq_all_tables(a, m);
		if (!e->tables)
		{
			qdb_free(a, e);
			return QDB_ERR_NOMEM;
		}
	}
	*out = e;
	return QDB_OK;
}

int
qdb_encoder_codes(const QdbEncoder *e, const float *x, size_t n, uint8_t *codes)
{
	if (e == NULL)
		return QDB_ERR_ARG;
	return qdb_compute_codes_by(e->m, x, n, codes, 1, e->tables);
}

void
qdb_encoder_free(QdbEncoder *e)
{
	if (e == NULL)
		return;
	qdb_free(e->a, e->tables);
	qdb_free(e->a, e);
}
