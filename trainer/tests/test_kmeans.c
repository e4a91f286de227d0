/*
 * test_kmeans.c
 *	  k-means: recovery of well-separated clusters, determinism, empty-cluster
 *	  repair, the vectorised nearest-centroid search, subsampling, a cancel
 *	  between iterations.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans.h"
#include "pq.h"
#include "qdb_internal.h"
#include "tap.h"
#include "test_util.h"

/* n points around k centers (k x d, spread 10) with noise sigma */
static void
make_clusters(QdbRng *r, int k, int d, size_t per, float sigma,
			  float *centers, float *x)
{
	size_t		i;
	int			c,
				j;

	for (c = 0; c < k; c++)
		for (j = 0; j < d; j++)
			centers[c * d + j] = (float) (qdb_rng_uniform(r) * 20.0 - 10.0);
	for (i = 0; i < per * k; i++)
	{
		c = (int) (i % k);
		for (j = 0; j < d; j++)
			x[i * d + j] = centers[c * d + j] + sigma * (float) qdb_rng_gaussian(r);
	}
}

static void
test_recovery(void)
{
	enum
	{
		K = 8, D = 6, PER = 300
	};
	QdbRng		r;
	float	   *centers = malloc(sizeof(float) * K * D);
	float	   *x = malloc(sizeof(float) * K * D * PER);
	float		c1[K * D],
				c2[K * D];
	double		obj1 = -1,
				obj2 = -2;
	int			used[K] = {0};
	int			matched = 1;
	float		worst = 0;
	int			i,
				j;

	qdb_rng_seed(&r, 7);
	make_clusters(&r, K, D, PER, 0.1f, centers, x);
	tap_ok(qdb_kmeans(NULL, x, (size_t) K * PER, D, K, 20, 256, 1234, 0, c1, &obj1) == QDB_OK,
		   "k-means on 8 gaussian clusters runs");
	for (i = 0; i < K; i++)
	{
		int			best = -1;
		float		bd = INFINITY;

		for (j = 0; j < K; j++)
		{
			float		dd = test_sqdist(centers + i * D, c1 + j * D, D);

			if (dd < bd)
			{
				bd = dd;
				best = j;
			}
		}
		if (used[best]++)
			matched = 0;
		if (bd > worst)
			worst = bd;
	}
	tap_ok(matched, "each true center has its own centroid");
	tap_ok(sqrtf(worst) < 0.05f, "centroids within 0.05 of the true centers (worst %.4f)",
		   sqrtf(worst));
	tap_ok(fabs(obj1 - D * 0.01) < 0.2 * D * 0.01,
		   "objective near the noise variance (%.5f vs %.5f)", obj1, D * 0.01);

	qdb_kmeans(NULL, x, (size_t) K * PER, D, K, 20, 256, 1234, 0, c2, &obj2);
	tap_ok(memcmp(c1, c2, sizeof(c1)) == 0 && obj1 == obj2,
		   "same seed gives identical centroids");
	free(centers);
	free(x);
}

static void
count_labels(const float *x, size_t n, int d, const float *c, int k, size_t *counts)
{
	float	   *cn = malloc(sizeof(float) * k);
	float	   *work = malloc(sizeof(float) * QDB_ASSIGN_BLOCK * k);
	int32_t    *lab = malloc(sizeof(int32_t) * n);
	size_t		i;

	qdb_centroid_norms(c, k, d, cn);
	qdb_nearest_centroids(x, n, d, d, c, cn, k, work, lab, NULL);
	memset(counts, 0, sizeof(size_t) * k);
	for (i = 0; i < n; i++)
		counts[lab[i]]++;
	free(cn);
	free(work);
	free(lab);
}

