/*
 * test_robust_mean.c
 *	  The centre of a sample with rows far out of scale: without such rows
 *	  the plain mean, float for float, and every row kept; with 2.5% of the
 *	  rows at 1e9 times the rest's scale, those left out and the mean the
 *	  rest's, on rows of either sign and on non-negative ones; most rows
 *	  copies of one vector, every row kept.  Then opq and
 *	  rq trained on such a sample keep the recall pq gets (session 62's
 *	  hunt, /work/runs/hunt-s62c.md F3: opq 0.02).
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "qdb_internal.h"
#include "robust_mean.h"
#include "tap.h"
#include "test_util.h"

#define N		4000
#define D		32
#define FAR		100				/* rows 0 .. FAR-1 scaled */

static float *
make_sample(double scale, uint64_t seed)
{
	float	   *x = malloc(sizeof(float) * N * D);
	uint64_t	st = seed;

	for (size_t i = 0; i < (size_t) N * D; i++)
		x[i] = (float) ((test_uniform(&st) * 2 - 1) * (i < (size_t) FAR * D ? scale : 1));
	return x;
}

static void
test_centre(void)
{
	float	   *x = make_sample(1, TEST_XORSHIFT_SEED);
	float		mean[D];
	unsigned char kept[N];
	size_t		nkept;
	bool		same = true,
				near = true;

	/* the plain mean, as pca.c computed it before */
	{
		double		acc[D] = {0};

		for (size_t i = 0; i < N; i++)
			for (int j = 0; j < D; j++)
				acc[j] += x[i * D + j];
		tap_ok(qdb_robust_mean(&qdb_default_alloc, x, N, D, mean, kept, &nkept, NULL) == QDB_OK,
			   "qdb_robust_mean runs");
		for (int j = 0; j < D; j++)
			same &= mean[j] == (float) (acc[j] / N);
		tap_ok(same && nkept == N, "no row far out of scale: the plain mean, every row kept (%zu)",
			   nkept);
	}
	free(x);

	x = make_sample(1e9, TEST_XORSHIFT_SEED);
	qdb_robust_mean(&qdb_default_alloc, x, N, D, mean, kept, &nkept, NULL);
	for (int i = 0; i < N; i++)
		same &= kept[i] == (i >= FAR);
	for (int j = 0; j < D; j++)
		near &= fabsf(mean[j]) < 0.1f;
	tap_ok(same && nkept == N - FAR, "rows at 1e9 times the scale: those %d left out (%zu kept)",
		   FAR, nkept);
	tap_ok(near, "and the mean is the others' (|mean| < 0.1 in every dimension)");
	free(x);

	/*
	 * non-negative rows: the far ones drag a plain mean along with them,
	 * as far from the rest as from them (session 63's review F2)
	 */
	x = make_sample(1e9, TEST_XORSHIFT_SEED);
	for (int i = 0; i < N * D; i++)
		x[i] = fabsf(x[i]);
	qdb_robust_mean(&qdb_default_alloc, x, N, D, mean, kept, &nkept, NULL);
	same = near = true;
	for (int i = 0; i < N; i++)
		same &= kept[i] == (i >= FAR);
	for (int j = 0; j < D; j++)
		near &= fabsf(mean[j] - 0.5f) < 0.1f;
	tap_ok(same && near, "non-negative rows, %d of them at 1e9 times the scale: those left out (%zu kept), the mean the others' (%.3g)",
		   FAR, nkept, mean[0]);
	free(x);

	x = make_sample(1, TEST_XORSHIFT_SEED);
	for (int i = 0; i < N * 3 / 4; i++)
		for (int j = 0; j < D; j++)
			x[i * D + j] = 0.25f;
	qdb_robust_mean(&qdb_default_alloc, x, N, D, mean, kept, &nkept, NULL);
	tap_ok(nkept == N, "three quarters copies of one vector: every row kept (%zu)", nkept);
	free(x);
}

static void
test_training(void)
{
	float	   *x = make_sample(1e9, TEST_XORSHIFT_SEED);
	float	   *q = make_sample(1, 12345);
	static const QdbKind kinds[3] = {QDB_KIND_PQ, QDB_KIND_OPQ, QDB_KIND_RQ};
	static const char *const names[3] = {"pq", "opq", "rq"};
	double		recall[3] = {0};

	for (int k = 0; k < 3; k++)
	{
		QdbTrainConfig c;
		QdbModel	m;

		test_config(&c, kinds[k], QDB_METRIC_L2, D, 16, 10);
		c.opq_iters = 8;
		c.rq_refits = 2;
		if (test_train(&c, x, N, &m, NULL, NULL) != QDB_OK)
		{
			tap_ok(0, "%s trains on rows with 2.5%% at 1e9 times the scale", names[k]);
			continue;
		}
		/* the queries: 200 rows of the others' scale */
		qdb_adc_recall(&m, x, N, q + (size_t) FAR * D, 200, 10, &recall[k]);
		qdb_model_free(&m);
	}
	tap_ok(recall[0] > 0.7, "pq's 10-recall@10 with 2.5%% of rows at 1e9: %.3f", recall[0]);
	tap_ok(recall[1] > recall[0] - 0.1,
		   "opq's within 0.1 of it: %.3f (0.0015 with the plain mean)", recall[1]);
	tap_ok(recall[2] > recall[0] - 0.1,
		   "rq's within 0.1 of it: %.3f (0.0035 with the plain mean)", recall[2]);
	free(x);
	free(q);
}

int
main(void)
{
	test_centre();
	test_training();
	return tap_done();
}
