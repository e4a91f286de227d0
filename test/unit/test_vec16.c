/*
 * test_vec16.c
 *	  Unit tests of the build's 16-bit graph vectors (src/graph_vec16.c):
 *	  every coordinate within half a step of the row's scale, distances equal
 *	  to the metric's between the vectors the rows stand for, each dot
 *	  product kernel this CPU runs equal to a plain integer sum (at the
 *	  largest values too: no 32-bit overflow), and zero rows.  TAP output.
 */
#include "postgres.h"

#include <math.h>
#include <stdlib.h>

#include "graph_vec16.h"
#include "qdb_distance.h"
#include "../../trainer/tests/tap.h"

#define ROWS	64
#define MAXDIM	800

static double
urand(void)
{
	return rand() / (RAND_MAX + 1.0);
}

/* Rows of dim floats, coordinate j of spread 1 / (1 + j / 8): a PCA's shape. */
static void
make_rows(float *x, int n, int dim, bool unit)
{
	for (int i = 0; i < n; i++)
	{
		double		norm = 0;

		for (int j = 0; j < dim; j++)
		{
			x[i * dim + j] = (float) ((2 * urand() - 1) / (1 + j / 8.0) * (1 + 20 * (i % 3)));
			norm += (double) x[i * dim + j] * x[i * dim + j];
		}
		if (unit)
			for (int j = 0; j < dim; j++)
				x[i * dim + j] /= (float) sqrt(norm);
	}
}

/* The metric's distance between the vectors two rows stand for, in double. */
static double
decoded_distance(QdbMetric metric, const int16 *a, const QdbVec16Info *ia,
				 const int16 *b, const QdbVec16Info *ib, int dim)
{
	double		l2 = 0,
				dot = 0;

	for (int j = 0; j < dim; j++)
	{
		double		x = (double) ia->scale * a[j],
					y = (double) ib->scale * b[j];

		l2 += (x - y) * (x - y);
		dot += x * y;
	}
	return metric == QDB_METRIC_L2 ? sqrt(l2) : metric == QDB_METRIC_IP ? -dot : 1 - dot;
}

static void
test_quantize_and_distance(const char *simd)
{
	static const int dims[] = {3, 64, 100, 256, 784};
	static const QdbMetric metrics[] = {QDB_METRIC_L2, QDB_METRIC_COSINE, QDB_METRIC_IP};
	float	   *x = malloc(sizeof(float) * ROWS * MAXDIM);
	int16	   *q = malloc(sizeof(int16) * ROWS * QdbVec16Stride(MAXDIM));
	QdbVec16Info info[ROWS];
	QdbVec16DotFn dot = QdbVec16Kernel();
	QdbVec16Dot4Fn dot4 = QdbVec16Kernel4(dot);

	tap_diag("QDB_SIMD=%s: kernel %s", simd, QdbVec16KernelName(dot));
	for (size_t d = 0; d < lengthof(dims); d++)
	{
		int			dim = dims[d],
					stride = QdbVec16Stride(dim);
		int			limit = QdbVec16Limit(dim);
		int			bad_coord = 0,
					bad_pad = 0,
					bad_dot = 0,
					bad_dot4 = 0,
					bad_sums = 0,
					bad_dist = 0,
					bad_self = 0;
		double		worst = 0;

		make_rows(x, ROWS, dim, d % 2 == 0);
		for (int i = 0; i < ROWS; i++)
		{
			const int16 *r = q + (size_t) i * stride;
			float		max = 0;
			int32		sq = 0;

			QdbVec16Quantize(x + i * dim, dim, stride, q + (size_t) i * stride, &info[i]);
			for (int j = 0; j < dim; j++)
				max = Max(max, fabsf(x[i * dim + j]));
			for (int j = 0; j < dim; j++)
			{
				if (fabs((double) info[i].scale * r[j] - x[i * dim + j]) >
					info[i].scale * 0.5 * (1 + 1e-9) || abs(r[j]) > limit)
					bad_coord++;
				sq += r[j] * r[j];
			}
			for (int j = dim; j < stride; j++)
				bad_pad += r[j] != 0;
			if (sq != info[i].sq || fabsf(info[i].scale * limit - max) > max * 1e-6)
				bad_sums++;
		}
		for (int i = 0; i < ROWS; i++)
			for (int k = 0; k < ROWS; k++)
			{
				const int16 *a = q + (size_t) i * stride,
						   *b = q + (size_t) k * stride;
				int64		plain = 0;

				for (int j = 0; j < stride; j++)
					plain += a[j] * b[j];
				bad_dot += dot(a, b, stride) != plain;
				if (k % 4 == 0 && k + 4 <= ROWS)
				{
					/* the four-row kernel: rows k .. k + 3, each the plain sum */
					const int16 *four[4];
					int32		got4[4];

					for (int j = 0; j < 4; j++)
						four[j] = q + (size_t) (k + j) * stride;
					dot4(a, four, stride, got4);
					for (int j = 0; j < 4; j++)
					{
						int64		p4 = 0;

						for (int t = 0; t < stride; t++)
							p4 += a[t] * four[j][t];
						bad_dot4 += got4[j] != p4;
					}
				}
				for (size_t mi = 0; mi < lengthof(metrics); mi++)
				{
					double		want = decoded_distance(metrics[mi], a, &info[i], b, &info[k], dim);
					float		got = QdbVec16Distance(metrics[mi], dot, stride, a, &info[i], b, &info[k]);
					double		scale = Max(1e-6, fabs(want)) + 1e-6 * info[i].scale * info[k].scale * limit * limit * dim;
					double		err = fabs(got - want) / scale;

					worst = Max(worst, err);
					bad_dist += !(err < 1e-4);
				}
				if (i == k && QdbVec16Distance(QDB_METRIC_L2, dot, stride, a, &info[i], b, &info[k]) != 0)
					bad_self++;
			}
		tap_ok(bad_coord == 0, "%s dim %d: every coordinate within half a step (%d off)", simd, dim, bad_coord);
		tap_ok(bad_pad == 0, "%s dim %d: padding is zero (%d bytes not)", simd, dim, bad_pad);
		tap_ok(bad_sums == 0, "%s dim %d: scale and sum of squares as the row's (%d off)", simd, dim, bad_sums);
		tap_ok(bad_dot == 0, "%s dim %d: kernel dot products equal the plain sum (%d differ)", simd, dim, bad_dot);
		tap_ok(bad_dot4 == 0, "%s dim %d: the four-row kernel's too (%d differ)", simd, dim, bad_dot4);
		tap_ok(bad_dist == 0, "%s dim %d: distances are the decoded rows' (%d off, worst relative %.2g)",
			   simd, dim, bad_dist, worst);
		tap_ok(bad_self == 0, "%s dim %d: a row is at L2 distance 0 from itself (%d not)", simd, dim, bad_self);
	}

	/*
	 * zero rows, rows with a NaN or an infinity and rows whose scale
	 * underflows quantize to zeros, scale 0
	 */
	{
		float		zero[100] = {0},
					odd[100];
		int16		a[128],
					b[128];
		QdbVec16Info ia,
					ib;
		const float specials[] = {INFINITY, -INFINITY, NAN, 1e-44f};
		int			bad = 0;

		QdbVec16Quantize(zero, 100, 128, a, &ia);
		for (size_t k = 0; k < lengthof(specials); k++)
		{
			/* the special value after a normal one, then before it */
			for (int order = 0; order < 2; order++)
			{
				for (int j = 0; j < 100; j++)
					odd[j] = isfinite(specials[k]) ? specials[k] : 0;
				odd[order ? 3 : 7] = isfinite(specials[k]) ? specials[k] : 0.5f;
				odd[order ? 7 : 3] = specials[k];
				memset(b, 0x55, sizeof(b));
				QdbVec16Quantize(odd, 100, 128, b, &ib);
				for (int j = 0; j < 128; j++)
					bad += b[j] != 0;
				bad += ib.scale != 0 || ib.sq != 0;
			}
		}
		tap_ok(ia.scale == 0 && ia.sq == 0 && a[0] == 0 && bad == 0,
			   "%s: a zero row, rows with an infinity or a NaN and a row of 1e-44 are zero rows (%d values not)",
			   simd, bad);
		tap_ok(QdbVec16Distance(QDB_METRIC_L2, dot, 128, a, &ia, b, &ib) == 0 &&
			   QdbVec16Distance(QDB_METRIC_COSINE, dot, 128, a, &ia, b, &ib) == 1,
			   "%s: zero rows are at L2 distance 0 and cosine distance 1", simd);
	}
	free(x);
	free(q);
}

