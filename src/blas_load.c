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
 * argument, which the trainer turns into an error of its own.  The same
 * holds when there is no room for OpenBLAS's work buffers (blas_buffers.c,
 * which makes sure of them before each call that may need one): ERROR
 * 53200 in the backend's thread.  That failure is not kept: memory freed
 * later lets a later call load the library.
 */
#include "postgres.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>

#include <cblas.h>

#include "blas_buffers.h"
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

/* opening: BLAS_UNTRIED until it succeeds or fails for good */
typedef enum BlasOpen
{
	BLAS_UNTRIED,
	BLAS_OPEN,
	BLAS_FAILED
}			BlasOpen;

static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static BlasOpen open_state = BLAS_UNTRIED;
static pthread_t main_thread;

/* Called from _PG_init, in the process's own thread. */
void
QdbBlasInit(void)
{
	main_thread = pthread_self();
}

/*
 * Just loaded: OpenBLAS's pool threads take their work buffers as they
 * start, after dlopen has returned, in the room QdbBlasRoomToLoad tried
 * (which counts them, their stacks, the library and this call's buffer,
 * in whatever order they come).  A product that OpenBLAS splits among all
 * of them (1024 x 1024 x 4 is above its threshold for threads, at a
 * twentieth of a 512-cube's cost: session 62's second review) returns only
 * once each has started, so they take that room now, before this thread
 * allocates anything else, and this thread's buffer is made too.
 */
static void
warm_pool(void)
{
	const int	n = 1024,
				k = 4;
	float	   *a = calloc((size_t) 2 * n * k + (size_t) n * n, sizeof(float));

	if (a == NULL)
		return;
	if (QdbBlasEnter())
	{
		blas.sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, k, 1.0f, a, k,
				   a + (size_t) n * k, n, 0.0f, a + (size_t) 2 * n * k, n);
		QdbBlasLeave();
	}
	free(a);
}

/*
 * Under open_lock, in any thread (no ereport).  BLAS_UNTRIED when there
 * was no room for the buffers the library takes as it loads (*buffers of
 * them): a later call tries again.
 */
static BlasOpen
open_blas(int *buffers)
{
	const char *name = getenv("QDB_BLAS_LIBRARY");
	sigset_t	all,
				old;
	void	   *h;
	const char *err = NULL;

	if (name == NULL || *name == '\0')
		name = QDB_BLAS_LIBRARY;
	strlcpy(blas.name, name, sizeof(blas.name));
	if (!QdbBlasRoomToLoad(buffers))
		return BLAS_UNTRIED;
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
	{
		strlcpy(blas.error, err, sizeof(blas.error));
		return BLAS_FAILED;
	}
	/* OpenBLAS's buffer table; absent from another library */
	QdbBlasBuffersFound((QdbBlasMemAlloc) dlsym(h, "blas_memory_alloc"),
						(QdbBlasMemFree) dlsym(h, "blas_memory_free"));
	blas.ok = true;
	warm_pool();
	return BLAS_OPEN;
}

static bool
in_main_thread(void)
{
	return pthread_equal(pthread_self(), main_thread);
}

static void
no_room_error(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("out of memory"),
			 errdetail("OpenBLAS, which quantumdb's training and encoding use, needs %s, and this process has no room for them.",
					   what),
			 errhint("The server's address-space limit (ulimit -v) or the system's commit limit (vm.overcommit_memory = 2) is too low for it; OPENBLAS_NUM_THREADS in the server's environment lowers what OpenBLAS takes as it loads.")));
}

/*
 * Opens the library once; true when it is usable.  In the process's own
 * thread a failure is an ERROR.
 */
static bool
blas_ready(void)
{
	BlasOpen	state = __atomic_load_n(&open_state, __ATOMIC_ACQUIRE);
	int			buffers = 0;

	if (state == BLAS_UNTRIED)
	{
		pthread_mutex_lock(&open_lock);
		state = open_state;
		if (state == BLAS_UNTRIED)
		{
			state = open_blas(&buffers);
			__atomic_store_n(&open_state, state, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&open_lock);
	}
	if (state == BLAS_OPEN || !in_main_thread())
		return state == BLAS_OPEN;
	if (state == BLAS_UNTRIED)
	{
		char		what[64];

		snprintf(what, sizeof(what), "%d work buffers of 128 MB of address space as it loads",
				 buffers);
		no_room_error(what);
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_FILE),
			 errmsg("could not load %s, which quantumdb's training and encoding need: %s",
					blas.name, blas.error),
			 errhint("Install OpenBLAS (Debian's libopenblas0), then start a new session.")));
	return false;
}

/*
 * Where the backend enters work that calls BLAS (a training, a build): the
 * library open and a work buffer for the backend's own thread made sure of
 * here, where an ERROR leaves nothing half done.  A later call in this
 * thread then finds a buffer free (its calls never overlap the pool's), so
 * it raises no ERROR from inside the trainer's code, which would skip the
 * trainer's own restores (session 62's review F2).
 */
void
QdbBlasPrepare(void)
{
	if (!blas_ready())
		return;
	if (!QdbBlasEnter())
		no_room_error("a work buffer of 128 MB of address space for this statement");
	QdbBlasLeave();
}

/*
 * Before a call that may take a work buffer: the library open and a buffer
 * waiting for the call, which then ends with QdbBlasLeave.  In the
 * process's own thread a failure is an ERROR.
 */
static bool
blas_enter(void)
{
	if (!blas_ready())
		return false;
	if (QdbBlasEnter())
		return true;
	if (in_main_thread())
		no_room_error("a work buffer of 128 MB of address space for a call");
	return false;
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

	if (blas_enter())
	{
		blas.sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
		QdbBlasLeave();
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
	if (blas_enter())
	{
		blas.sgesdd(jobz, m, n, a, lda, s, u, ldu, vt, ldvt, work, lwork, iwork, info);
		QdbBlasLeave();
	}
	else
		*info = -1;
}

HIDDEN void
ssyevd_(const char *jobz, const char *uplo, const int *n, float *a, const int *lda,
		float *w, float *work, const int *lwork, int *iwork, const int *liwork,
		int *info)
{
	if (blas_enter())
	{
		blas.ssyevd(jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork, info);
		QdbBlasLeave();
	}
	else
		*info = -1;
}

HIDDEN void
spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info)
{
	if (blas_enter())
	{
		blas.spotrf(uplo, n, a, lda, info);
		QdbBlasLeave();
	}
	else
		*info = -1;
}

HIDDEN void
spotrs_(const char *uplo, const int *n, const int *nrhs, const float *a,
		const int *lda, float *b, const int *ldb, int *info)
{
	if (blas_enter())
	{
		blas.spotrs(uplo, n, nrhs, a, lda, b, ldb, info);
		QdbBlasLeave();
	}
	else
		*info = -1;
}