static void
test_empty_clusters(void)
{
	enum
	{
		K = 8, D = 6, PER = 300, KD = 16
	};
	QdbRng		r;
	float	   *centers = malloc(sizeof(float) * K * D);
	float	   *x = malloc(sizeof(float) * K * D * PER);
	float		c[K * D];
	size_t		counts[KD];
	float		dup[400 * 3];
	float		cd[KD * 3];
	double		obj = -1;
	int			finite = 1;
	int			nonempty = 0;
	int			i,
				j;

	/* every centroid starts on the same point: all but one cluster empty */
	qdb_rng_seed(&r, 11);
	make_clusters(&r, K, D, PER, 0.1f, centers, x);
	for (i = 0; i < K; i++)
		memcpy(c + i * D, x, sizeof(float) * D);
	tap_ok(qdb_kmeans(NULL, x, (size_t) K * PER, D, K, 40, 256, 5, 1, c, &obj) == QDB_OK,
		   "k-means from identical centroids runs");
	count_labels(x, (size_t) K * PER, D, c, K, counts);
	for (i = 0; i < K; i++)
		nonempty += counts[i] > 0;
	tap_ok(nonempty == K, "splits leave no empty cluster (%d of %d used)", nonempty, K);
	{
		float		mean[D] = {0};
		double		var = 0;

		for (i = 0; i < K * PER; i++)
			for (j = 0; j < D; j++)
				mean[j] += x[i * D + j] / (K * PER);
		for (i = 0; i < K * PER; i++)
			var += test_sqdist(x + i * D, mean, D);
		var /= K * PER;
		/* a local optimum may merge two clusters, but not more */
		tap_ok(obj < 0.25 * var, "splits reach a low objective (%.3f, one cluster: %.3f)",
			   obj, var);
	}

	/* 5 distinct points, duplicated, k = 16: more centroids than values */
	for (i = 0; i < 400; i++)
		for (j = 0; j < 3; j++)
			dup[i * 3 + j] = (float) ((i % 5) * (j + 1));
	tap_ok(qdb_kmeans(NULL, dup, 400, 3, KD, 10, 256, 3, 0, cd, &obj) == QDB_OK,
		   "k-means with k above the distinct values runs");
	for (i = 0; i < KD * 3; i++)
		if (!isfinite(cd[i]))
			finite = 0;
	tap_ok(finite, "all centroids finite");
	/* up to the split perturbation of 1/1024 */
	tap_ok(obj < 1e-3, "every point sits on a centroid (objective %.3g)", obj);
	count_labels(dup, 400, 3, cd, KD, counts);
	nonempty = 0;
	for (i = 0; i < KD; i++)
		nonempty += counts[i] > 0;
	tap_ok(nonempty == 5, "the 5 values are all represented (%d clusters used)", nonempty);

	tap_ok(qdb_kmeans(NULL, dup, 10, 3, KD, 10, 256, 3, 0, cd, &obj) == QDB_ERR_DATA,
		   "fewer points than centroids: QDB_ERR_DATA");
	tap_ok(qdb_kmeans(NULL, dup, 400, 0, KD, 10, 256, 3, 0, cd, &obj) == QDB_ERR_ARG,
		   "zero dims: QDB_ERR_ARG");
	free(centers);
	free(x);
}

/* the SIMD argmin against a plain loop, for several k and d */
static void
test_nearest(const char *simd)
{
	/* k = 256 up to 32 dims takes assign_k256.c's path (with AVX-512) */
	static const int ks[] = {256, 37, 16, 5, 64, 256, 256, 256, 256};
	static const int ds[] = {8, 3, 16, 1, 24, 16, 7, 32, 33};
	QdbRng		r;
	int			t;

	qdb_rng_seed(&r, 99);
	for (t = 0; t < (int) (sizeof(ks) / sizeof(ks[0])); t++)
	{
		int			k = ks[t],
					d = ds[t];
		size_t		n = 700,
					i;
		float	   *x = malloc(sizeof(float) * n * (d + 2));
		float	   *c = malloc(sizeof(float) * k * d);
		float	   *cn = malloc(sizeof(float) * k);
		float	   *work = malloc(sizeof(float) * QDB_ASSIGN_BLOCK * k);
		float	   *dist = malloc(sizeof(float) * n);
		int32_t    *lab = malloc(sizeof(int32_t) * n);
		int			ok = 1;
		float		maxerr = 0;

		test_fill_gaussian(&r, x, n * (d + 2), 1.0f);
		test_fill_gaussian(&r, c, (size_t) k * d, 1.0f);
		qdb_centroid_norms(c, k, d, cn);
		/* rows d + 2 apart: the strided access PQ encoding uses */
		qdb_nearest_centroids(x, n, d, d + 2, c, cn, k, work, lab, dist);
		for (i = 0; i < n; i++)
		{
			float		bd = INFINITY;
			int			best = 0,
						j;

			for (j = 0; j < k; j++)
			{
				float		dd = test_sqdist(x + i * (d + 2), c + j * d, d);

				if (dd < bd)
				{
					bd = dd;
					best = j;
				}
			}
			/* distinct random distances: only rounding could swap two */
			if (lab[i] != best &&
				fabsf(test_sqdist(x + i * (d + 2), c + lab[i] * d, d) - bd) > 1e-4f)
				ok = 0;
			if (fabsf(dist[i] - bd) > maxerr)
				maxerr = fabsf(dist[i] - bd);
		}
		tap_ok(ok && maxerr < 1e-3f,
			   "%s: nearest centroid k=%d d=%d matches brute force (err %.2g)",
			   simd, k, d, maxerr);
		free(x);
		free(c);
		free(cn);
		free(work);
		free(dist);
		free(lab);
	}

	{
		/* ties: equal distances go to the lowest index */
		float		c[64 * 2];
		float		cn[64];
		float		work[QDB_ASSIGN_BLOCK * 64];
		float		x[2] = {0, 0};
		int32_t		lab;
		int			j;

		for (j = 0; j < 64; j++)
		{
			c[j * 2] = (j < 40) ? 5.0f : 1.0f;	/* 40.. all at distance 1 */
			c[j * 2 + 1] = 0;
		}
		qdb_centroid_norms(c, 64, 2, cn);
		qdb_nearest_centroids(x, 1, 2, 2, c, cn, 64, work, &lab, NULL);
		tap_ok(lab == 40, "%s: a tie goes to the lowest index (%d)", simd, lab);
	}
	{
		/* the same with 256 centroids: 200.. all at distance 1 */
		static float c[256 * 2],
					cn[256],
					work[QDB_ASSIGN_BLOCK * 256];
		float		x[2] = {0, 0};
		int32_t		lab;
		int			j;

		for (j = 0; j < 256; j++)
		{
			c[j * 2] = (j < 200) ? 5.0f : 1.0f;
			c[j * 2 + 1] = 0;
		}
		qdb_centroid_norms(c, 256, 2, cn);
		qdb_nearest_centroids(x, 1, 2, 2, c, cn, 256, work, &lab, NULL);
		tap_ok(lab == 200, "%s: k=256: a tie goes to the lowest index (%d)", simd, lab);
		/* a NaN distance (overflow) never wins, wherever it lies */
		c[5 * 2] = 0;
		qdb_centroid_norms(c, 256, 2, cn);
		cn[16 * 7 + 5] = NAN;
		cn[16 * 8 + 5] = NAN;	/* the lane of centroid 5, eight registers on */
		cn[255] = NAN;
		qdb_nearest_centroids(x, 1, 2, 2, c, cn, 256, work, &lab, NULL);
		tap_ok(lab == 5, "%s: k=256: a NaN distance is passed over (%d)", simd, lab);
	}
}

