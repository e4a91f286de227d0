/*
 * blas_load.c
 *	  OpenBLAS, loaded by the first call that needs it instead of with
 *	  quantumdb.so.
 *
 * Linked as a dependency of quantumdb.so, libopenblas was loaded into every
 * backend that touched the extension, and its constructor started its
 * thread pool there: a thread per CPU beyond the first, each spinning on
 * sched_yield for about a tenth of a second before it sleeps.  A backend
 * that only scans an opq or pq index never calls BLAS, yet a new
 * connection paid the load's relocations and those threads: 111.3 against
 * 62.8 ms of server CPU per connection on a 2-core machine
 * (test/bench/connect_cost.py; README, "Connections"), and a thread per
 * CPU in every backend on a large one.  quantumdb.so is therefore linked
 * without it: the few BLAS and LAPACK routines the trainer's code calls are
 * defined here, hidden from other libraries, and forward to libopenblas,
 * which the first of them opens (RTLD_LOCAL, so no other library's symbols
 * change).  Training, CREATE INDEX (its encoding in blocks, and the hold of
 * OpenBLAS's threads around the build), the encoding of a row by a kind rq
 * model (an INSERT into such an index, quantumdb.encode) and a neural
 * model's decoding open it; scans of every kind and inserts into pq, opq
 * and neural indexes do not (session 58's review measured each in a fresh
 * backend).  Its thread pool is OpenBLAS's own default, as before.
 * QDB_BLAS_LIBRARY in the server's environment names another file to open
 * (the tests name one that does not exist).
 *
 * The first call is normally made by a backend's own thread (trainer
 * thread pools set OpenBLAS's thread count before they start).  If the
 * library cannot be opened there, the call raises an ERROR.  A call from
 * another thread cannot raise one: it gets a plain implementation of
 * sgemm and dsdot, and a LAPACK routine reports a failure through its info
 * argument, which the trainer turns into an error of its own.
 */
#include "postgres.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>

#include <cblas.h>

#include "blas_load.h"
#include "qdb_internal.h"

#define QDB_BLAS_LIBRARY "libopenblas.so.0"

#define HIDDEN __attribute__((visibility("hidden")))

typedef void (*SgemmFn) (const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE,
						 const enum CBLAS_TRANSPOSE, const blasint, const blasint,
						 const blasint, const float, const float *, const blasint,
						 const float *, const blasint, const float, float *,
						 const blasint);
typedef double (*DsdotFn) (const blasint, const float *, const blasint,
						   const float *, const blasint);
typedef int (*GetThreadsFn) (void);
typedef void (*SetThreadsFn) (int);
typedef void (*SgesddFn) (const char *, const int *, const int *, float *,
						  const int *, float *, float *, const int *, float *,
						  const int *, float *, const int *, int *, int *);
typedef void (*SsyevdFn) (const char *, const char *, const int *, float *,
						  const int *, float *, float *, const int *, int *,
						  const int *, int *);
typedef void (*SpotrfFn) (const char *, const int *, float *, const int *, int *);
typedef void (*SpotrsFn) (const char *, const int *, const int *, const float *,
						  const int *, float *, const int *, int *);

static struct
{
	bool		ok;
	char		name[MAXPGPATH];
	char		error[256];
	SgemmFn		sgemm;
	DsdotFn		dsdot;
	GetThreadsFn get_threads;
	SetThreadsFn set_threads;
	SgesddFn	sgesdd;
	SsyevdFn	ssyevd;
	SpotrfFn	spotrf;
	SpotrsFn	spotrs;
}			blas;

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static pthread_t main_thread;

/* Called from _PG_init, in the process's own thread. */
void
QdbBlasInit(void)
{
	main_thread = pthread_self();
}

