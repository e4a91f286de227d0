/*
 * kmeans.c
 *	  k-means as the product quantizer needs it: many small problems (d of
 *	  a few dims, k = 256) run again and again, so the heavy part is the
 *	  assignment, done as one sgemm per block of points (||x||^2 - 2 x.c +
 *	  ||c||^2) followed by a vectorised argmin.  It allocates nothing itself
 *	  (qdb_kmeans_run), so product quantizer threads can run it.
 *
 * Seeding is k-means++ on a subsample; the Lloyd iterations then run on at
 * most max_points_per_centroid * k points, as Faiss does.  An empty cluster
 * takes half of a large one: the large centroid is copied and the two are
 * pushed apart by a small symmetric perturbation (Faiss's split).
 * Everything random comes from one seeded generator, so a seed always gives
 * the same centroids.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kmeans.h"
#include "pq.h"
#include "qdb_internal.h"

/* k-means++ looks at this many points per centroid at most */
#define KMPP_POINTS_PER_CENTROID	16

/* relative size of the split perturbation (Faiss uses 1/1024 too) */
#define SPLIT_EPS			(1.0f / 1024.0f)

/*
 * Knuth's selection sampling: one pass, no memory, rows stay in order
 * (kinder to the cache than a random permutation).
 */
void
qdb_sample_rows(const float *x, size_t n, int d, size_t nsample,
				uint64_t seed, float *out)
{
	QdbRng		rng;
	size_t		i,
				taken = 0;

	qdb_rng_seed(&rng, seed);
	for (i = 0; i < n && taken < nsample; i++)
	{
		if (qdb_rng_below(&rng, n - i) < nsample - taken)
		{
			memcpy(out + taken * d, x + i * d, sizeof(float) * d);
			taken++;
		}
	}
}

void
qdb_centroid_norms(const float *c, int k, int d, float *cnorm)
{
	int			j,
				t;

	for (j = 0; j < k; j++)
	{
		float		s = 0;

		for (t = 0; t < d; t++)
			s += c[(size_t) j * d + t] * c[(size_t) j * d + t];
		cnorm[j] = s;
	}
}

/*
 * Argmin of a row of k distances; the first index wins a tie.  Versions
 * for AVX-512 and AVX2 carry target attributes and are chosen at run time
 * (the build has no -march flags), as in distance.c.  Two accumulators
 * halve the compare-blend dependency chain.
 */
typedef int (*ArgminFn) (const float *v, int k, float *bestval);

static int
argmin_scalar(const float *v, int k, float *bestval)
{
	float		best = INFINITY;
	int			bi = 0;
	int			j;

	for (j = 0; j < k; j++)
	{
		if (v[j] < best)
		{
			best = v[j];
			bi = j;
		}
	}
	*bestval = best;
	return bi;
}

/* finish a vector argmin (best at bi) over the last elements j..k-1 */
static inline int
argmin_tail(const float *v, int j, int k, float best, int bi, float *bestval)
{
	for (; j < k; j++)
	{
		if (v[j] < best)
		{
			best = v[j];
			bi = j;
		}
	}
	*bestval = best;
	return bi;
}

#if defined(__x86_64__)

