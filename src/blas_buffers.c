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
 * here, where a failure can be told: a mapping of the buffer's size is
 * tried first (and unmapped), then OpenBLAS's own blas_memory_alloc takes a buffer into
 * its table and blas_memory_free returns it there, free for the call that
 * follows.  Calls are counted: one that finds every known buffer in use
 * either adds one this way or, when there is no room for it, waits for a
 * call of another thread to give one back.  Only a process with no buffer
 * at all and no room for one is refused; the caller then raises
 * ERROR 53200 or, in a thread that may not, computes without OpenBLAS.
 * Before the library is loaded, room is tried for what loading maps (the
 * library, each pool thread's buffer and stack) and the first call's
 * buffer, with one to spare: the pool's threads take theirs as they start,
 * after dlopen has returned, possibly after the first call took its own
 * (blas_load.c has them all taken at once, by a product split among the
 * pool's threads).
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
#include <sys/mman.h>
#include <unistd.h>

#include "blas_buffers.h"

/* OpenBLAS's BUFFER_SIZE on x86-64 (128 MB), its guard page and a margin */
#define BLAS_BUFFER_BYTES	((size_t) 129 << 20)
/*
 * What loading maps beside the buffers: the library (about 42 MB), and a
 * stack for each pool thread (a pool thread took 139 MB in all: session
 * 62's second review, /work/runs/review-s62b.md F1)
 */
#define BLAS_LIBRARY_BYTES	((size_t) 64 << 20)
#define BLAS_STACK_BYTES	((size_t) 12 << 20)
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
 * Whether bytes of address space fit at once: mapped writable in pieces of
 * a buffer's size, as OpenBLAS maps its buffers (so a commit limit counts
 * them too), no page touched, then unmapped.  Not malloc: with
 * MALLOC_PERTURB_ set (the tests set it) malloc fills every page, and the
 * probes of one build made 470 MB resident for a moment (t/011).
 */
static bool
room_for_bytes(size_t bytes)
{
	void	   *p[2 * BLAS_MAX_THREADS + 4];
	size_t		len[lengthof(p)];
	int			got = 0;
	bool		all = true;

	while (bytes > 0 && got < lengthof(p))
	{
		len[got] = Min(bytes, BLAS_BUFFER_BYTES);
		p[got] = mmap(NULL, len[got], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p[got] == MAP_FAILED)
		{
			all = false;
			break;
		}
		bytes -= len[got];
		got++;
	}
	while (got > 0)
	{
		got--;
		munmap(p[got], len[got]);
	}
	return all;
}

/* Whether n buffers fit at once. */
static bool
room_for(int n)
{
	return room_for_bytes(BLAS_BUFFER_BYTES * n);
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
	/* the library, each pool thread's buffer and stack, the first call's, one to spare */
	return room_for_bytes(BLAS_LIBRARY_BYTES +
						  (BLAS_BUFFER_BYTES + BLAS_STACK_BYTES) * (*buffers - 1) +
						  2 * BLAS_BUFFER_BYTES);
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