/* pthread_once's routine: no ereport (any thread may run it). */
static void
open_blas(void)
{
	const char *name = getenv("QDB_BLAS_LIBRARY");
	sigset_t	all,
				old;
	void	   *h;
	const char *err = NULL;

	if (name == NULL || *name == '\0')
		name = QDB_BLAS_LIBRARY;
	strlcpy(blas.name, name, sizeof(blas.name));
	/*
	 * OpenBLAS's constructor starts its pool's threads here: with every
	 * signal blocked, so that PostgreSQL's handlers run only in the
	 * backend's own thread (as task_pool.c and graph_memory.c start theirs)
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (h == NULL)
		err = dlerror();
	else if (!(blas.sgemm = (SgemmFn) dlsym(h, "cblas_sgemm")) ||
			 !(blas.dsdot = (DsdotFn) dlsym(h, "cblas_dsdot")) ||
			 !(blas.get_threads = (GetThreadsFn) dlsym(h, "openblas_get_num_threads")) ||
			 !(blas.set_threads = (SetThreadsFn) dlsym(h, "openblas_set_num_threads")) ||
			 !(blas.sgesdd = (SgesddFn) dlsym(h, "sgesdd_")) ||
			 !(blas.ssyevd = (SsyevdFn) dlsym(h, "ssyevd_")) ||
			 !(blas.spotrf = (SpotrfFn) dlsym(h, "spotrf_")) ||
			 !(blas.spotrs = (SpotrsFn) dlsym(h, "spotrs_")))
		err = dlerror();
	if (err)
		strlcpy(blas.error, err, sizeof(blas.error));
	else
		blas.ok = true;
}

/*
 * Opens the library once; true when it is usable.  In the process's own
 * thread a failure is an ERROR.
 */
static bool
blas_ready(void)
{
	pthread_once(&blas_once, open_blas);
	if (!blas.ok && pthread_equal(pthread_self(), main_thread))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("could not load %s, which quantumdb's training and encoding need: %s",
						blas.name, blas.error),
				 errhint("Install OpenBLAS (Debian's libopenblas0), then start a new session.")));
	return blas.ok;
}

HIDDEN void
cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
			const enum CBLAS_TRANSPOSE tb, const blasint m, const blasint n,
			const blasint k, const float alpha, const float *a, const blasint lda,
			const float *b, const blasint ldb, const float beta, float *c,
			const blasint ldc)
{
	blasint		i,
				j,
				l;

	if (blas_ready())
	{
		blas.sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
		return;
	}
	/* C = alpha op(A) op(B) + beta C, element by element */
	for (i = 0; i < m; i++)
		for (j = 0; j < n; j++)
		{
			double		s = 0;
			float	   *cij = order == CblasRowMajor ? &c[(size_t) i * ldc + j] :
				&c[(size_t) j * ldc + i];

			for (l = 0; l < k; l++)
			{
				bool		row = order == CblasRowMajor;
				float		ail = (ta == CblasNoTrans) == row ? a[(size_t) i * lda + l] :
					a[(size_t) l * lda + i];
				float		blj = (tb == CblasNoTrans) == row ? b[(size_t) l * ldb + j] :
					b[(size_t) j * ldb + l];

				s += (double) ail * blj;
			}
			*cij = alpha * s + (beta == 0 ? 0 : beta * *cij);
		}
}

HIDDEN double
cblas_dsdot(const blasint n, const float *x, const blasint incx, const float *y,
			const blasint incy)
{
	double		s = 0;
	blasint		i;

	if (blas_ready())
		return blas.dsdot(n, x, incx, y, incy);
	/* the callers' increments are positive */
	for (i = 0; i < n; i++)
		s += (double) x[(size_t) i * incx] * y[(size_t) i * incy];
	return s;
}

HIDDEN int
openblas_get_num_threads(void)
{
	return blas_ready() ? blas.get_threads() : 1;
}

HIDDEN void
openblas_set_num_threads(int threads)
{
	if (blas_ready())
		blas.set_threads(threads);
}

HIDDEN void
sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda,
		float *s, float *u, const int *ldu, float *vt, const int *ldvt,
		float *work, const int *lwork, int *iwork, int *info)
{
	if (blas_ready())
		blas.sgesdd(jobz, m, n, a, lda, s, u, ldu, vt, ldvt, work, lwork, iwork, info);
	else
		*info = -1;
}

HIDDEN void
ssyevd_(const char *jobz, const char *uplo, const int *n, float *a, const int *lda,
		float *w, float *work, const int *lwork, int *iwork, const int *liwork,
		int *info)
{
	if (blas_ready())
		blas.ssyevd(jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork, info);
	else
		*info = -1;
}

HIDDEN void
spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info)
{
	if (blas_ready())
		blas.spotrf(uplo, n, a, lda, info);
	else
		*info = -1;
}

HIDDEN void
spotrs_(const char *uplo, const int *n, const int *nrhs, const float *a,
		const int *lda, float *b, const int *ldb, int *info)
{
	if (blas_ready())
		blas.spotrs(uplo, n, nrhs, a, lda, b, ldb, info);
	else
		*info = -1;
}