__attribute__((target("avx2")))
static int
argmin_avx2(const float *v, int k, float *bestval)
{
	__m256		b0 = _mm256_set1_ps(INFINITY),
				b1 = b0;
	__m256i		i0 = _mm256_setzero_si256(),
				i1 = i0;
	__m256i		idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
	const __m256i eight = _mm256_set1_epi32(8);
	int			j = 0;

	for (; j + 16 <= k; j += 16)
	{
		__m256		x0 = _mm256_loadu_ps(v + j);
		__m256		x1 = _mm256_loadu_ps(v + j + 8);
		__m256		lt0 = _mm256_cmp_ps(x0, b0, _CMP_LT_OQ);
		__m256		lt1 = _mm256_cmp_ps(x1, b1, _CMP_LT_OQ);
		__m256i		idx1 = _mm256_add_epi32(idx, eight);

		b0 = _mm256_blendv_ps(b0, x0, lt0);
		b1 = _mm256_blendv_ps(b1, x1, lt1);
		i0 = _mm256_blendv_epi8(i0, idx, _mm256_castps_si256(lt0));
		i1 = _mm256_blendv_epi8(i1, idx1, _mm256_castps_si256(lt1));
		idx = _mm256_add_epi32(idx1, eight);
	}
	{
		/* merge the accumulators, then the lanes */
		__m256		lt = _mm256_or_ps(_mm256_cmp_ps(b1, b0, _CMP_LT_OQ),
									  _mm256_and_ps(_mm256_cmp_ps(b1, b0, _CMP_EQ_OQ),
													_mm256_castsi256_ps(_mm256_cmpgt_epi32(i0, i1))));
		__m256		m;
		int32_t		bx[8];
		float		best;
		int			bi = INT32_MAX;
		int			mask;
		int			l;

		b0 = _mm256_blendv_ps(b0, b1, lt);
		i0 = _mm256_blendv_epi8(i0, i1, _mm256_castps_si256(lt));
		m = _mm256_min_ps(b0, _mm256_permute2f128_ps(b0, b0, 1));
		m = _mm256_min_ps(m, _mm256_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
		m = _mm256_min_ps(m, _mm256_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
		best = _mm256_cvtss_f32(m);
		if (!(best < INFINITY))
			return argmin_scalar(v, k, bestval);
		mask = _mm256_movemask_ps(_mm256_cmp_ps(b0, m, _CMP_EQ_OQ));
		_mm256_storeu_si256((__m256i *) bx, i0);
		for (l = 0; l < 8; l++)
			if ((mask >> l) & 1 && bx[l] < bi)
				bi = bx[l];
		return argmin_tail(v, j, k, best, bi, bestval);
	}
}

__attribute__((target("avx512f")))
static int
argmin_avx512(const float *v, int k, float *bestval)
{
	__m512		b0 = _mm512_set1_ps(INFINITY),
				b1 = b0;
	__m512i		i0 = _mm512_setzero_si512(),
				i1 = i0;
	__m512i		idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7,
										8, 9, 10, 11, 12, 13, 14, 15);
	const __m512i sixteen = _mm512_set1_epi32(16);
	int			j = 0;

	for (; j + 32 <= k; j += 32)
	{
		__m512		x0 = _mm512_loadu_ps(v + j);
		__m512		x1 = _mm512_loadu_ps(v + j + 16);
		__mmask16	lt0 = _mm512_cmp_ps_mask(x0, b0, _CMP_LT_OQ);
		__mmask16	lt1 = _mm512_cmp_ps_mask(x1, b1, _CMP_LT_OQ);
		__m512i		idx1 = _mm512_add_epi32(idx, sixteen);

		b0 = _mm512_mask_mov_ps(b0, lt0, x0);
		b1 = _mm512_mask_mov_ps(b1, lt1, x1);
		i0 = _mm512_mask_mov_epi32(i0, lt0, idx);
		i1 = _mm512_mask_mov_epi32(i1, lt1, idx1);
		idx = _mm512_add_epi32(idx1, sixteen);
	}
	{
		/* merge the accumulators, then the lanes */
		__mmask16	lt = _mm512_cmp_ps_mask(b1, b0, _CMP_LT_OQ) |
			(_mm512_cmp_ps_mask(b1, b0, _CMP_EQ_OQ) & _mm512_cmplt_epi32_mask(i1, i0));
		float		best;
		int			bi;

		b0 = _mm512_mask_mov_ps(b0, lt, b1);
		i0 = _mm512_mask_mov_epi32(i0, lt, i1);
		best = _mm512_reduce_min_ps(b0);
		/* nothing below infinity (k < 32, or all NaN): the plain loop */
		if (!(best < INFINITY))
			return argmin_scalar(v, k, bestval);
		bi = _mm512_mask_reduce_min_epi32(_mm512_cmp_ps_mask(b0, _mm512_set1_ps(best),
															 _CMP_EQ_OQ), i0);
		return argmin_tail(v, j, k, best, bi, bestval);
	}
}
#endif

/* QDB_SIMD=scalar|avx2 caps the choice, as for the distance kernels */
static ArgminFn
choose_argmin(void)
{
#if defined(__x86_64__)
	const char *cap = getenv("QDB_SIMD");
	int			level = 2;

	if (cap && strcmp(cap, "scalar") == 0)
		level = 0;
	else if (cap && strcmp(cap, "avx2") == 0)
		level = 1;
	__builtin_cpu_init();
	if (level >= 2 && __builtin_cpu_supports("avx512f"))
		return argmin_avx512;
	if (level >= 1 && __builtin_cpu_supports("avx2"))
		return argmin_avx2;
#endif
	return argmin_scalar;
}

/*
 * Rows per sgemm: enough that packing the centroids is paid over many
 * rows.  Blocks of 2^17 multiply-adds (5 rows at 96 dims, 10 at 48), which
 * OpenBLAS runs in the calling thread, spent a quarter of the k-means time
 * packing; 256 rows halve its CPU time at 48-96 dims.  Products this size
 * would start OpenBLAS's own threads, so the product quantizer's threads
 * run with OpenBLAS held to one (pq.c's run_tasks).
 */
int
qdb_assign_block_rows(int d, int k)
{
	return QDB_ASSIGN_ROWS;
}

void
qdb_nearest_centroids(const float *x, size_t n, int d, size_t ldx,
					  const float *c, const float *cnorm, int k,
					  float *work, int32_t *labels, float *dist)
{
	ArgminFn	argmin;
	size_t		rows = qdb_assign_block_rows(d, k);
	size_t		i0;

	argmin = choose_argmin();
#if defined(__x86_64__)
	if (argmin == argmin_avx512 &&
		qdb_assign_k256(x, n, d, ldx, c, cnorm, k, labels, dist))
		return;
#endif
	for (i0 = 0; i0 < n; i0 += rows)
	{
		size_t		b = n - i0 < rows ? n - i0 : rows;
		size_t		r;

		/* work = ||c||^2 - 2 x.c: the sgemm adds onto rows of norms */
		for (r = 0; r < b; r++)
			memcpy(work + r * k, cnorm, sizeof(float) * k);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) b, k, d,
					-2.0f, x + i0 * ldx, (int) ldx, c, d, 1.0f, work, k);
		for (r = 0; r < b; r++)
		{
			float		best;

			labels[i0 + r] = argmin(work + r * k, k, &best);
			if (dist)
			{
				const float *xr = x + (i0 + r) * ldx;
				float		xn = 0;
				int			t;

				for (t = 0; t < d; t++)
					xn += xr[t] * xr[t];
				/* the expansion can go slightly negative by rounding */
				dist[i0 + r] = xn + best > 0 ? xn + best : 0;
			}
		}
	}
}

