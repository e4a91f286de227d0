/*
 * task_pool.c
 *	  The trainer's threads: a pool that hands tasks 0..n-1 to a few threads
 *	  while the calling thread reports the finished ones (the product
 *	  quantizer's sub-spaces and row chunks, the OPQ rotation's row blocks).
 *	  Threads never allocate and never call back into the caller's progress
 *	  callback; signals stay with the calling thread, which also polls done
 *	  (QDB_TASK_POLL) while a long task runs, so that a cancel is seen.
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "task_pool.h"

/*
 * Threads: QDB_NUM_THREADS if set, else the CPUs this process may run on.
 */
int
qdb_thread_count(void)
{
	const char *env = getenv("QDB_NUM_THREADS");
	long		n = 0;
	cpu_set_t	set;

	if (env && *env)
		n = strtol(env, NULL, 10);
	if (n < 1 && sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n < 1)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > QDB_MAX_THREADS ? QDB_MAX_THREADS : (int) n;
}

int
qdb_blas_hold(void)
{
	int			threads = openblas_get_num_threads();

	openblas_set_num_threads(1);
	return threads;
}

void
qdb_blas_release(int threads)
{
	if (threads > 0)
		openblas_set_num_threads(threads);
}

typedef struct TaskPool
{
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int			ntasks;
	int			next;			/* next task to hand out */
	int			finished;		/* tasks done, in order[] */
	int			stop;
	int		   *order;			/* (ntasks) completion order */
	QdbTaskFn	fn;
	void	   *arg;
} TaskPool;


static void *
worker_main(void *p)
{
	QdbWorker  *w = p;
	TaskPool   *pool = w->pool;

	for (;;)
	{
		int			task;

		pthread_mutex_lock(&pool->lock);
		if (pool->stop || pool->next >= pool->ntasks)
		{
			pthread_mutex_unlock(&pool->lock);
			break;
		}
		task = pool->next++;
		pthread_mutex_unlock(&pool->lock);

		pool->fn(pool->arg, task, w->id);

		pthread_mutex_lock(&pool->lock);
		pool->order[pool->finished++] = task;
		pthread_cond_signal(&pool->cond);
		pthread_mutex_unlock(&pool->lock);
	}
	return NULL;
}

/*
 * Runs fn for tasks 0..ntasks-1 on up to nworkers threads (worker ids
 * 0..nworkers-1, one scratch each on the caller's side) while this thread
 * calls done (may be NULL) for each finished task.  order holds ntasks ints.
 * Returns nonzero when done stopped the run.  Falls back to running
 * everything here if no thread starts.  While the threads run, OpenBLAS
 * runs each of their products in the calling thread instead of sharing its
 * pool among them.
 */
int
qdb_run_tasks(int nworkers, int ntasks, QdbTaskFn fn, QdbDoneFn done, void *arg,
			  int *order, QdbWorker *workers)
{
	TaskPool	pool;
	pthread_condattr_t cattr;
	struct timespec until;
	sigset_t	all,
				old;
	int			started = 0;
	int			reported = 0;
	int			stopped = 0;
	int			i;

	if (nworkers > 1 && ntasks > 1)
	{
		int			blas_threads = openblas_get_num_threads();

		openblas_set_num_threads(1);
		pool.ntasks = ntasks;
		pool.next = 0;
		pool.finished = 0;
		pool.stop = 0;
		pool.order = order;
		pool.fn = fn;
		pool.arg = arg;
		pthread_mutex_init(&pool.lock, NULL);
		pthread_condattr_init(&cattr);
		pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
		pthread_cond_init(&pool.cond, &cattr);
		pthread_condattr_destroy(&cattr);

		/* signals stay with the calling thread (a Postgres backend's handlers) */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		for (i = 0; i < nworkers; i++)
		{
			workers[i].pool = &pool;
			workers[i].id = i;
			if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
				break;
			started++;
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);

		if (started > 0)
		{
			pthread_mutex_lock(&pool.lock);
			for (;;)
			{
				while (reported < pool.finished)
				{
					int			task = pool.order[reported++];

					if (pool.stop || done == NULL)
						continue;
					pthread_mutex_unlock(&pool.lock);
					stopped = done(arg, task);
					pthread_mutex_lock(&pool.lock);
					if (stopped)
						pool.stop = 1;
				}
				if (pool.finished == (pool.stop ? pool.next : ntasks))
					break;
				clock_gettime(CLOCK_MONOTONIC, &until);
				until.tv_nsec += QDB_TASK_POLL_MS * 1000000L;
				if (until.tv_nsec >= 1000000000L)
				{
					until.tv_sec++;
					until.tv_nsec -= 1000000000L;
				}
				if (pthread_cond_timedwait(&pool.cond, &pool.lock, &until) == ETIMEDOUT &&
					!pool.stop && done != NULL && reported == pool.finished)
				{
					/* a long task: the caller may be cancelled meanwhile */
					pthread_mutex_unlock(&pool.lock);
					stopped = done(arg, QDB_TASK_POLL);
					pthread_mutex_lock(&pool.lock);
					if (stopped)
						pool.stop = 1;
				}
			}
			pthread_mutex_unlock(&pool.lock);
			for (i = 0; i < started; i++)
				pthread_join(workers[i].thread, NULL);
		}
		pthread_cond_destroy(&pool.cond);
		pthread_mutex_destroy(&pool.lock);
		openblas_set_num_threads(blas_threads);
		if (started > 0)
			return stopped;
	}

	for (i = 0; i < ntasks; i++)
	{
		fn(arg, i, 0);
		if (done && done(arg, i))
			return 1;
	}
	return 0;
}
