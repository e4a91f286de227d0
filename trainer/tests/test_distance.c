/*
 * test_distance.c
 *	  Every kernel version this CPU can run agrees with a double-precision
 *	  reference on random data of many lengths, on unaligned pointers and
 *	  without reading past either end; the dispatcher picks the best version
 *	  and QDB_SIMD can only lower it.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qdb_distance.h"
#include "tap.h"
#include "test_util.h"

#define PAD 32					/* guard floats on each side */
#define MAXN 16000

/* Own generator so the test depends on nothing but the kernels. */
static uint64_t rng_state = TEST_XORSHIFT_SEED;

static int
level(const char *name)
{
	return strcmp(name, "avx512") == 0 ? 2 : strcmp(name, "avx2") == 0 ? 1 : 0;
}

/*
 * Error relative to the sum of absolute terms (the condition of the sum), so
 * a dot product near zero is judged fairly.  The data are fixed by the seed.
 */
static int
close_enough(double got, double ref, double absterms, double *worst)
{
	double		rel = fabs(got - ref) / (absterms > 0 ? absterms : 1.0);

	if (!(rel <= *worst))
		*worst = isnan(rel) ? INFINITY : rel;
	return rel <= 2e-5;
}

/* Checks one version at every length and alignment; one TAP line. */
static void
check_version(const QdbDistanceKernels *k, float *abuf, float *bbuf)
{
	static const size_t extra[] = {100, 128, 384, 784, 1536, 16000};
	size_t		lens[67 + 6 + 1];
	int			nlens = 0;
	int			bad = 0;
	double		worst = 0;
	size_t		li;

	lens[nlens++] = 0;
	for (size_t n = 1; n <= 67; n++)
		lens[nlens++] = n;
	for (size_t j = 0; j < sizeof(extra) / sizeof(extra[0]); j++)
		lens[nlens++] = extra[j];

	for (li = 0; li < (size_t) nlens; li++)
	{
		size_t		n = lens[li];

		for (int off = 0; off < 4; off++)
		{
			/* a and b misaligned differently; NaN guards catch overreads */
			float	   *a = abuf + PAD + off;
			float	   *b = bbuf + PAD + (3 - off);
			double		l2 = 0,
						dot = 0,
						absdot = 0,
						na = 0,
						nb = 0;
			float		gdot,
						gna,
						gnb;

			for (size_t i = 0; i < MAXN + 2 * PAD; i++)
				abuf[i] = bbuf[i] = NAN;
			for (size_t i = 0; i < n; i++)
			{
				a[i] = (float) (2 * test_uniform(&rng_state) - 1);
				b[i] = (float) (2 * test_uniform(&rng_state) - 1);
				l2 += ((double) a[i] - b[i]) * ((double) a[i] - b[i]);
				dot += (double) a[i] * b[i];
				absdot += fabs((double) a[i] * b[i]);
				na += (double) a[i] * a[i];
				nb += (double) b[i] * b[i];
			}
			k->dot_norms(a, b, n, &gdot, &gna, &gnb);
			if (!close_enough(k->l2sq(a, b, n), l2, l2, &worst) ||
				!close_enough(k->dot(a, b, n), dot, absdot, &worst) ||
				!close_enough(gdot, dot, absdot, &worst) ||
				!close_enough(gna, na, na, &worst) ||
				!close_enough(gnb, nb, nb, &worst))
			{
				if (bad++ < 5)
					tap_diag("%s: n=%zu off=%d disagrees", k->name, n, off);
			}
		}
	}
	tap_ok(bad == 0, "%s agrees with the double reference (n = 0..67, 100 .. 16000, "
		   "unaligned; worst relative error %.2g)", k->name, worst);
}

/* A query table's row from a transposed book: each version, both forms. */
static void
check_book_row(const QdbDistanceKernels *k)
{
	static const int lens[] = {1, 4, 7, 16, 32, 112};
	float	   *bt = malloc(sizeof(float) * 112 * 256);
	float		y[112],
				row[256];
	int			bad = 0;
	double		worst = 0;

	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++)
	{
		int			len = lens[li];

		for (int i = 0; i < len * 256; i++)
			bt[i] = (float) (2 * test_uniform(&rng_state) - 1);
		for (int d = 0; d < len; d++)
			y[d] = (float) (2 * test_uniform(&rng_state) - 1);
		for (int l2 = 0; l2 < 2; l2++)
		{
			k->book_row(bt, y, len, l2, row);
			for (int c = 0; c < 256; c++)
			{
				double		ref = 0,
							absterms = 0;

				for (int d = 0; d < len; d++)
				{
					double		t = l2 ? ((double) y[d] - bt[d * 256 + c]) * ((double) y[d] - bt[d * 256 + c])
						: (double) y[d] * bt[d * 256 + c];

					ref += t;
					absterms += fabs(t);
				}
				bad += !close_enough(row[c], ref, absterms, &worst);
			}
		}
	}
	tap_ok(bad == 0, "%s book_row agrees with the double reference (l2 and dot, 1 .. 112 dims; "
		   "worst relative error %.2g)", k->name, worst);
	free(bt);
}

