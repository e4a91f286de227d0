/*
 * distance_avx2.c
 *	  AVX2+FMA float kernels, 8 lanes.  Compiled without -march: the target
 *	  attribute enables the instructions for these functions only, and
 *	  distance.c calls them only where the CPU supports AVX2 and FMA.
 */
#include "qdb_distance.h"

#if defined(__x86_64__) || defined(__i386__)

#include <stdint.h>
#include <immintrin.h>

#define QDB_AVX2 __attribute__((target("avx2,fma")))

/* Eight -1 then eight 0: loading at 8 - rem gives a mask of rem lanes. */
static const int32_t tail_mask[16] = {
	-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0
};

/* maskload reads nothing past the last selected lane, so no overrun. */
QDB_AVX2 static inline __m256
load_tail(const float *p, __m256i mask)
{
	return _mm256_maskload_ps(p, mask);
}

QDB_AVX2 static inline float
hsum(__m256 v)
{
	__m128		s = _mm_add_ps(_mm256_castps256_ps128(v),
							   _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

QDB_AVX2 static float
l2sq_avx2(const float *a, const float *b, size_t n)
{
	__m256		s0 = _mm256_setzero_ps(),
				s1 = _mm256_setzero_ps(),
				s2 = _mm256_setzero_ps(),
				s3 = _mm256_setzero_ps();
	size_t		i = 0;

	for (; i + 32 <= n; i += 32)
	{
		__m256		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		__m256		d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
		__m256		d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
		__m256		d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));

		s0 = _mm256_fmadd_ps(d0, d0, s0);
		s1 = _mm256_fmadd_ps(d1, d1, s1);
		s2 = _mm256_fmadd_ps(d2, d2, s2);
		s3 = _mm256_fmadd_ps(d3, d3, s3);
	}
	for (; i + 8 <= n; i += 8)
	{
		__m256		d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));

		s0 = _mm256_fmadd_ps(d, d, s0);
	}
	if (i < n)
	{
		__m256i		m = _mm256_loadu_si256((const __m256i *) (tail_mask + 8 - (n - i)));
		__m256		d = _mm256_sub_ps(load_tail(a + i, m), load_tail(b + i, m));

		s1 = _mm256_fmadd_ps(d, d, s1);
	}
	return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

QDB_AVX2 static float
dot_avx2(const float *a, const float *b, size_t n)
{
	__m256		s0 = _mm256_setzero_ps(),
				s1 = _mm256_setzero_ps(),
				s2 = _mm256_setzero_ps(),
				s3 = _mm256_setzero_ps();
	size_t		i = 0;

	for (; i + 32 <= n; i += 32)
	{
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
		s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	if (i < n)
	{
		__m256i		m = _mm256_loadu_si256((const __m256i *) (tail_mask + 8 - (n - i)));

		s1 = _mm256_fmadd_ps(load_tail(a + i, m), load_tail(b + i, m), s1);
	}
	return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

QDB_AVX2 static void
dot_norms_avx2(const float *a, const float *b, size_t n,
			   float *dot, float *na2, float *nb2)
{
	__m256		d0 = _mm256_setzero_ps(),
				d1 = _mm256_setzero_ps(),
				a0 = _mm256_setzero_ps(),
				a1 = _mm256_setzero_ps(),
				b0 = _mm256_setzero_ps(),
				b1 = _mm256_setzero_ps();
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m256		x0 = _mm256_loadu_ps(a + i),
					x1 = _mm256_loadu_ps(a + i + 8),
					y0 = _mm256_loadu_ps(b + i),
					y1 = _mm256_loadu_ps(b + i + 8);

		d0 = _mm256_fmadd_ps(x0, y0, d0);
		d1 = _mm256_fmadd_ps(x1, y1, d1);
		a0 = _mm256_fmadd_ps(x0, x0, a0);
		a1 = _mm256_fmadd_ps(x1, x1, a1);
		b0 = _mm256_fmadd_ps(y0, y0, b0);
		b1 = _mm256_fmadd_ps(y1, y1, b1);
	}
	if (i + 8 <= n)
	{
		__m256		x = _mm256_loadu_ps(a + i),
					y = _mm256_loadu_ps(b + i);

		d0 = _mm256_fmadd_ps(x, y, d0);
		a0 = _mm256_fmadd_ps(x, x, a0);
		b0 = _mm256_fmadd_ps(y, y, b0);
		i += 8;
	}
	if (i < n)
	{
		__m256i		m = _mm256_loadu_si256((const __m256i *) (tail_mask + 8 - (n - i)));
		__m256		x = load_tail(a + i, m),
					y = load_tail(b + i, m);

		d1 = _mm256_fmadd_ps(x, y, d1);
		a1 = _mm256_fmadd_ps(x, x, a1);
		b1 = _mm256_fmadd_ps(y, y, b1);
	}
	*dot = hsum(_mm256_add_ps(d0, d1));
	*na2 = hsum(_mm256_add_ps(a0, a1));
	*nb2 = hsum(_mm256_add_ps(b0, b1));
}

const QdbDistanceKernels qdb_kernels_avx2 = {
	"avx2", l2sq_avx2, dot_avx2, dot_norms_avx2, qdb_book_row_portable
};

#else

/* Not x86: distance.c never refers to this file's kernels. */
typedef int qdb_distance_avx2_unused;

#endif
