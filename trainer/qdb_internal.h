/*
 * qdb_internal.h
 *	  Helpers shared by the trainer's own files: allocation, random numbers,
 *	  BLAS/LAPACK prototypes.  Not part of the public interface.
 */
#ifndef QDB_INTERNAL_H
#define QDB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "qdb_trainer.h"

static inline const QdbAlloc *
qdb_alloc_or_default(const QdbAlloc *a)
{
	return a ? a : &qdb_default_alloc;
}

/* Returns NULL on overflow or failure; never aborts. */
static inline void *
qdb_malloc(const QdbAlloc *a, size_t n, size_t size)
{
	a = qdb_alloc_or_default(a);
	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	return a->alloc(n * size > 0 ? n * size : 1, a->st);
}

static inline void *
qdb_calloc(const QdbAlloc *a, size_t n, size_t size)
{
	void	   *p = qdb_malloc(a, n, size);

	if (p)
		memset(p, 0, n * size);
	return p;
}

static inline void
qdb_free(const QdbAlloc *a, void *p)
{
	if (p)
		qdb_alloc_or_default(a)->free(p, qdb_alloc_or_default(a)->st);
}

/* xoshiro256** seeded by splitmix64: deterministic across platforms. */
typedef struct QdbRng
{
	uint64_t	s[4];
} QdbRng;

void		qdb_rng_seed(QdbRng *r, uint64_t seed);
uint64_t	qdb_rng_next(QdbRng *r);
double		qdb_rng_uniform(QdbRng *r);		/* [0, 1) */
double		qdb_rng_gaussian(QdbRng *r);		/* N(0, 1) */
uint64_t	qdb_rng_below(QdbRng *r, uint64_t n);	/* [0, n) without bias */

/*
 * Keeps the k smallest (d, id) pairs in dist/ids, ascending, by insertion:
 * *len grows to k; a pair no better than the k-th is dropped.
 */
static inline void
qdb_topk_insert(float *dist, int *ids, int *len, int k, float d, int id)
{
	int			i;

	if (*len == k && d >= dist[k - 1])
		return;
	i = *len < k ? (*len)++ : k - 1;
	while (i > 0 && dist[i - 1] > d)
	{
		dist[i] = dist[i - 1];
		ids[i] = ids[i - 1];
		i--;
	}
	dist[i] = d;
	ids[i] = id;
}

/*
 * qdb_compute_codes for a validation's codes: kind rq encodes them by its
 * training step (rq_lut.c, tables and threads), as a batch encoder does,
 * the same codes as a row's encoding but for rounding on near ties, and
 * faster.
 */
int			qdb_compute_codes_unkept(const QdbModel *m, const float *x, size_t n,
									 uint8_t *codes);

/*
 * qdb_compute_codes by either of kind rq's steps: lut 0 a row's (rq.c), 1
 * training's (rq_lut.c), with every book's tables (qdb_rq_all_tables) or
 * NULL to build them per call; other kinds ignore both.
 */
int			qdb_compute_codes_by(const QdbModel *m, const float *x, size_t n,
								 uint8_t *codes, int lut, const float *tables);

/* Wall-clock seconds from a monotonic clock. */
double		qdb_now(void);

/* LAPACK (Fortran symbols in OpenBLAS). */
extern void sgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n,
					float *a, const int *lda, float *s, float *u, const int *ldu,
					float *vt, const int *ldvt, float *work, const int *lwork, int *info);
extern void sgesdd_(const char *jobz, const int *m, const int *n, float *a,
					const int *lda, float *s, float *u, const int *ldu, float *vt,
					const int *ldvt, float *work, const int *lwork, int *iwork,
					int *info);
extern void ssyevd_(const char *jobz, const char *uplo, const int *n, float *a,
					const int *lda, float *w, float *work, const int *lwork,
					int *iwork, const int *liwork, int *info);

extern void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info);
extern void spotrs_(const char *uplo, const int *n, const int *nrhs, const float *a,
					const int *lda, float *b, const int *ldb, int *info);

/* model.c: QDB_OK when m's shape is consistent, else QDB_ERR_ARG */
int			qdb_model_check(const QdbModel *m);

/*
 * Whether m's cosine distances are the angle to (or between) decoded
 * vectors, 1 - q . xhat / ||xhat|| (adc.c, pair.c): every kind under
 * cosine.  Kind neural takes the angle in its latent space about the
 * mean's image: between f(q - mean) + f(mean) and f(mean) + c, which at
 * its opq start (f = A, orthonormal) is opq's angle to the decoded vector.
 */
static inline int
qdb_cosine_of_xhat(const QdbModel *m)
{
	return m->metric == QDB_METRIC_COSINE;
}

/* util.c: the nearest of 256 ascending levels to v; qsort's float order */
uint8_t		qdb_nearest_level(const float *levels, float v);
int			qdb_float_cmp(const void *a, const void *b);

/* sub-quantizers whose codewords span dsub dims (an rq book spans dim_pq) */
static inline int
qdb_model_books(const QdbModel *m)
{
	return m->M - m->err_byte;
}

/*
 * opq_error.c: codes (n x M) of n rows of a model with an error byte: r
 * the rows centred (n x dim), y their transform (n x dim_pq).
 */
int			qdb_opq_error_encode(const QdbModel *m, const float *r, const float *y,
								 size_t n, uint8_t *codes);

/* model.c: y (dim_pq) = linear v, or v zero-padded, for one vector */
void		qdb_apply_linear(const QdbModel *m, const float *v, float *y);

/*
 * adc_rows.c: bt is a book of 256 codewords of w floats stored transposed
 * (w x 256, qdb_transpose_book); row (256) gets each codeword's dot product
 * with y, or its squared distance to y when l2, over their first len dims.
 */
void		qdb_transpose_book(const float *book, int w, float *bt);
void		qdb_book_row(const float *bt, const float *y, int len, int l2, float *row);

#endif							/* QDB_INTERNAL_H */