static void
check_force(const char *value, const char *expect)
{
	setenv("QDB_SIMD", value, 1);
	qdb_distance_init();
	tap_ok(strcmp(qdb_kernels.name, expect) == 0,
		   "QDB_SIMD=%s picks %s (got %s)", value, expect, qdb_kernels.name);
}

int
main(void)
{
	const QdbDistanceKernels *avail[3];
	int			n;
	int			ordered = 1;
	const char *saved = getenv("QDB_SIMD");
	char	   *saved_copy = saved ? strdup(saved) : NULL;
	float	   *abuf = aligned_alloc(64, sizeof(float) * (MAXN + 2 * PAD));
	float	   *bbuf = aligned_alloc(64, sizeof(float) * (MAXN + 2 * PAD));
	const char *best2;

	n = qdb_distance_available(avail, 3);
	for (int i = 1; i < n; i++)
		if (level(avail[i]->name) >= level(avail[i - 1]->name))
			ordered = 0;
	tap_ok(n >= 1 && strcmp(avail[n - 1]->name, "scalar") == 0 && ordered,
		   "%d versions available, best first, scalar last", n);
	tap_ok(qdb_distance_scalar() == avail[n - 1], "qdb_distance_scalar is the last one");
	tap_ok(qdb_distance_available(avail, 1) == 1, "max limits the count");
	n = qdb_distance_available(avail, 3);

#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	tap_ok((__builtin_cpu_supports("avx512f") != 0) ==
		   (strcmp(avail[0]->name, "avx512") == 0),
		   "avx512 listed exactly when the CPU has AVX-512F");
	tap_ok(((__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) != 0) ==
		   (n >= 2 && strcmp(avail[n - 2]->name, "avx2") == 0),
		   "avx2 listed exactly when the CPU has AVX2 and FMA");
#endif
	for (int i = 0; i < n; i++)
		tap_diag("available: %s", avail[i]->name);

	/* before init the kernels are the portable ones, already usable */
	tap_ok(strcmp(qdb_kernels.name, "scalar") == 0 && qdb_kernels.l2sq != NULL,
		   "before init the dispatched kernels are the scalar ones");

	unsetenv("QDB_SIMD");
	qdb_distance_init();
	qdb_distance_init();
	tap_ok(strcmp(qdb_kernels.name, avail[0]->name) == 0 &&
		   qdb_kernels.l2sq == avail[0]->l2sq &&
		   qdb_kernels.dot == avail[0]->dot &&
		   qdb_kernels.dot_norms == avail[0]->dot_norms &&
		   qdb_kernels.book_row == avail[0]->book_row,
		   "dispatcher picks the best available version (%s)", qdb_kernels.name);

	best2 = "scalar";
	for (int i = 0; i < n; i++)
		if (level(avail[i]->name) <= 1)
		{
			best2 = avail[i]->name;
			break;
		}
	check_force("scalar", "scalar");
	check_force("avx2", best2);
	check_force("avx512", avail[0]->name);
	check_force("sse9", avail[0]->name);

	if (saved_copy)
		setenv("QDB_SIMD", saved_copy, 1);
	else
		unsetenv("QDB_SIMD");
	qdb_distance_init();

	for (int i = 0; i < n; i++)
	{
		check_version(avail[i], abuf, bbuf);
		check_book_row(avail[i]);
	}

	/* a quick exact case for each: (0,0) to (3,4) */
	{
		float		x[2] = {0, 0},
					y[2] = {3, 4};
		int			ok = 1;

		for (int i = 0; i < n; i++)
			ok &= avail[i]->l2sq(x, y, 2) == 25.0f && avail[i]->dot(y, y, 2) == 25.0f;
		tap_ok(ok, "exact small case: l2sq((0,0),(3,4)) = 25, dot = 25");
	}

	free(abuf);
	free(bbuf);
	free(saved_copy);
	return tap_done();
}
