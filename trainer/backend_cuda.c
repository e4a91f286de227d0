/*
 * backend_cuda.c
 *	  The cuda backend's loader: dlopens the shared object that holds the
 *	  CUDA training step (cuda/, built only where nvcc exists) on first use
 *	  and checks its version.  Its QdbNeuralOps then trains through the
 *	  same wrapper (backend.c) and driver (train_driver.c) as the cpu one.
 *
 * Nothing CUDA is linked into this file: a missing or foreign object is
 * QDB_ERR_UNSUPPORTED with a sentence in err, so the caller can fall back
 * or raise an ERROR.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "neural.h"

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static const QdbNeuralOps *cuda_ops;	/* once loaded, for the process's life */

static void
set_err(char *err, size_t errlen, const char *what, const char *detail)
{
	if (err && errlen)
		snprintf(err, errlen, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

int
qdb_cuda_backend(const char *path, const QdbNeuralOps **out, char *err, size_t errlen)
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
			ops = entry ? entry(QDB_TRAINER_API_VERSION) : NULL;
			if (ops == NULL || ops->version != QDB_TRAINER_API_VERSION)
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
	if (rc == QDB_OK)
		*out = cuda_ops;
	pthread_mutex_unlock(&load_lock);
	return rc;
}
