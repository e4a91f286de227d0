/*
 * qdb_distance.h
 *	  Float vector kernels with CPU-feature dispatch: AVX-512, AVX2+FMA and a
 *	  portable C version.  qdb_distance_init() chooses once (at load time);
 *	  the *_impl tables expose every version so tests can compare them.
 */
#ifndef QDB_DISTANCE_H
#define QDB_DISTANCE_H

#include <stddef.h>

typedef struct QdbDistanceKernels
{
	const char *name;			/* "avx512", "avx2", "scalar" */
	float		(*l2sq) (const float *a, const float *b, size_t n);
	float		(*dot) (const float *a, const float *b, size_t n);
	/* dot product and both squared norms in one pass, for cosine */
	void		(*dot_norms) (const float *a, const float *b, size_t n,
							  float *dot, float *na2, float *nb2);
	/*
	 * a query table's row for one book of 256 codewords stored transposed
	 * (adc_rows.c: qdb_book_row_portable, qdb_book_row_avx512)
	 */
	void		(*book_row) (const float *bt, const float *y, int len, int l2, float *row);
} QdbDistanceKernels;

/* The chosen kernels; valid after qdb_distance_init(). */
extern QdbDistanceKernels qdb_kernels;

void		qdb_distance_init(void);	/* idempotent */

/* Every version this CPU can run, best first; returns the count (<= 3). */
int			qdb_distance_available(const QdbDistanceKernels **out, int max);

const QdbDistanceKernels *qdb_distance_scalar(void);

/* adc_rows.c: the book_row members */
void		qdb_book_row_portable(const float *bt, const float *y, int len, int l2, float *row);
void		qdb_book_row_avx512(const float *bt, const float *y, int len, int l2, float *row);

#endif							/* QDB_DISTANCE_H */
