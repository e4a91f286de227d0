/*
 * graph_vec16.c
 *	  The build's graph vectors as 16-bit integers.
 *
 * A build links each new node by walking the graph it has so far with exact
 * distances, and those walks read the vectors of nodes all over the table:
 * in glove-100-angular's CREATE INDEX, 42% of the samples were in the dot
 * product and another 12% in prefetching its vectors (perf record, 100,000
 * x 100 floats: 40 MB, more than this machine's 32 MB L3 cache).  Here a row
 * keeps q_i = round(x_i / s) with s = max |x_i| / L, its own scale, so that
 * 100 floats take 256 bytes instead of 400, and a distance is one integer
 * dot product: with AVX-512 VNNI one vpdpwssd per 32 values.
 *
 * L is the largest that keeps every sum in 32 bits: |sum a_i b_i| <= |a| |b|
 * <= dim L^2 (and so is every partial sum), so dim L^2 < 2^31; L is 4,634
 * at 100 dims, 2,896 at 256, 32,767 at most.  A coordinate is off by at
 * most s / 2, a 2L-th of the row's largest magnitude.  8 bits (L = 127)
 * built glove's graph in 0.74 of the time, but its scans lost up to 0.003
 * of 10-recall@10 at the same settings; with these it stayed within 0.001
 * of the float graph's (test/bench/RESULTS.md, "The build's vectors as
 * 16-bit integers").
 *
 * The distance is the metric's between the two vectors the rows stand for,
 * s q: under L2 |sa qa - sb qb| from the rows' sums of squares and their dot
 * product, so that it is never negative and 0 for a row and itself.  The
 * build's graph is what this changes (which neighbours the heuristic
 * keeps); scans, inserts and the codes never see these rows.
 */
#include "postgres.h"

#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "graph_vec16.h"
#include "qdb_distance.h"

int
QdbVec16Stride(int dim)
{
	return (dim + QDB_VEC16_ALIGN - 1) / QDB_VEC16_ALIGN * QDB_VEC16_ALIGN;
}

/* The largest L with dim L^2 < 2^31 (see the top), at most 32,767. */
int
QdbVec16Limit(int dim)
{
	int64		l = (int64) floor(sqrt((double) PG_INT32_MAX / Max(dim, 1)));

	l = Min(l, PG_INT16_MAX);
	while (l > 1 && (int64) Max(dim, 1) * l * l > PG_INT32_MAX)
		l--;
	return (int) l;
}

/* Row x of dim floats into out (stride values, zero past dim) and info. */
void
QdbVec16Quantize(const float *x, int dim, int stride, int16 *out, QdbVec16Info *info)
{
	int			limit = QdbVec16Limit(dim);
	float		max = 0;
	double		scale;
	int32		sq = 0;
	int			i;

	for (i = 0; i < dim; i++)
	{
		float		a = fabsf(x[i]);

		if (!isfinite(a))
			break;
		if (a > max)
			max = a;
	}
	/* q_i rounds x_i / s for the very s stored: |s q_i - x_i| <= s / 2 */
	info->scale = max / limit;
	scale = info->scale;
	/*
	 * A zero row is all 0, and so is a row with a NaN or an infinity (as a
	 * distance it would be NaN or infinite all the same) or one so small
	 * that its scale is 0 in a float
	 */
	if (i < dim || !(scale > 0))
	{
		memset(out, 0, sizeof(int16) * stride);
		memset(info, 0, sizeof(QdbVec16Info));
		return;
	}
	for (i = 0; i < dim; i++)
	{
		long		q = lrint(x[i] / scale);

		q = Min(Max(q, -limit), limit);
		out[i] = (int16) q;
		sq += (int32) (q * q);
	}
	memset(out + dim, 0, sizeof(int16) * (stride - dim));
	info->sq = sq;
}

static int32
dot16_scalar(const int16 *a, const int16 *b, int stride)
{
	int32		s = 0;
	int			i;

	for (i = 0; i < stride; i++)
		s += (int32) a[i] * b[i];
	return s;
}

static void
dot16x4_scalar(const int16 *a, const int16 *const *b, int stride, int32 *out)
{
	int			j;

	for (j = 0; j < 4; j++)
		out[j] = dot16_scalar(a, b[j], stride);
}

#if defined(__x86_64__)
/*
 * Four rows against one: four independent chains of vpdpwssd, so that each
 * waits less on the one before (a neighbour list's distances, computed
 * together by mem_visit_distances).  Integer sums: the same as dot16_vnni's.
 */
__attribute__((target("avx512f,avx512vnni")))
static void
dot16x4_vnni(const int16 *a, const int16 *const *b, int stride, int32 *out)
{
	__m512i		acc0 = _mm512_setzero_si512(),
				acc1 = _mm512_setzero_si512(),
				acc2 = _mm512_setzero_si512(),
				acc3 = _mm512_setzero_si512();
	int			i;

	for (i = 0; i < stride; i += 32)
	{
		__m512i		x = _mm512_loadu_si512(a + i);

		acc0 = _mm512_dpwssd_epi32(acc0, x, _mm512_loadu_si512(b[0] + i));
		acc1 = _mm512_dpwssd_epi32(acc1, x, _mm512_loadu_si512(b[1] + i));
		acc2 = _mm512_dpwssd_epi32(acc2, x, _mm512_loadu_si512(b[2] + i));
		acc3 = _mm512_dpwssd_epi32(acc3, x, _mm512_loadu_si512(b[3] + i));
	}
	out[0] = _mm512_reduce_add_epi32(acc0);
	out[1] = _mm512_reduce_add_epi32(acc1);
	out[2] = _mm512_reduce_add_epi32(acc2);
	out[3] = _mm512_reduce_add_epi32(acc3);
}

__attribute__((target("avx512f,avx512vnni")))
static int32
dot16_vnni(const int16 *a, const int16 *b, int stride)
{
	__m512i		acc = _mm512_setzero_si512();
	int			i;

	for (i = 0; i < stride; i += 32)
		acc = _mm512_dpwssd_epi32(acc, _mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
	return _mm512_reduce_add_epi32(acc);
}
#endif

/*
 * The dot product for this machine: VNNI where the float kernels in use are
 * the AVX-512 ones (QDB_SIMD=avx2 or scalar caps both) and the CPU has it;
 * else the portable loop, which compilers vectorise.  Called by the leader
 * before the build's threads start.
 */
QdbVec16DotFn
QdbVec16Kernel(void)
{
#if defined(__x86_64__)
	if (strcmp(qdb_kernels.name, "avx512") == 0 && __builtin_cpu_supports("avx512vnni"))
		return dot16_vnni;
#endif
	return dot16_scalar;
}

/* The four-row kernel of the same family as one (QdbVec16Kernel's). */
QdbVec16Dot4Fn
QdbVec16Kernel4(QdbVec16DotFn one)
{
#if defined(__x86_64__)
	if (one == dot16_vnni)
		return dot16x4_vnni;
#endif
	return dot16x4_scalar;
}

const char *
QdbVec16KernelName(QdbVec16DotFn fn)
{
#if defined(__x86_64__)
	if (fn == dot16_vnni)
		return "avx512vnni";
#endif
	return "scalar";
}
