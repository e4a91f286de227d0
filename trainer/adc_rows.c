/*
 * adc_rows.c
 *	  A query's table row for one book at a time, from the book's codewords
 *	  stored transposed (qdb_model_prepare): row[k] = sum over d of
 *	  y[d] * bt[d][k] (dot products: ip, cosine, rq) or (y[d] - bt[d][k])^2
 *	  (l2), the 256 codewords side by side in SIMD lanes, where a codeword
 *	  at a time (a dot product of 4 to 16 floats per entry) spent most of
 *	  its time starting and ending each short product: 71 -> 25 us for a
 *	  glove opq table with its norm table kept, then a few us with this.
 *	  Not bit for bit qdb_kernels.dot's sums (another order of additions).
 */
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <string.h>

#include "qdb_distance.h"
#include "qdb_internal.h"

#if defined(__x86_64__)
__attribute__((target("avx512f")))
void
qdb_book_row_avx512(const float *bt, const float *y, int len, int l2, float *row)
{
	__m512		acc[QDB_KSUB / 16];
	int			d,
				j;

	for (j = 0; j < QDB_KSUB / 16; j++)
		acc[j] = _mm512_setzero_ps();
	for (d = 0; d < len; d++)
	{
		const float *b = bt + (size_t) d * QDB_KSUB;
		__m512		yd = _mm512_set1_ps(y[d]);

		if (l2)
			for (j = 0; j < QDB_KSUB / 16; j++)
			{
				__m512		t = _mm512_sub_ps(yd, _mm512_loadu_ps(b + 16 * j));

				acc[j] = _mm512_fmadd_ps(t, t, acc[j]);
			}
		else
			for (j = 0; j < QDB_KSUB / 16; j++)
				acc[j] = _mm512_fmadd_ps(yd, _mm512_loadu_ps(b + 16 * j), acc[j]);
	}
	for (j = 0; j < QDB_KSUB / 16; j++)
		_mm512_storeu_ps(row + 16 * j, acc[j]);
}
#endif

void
qdb_book_row_portable(const float *bt, const float *y, int len, int l2, float *row)
{
	int			d,
				k;

	memset(row, 0, sizeof(float) * QDB_KSUB);
	for (d = 0; d < len; d++)
	{
		const float *b = bt + (size_t) d * QDB_KSUB;
		float		yd = y[d];

		if (l2)
			for (k = 0; k < QDB_KSUB; k++)
				row[k] += (yd - b[k]) * (yd - b[k]);
		else
			for (k = 0; k < QDB_KSUB; k++)
				row[k] += yd * b[k];
	}
}

/* the chosen kernels' (qdb_distance_init): no test per call */
void
qdb_book_row(const float *bt, const float *y, int len, int l2, float *row)
{
	qdb_kernels.book_row(bt, y, len, l2, row);
}

void
qdb_transpose_book(const float *book, int w, float *bt)
{
	int			d,
				k;

	for (k = 0; k < QDB_KSUB; k++)
		for (d = 0; d < w; d++)
			bt[(size_t) d * QDB_KSUB + k] = book[(size_t) k * w + d];
}
