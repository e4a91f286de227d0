/*
 * distance.c
 *	  Portable float kernels and the once-at-load choice between them and the
 *	  AVX2+FMA (distance_avx2.c) and AVX-512F (distance_avx512.c) versions.
 *
 * Every version is compiled in the same build without -march flags; the
 * SIMD ones carry target attributes and run only where __builtin_cpu_supports
 * says the CPU (and OS) can.
 *
 * The environment variable QDB_SIMD=scalar|avx2|avx512 caps the level that
 * qdb_distance_init() picks: the best available version not above it.  It
 * can only lower the level (asking for avx512 on an AVX2 machine gets avx2);
 * an unknown value is ignored.  Useful to test or benchmark a fallback.
 */
#include <stdlib.h>
#include <string.h>

#include "qdb_distance.h"

#if defined(__x86_64__) || defined(__i386__)
#define QDB_X86 1
/* defined in distance_avx2.c and distance_avx512.c */
extern const QdbDistanceKernels qdb_kernels_avx2;
extern const QdbDistanceKernels qdb_kernels_avx512;
#endif

/*
 * Four independent sums: shorter dependency chains, and a smaller rounding
 * error than one running sum on long vectors.
 */
static float
l2sq_scalar(const float *a, const float *b, size_t n)
{
	float		s0 = 0,
				s1 = 0,
				s2 = 0,
				s3 = 0;
	size_t		i = 0;

	for (; i + 4 <= n; i += 4)
	{
		float		d0 = a[i] - b[i];
		float		d1 = a[i + 1] - b[i + 1];
		float		d2 = a[i + 2] - b[i + 2];
		float		d3 = a[i + 3] - b[i + 3];

		s0 += d0 * d0;
		s1 += d1 * d1;
		s2 += d2 * d2;
		s3 += d3 * d3;
	}
	for (; i < n; i++)
	{
		float		d = a[i] - b[i];

		s0 += d * d;
	}
	return (s0 + s1) + (s2 + s3);
}

static float
dot_scalar(const float *a, const float *b, size_t n)
{
	float		s0 = 0,
				s1 = 0,
				s2 = 0,
				s3 = 0;
	size_t		i = 0;

	for (; i + 4 <= n; i += 4)
	{
		s0 += a[i] * b[i];
		s1 += a[i + 1] * b[i + 1];
		s2 += a[i + 2] * b[i + 2];
		s3 += a[i + 3] * b[i + 3];
	}
	for (; i < n; i++)
		s0 += a[i] * b[i];
	return (s0 + s1) + (s2 + s3);
}

static void
dot_norms_scalar(const float *a, const float *b, size_t n,
				 float *dot, float *na2, float *nb2)
{
	float		d0 = 0,
				d1 = 0,
				a0 = 0,
				a1 = 0,
				b0 = 0,
				b1 = 0;
	size_t		i = 0;

	for (; i + 2 <= n; i += 2)
	{
		d0 += a[i] * b[i];
		d1 += a[i + 1] * b[i + 1];
		a0 += a[i] * a[i];
		a1 += a[i + 1] * a[i + 1];
		b0 += b[i] * b[i];
		b1 += b[i + 1] * b[i + 1];
	}
	if (i < n)
	{
		d0 += a[i] * b[i];
		a0 += a[i] * a[i];
		b0 += b[i] * b[i];
	}
	*dot = d0 + d1;
	*na2 = a0 + a1;
	*nb2 = b0 + b1;
}

static const QdbDistanceKernels kernels_scalar = {
	"scalar", l2sq_scalar, dot_scalar, dot_norms_scalar, qdb_book_row_portable
};

/* Statically the portable version, so callers before init still work. */
QdbDistanceKernels qdb_kernels = {
	"scalar", l2sq_scalar, dot_scalar, dot_norms_scalar, qdb_book_row_portable
};

const QdbDistanceKernels *
qdb_distance_scalar(void)
{
	return &kernels_scalar;
}

int
qdb_distance_available(const QdbDistanceKernels **out, int max)
{
	int			n = 0;

#ifdef QDB_X86
	__builtin_cpu_init();
	if (n < max && __builtin_cpu_supports("avx512f"))
		out[n++] = &qdb_kernels_avx512;
	if (n < max && __builtin_cpu_supports("avx2") &&
		__builtin_cpu_supports("fma"))
		out[n++] = &qdb_kernels_avx2;
#endif
	if (n < max)
		out[n++] = &kernels_scalar;
	return n;
}

/* Rank of a level name, higher is wider; -1 if unknown. */
static int
simd_level(const char *name)
{
	if (strcmp(name, "scalar") == 0)
		return 0;
	if (strcmp(name, "avx2") == 0)
		return 1;
	if (strcmp(name, "avx512") == 0)
		return 2;
	return -1;
}

/*
 * Recomputes the same choice each call (idempotent while QDB_SIMD does not
 * change); the extension calls it once from _PG_init.
 */
void
qdb_distance_init(void)
{
	const QdbDistanceKernels *avail[3];
	const char *force = getenv("QDB_SIMD");
	int			cap = force ? simd_level(force) : -1;
	int			n = qdb_distance_available(avail, 3);
	int			i;

	for (i = 0; i < n; i++)
	{
		if (cap < 0 || simd_level(avail[i]->name) <= cap)
		{
			qdb_kernels = *avail[i];
			return;
		}
	}
	qdb_kernels = kernels_scalar;
}
