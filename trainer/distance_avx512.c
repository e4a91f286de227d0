/*
 * distance_avx512.c
 *	  AVX-512F float kernels, 16 lanes, with a masked load for the tail.
 *	  Compiled without -march: the target attribute enables the instructions
 *	  for these functions only, and distance.c calls them only where the CPU
 *	  supports AVX-512F.
 */
#include "qdb_distance.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#define QDB_AVX512 __attribute__((target("avx512f")))

/* Lanes [0, rem) set; masked-off lanes are not read, so no overrun. */
QDB_AVX512 static inline __mmask16
tail_mask(size_t rem)
{
	return (__mmask16) ((1u << rem) - 1);
}

QDB_AVX512 static float
l2sq_avx512(const float *a, const float *b, size_t n)
{
	__m512		s0 = _mm512_setzero_ps(),
				s1 = _mm512_setzero_ps(),
				s2 = _mm512_setzero_ps(),
				s3 = _mm512_setzero_ps();
	size_t		i = 0;

	for (; i + 64 <= n; i += 64)
	{
		__m512		d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
		__m512		d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
		__m512		d2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
		__m512		d3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));

		s0 = _mm512_fmadd_ps(d0, d0, s0);
		s1 = _mm512_fmadd_ps(d1, d1, s1);
		s2 = _mm512_fmadd_ps(d2, d2, s2);
		s3 = _mm512_fmadd_ps(d3, d3, s3);
	}
	for (; i + 16 <= n; i += 16)
	{
		__m512		d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));

		s0 = _mm512_fmadd_ps(d, d, s0);
	}
	if (i < n)
	{
		__mmask16	m = tail_mask(n - i);
		__m512		d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i),
									  _mm512_maskz_loadu_ps(m, b + i));

		s1 = _mm512_fmadd_ps(d, d, s1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1),
											  _mm512_add_ps(s2, s3)));
}

QDB_AVX512 static float
dot_avx512(const float *a, const float *b, size_t n)
{
	__m512		s0 = _mm512_setzero_ps(),
				s1 = _mm512_setzero_ps(),
				s2 = _mm512_setzero_ps(),
				s3 = _mm512_setzero_ps();
	size_t		i = 0;

	for (; i + 64 <= n; i += 64)
	{
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
		s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
		s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
	}
	for (; i + 16 <= n; i += 16)
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
	if (i < n)
	{
		__mmask16	m = tail_mask(n - i);

		s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i),
							 _mm512_maskz_loadu_ps(m, b + i), s1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1),
											  _mm512_add_ps(s2, s3)));
}

QDB_AVX512 static void
dot_norms_avx512(const float *a, const float *b, size_t n,
				 float *dot, float *na2, float *nb2)
{
	__m512		d0 = _mm512_setzero_ps(),
				d1 = _mm512_setzero_ps(),
				a0 = _mm512_setzero_ps(),
				a1 = _mm512_setzero_ps(),
				b0 = _mm512_setzero_ps(),
				b1 = _mm512_setzero_ps();
	size_t		i = 0;

	for (; i + 32 <= n; i += 32)
	{
		__m512		x0 = _mm512_loadu_ps(a + i),
					x1 = _mm512_loadu_ps(a + i + 16),
					y0 = _mm512_loadu_ps(b + i),
					y1 = _mm512_loadu_ps(b + i + 16);

		d0 = _mm512_fmadd_ps(x0, y0, d0);
		d1 = _mm512_fmadd_ps(x1, y1, d1);
		a0 = _mm512_fmadd_ps(x0, x0, a0);
		a1 = _mm512_fmadd_ps(x1, x1, a1);
		b0 = _mm512_fmadd_ps(y0, y0, b0);
		b1 = _mm512_fmadd_ps(y1, y1, b1);
	}
	if (i + 16 <= n)
	{
		__m512		x = _mm512_loadu_ps(a + i),
					y = _mm512_loadu_ps(b + i);

		d0 = _mm512_fmadd_ps(x, y, d0);
		a0 = _mm512_fmadd_ps(x, x, a0);
		b0 = _mm512_fmadd_ps(y, y, b0);
		i += 16;
	}
	if (i < n)
	{
		__mmask16	m = tail_mask(n - i);
		__m512		x = _mm512_maskz_loadu_ps(m, a + i),
					y = _mm512_maskz_loadu_ps(m, b + i);

		d1 = _mm512_fmadd_ps(x, y, d1);
		a1 = _mm512_fmadd_ps(x, x, a1);
		b1 = _mm512_fmadd_ps(y, y, b1);
	}
	*dot = _mm512_reduce_add_ps(_mm512_add_ps(d0, d1));
	*na2 = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
	*nb2 = _mm512_reduce_add_ps(_mm512_add_ps(b0, b1));
}

const QdbDistanceKernels qdb_kernels_avx512 = {
	"avx512", l2sq_avx512, dot_avx512, dot_norms_avx512, qdb_book_row_avx512
};

#else

/* Not x86: distance.c never refers to this file's kernels. */
typedef int qdb_distance_avx512_unused;

#endif
