/*
 * timing.c
 *	  Training throughput of the neural kind's step + Adam: the cpu backend
 *	  against the cuda one, in samples per second (a step of B triplets is
 *	  3B samples), for a few batch sizes and input dimensions.
 *
 *	  usage: timing path/to/quantumdb_cuda.so
 *
 * Both backends return from step() and adam() with the work done (the
 * results are on the host), so wall-clock time around them is honest.
 * Without the object or a device it prints "skip: <reason>" and exits 0.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neural.h"
#include "qdb_internal.h"

#define POOL_ROWS	8192
#define MAX_BATCH	2048

static const int dims[] = {128, 768};
static const int batches[] = {128, 512, MAX_BATCH};

/* How long each backend is timed for one configuration. */
typedef struct Budget
{
	int			warmup;
	int			min_steps;
	int			max_steps;
	double		min_seconds;
} Budget;

static const Budget cpu_budget = {1, 2, 30, 1.0};
static const Budget cuda_budget = {3, 10, 500, 0.5};

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n > 0 ? n : 1);

	if (p == NULL)
	{
		fprintf(stderr, "timing: out of memory\n");
		exit(2);
	}
	return p;
}

/* Samples per second of step + adam on B triplets; < 0 on failure. */
static double
time_steps(const QdbNeuralOps *ops, void *st, const float *w, const float *pool,
		   const QdbNeuralShape *s, const float *tau, int B, const Budget *bud,
		   double *ms_per_step)
{
	int			R = 3 * B;
	int			t = 0,
				steps = 0;
	double		t0 = 0.0,
				elapsed = 0.0;
	QdbNeuralStep step;

	memset(&step, 0, sizeof(step));
	step.triplets = B;
	step.tau = tau;
	step.w_recon = 0.3f;
	step.w_cluster = 0.2f;
	step.w_diversity = 0.1f;
	step.w_commit = 0.1f;
	step.w_triplet = 0.3f;
	step.margin = 1.0f;
	if (ops->set_params(st, w) != QDB_OK)
		return -1.0;
	for (;;)
	{
		/* batches walk the pool; the noise is on, as in training */
		const float *x = pool + (size_t) ((t * 997) % (POOL_ROWS - R)) * s->dim;
		QdbNeuralLosses L;
		float		norm;
		int			rc;

		t++;
		step.noise_seed = (uint64_t) t;
		rc = ops->step(st, x, &step, &L);
		if (rc == QDB_OK)
			rc = ops->adam(st, 1e-4f, t, 1.0f, &norm);
		if (rc != QDB_OK)
		{
			fprintf(stderr, "timing: %s: %s (%s)\n", ops->name, qdb_status_string(rc),
					ops->last_error(st));
			return -1.0;
		}
		if (t == bud->warmup)
		{
			t0 = qdb_now();
			continue;
		}
		if (t < bud->warmup)
			continue;
		steps++;
		elapsed = qdb_now() - t0;
		if (steps >= bud->max_steps ||
			(steps >= bud->min_steps && elapsed >= bud->min_seconds))
			break;
	}
	*ms_per_step = 1e3 * elapsed / steps;
	return (double) steps * R / elapsed;
}

int
main(int argc, char **argv)
{
	char		loaderr[256];
	const QdbNeuralOps *ops[2];
	int			failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 2)
	{
		fprintf(stderr, "usage: %s path/to/quantumdb_cuda.so\n", argv[0]);
		return 2;
	}
	/* the loader quantumdb.so uses */
	if (qdb_cuda_backend(argv[1], &ops[1], loaderr, sizeof(loaderr)) != QDB_OK)
	{
		printf("skip: %s\n", loaderr);
		return 0;
	}
	ops[0] = qdb_neural_cpu_ops();

	for (size_t di = 0; di < sizeof(dims) / sizeof(dims[0]); di++)
	{
		QdbNeuralShape s;
		QdbNeuralLayout l;
		QdbRng		rng;
		void	   *st[2] = {NULL, NULL};
		char		err[256] = "";
		float	   *pool,
				   *w,
				   *tau;
		int			rc;

		memset(&s, 0, sizeof(s));
		s.dim = dims[di];
		s.dim_pq = s.dim < 128 ? (s.dim + 15) / 16 * 16 : 128;
		s.hidden = 2 * s.dim_pq < 1024 ? 2 * s.dim_pq : 1024;
		s.dsub = 8;
		s.M = s.dim_pq / s.dsub;
		s.K = QDB_KSUB;
		qdb_neural_layout(&s, &l);

		rc = ops[1]->create(&st[1], &s, 3 * MAX_BATCH, NULL, err, sizeof(err));
		if (rc == QDB_ERR_NO_DEVICE)
		{
			printf("skip: no CUDA device (%s)\n", err);
			return 0;
		}
		if (rc != QDB_OK)
		{
			printf("timing: cuda create: %s (%s)\n", qdb_status_string(rc), err);
			return 1;
		}
		rc = ops[0]->create(&st[0], &s, 3 * MAX_BATCH, NULL, err, sizeof(err));
		if (rc != QDB_OK)
		{
			printf("timing: cpu create: %s (%s)\n", qdb_status_string(rc), err);
			return 1;
		}

		qdb_rng_seed(&rng, 7 + s.dim);
		pool = xmalloc(sizeof(float) * POOL_ROWS * s.dim);
		for (size_t i = 0; i < (size_t) POOL_ROWS * s.dim; i++)
			pool[i] = (float) qdb_rng_gaussian(&rng);
		w = xmalloc(sizeof(float) * l.total);
		for (size_t i = 0; i < l.total; i++)
			w[i] = (float) (0.05 * qdb_rng_gaussian(&rng));
		tau = xmalloc(sizeof(float) * s.M);
		for (int m = 0; m < s.M; m++)
			tau[m] = 1.0f;

		if (di == 0)
			printf("%5s %4s %5s %6s %6s | %11s %9s | %12s %9s | %8s\n",
				   "dim", "T", "H", "batch", "rows", "cpu samp/s", "cpu ms", "cuda samp/s",
				   "cuda ms", "cuda/cpu");
		for (size_t bi = 0; bi < sizeof(batches) / sizeof(batches[0]); bi++)
		{
			int			B = batches[bi];
			double		ms[2] = {0, 0};
			double		cpu = time_steps(ops[0], st[0], w, pool, &s, tau, B,
										 &cpu_budget, &ms[0]);
			double		gpu = time_steps(ops[1], st[1], w, pool, &s, tau, B,
										 &cuda_budget, &ms[1]);

			if (cpu < 0 || gpu < 0)
			{
				failed = 1;
				continue;
			}
			printf("%5d %4d %5d %6d %6d | %11.0f %9.2f | %12.0f %9.3f | %8.1f\n",
				   s.dim, s.dim_pq, s.hidden, B, 3 * B, cpu, ms[0], gpu, ms[1], gpu / cpu);
		}
		for (int i = 0; i < 2; i++)
			ops[i]->destroy(st[i]);
		free(pool);
		free(w);
		free(tau);
	}
	return failed;
}
