/*
 * task_pool.h
 *	  The trainer's threads (task_pool.c).
 */
#ifndef QDB_TASK_POOL_H
#define QDB_TASK_POOL_H

#include <pthread.h>

/* most threads qdb_thread_count gives */
#define QDB_MAX_THREADS		64

typedef void (*QdbTaskFn) (void *arg, int task, int worker);
typedef int (*QdbDoneFn) (void *arg, int task);	/* nonzero: hand out no more */

/*
 * done's task while no task has finished for QDB_TASK_POLL_MS: a chance to
 * cancel (a progress heartbeat) in the calling thread; a task already
 * running stops only if it watches a flag that done sets.
 */
#define QDB_TASK_POLL		(-1)
#define QDB_TASK_POLL_MS	100

/* one per thread, allocated by the caller (the threads never allocate) */
typedef struct QdbWorker
{
	pthread_t	thread;
	struct TaskPool *pool;
	int			id;
} QdbWorker;

/* QDB_NUM_THREADS if set, else the CPUs this process may run on */
extern int	qdb_thread_count(void);

/*
 * Runs fn for tasks 0..ntasks-1 on up to nworkers threads (worker ids
 * 0..nworkers-1, one scratch each on the caller's side) while this thread
 * calls done (may be NULL) for each finished task.  order holds ntasks ints.
 * Returns nonzero when done stopped the run.  Falls back to running
 * everything here if no thread starts.  While the threads run, OpenBLAS
 * runs each of their products in the calling thread instead of sharing its
 * pool among them.
 */
extern int	qdb_run_tasks(int nworkers, int ntasks, QdbTaskFn fn, QdbDoneFn done,
						  void *arg, int *order, QdbWorker *workers);

/*
 * Holds OpenBLAS to one thread and returns the count it had, for
 * qdb_blas_release: for a caller whose own threads run beside its
 * products, where OpenBLAS's pool, woken by one product, would spin
 * (sched_yield) on the same cores through the work that follows.
 */
extern int	qdb_blas_hold(void);
extern void qdb_blas_release(int threads);

#endif
