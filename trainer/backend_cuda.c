/*
 * backend_cuda.c
 *	  The cuda backend as a QdbBackend: loads the shared object that holds
 *	  the CUDA training step (cuda/, built only where nvcc exists) with
 *	  dlopen on first use, checks its version, and trains the neural kind's
 *	  steps there.  pq, opq, the neural kind's opq start and encoding run on
 *	  the CPU code they share with the cpu backend.
 *
 * Nothing CUDA is linked into this file: a missing or foreign object is
 * QDB_ERR_UNSUPPORTED and a missing GPU QDB_ERR_NO_DEVICE, each with a
 * sentence in err, so the caller can fall back or raise an ERROR.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "neural.h"
#include "qdb_distance.h"
#include "qdb_internal.h"

typedef struct CudaContext
{
	const QdbAlloc *alloc;
	char		err[256];
} CudaContext;

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static const QdbNeuralOps *cuda_ops;	/* once loaded, for the process's life */

static void
set_err(char *err, size_t errlen, const char *what, const char *detail)
{
	if (err && errlen)
		snprintf(err, errlen, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

/* Is there a device?  Creating the smallest state answers it. */
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

static int
cuda_open(void **ctx, const QdbAlloc *a, char *err, size_t errlen)
{
	CudaContext *c;
	int			rc;

	if (ctx == NULL)
		return QDB_ERR_ARG;
	if (cuda_ops == NULL)
	{
		set_err(err, errlen, "the cuda backend is not loaded", NULL);
		return QDB_ERR_UNSUPPORTED;
	}
	rc = probe_device(cuda_ops, a, err, errlen);
	if (rc != QDB_OK)
		return rc;
	c = qdb_calloc(a, 1, sizeof(CudaContext));
	if (!c)
		return QDB_ERR_NOMEM;
	c->alloc = a;
	qdb_distance_init();
	*ctx = c;
	return QDB_OK;
}

static void
cuda_close(void *ctx)
{
	CudaContext *c = ctx;

	if (c)
		qdb_free(c->alloc, c);
}

static int
cuda_train(void *ctx, const float *x, size_t n, const QdbTrainConfig *cfg,
		   QdbModel *out, QdbProgress cb, void *arg)
{
	CudaContext *c = ctx;

	if (c == NULL)
		return QDB_ERR_ARG;
	return qdb_train_sample(c->alloc, x, n, cfg, out, cb, arg, cuda_ops,
							c->err, sizeof(c->err));
}

static int
cuda_encode(void *ctx, const QdbModel *m, const float *x, size_t n, uint8_t *codes)
{
	return qdb_compute_codes(m, x, n, codes);
}

static const char *
cuda_last_error(void *ctx)
{
	CudaContext *c = ctx;

	return c ? c->err : "";
}

static const QdbBackend cuda_backend = {
	QDB_TRAINER_API_VERSION,
	"cuda",
	cuda_open,
	cuda_train,
	cuda_encode,
	cuda_close,
	cuda_last_error
};

int
qdb_cuda_backend(const char *path, const QdbBackend **out, char *err, size_t errlen)
{
	int			rc = QDB_OK;

	if (path == NULL || out == NULL)
		return QDB_ERR_ARG;
	pthread_mutex_lock(&load_lock);
	if (cuda_ops == NULL)
	{
		void	   *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		QdbNeuralOpsEntry entry;
		const QdbNeuralOps *ops = NULL;

		if (h == NULL)
		{
			set_err(err, errlen, "could not load the cuda backend", dlerror());
			rc = QDB_ERR_UNSUPPORTED;
		}
		else
		{
			*(void **) (&entry) = dlsym(h, QDB_CUDA_ENTRY_SYMBOL);
			ops = entry ? entry(QDB_NEURAL_OPS_VERSION) : NULL;
			if (ops == NULL || ops->version != QDB_NEURAL_OPS_VERSION)
			{
				set_err(err, errlen, entry ? "the cuda backend is of another version" :
						"the cuda backend has no entry point", path);
				dlclose(h);
				rc = QDB_ERR_UNSUPPORTED;
			}
			else
				cuda_ops = ops;
		}
	}
	pthread_mutex_unlock(&load_lock);
	if (rc == QDB_OK)
		*out = &cuda_backend;
	return rc;
}

/* The loaded step's table, for tests; NULL before qdb_cuda_backend succeeds. */
const QdbNeuralOps *
qdb_cuda_loaded_ops(void)
{
	return cuda_ops;
}
