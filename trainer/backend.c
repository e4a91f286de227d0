/*
 * backend.c
 *	  The one backend wrapper: training opened on a device's QdbNeuralOps
 *	  (qdb_trainer.h), for the cpu table and the loaded cuda one alike.  It
 *	  keeps the allocator and the last error; train_driver.c does the work.
 */
#include <stdio.h>

#include "neural.h"
#include "qdb_distance.h"
#include "qdb_internal.h"

struct QdbBackend
{
	const QdbNeuralOps *ops;
	const QdbAlloc *alloc;
	char		err[256];
};

/* Can the device hold a state?  Creating the smallest one answers it. */
static int
probe_device(const QdbNeuralOps *ops, const QdbAlloc *a, char *err, size_t errlen)
{
	QdbNeuralShape s = {1, 1, 1, 1, QDB_KSUB, 1};
	void	   *st = NULL;
	int			rc;

	rc = ops->create(&st, &s, 1, a, err, errlen);
	if (rc == QDB_OK)
		ops->destroy(st);
	return rc;
}

int
qdb_backend_open(QdbBackend **out, const QdbNeuralOps *ops, const QdbAlloc *a,
				 char *err, size_t errlen)
{
	QdbBackend *b;
	int			rc;

	if (out == NULL || ops == NULL)
		return QDB_ERR_ARG;
	*out = NULL;
	rc = probe_device(ops, a, err, errlen);
	if (rc != QDB_OK)
		return rc;
	b = qdb_calloc(a, 1, sizeof(QdbBackend));
	if (!b)
	{
		if (err && errlen > 0)
			snprintf(err, errlen, "out of memory opening the %s backend", ops->name);
		return QDB_ERR_NOMEM;
	}
	b->ops = ops;
	b->alloc = a;
	qdb_distance_init();
	*out = b;
	return QDB_OK;
}

int
qdb_backend_train(QdbBackend *b, const float *x, size_t n, const QdbTrainConfig *c,
				  QdbModel *out, QdbProgress cb, void *arg)
{
	if (b == NULL)
		return QDB_ERR_ARG;
	return qdb_train_sample(b->alloc, x, n, c, out, cb, arg, b->ops,
							b->err, sizeof(b->err));
}

const char *
qdb_backend_name(const QdbBackend *b)
{
	return b ? b->ops->name : "";
}

const char *
qdb_backend_last_error(const QdbBackend *b)
{
	return b ? b->err : "";
}

void
qdb_backend_close(QdbBackend *b)
{
	if (b)
		qdb_free(b->alloc, b);
}