/* points k-means++ looks at */
static inline size_t
kmpp_points(size_t n, int k)
{
	size_t		np = (size_t) k * KMPP_POINTS_PER_CENTROID;

	return np < n ? np : n;
}

static inline float
sqdist(const float *a, const float *b, int d)
{
	float		s = 0;
	int			t;

	for (t = 0; t < d; t++)
		s += (a[t] - b[t]) * (a[t] - b[t]);
	return s;
}

/*
 * k-means++ (Arthur and Vassilvitskii): each new centroid is a point drawn
 * with probability proportional to its squared distance to the nearest
 * centroid so far.  Runs on a subsample (sub, d2: scratch for np points)
 * to bound the O(n k d) cost.
 */
static void
kmeanspp_init(const float *x, size_t n, int d, int k, QdbRng *rng,
			  float *sub, float *d2, float *centroids)
{
	size_t		np = kmpp_points(n, k);
	const float *xs = x;
	size_t		i;
	int			j;

	if (np < n)
	{
		qdb_sample_rows(x, n, d, np, qdb_rng_next(rng), sub);
		xs = sub;
	}

	i = qdb_rng_below(rng, np);
	memcpy(centroids, xs + i * d, sizeof(float) * d);
	for (i = 0; i < np; i++)
		d2[i] = sqdist(xs + i * d, centroids, d);

	for (j = 1; j < k; j++)
	{
		float	   *cj = centroids + (size_t) j * d;
		double		total = 0;
		size_t		pick = np - 1;

		for (i = 0; i < np; i++)
			total += d2[i];
		if (total > 0)
		{
			double		r = qdb_rng_uniform(rng) * total;
			double		acc = 0;

			for (i = 0; i < np; i++)
			{
				acc += d2[i];
				if (acc > r && d2[i] > 0)
				{
					pick = i;
					break;
				}
			}
		}
		else
			/* fewer distinct points than centroids: any point will do */
			pick = qdb_rng_below(rng, np);

		memcpy(cj, xs + pick * d, sizeof(float) * d);
		for (i = 0; i < np; i++)
		{
			float		nd = sqdist(xs + i * d, cj, d);

			if (nd < d2[i])
				d2[i] = nd;
		}
	}
}

