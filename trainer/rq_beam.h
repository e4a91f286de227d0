/*
 * rq_beam.h
 *	  The beam state of kind rq's encoders, shared by rq.c (the beam step
 *	  from residuals) and rq_lut.c (the same step from lookup tables, for
 *	  training's passes over the whole sample).  Private to the trainer.
 */
#ifndef QDB_RQ_BEAM_H
#define QDB_RQ_BEAM_H

#include "rq.h"

#define QDB_RQ_BLOCK_ROWS	256	/* rows per block of a beam step */

/* Beam state of n rows: B partial codes of M bytes each, their errors. */
typedef struct QdbRqBeams
{
	int			B;				/* the beam's width */
	float		eta;			/* 1: isotropic; else the weight along u */
	const float *U;				/* (n, D) unit directions when eta != 1 */
	uint8_t    *codes;			/* (n, B, M) */
	float	   *err;			/* (n, B) ||r||^2 */
	float	   *par;			/* (n, B) r . u, when eta != 1 */
	int		   *nbeam;			/* (n) */
} QdbRqBeams;

/* rq.c: a row's new beam from its best extensions (both steps end so) */
extern void qdb_rq_beam_keep(QdbRqBeams *bs, size_t row, int M, int book, const float *best,
							 const int *ids, int len, const float *ud, uint8_t *ncodes,
							 float *nerr, float *npar);

/*
 * Extends every row's partial codes (book bytes each) by book `book` of
 * books (nbooks x 256 x D; cnorm their squared norms) and keeps the B best,
 * as rq.c's beam step does, with r . c taken as y . c less the lookups
 * <c_s, c> of the bytes already chosen (tables of book x 256 x 256 built
 * here): one multiply per row and book instead of one per partial code,
 * and no residuals.  The scores agree with rq.c's to rounding, so the two
 * may part on near ties; training and batch encoding (CREATE INDEX) use
 * this one, a row's encoding (INSERT, quantumdb.encode) rq.c's.  tables:
 * book's tables as qdb_rq_book_tables makes them, or NULL to build them
 * here.  Heartbeats (stage) every 16 blocks: QDB_ERR_CANCELLED, or NOMEM.
 */
extern int	qdb_rq_lut_step(const QdbAlloc *a, const float *books, const float *cnorm,
							int D, int M, int book, const float *y, size_t n,
							QdbRqBeams *bs, const float *tables,
							const QdbProgressCtx *p, const char *stage);

/*
 * A refit's normal equations from n rows' codes (the first nbooks bytes of
 * each, rows stride bytes apart) and the rows y (n x D): into G (zeroed
 * by the caller), column-major K x K (K = nbooks x 256), the lower triangle and diagonal of
 * the counts of rows using codewords k and l together (the upper triangle
 * is left as it was: LAPACK's "L" routines never read it); into R,
 * column-major K x D, the sum of the rows using each codeword.  NOMEM.
 */
extern int	qdb_rq_normal_equations(const QdbAlloc *a, const uint8_t *rowcodes, size_t stride,
									int nbooks, const float *y, size_t n, int D, float *G,
									float *R);

/* X (book x 256 x 256) = C_t C_book^T for t < book: the step's tables */
extern void qdb_rq_book_tables(const float *books, int D, int book, float *X);

/*
 * One partial code's 256 scores of a step and the masks of the lanes that
 * may enter the beam (rq_lut.c), portable and AVX-512 (x86-64, only where
 * the CPU has it); exported for the test that they round alike.
 */
extern void qdb_rq_lut_scores(const float *yd, const float *X, const uint8_t *code, int book,
							  float base, const float *cn, const float *ud, float pb, float w,
							  float bound, int open, float *sc, uint16_t *mask);
#if defined(__x86_64__)
extern void qdb_rq_lut_scores_avx512(const float *yd, const float *X, const uint8_t *code,
									 int book, float base, const float *cn, const float *ud,
									 float pb, float w, float bound, int open, float *sc,
									 uint16_t *mask);
#endif

/* tests: nonzero makes rq_lut.c use its portable scores on an AVX-512 CPU */
extern int	qdb_rq_lut_portable;

/*
 * qdb_rq_encode (rq.h) by either step: lut 0 is rq.c's (a row's encoding),
 * 1 rq_lut.c's (training's and batch encoding's), with tables NULL or
 * every book's (qdb_rq_all_tables); tests compare them.
 */
extern int	qdb_rq_encode_by(const QdbModel *m, const float *y, size_t n, uint8_t *codes,
							 int lut, const float *tables);

/*
 * Every book's step tables, book after book (book b's b tables start at
 * b (b - 1) / 2 tables in): qdb_rq_all_tables_floats floats, or NULL when
 * out of memory.
 */
extern size_t qdb_rq_all_tables_floats(const QdbModel *m);
extern float *qdb_rq_all_tables(const QdbAlloc *a, const QdbModel *m);

#endif							/* QDB_RQ_BEAM_H */