/* The limit keeps dim L^2 within 32 bits, and is the largest that does. */
static void
test_limit(const char *simd)
{
	QdbVec16DotFn dot = QdbVec16Kernel();
	int			bad_limit = 0,
				bad_dot = 0;

	for (int dim = 1; dim <= 5000; dim += (dim < 300 ? 1 : 97))
	{
		int64		l = QdbVec16Limit(dim);
		int			stride = QdbVec16Stride(dim);
		int16	   *a = malloc(sizeof(int16) * stride),
				   *b = malloc(sizeof(int16) * stride);
		float	   *x = malloc(sizeof(float) * dim);
		QdbVec16Info ia,
					ib;

		if ((int64) dim * l * l > PG_INT32_MAX ||
			(l < PG_INT16_MAX && (int64) dim * (l + 1) * (l + 1) <= PG_INT32_MAX))
			bad_limit++;
		/* every coordinate at the largest magnitude: the largest dot product */
		for (int j = 0; j < dim; j++)
			x[j] = 3.0f;
		QdbVec16Quantize(x, dim, stride, a, &ia);
		for (int j = 0; j < dim; j++)
			x[j] = (j % 2) ? -3.0f : 3.0f;
		QdbVec16Quantize(x, dim, stride, b, &ib);
		bad_dot += dot(a, a, stride) != (int64) dim * l * l;
		bad_dot += dot(a, b, stride) != (dim % 2 ? l * l : 0);
		free(a);
		free(b);
		free(x);
	}
	tap_ok(bad_limit == 0, "%s: the limit is the largest with dim L^2 < 2^31 (%d dims not)", simd, bad_limit);
	tap_ok(bad_dot == 0, "%s: dot products at the limit do not overflow (%d wrong)", simd, bad_dot);
}

int
main(void)
{
	srand(7);
	qdb_distance_init();
	test_quantize_and_distance(qdb_kernels.name);
	test_limit(qdb_kernels.name);
	/* the portable kernel too, as QDB_SIMD=avx2 makes the build use it */
	setenv("QDB_SIMD", "avx2", 1);
	qdb_distance_init();
	test_quantize_and_distance(qdb_kernels.name);
	test_limit(qdb_kernels.name);
	printf("1..%d\n", tap_count);
	return tap_failed != 0;
}