/*
 * Give each empty cluster half of a cluster chosen with probability
 * proportional to its size beyond one point.  scale (an RMS coordinate of
 * the data) keeps the perturbation nonzero where a coordinate is zero.
 */
static void
split_empty_clusters(float *c, size_t *counts, int k, int d, QdbRng *rng,
					 float scale)
{
	int			ci;

	for (ci = 0; ci < k; ci++)
	{
		uint64_t	weight = 0;
		uint64_t	r;
		int			cj;
		int			t;
		float	   *a;
		float	   *b;

		if (counts[ci] > 0)
			continue;
		for (cj = 0; cj < k; cj++)
			if (counts[cj] > 1)
				weight += counts[cj] - 1;
		if (weight == 0)
			return;				/* cannot happen while n >= k */
		r = qdb_rng_below(rng, weight);
		for (cj = 0; cj < k; cj++)
		{
			if (counts[cj] <= 1)
				continue;
			if (r < counts[cj] - 1)
				break;
			r -= counts[cj] - 1;
		}

		a = c + (size_t) ci * d;
		b = c + (size_t) cj * d;
		for (t = 0; t < d; t++)
		{
			float		delta = SPLIT_EPS * (fabsf(b[t]) + 1e-2f * scale);
			float		v = b[t];

			a[t] = (t % 2 == 0) ? v + delta : v - delta;
			b[t] = (t % 2 == 0) ? v - delta : v + delta;
		}
		counts[ci] = counts[cj] / 2;
		counts[cj] -= counts[ci];
	}
}

/* Scratch layout, each piece 64-byte aligned. */
typedef struct KmeansScratch
{
	float	   *sample;			/* (nuse x d) when subsampling */
	int32_t    *labels;			/* (nuse) */
	float	   *dist;			/* (nuse) */
	float	   *work;			/* (QDB_ASSIGN_BLOCK x k) */
	float	   *cnorm;			/* (k) */
	double	   *sums;			/* (k x d) */
	size_t	   *counts;			/* (k) */
	float	   *ppsub;			/* (kmpp points x d) */
	float	   *ppd2;			/* (kmpp points) */
} KmeansScratch;

static size_t
kmeans_points(size_t n, int k, int max_points_per_centroid)
{
	if (max_points_per_centroid > 0 && n > (size_t) max_points_per_centroid * k)
		return (size_t) max_points_per_centroid * k;
	return n;
}

#define ALIGN64(x)	(((x) + 63) & ~(size_t) 63)

/* Carves the scratch (base NULL: only measures); returns its size. */
static size_t
kmeans_layout(void *base, size_t n, int d, int k, int max_points_per_centroid,
			  KmeansScratch *ks)
{
	size_t		nuse = kmeans_points(n, k, max_points_per_centroid);
	size_t		np = kmpp_points(nuse, k);
	size_t		off = 0;
	char	   *p = base;

#define CARVE(field, count, type) \
	do { \
		ks->field = (type *) (p ? p + off : NULL); \
		off += ALIGN64((size_t) (count) * sizeof(type)); \
	} while (0)

	CARVE(sample, nuse < n ? nuse * d : 0, float);
	CARVE(labels, nuse, int32_t);
	CARVE(dist, nuse, float);
	CARVE(work, (size_t) QDB_ASSIGN_BLOCK * k, float);
	CARVE(cnorm, k, float);
	CARVE(sums, (size_t) k * d, double);
	CARVE(counts, k, size_t);
	CARVE(ppsub, np < nuse ? np * d : 0, float);
	CARVE(ppd2, np, float);
#undef CARVE
	return off;
}

size_t
qdb_kmeans_scratch_size(size_t n, int d, int k, int max_points_per_centroid)
{
	KmeansScratch ks;

	/* sizes overflow only for absurd inputs, which fail to allocate */
	return kmeans_layout(NULL, n, d, k, max_points_per_centroid, &ks) + 64;
}

/*
 * qdb_kmeans_run, with a heartbeat to p (if not NULL) after each iteration,
 * and stopping (QDB_ERR_CANCELLED) after one once *stop (if not NULL) is set
 */
