/*
 * blas_buffers.c
 *	  Room for OpenBLAS's work buffers, made sure of before OpenBLAS asks.
 *
 * OpenBLAS gives every level-3 or LAPACK call a work buffer (128 MB of
 * address space in its x86-64 builds) from a table it keeps for the life of
 * the process: a call takes a free one, and allocates a new one only when
 * every buffer is in use, which is when more threads call it at once than
 * ever before.  Its pool's threads (one per CPU beyond the first) each
 * allocate one as they start, just after the library is loaded.  When that
 * allocation fails (an address-space limit, ulimit -v, or
 * vm.overcommit_memory = 2 with the commit limit reached), OpenBLAS tries
 * again, forever, inside the call: the backend then ignores cancel and
 * terminate, and only kill -9 ends it, taking the server down with it
 * (/work/runs/hunt-s61c.md F2).
 *
 * So before a call could make OpenBLAS allocate, the allocation is made
 * here, where a failure can be told: malloc tries the buffer's size first
 * (and frees it), then OpenBLAS's own blas_memory_alloc takes a buffer into
 * its table and blas_memory_free returns it there, free for the call that
 * follows.  Calls are counted: one that finds every known buffer in use
 * either adds one this way or, when there is no room for it, waits for a
 * call of another thread to give one back.  Only a process with no buffer
 * at all and no room for one is refused; the caller then raises
 * ERROR 53200 or, in a thread that may not, computes without OpenBLAS.
 * Before the library is loaded, room is tried for the buffers its pool's
 * threads will take, plus the first call's (blas_load.c then has them
 * taken at once, by a product split among the pool's threads).
 *
 * A room tried is freed before OpenBLAS takes it, so something else may
 * take it in between: another thread of this backend, or under a commit
 * limit another process (session 62's review F1).  Every try asks for one
 * buffer more than is about to be taken, so what comes between must take
 * more than 128 MB in those microseconds; that remains possible, and then
 * OpenBLAS's endless retry is back.
 *
 * The count assumes OpenBLAS's default build, whose table is shared by all
 * threads (Debian's); a build with USE_TLS gives each thread a table of its
 * own, which this does not cover.  A library without blas_memory_alloc is
 * not OpenBLAS, and is left to its own allocation.
 */
#include "postgres.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "blas_buffers.h"

/* OpenBLAS's BUFFER_SIZE on x86-64 (128 MB), its guard page and a margin */
#define BLAS_BUFFER_BYTES	((size_t) 129 << 20)
/* OpenBLAS's MAX_THREADS in Debian's build */
#define BLAS_MAX_THREADS	64

static struct
{
	pthread_mutex_t lock;
	pthread_cond_t given_back;
	int			busy;			/* calls inside OpenBLAS now */
	int			known;			/* buffers OpenBLAS holds for callers */
	QdbBlasMemAlloc alloc;		/* NULL: not OpenBLAS, no accounting */
	QdbBlasMemFree free;
}			slots = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

/*
 * Whether n buffers fit at once: malloc'd (address space only, no page
 * touched) and freed.
 */
static bool
room_for(int n)
{
	void	   *p[BLAS_MAX_THREADS];
	int			got;
	bool		all;

	if (n > BLAS_MAX_THREADS)
		n = BLAS_MAX_THREADS;
	for (got = 0; got < n; got++)
		if ((p[got] = malloc(BLAS_BUFFER_BYTES)) == NULL)
			break;
	all = got == n;
	while (got > 0)
		free(p[--got]);
	return all;
}

/* The threads OpenBLAS will run, as it counts them when it loads. */
static int
blas_threads(void)
{
	static const char *const vars[] = {"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
	"OMP_NUM_THREADS"};
	cpu_set_t	set;
	long		n = 0;
	int			i;

	for (i = 0; i < lengthof(vars) && n < 1; i++)
	{
		const char *v = getenv(vars[i]);

		if (v && *v)
			n = strtol(v, NULL, 10);
	}
	if (n < 1 && sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n < 1)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > BLAS_MAX_THREADS ? BLAS_MAX_THREADS : (int) n;
}

/*
 * Before the library loads: room for its pool's buffers and the first
 * call's.  The number of buffers tried goes to *buffers.
 */
bool
QdbBlasRoomToLoad(int *buffers)
{
	*buffers = blas_threads();
	return room_for(*buffers + 1);
}

/* After the library loaded: OpenBLAS's buffer table, NULL if it has none. */
void
QdbBlasBuffersFound(QdbBlasMemAlloc alloc, QdbBlasMemFree free_fn)
{
	pthread_mutex_lock(&slots.lock);
	slots.alloc = free_fn ? alloc : NULL;
	slots.free = free_fn;
	pthread_mutex_unlock(&slots.lock);
}

/*
 * Before a call into OpenBLAS: true when a buffer waits for it (the call
 * is counted until QdbBlasLeave); false when none does and there is no
 * room for one.
 */
bool
QdbBlasEnter(void)
{
	bool		ok = true;

	pthread_mutex_lock(&slots.lock);
	if (slots.alloc)
		for (;;)
		{
			if (slots.busy < slots.known)
				break;
			if (room_for(2))
			{
				/* into OpenBLAS's table, where the call will find it free */
				slots.free(slots.alloc(0));
				slots.known++;
				continue;
			}
			if (slots.busy == 0)
			{
				ok = false;
				break;
			}
			pthread_cond_wait(&slots.given_back, &slots.lock);
		}
	if (ok)
		slots.busy++;
	pthread_mutex_unlock(&slots.lock);
	return ok;
}

void
QdbBlasLeave(void)
{
	pthread_mutex_lock(&slots.lock);
	slots.busy--;
	pthread_cond_signal(&slots.given_back);
	pthread_mutex_unlock(&slots.lock);
}
