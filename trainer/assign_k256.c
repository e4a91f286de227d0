/*
 * assign_k256.c
 *	  The product quantizer's assignment step, fused: each row against the
 *	  256 centroids of a sub-space of a few dims, its 256 distances kept in
 *	  sixteen AVX-512 registers and reduced there to the nearest centroid.
 *
 * qdb_nearest_centroids' general path writes ||c||^2 into a block of rows,
 * adds -2 x.c by sgemm and reads the block back for the argmin.  At 16 dims
 * a sub-space, that copying, the sgemm's packing and the argmin's reads cost
 * as much as the multiply-adds (perf of `qdb-train train --kind opq` on
 * fashion-mnist-784: 65% of the training in the assignment, a quarter of it
 * outside the sgemm kernel).  Here the only memory traffic is the row and
 * the transposed centroids, which stay in the L1 cache.
 *
 * As in the sgemm path, x.c is summed first and ||c||^2 - 2 x.c formed at
 * the end (adding each product onto ||c||^2 instead rounds more; in one
 * three-seed run it gave fashion-mnist-784's opq 0.003 less 10-recall@10,
 * about the spread between seeds); the order
 * of the sum differs, so a label may differ where two centroids are
 * equally near up to rounding.  Ties go to the lowest index, as there.
 */
#include <math.h>
#include <stdbool.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kmeans.h"

#if defined(__x86_64__)

#define NREG	(QDB_KSUB / 16)

/* the tree of minima below is written for sixteen registers */
_Static_assert(NREG == 16, "assign_avx512 reduces 16 registers");

/*
 * The lowest index of the smallest of v's QDB_KSUB values, NaN passed over;
 * 0 and infinity when nothing is below infinity (as the sgemm path).
 */
static int
argmin_nan(const float *v, float *best)
{
	int			bi = 0,
				j;

	*best = INFINITY;
	for (j = 0; j < QDB_KSUB; j++)
	{
		if (v[j] < *best)
		{
			*best = v[j];
			bi = j;
		}
	}
	return bi;
}

__attribute__((target("avx512f")))
static void
assign_avx512(const float *x, size_t n, int d, size_t ldx, const float *ct,
			  const float *cnorm, int32_t *labels, float *dist)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		const float *xr = x + i * ldx;
		__m512		acc[NREG];
		__m512		m,
					bv;
		float		xn = 0,
					best;
		__mmask16	nan = 0;
		int			j,
					t,
					bi = 0;

		for (j = 0; j < NREG; j++)
			acc[j] = _mm512_setzero_ps();
		for (t = 0; t < d; t++)
		{
			const float *row = ct + (size_t) t * QDB_KSUB;
			__m512		b = _mm512_set1_ps(xr[t]);

			for (j = 0; j < NREG; j++)
				acc[j] = _mm512_fmadd_ps(b, _mm512_load_ps(row + 16 * j), acc[j]);
			xn += xr[t] * xr[t];
		}
		/* ||c||^2 - 2 x.c, the products summed first as the sgemm does */
		for (j = 0; j < NREG; j++)
			acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(-2.0f), acc[j],
									 _mm512_loadu_ps(cnorm + 16 * j));
		/*
		 * A NaN (overflow: infinity - infinity) must never win, and
		 * _mm512_min_ps would let one hide a smaller lane: a row with one
		 * takes the plain loop (argmin_nan).  Otherwise a tree of minima.
		 */
		for (j = 0; j < NREG; j++)
			nan |= _mm512_cmp_ps_mask(acc[j], acc[j], _CMP_UNORD_Q);
		if (nan)
		{
			float		v[QDB_KSUB];

			for (j = 0; j < NREG; j++)
				_mm512_storeu_ps(v + 16 * j, acc[j]);
			bi = argmin_nan(v, &best);
		}
		else
		{
			__m512		m8[NREG / 2];

			for (j = 0; j < NREG / 2; j++)
				m8[j] = _mm512_min_ps(acc[j], acc[j + NREG / 2]);
			for (j = 0; j < NREG / 4; j++)
				m8[j] = _mm512_min_ps(m8[j], m8[j + NREG / 4]);
			m = _mm512_min_ps(_mm512_min_ps(m8[0], m8[2]), _mm512_min_ps(m8[1], m8[3]));
			best = _mm512_reduce_min_ps(m);
			bv = _mm512_set1_ps(best);
			/* the first register, then the first lane, holding the minimum */
			for (j = 0; j < NREG; j++)
			{
				__mmask16	eq = _mm512_cmp_ps_mask(acc[j], bv, _CMP_EQ_OQ);

				if (eq)
				{
					bi = 16 * j + __builtin_ctz(eq);
					break;
				}
			}
		}
		labels[i] = bi;
		if (dist)
			/* the expansion can go slightly negative by rounding */
			dist[i] = xn + best > 0 ? xn + best : 0;
	}
}

#endif

bool
qdb_assign_k256(const float *x, size_t n, int d, size_t ldx, const float *c,
				const float *cnorm, int k, int32_t *labels, float *dist)
{
#if defined(__x86_64__)
	float		ct[QDB_ASSIGN_K256_MAX_DIM * QDB_KSUB] __attribute__((aligned(64)));
	int			j,
				t;

	if (k != QDB_KSUB || d > QDB_ASSIGN_K256_MAX_DIM)
		return false;
	for (j = 0; j < QDB_KSUB; j++)
		for (t = 0; t < d; t++)
			ct[(size_t) t * QDB_KSUB + j] = c[(size_t) j * d + t];
	assign_avx512(x, n, d, ldx, ct, cnorm, labels, dist);
	return true;
#else
	return false;
#endif
}