static int
kmeans_run(void *scratch, const float *x, size_t n, int d, int k,
		   int niter, int max_points_per_centroid, uint64_t seed,
		   int warm, float *centroids, double *obj,
		   const QdbProgressCtx *p, const char *stage, const int *stop)
{
	KmeansScratch ks;
	QdbRng		rng;
	const float *xs = x;
	float		scale = -1;
	double		last = 0;
	size_t		nuse;
	int			it;

	if (scratch == NULL || x == NULL || centroids == NULL || d <= 0 || k <= 0 ||
		niter < 0)
		return QDB_ERR_ARG;
	if (n < (size_t) k)
		return QDB_ERR_DATA;
	kmeans_layout((void *) ALIGN64((uintptr_t) scratch), n, d, k,
				  max_points_per_centroid, &ks);
	qdb_rng_seed(&rng, seed);

	nuse = kmeans_points(n, k, max_points_per_centroid);
	if (nuse < n)
	{
		qdb_sample_rows(x, n, d, nuse, qdb_rng_next(&rng), ks.sample);
		xs = ks.sample;
	}
	if (!warm)
		kmeanspp_init(xs, nuse, d, k, &rng, ks.ppsub, ks.ppd2, centroids);

	for (it = 0; it < niter; it++)
	{
		double		total = 0;
		size_t		i;
		int			j,
					t,
					nempty = 0;

		qdb_centroid_norms(centroids, k, d, ks.cnorm);
		qdb_nearest_centroids(xs, nuse, d, d, centroids, ks.cnorm, k, ks.work,
							  ks.labels, ks.dist);

		memset(ks.sums, 0, sizeof(double) * k * d);
		memset(ks.counts, 0, sizeof(size_t) * k);
		for (i = 0; i < nuse; i++)
		{
			double	   *s = ks.sums + (size_t) ks.labels[i] * d;
			const float *xr = xs + i * d;

			for (t = 0; t < d; t++)
				s[t] += xr[t];
			ks.counts[ks.labels[i]]++;
			total += ks.dist[i];
		}
		last = total / nuse;

		for (j = 0; j < k; j++)
		{
			if (ks.counts[j] == 0)
			{
				nempty++;
				continue;
			}
			for (t = 0; t < d; t++)
				centroids[(size_t) j * d + t] =
					(float) (ks.sums[(size_t) j * d + t] / ks.counts[j]);
		}
		if (nempty > 0)
		{
			if (scale < 0)
			{
				double		ss = 0;

				for (i = 0; i < nuse * d; i++)
					ss += (double) xs[i] * xs[i];
				scale = (float) sqrt(ss / ((double) nuse * d));
			}
			split_empty_clusters(centroids, ks.counts, k, d, &rng, scale);
		}
		/* an iteration over 50,000 rows of 256 dims takes a fifth of a second */
		if (p != NULL && qdb_progress_heartbeat(p, stage) != QDB_OK)
			return QDB_ERR_CANCELLED;
		if (stop != NULL && __atomic_load_n(stop, __ATOMIC_RELAXED))
			return QDB_ERR_CANCELLED;
	}
	if (obj)
		*obj = last;
	return QDB_OK;
}

int
qdb_kmeans_run(void *scratch, const float *x, size_t n, int d, int k,
			   int niter, int max_points_per_centroid, uint64_t seed,
			   int warm, float *centroids, double *obj,
			   const QdbProgressCtx *p, const char *stage, const int *stop)
{
	return kmeans_run(scratch, x, n, d, k, niter, max_points_per_centroid, seed,
					  warm, centroids, obj, p, stage, stop);
}

int
qdb_kmeans_cancellable(const QdbAlloc *a, const float *x, size_t n, int d, int k,
					   int niter, int max_points_per_centroid, uint64_t seed,
					   int warm, float *centroids, double *obj,
					   const QdbProgressCtx *p, const char *stage)
{
	void	   *scratch;
	int			status;

	if (d <= 0 || k <= 0)
		return QDB_ERR_ARG;
	scratch = qdb_malloc(a, qdb_kmeans_scratch_size(n, d, k, max_points_per_centroid), 1);
	if (!scratch)
		return QDB_ERR_NOMEM;
	status = kmeans_run(scratch, x, n, d, k, niter, max_points_per_centroid,
						seed, warm, centroids, obj, p, stage, NULL);
	qdb_free(a, scratch);
	return status;
}

int
qdb_kmeans(const QdbAlloc *a, const float *x, size_t n, int d, int k,
		   int niter, int max_points_per_centroid, uint64_t seed,
		   int warm, float *centroids, double *obj)
{
	return qdb_kmeans_cancellable(a, x, n, d, k, niter, max_points_per_centroid,
								  seed, warm, centroids, obj, NULL, NULL);
}