static void
test_subsample(void)
{
	enum
	{
		K = 16, D = 4, N = 5000
	};
	QdbRng		r;
	float	   *x = malloc(sizeof(float) * N * D);
	float	   *s1 = malloc(sizeof(float) * 100 * D);
	float	   *s2 = malloc(sizeof(float) * 100 * D);
	float		c1[K * D],
				c2[K * D];
	double		o1,
				o2;
	int			inorder = 1;
	size_t		i,
				last = 0;

	qdb_rng_seed(&r, 3);
	for (i = 0; i < N; i++)
	{
		x[i * D] = (float) i;	/* row id in the first coordinate */
		x[i * D + 1] = (float) qdb_rng_gaussian(&r);
		x[i * D + 2] = (float) qdb_rng_gaussian(&r);
		x[i * D + 3] = (float) qdb_rng_gaussian(&r);
	}
	qdb_sample_rows(x, N, D, 100, 77, s1);
	qdb_sample_rows(x, N, D, 100, 77, s2);
	for (i = 0; i < 100; i++)
	{
		size_t		id = (size_t) s1[i * D];

		if (i > 0 && id <= last)
			inorder = 0;
		last = id;
	}
	tap_ok(inorder && memcmp(s1, s2, sizeof(float) * 100 * D) == 0,
		   "sampling: 100 distinct rows in order, reproducible");

	/* 5000 points, cap 10 per centroid: k-means sees 160 */
	tap_ok(qdb_kmeans(NULL, x, N, D, K, 10, 10, 8, 0, c1, &o1) == QDB_OK &&
		   qdb_kmeans(NULL, x, N, D, K, 10, 10, 8, 0, c2, &o2) == QDB_OK &&
		   memcmp(c1, c2, sizeof(c1)) == 0,
		   "subsampled k-means runs and is deterministic");
	free(x);
	free(s1);
	free(s2);
}

/* a progress callback that asks to stop at its third heartbeat */
static int
stop_at_third(const QdbEpochStats *s, void *arg)
{
	int		   *calls = arg;

	if (s->heartbeat && strcmp(s->stage, "km") == 0)
		++*calls;
	return *calls >= 3;
}

static void
test_cancel(void)
{
	enum
	{
		K = 8, D = 6, PER = 300
	};
	QdbRng		r;
	float	   *centers = malloc(sizeof(float) * K * D);
	float	   *x = malloc(sizeof(float) * K * D * PER);
	float		c[K * D];
	double		obj;
	int			calls = 0;
	QdbProgressCtx p = {stop_at_third, &calls, 0};

	qdb_rng_seed(&r, 11);
	make_clusters(&r, K, D, PER, 0.5f, centers, x);
	tap_ok(qdb_kmeans_cancellable(NULL, x, (size_t) K * PER, D, K, 1000, 256, 1, 0, c, &obj,
								  &p, "km") == QDB_ERR_CANCELLED && calls == 3,
		   "a cancel asked at the third iteration's heartbeat stops k-means there");
	calls = 0;
	tap_ok(qdb_kmeans_cancellable(NULL, x, (size_t) K * PER, D, K, 2, 256, 1, 0, c, &obj,
								  &p, "km") == QDB_OK && calls == 2,
		   "one heartbeat per iteration, none asked: QDB_OK");
	free(centers);
	free(x);
}

int
main(void)
{
	test_recovery();
	test_empty_clusters();
	/* each argmin version this CPU has (QDB_SIMD caps the choice) */
	test_nearest("best");
	setenv("QDB_SIMD", "avx2", 1);
	test_nearest("avx2 or less");
	setenv("QDB_SIMD", "scalar", 1);
	test_nearest("scalar");
	unsetenv("QDB_SIMD");
	test_subsample();
	test_cancel();
	return tap_done();
}
