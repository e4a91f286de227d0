/*
 * rq.c
 *	  Residual quantization with beam search (kind rq; see rq.h for the
 *	  model it fills).
 *
 * Training (Babenko and Lempitsky's additive family, as Faiss's
 * ResidualQuantizer trains it): the sample is centred (and projected on
 * its leading principal directions when dim_pq < dim); then, book by book,
 * k-means of 256 on the residuals of each row's best partial code gives
 * the book's codewords, and every row's B best partial codes are
 * extended by one byte: each partial code times each new codeword, the
 * B with the smallest residuals kept.  Partial codes are kept as
 * bytes; training extends them by rq_lut.c's step (inner products from
 * tables of codeword products, book by book over the whole sample), so the
 * memory is the sample, the tables and one block per thread, whatever the
 * beam.
 *
 * A row's encoding (INSERT, quantumdb.encode) is the same beam search over
 * every book, block by block from the partial codes' rebuilt residuals
 * (beam_step: no table to build first, which a single row could not pay
 * for); a batch encoder (encoder.c: CREATE INDEX) takes training's step
 * with tables built once.  Under l2 the last byte then quantizes the
 * squared norm of the reconstruction to the nearest of 256 levels (the
 * sample's quantiles).
 *
 * The beam's width is the model's rq_beam (8 by default, up to
 * QDB_RQ_BEAM_MAX).  Under cosine and ip, rq_eta > 1 makes both the beam
 * and the refits score-aware (anisotropic, as ScaNN's loss): a partial
 * code is ranked by ||r||^2 + (eta - 1) (r . u)^2, u the row's direction,
 * so that the error along the row, which moves the inner products of the
 * queries near it, counts eta times the error across it (rq_aniso.c).
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "kmeans.h"
#include "pca.h"
#include "qdb_distance.h"
#include "qdb_internal.h"
#include "rq.h"
#include "robust_mean.h"
#include "rq_aniso.h"
#include "rq_beam.h"

#define RQ_BLOCK_ROWS	QDB_RQ_BLOCK_ROWS
#define RQ_MAX_REFIT_CODEWORDS	8192	/* larger systems skip the refits */

/* Scratch of one block of a beam step. */
typedef struct BeamScratch
{
	float	   *res;			/* (rows, B, D) residuals of the partial codes */
	float	   *dots;			/* (rows, B, ksub) */
	float	   *udots;			/* (rows, ksub) u . codeword (anisotropic only) */
	uint8_t    *ncodes;			/* (rows, B, M) the extended codes */
	float	   *nerr;			/* (rows, B) */
	float	   *npar;			/* (rows, B) */
} BeamScratch;

static int
scratch_alloc(const QdbAlloc *a, BeamScratch *s, size_t n, int D, int M, int B)
{
	/* a block of rows, or fewer for a few (an index insert encodes one) */
	size_t		rows = n < RQ_BLOCK_ROWS ? n : RQ_BLOCK_ROWS;
	size_t		rb = rows * B;

	s->res = qdb_malloc(a, rb * D, sizeof(float));
	s->dots = qdb_malloc(a, rb * QDB_KSUB, sizeof(float));
	s->udots = qdb_malloc(a, rows * QDB_KSUB, sizeof(float));
	s->ncodes = qdb_malloc(a, rb * M, 1);
	s->nerr = qdb_malloc(a, rb, sizeof(float));
	s->npar = qdb_malloc(a, rb, sizeof(float));
	return s->res && s->dots && s->udots && s->ncodes && s->nerr && s->npar ?
		QDB_OK : QDB_ERR_NOMEM;
}

static void
scratch_free(const QdbAlloc *a, BeamScratch *s)
{
	qdb_free(a, s->res);
	qdb_free(a, s->dots);
	qdb_free(a, s->udots);
	qdb_free(a, s->ncodes);
	qdb_free(a, s->nerr);
	qdb_free(a, s->npar);
}

typedef QdbRqBeams Beams;

/* r (D) = y - the codewords of the first nbooks bytes of code */
static void
residual(const float *books, int D, const float *y, const uint8_t *code, int nbooks,
		 float *r)
{
	int			s,
				j;

	memcpy(r, y, sizeof(float) * D);
	for (s = 0; s < nbooks; s++)
	{
		const float *c = books + ((size_t) s * QDB_KSUB + code[s]) * D;

		for (j = 0; j < D; j++)
			r[j] -= c[j];
	}
}

/*
 * A row's new beam: the len best extensions (ids: partial code * 256 +
 * codeword of book `book`, best: their scores) copied through the row's
 * scratch (ncodes: len x M, nerr, npar: len) into bs, each error less its
 * anisotropic term (ud: u . the book's codewords, NULL when isotropic).
 */
void
qdb_rq_beam_keep(QdbRqBeams *bs, size_t row, int M, int book, const float *best,
				 const int *ids, int len, const float *ud, uint8_t *ncodes, float *nerr,
				 float *npar)
{
	int			B = bs->B;
	float		w = bs->eta - 1.0f;
	int			e;

	for (e = 0; e < len; e++)
	{
		uint8_t    *nc = ncodes + (size_t) e * M;
		int			from = ids[e] / QDB_KSUB,
					k2 = ids[e] % QDB_KSUB;
		float		e2 = best[e];

		memcpy(nc, bs->codes + (row * B + from) * M, M);
		nc[book] = (uint8_t) k2;
		if (ud)
		{
			float		pk = bs->par[row * B + from] - ud[k2];

			npar[e] = pk;
			e2 -= w * pk * pk;
		}
		nerr[e] = e2 > 0 ? e2 : 0;
	}
	memcpy(bs->codes + row * B * M, ncodes, (size_t) len * M);
	memcpy(bs->err + row * B, nerr, sizeof(float) * len);
	if (ud)
		memcpy(bs->par + row * B, npar, sizeof(float) * len);
	bs->nbeam[row] = len;
}

/*
 * One beam step for rows [i0, i0 + b): each row's partial codes (beam
 * entries of bs->codes, bs->nbeam[] of them, `book` bytes each) are
 * extended by book `book`, and the bs->B best are kept, ascending by
 * score: the squared error, plus (eta - 1) (r . u)^2 when anisotropic.
 */
static void
beam_step(const float *books, const float *cnorm, int D, int M, int book,
		  const float *y, size_t i0, size_t b, Beams *bs, BeamScratch *s)
{
	const float *cb = books + (size_t) book * QDB_KSUB * D;
	const float *cn = cnorm + (size_t) book * QDB_KSUB;
	int			B = bs->B;
	float		w = bs->eta - 1.0f;
	uint8_t    *codes = bs->codes;
	float	   *err = bs->err;
	int		   *nbeam = bs->nbeam;
	size_t		i;

	for (i = 0; i < b; i++)
	{
		size_t		row = i0 + i;
		int			e;

		for (e = 0; e < B; e++)
		{
			float	   *r = s->res + (i * B + e) * D;

			if (e < nbeam[row])
				residual(books, D, y + row * D, codes + (row * B + e) * M, book, r);
			else
				memset(r, 0, sizeof(float) * D);
		}
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) (b * B), QDB_KSUB, D,
				1.0f, s->res, D, cb, D, 0.0f, s->dots, QDB_KSUB);
	if (bs->U)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) b, QDB_KSUB, D,
					1.0f, bs->U + i0 * D, D, cb, D, 0.0f, s->udots, QDB_KSUB);
	for (i = 0; i < b; i++)
	{
		size_t		row = i0 + i;
		const float *ud = bs->U ? s->udots + i * QDB_KSUB : NULL;
		float		best[QDB_RQ_BEAM_MAX];
		int			ids[QDB_RQ_BEAM_MAX];
		int			len = 0,
					e,
					k;

		for (e = 0; e < nbeam[row]; e++)
		{
			const float *dt = s->dots + (i * B + e) * QDB_KSUB;
			float		base = err[row * B + e];

			if (bs->U)
			{
				float		pb = bs->par[row * B + e];

				for (k = 0; k < QDB_KSUB; k++)
				{
					float		pk = pb - ud[k];

					qdb_topk_insert(best, ids, &len, B,
									base - 2.0f * dt[k] + cn[k] + w * pk * pk,
									e * QDB_KSUB + k);
				}
			}
			else
			{
				for (k = 0; k < QDB_KSUB; k++)
					qdb_topk_insert(best, ids, &len, B, base - 2.0f * dt[k] + cn[k],
									e * QDB_KSUB + k);
			}
		}
		qdb_rq_beam_keep(bs, row, M, book, best, ids, len, ud, s->ncodes + i * B * M,
						 s->nerr + i * B, s->npar + i * B);
	}
}

/* Every row back to its one empty partial code: r = y. */
static void
beams_reset(Beams *bs, const float *y, size_t n, int D)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		bs->nbeam[i] = 1;
		bs->err[i * bs->B] = qdb_kernels.dot(y + i * D, y + i * D, D);
		if (bs->U)
			bs->par[i * bs->B] = qdb_kernels.dot(y + i * D, bs->U + i * D, D);
	}
}

/*
 * The beams of n rows for model m (its rq_beam and rq_eta; the directions
 * of y's rows when m's metric and eta make the search anisotropic).
 */
static int
beams_init(const QdbAlloc *a, const QdbModel *m, Beams *bs, const float *y, size_t n)
{
	int			D = m->dim_pq;

	bs->B = qdb_rq_beam(&m->config);
	bs->eta = qdb_rq_anisotropic(m) ? m->config.rq_eta : 1.0f;
	bs->codes = qdb_calloc(a, n * bs->B, m->M);
	bs->err = qdb_malloc(a, n * bs->B, sizeof(float));
	bs->nbeam = qdb_malloc(a, n, sizeof(int));
	if (!bs->codes || !bs->err || !bs->nbeam)
		return QDB_ERR_NOMEM;
	if (bs->eta != 1.0f)
	{
		float	   *U = qdb_malloc(a, n * D, sizeof(float));

		bs->U = U;
		bs->par = qdb_malloc(a, n * bs->B, sizeof(float));
		if (!U || !bs->par || qdb_rq_directions(m, y, n, U) != QDB_OK)
			return QDB_ERR_NOMEM;
	}
	beams_reset(bs, y, n, D);
	return QDB_OK;
}

static void
beams_free(const QdbAlloc *a, Beams *bs)
{
	qdb_free(a, bs->codes);
	qdb_free(a, bs->err);
	qdb_free(a, bs->par);
	qdb_free(a, (void *) bs->U);
	qdb_free(a, bs->nbeam);
}

/* Floats of the step tables of the books before book (b tables for book b) */
static size_t
tables_before(int book)
{
	return (size_t) book * (book - 1) / 2 * QDB_KSUB * QDB_KSUB;
}

/*
 * The beam search over every book for n rows; the best code of each is
 * first.  lut: by rq_lut.c's step, book by book over all n rows (what
 * training does), else block by block from residuals.
 */
static int
beam_encode(const QdbAlloc *a, const QdbModel *m, const float *cnorm, const float *y,
			size_t n, Beams *bs, int lut, const float *tables)
{
	BeamScratch s = {0};
	int			D = m->dim_pq,
				M = m->M,
				nbooks = qdb_rq_books(m);
	int			status,
				book;
	size_t		i0;

	status = beams_init(a, m, bs, y, n);
	if (lut)
	{
		for (book = 0; book < nbooks && status == QDB_OK; book++)
			status = qdb_rq_lut_step(a, m->codebooks, cnorm, D, M, book, y, n, bs,
									 tables ? tables + tables_before(book) : NULL,
									 NULL, NULL);
		return status;
	}
	if (status == QDB_OK)
		status = scratch_alloc(a, &s, n, D, M, bs->B);
	if (status != QDB_OK)
	{
		scratch_free(a, &s);
		return status;
	}
	for (i0 = 0; i0 < n; i0 += RQ_BLOCK_ROWS)
	{
		size_t		b = n - i0 < RQ_BLOCK_ROWS ? n - i0 : RQ_BLOCK_ROWS;

		for (book = 0; book < nbooks; book++)
			beam_step(m->codebooks, cnorm, D, M, book, y, i0, b, bs, &s);
	}
	scratch_free(a, &s);
	return QDB_OK;
}

/* Column 0 of the last book: the l2 norm levels (see rq.h). */
static inline float
level(const QdbModel *m, int k)
{
	return m->codebooks[((size_t) (m->M - 1) * QDB_KSUB + k) * m->dim_pq];
}

void
qdb_rq_decode(const QdbModel *m, const uint8_t *codes, size_t n, float *y)
{
	int			D = m->dim_pq;
	int			nbooks = qdb_rq_books(m);
	size_t		i;
	int			s,
				j;

	for (i = 0; i < n; i++)
	{
		float	   *yr = y + i * D;

		memset(yr, 0, sizeof(float) * D);
		for (s = 0; s < nbooks; s++)
		{
			const float *c = m->codebooks + ((size_t) s * QDB_KSUB + codes[i * m->M + s]) * D;

			for (j = 0; j < D; j++)
				yr[j] += c[j];
		}
	}
}

/* The byte of the norm under l2: the level nearest ||y - residual||^2. */
static void
set_norm_bytes(const QdbModel *m, const float *levels, const float *y, size_t n,
			   uint8_t *codes, float *scratch)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		qdb_rq_decode(m, codes + i * m->M, 1, scratch);
		codes[i * m->M + m->M - 1] =
			qdb_nearest_level(levels, qdb_kernels.dot(scratch, scratch, m->dim_pq));
	}
	(void) y;
}

int
qdb_rq_encode(const QdbModel *m, const float *y, size_t n, uint8_t *codes)
{
	return qdb_rq_encode_by(m, y, n, codes, 0, NULL);
}

size_t
qdb_rq_all_tables_floats(const QdbModel *m)
{
	return tables_before(qdb_rq_books(m));
}

float *
qdb_rq_all_tables(const QdbAlloc *a, const QdbModel *m)
{
	int			nbooks = qdb_rq_books(m);
	size_t		floats = qdb_rq_all_tables_floats(m);
	/* one book needs no table; a float keeps NULL for out of memory */
	float	   *X = qdb_malloc(a, floats > 0 ? floats : 1, sizeof(float));

	for (int book = 1; X != NULL && book < nbooks; book++)
		qdb_rq_book_tables(m->codebooks, m->dim_pq, book, X + tables_before(book));
	return X;
}

int
qdb_rq_encode_by(const QdbModel *m, const float *y, size_t n, uint8_t *codes, int lut,
				 const float *tables)
{
	int			D = m->dim_pq;
	int			M = m->M;
	int			nbooks = qdb_rq_books(m);
	float	   *cnorm;
	float	   *levels = NULL;
	float	   *scratch = NULL;
	Beams		bs = {0};
	size_t		i;
	int			k,
				status;

	qdb_distance_init();
	cnorm = qdb_malloc(m->alloc, (size_t) M * QDB_KSUB, sizeof(float));
	if (!cnorm)
		return QDB_ERR_NOMEM;
	qdb_centroid_norms(m->codebooks, nbooks * QDB_KSUB, D, cnorm);
	status = beam_encode(m->alloc, m, cnorm, y, n, &bs, lut, tables);
	if (status == QDB_OK)
	{
		for (i = 0; i < n; i++)
			memcpy(codes + i * M, bs.codes + i * bs.B * M, M);
		if (nbooks < M)
		{
			levels = qdb_malloc(m->alloc, QDB_KSUB, sizeof(float));
			scratch = qdb_malloc(m->alloc, D, sizeof(float));
			if (!levels || !scratch)
				status = QDB_ERR_NOMEM;
			else
			{
				for (k = 0; k < QDB_KSUB; k++)
					levels[k] = level(m, k);
				set_norm_bytes(m, levels, y, n, codes, scratch);
			}
		}
	}
	beams_free(m->alloc, &bs);
	qdb_free(m->alloc, levels);
	qdb_free(m->alloc, scratch);
	qdb_free(m->alloc, cnorm);
	return status;
}

/* The 256 norm levels: quantiles of the sample's reconstruction norms. */
static int
train_levels(QdbModel *m, const uint8_t *codes, size_t n)
{
	float	   *norms = qdb_malloc(m->alloc, n, sizeof(float));
	float	   *yr = qdb_malloc(m->alloc, m->dim_pq, sizeof(float));
	size_t		i;
	int			k;

	if (!norms || !yr)
	{
		qdb_free(m->alloc, norms);
		qdb_free(m->alloc, yr);
		return QDB_ERR_NOMEM;
	}
	for (i = 0; i < n; i++)
	{
		qdb_rq_decode(m, codes + i * m->M, 1, yr);
		norms[i] = qdb_kernels.dot(yr, yr, m->dim_pq);
	}
	qsort(norms, n, sizeof(float), qdb_float_cmp);
	for (k = 0; k < QDB_KSUB; k++)
		m->codebooks[((size_t) (m->M - 1) * QDB_KSUB + k) * m->dim_pq] =
			norms[(size_t) (((double) k + 0.5) / QDB_KSUB * n)];
	qdb_free(m->alloc, norms);
	qdb_free(m->alloc, yr);
	return QDB_OK;
}

/* y (n x D): the centred sample, projected when D < d, else zero-padded. */
static int
centre_sample(const QdbAlloc *a, const float *x, size_t n, int d, int D, QdbModel *m,
			  float *y, const QdbProgressCtx *p)
{
	size_t		i;
	int			j,
				status;

	if (D < d)
	{
		float	   *eigvecs = qdb_malloc(a, (size_t) d * d, sizeof(float));
		float	   *eigvals = qdb_malloc(a, d, sizeof(float));

		status = eigvecs && eigvals ? QDB_OK : QDB_ERR_NOMEM;
		if (status == QDB_OK)
			status = qdb_pca_fit_report(a, x, n, d, D, m->mean, eigvecs, eigvals, p);
		if (status == QDB_OK)
		{
			memcpy(m->linear, eigvecs, sizeof(float) * D * d);
			status = qdb_pca_project(a, x, n, d, m->mean, m->linear, D, y, p);
		}
		qdb_free(a, eigvecs);
		qdb_free(a, eigvals);
		return status;
	}
	{
		/* rows far out of scale are left out of the mean (robust_mean.h) */
		unsigned char *kept = qdb_malloc(a, n, 1);
		size_t		nkept;

		if (!kept)
			return QDB_ERR_NOMEM;
		status = qdb_robust_mean(a, x, n, d, m->mean, kept, &nkept, p);
		qdb_free(a, kept);
		if (status != QDB_OK)
			return status;
	}
	for (i = 0; i < n; i++)
	{
		for (j = 0; j < d; j++)
			y[i * D + j] = x[i * d + j] - m->mean[j];
		memset(y + i * D + d, 0, sizeof(float) * (D - d));
	}
	return QDB_OK;
}

/*
 * The normal equations of the refit (below) from every row's code (its
 * first nbooks bytes, rows stride bytes apart; rq_beam.h): the lower
 * triangle of G (column-major K x K, K = nbooks x 256, all that spotrf
 * and spotrs read), which counts the rows that use codeword k and
 * codeword l together, and R (column-major K x D), the sum of the rows
 * that use each codeword.  Book pair by book pair into a 256 x 256 count
 * that stays in cache, and R by codeword rows, then transposed: the same
 * sums in the same order as one pass of increments, without its cache
 * misses (at 16 bytes a row's 225 entries of G and 15 of R's rows fall
 * anywhere in 60 MB).
 */
int
qdb_rq_normal_equations(const QdbAlloc *a, const uint8_t *rowcodes, size_t stride, int nbooks,
						const float *y, size_t n, int D, float *G, float *R)
{
	int			K = nbooks * QDB_KSUB;
	uint8_t    *codes = qdb_malloc(a, n, nbooks);
	uint32_t   *count = qdb_malloc(a, (size_t) QDB_KSUB * QDB_KSUB, sizeof(uint32_t));
	float	   *rows = qdb_calloc(a, (size_t) K * D, sizeof(float));
	size_t		i;
	int			s,
				t,
				u,
				v,
				j;

	if (!codes || !count || !rows)
	{
		qdb_free(a, codes);
		qdb_free(a, count);
		qdb_free(a, rows);
		return QDB_ERR_NOMEM;
	}
	for (i = 0; i < n; i++)
	{
		const float *yi = y + i * D;

		memcpy(codes + i * nbooks, rowcodes + i * stride, nbooks);
		for (s = 0; s < nbooks; s++)
		{
			size_t		k = (size_t) s * QDB_KSUB + codes[i * nbooks + s];
			float	   *r = rows + k * D;

			G[k * (K + 1)] += 1.0f;		/* the diagonal: rows using codeword k */
			for (j = 0; j < D; j++)
				r[j] += yi[j];
		}
	}
	for (s = 0; s < nbooks; s++)
	{
		for (t = s + 1; t < nbooks; t++)
		{
			memset(count, 0, sizeof(uint32_t) * QDB_KSUB * QDB_KSUB);
			for (i = 0; i < n; i++)
				count[codes[i * nbooks + s] * QDB_KSUB + codes[i * nbooks + t]]++;
			/* column u of book s, rows v of book t: below the diagonal */
			for (u = 0; u < QDB_KSUB; u++)
			{
				float	   *col = G + ((size_t) s * QDB_KSUB + u) * K + (size_t) t * QDB_KSUB;

				for (v = 0; v < QDB_KSUB; v++)
					col[v] = (float) count[u * QDB_KSUB + v];
			}
		}
	}
	for (u = 0; u < K; u++)
		for (j = 0; j < D; j++)
			R[(size_t) j * K + u] = rows[(size_t) u * D + j];
	qdb_free(a, codes);
	qdb_free(a, count);
	qdb_free(a, rows);
	return QDB_OK;
}

/*
 * One joint refit of every book, the codes fixed: the least-squares
 * codewords minimise sum_i ||y_i - sum_s c_s(a_is)||^2, the normal
 * equations G C = B^T Y with G = B^T B (B: the rows' one-hot codes, so G
 * counts how often two codewords meet) and a small ridge for codewords
 * that are rare or never used.  Cholesky (LAPACK spotrf/spotrs); the
 * system has nbooks * 256 unknowns per dimension.  When the search is
 * anisotropic, that solution starts conjugate gradients on the weighted
 * system (rq_aniso.c, preconditioned by the same factor).  Then every row
 * is encoded again with the new books.
 */
static int
refit_books(const QdbAlloc *a, QdbModel *m, int nbooks, const float *y, size_t n,
			Beams *bs, float *cnorm, const QdbProgressCtx *p)
{
	int			status = QDB_OK;
	int			D = m->dim_pq;
	int			M = m->M;
	int			K = nbooks * QDB_KSUB;
	float	   *G = qdb_calloc(a, (size_t) K * K, sizeof(float));
	float	   *R = qdb_calloc(a, (size_t) K * D, sizeof(float));	/* column-major K x D */
	double		trace = 0;
	int			j,
				k,
				info = 0;

	if (!G || !R ||
		qdb_rq_normal_equations(a, bs->codes, (size_t) bs->B * M, nbooks, y, n, D, G,
								R) != QDB_OK)
	{
		/* the refits only improve the books: without room, keep them */
		qdb_free(a, G);
		qdb_free(a, R);
		return QDB_OK;
	}
	for (k = 0; k < K; k++)
		trace += G[(size_t) k * K + k];
	for (k = 0; k < K; k++)
		G[(size_t) k * K + k] += (float) (1e-3 * trace / K);
	spotrf_("L", &K, G, &K, &info);
	if (info == 0)
		spotrs_("L", &K, &D, G, &K, R, &K, &info);
	if (info == 0 && bs->U)
	{
		QdbRqAniso	an = {bs->codes, bs->B, M, nbooks, bs->U, bs->eta};

		status = qdb_rq_aniso_refit(a, &an, y, n, K, D, (float) (1e-3 * trace / K), G, R, p);
	}
	if (info == 0 && status == QDB_OK)
	{
		for (k = 0; k < K; k++)
			for (j = 0; j < D; j++)
				m->codebooks[(size_t) k * D + j] = R[(size_t) j * K + k];
		qdb_centroid_norms(m->codebooks, K, D, cnorm);
		beams_reset(bs, y, n, D);
		for (int st = 0; st < nbooks && status == QDB_OK; st++)
			status = qdb_rq_lut_step(a, m->codebooks, cnorm, D, M, st, y, n, bs, NULL, p,
									 "rq refit");
	}
	qdb_free(a, G);
	qdb_free(a, R);
	/* a singular system keeps the books it had (never expected with the ridge) */
	return status;
}

/* QDB_KSUB distinct rows of n, uniformly at random (Floyd's algorithm). */
static void
pick_anchors(size_t n, uint64_t seed, size_t *anchors)
{
	QdbRng		rng;
	int			k = 0;
	size_t		j;

	qdb_rng_seed(&rng, seed);
	for (j = n - QDB_KSUB; j < n; j++)
	{
		size_t		t = qdb_rng_below(&rng, j + 1);
		int			i;

		for (i = 0; i < k && anchors[i] != t; i++)
			;
		anchors[k] = i < k ? j : t;
		k++;
	}
}

int
qdb_rq_train(const QdbAlloc *a, const float *x, size_t n, const QdbTrainConfig *c,
			 QdbModel *out, const QdbProgressCtx *p)
{
	int			d = c->dim;
	int			M = c->M;
	int			D = qdb_config_dim_pq(c);
	int			nbooks;
	float	   *y = NULL;
	float	   *resid = NULL;
	float	   *cnorm = NULL;
	Beams		bs = {0};
	size_t		i,
				anchors[QDB_KSUB];
	int			book,
				k,
				round,
				status;
	double		last_mse = 0;
	float	   *kept_books = NULL,
			   *kept_norms = NULL;
	uint8_t    *kept_codes = NULL;

	if (c->metric != QDB_METRIC_IP && M < 2)
		return QDB_ERR_ARG;
	if (n < QDB_KSUB)
		return QDB_ERR_DATA;
	qdb_distance_init();
	status = qdb_model_alloc(out, a, QDB_KIND_RQ, c->metric, d, D, M, 1, D < d);
	if (status != QDB_OK)
		return status;
	nbooks = qdb_rq_books(out);
	/* the beam's settings are read from the model's config from here on */
	out->config = *c;
	out->config.kind = QDB_KIND_RQ;
	y = qdb_malloc(a, n * D, sizeof(float));
	resid = qdb_malloc(a, n * D, sizeof(float));
	cnorm = qdb_calloc(a, (size_t) M * QDB_KSUB, sizeof(float));
	if (!y || !resid || !cnorm)
	{
		status = QDB_ERR_NOMEM;
		goto done;
	}
	pick_anchors(n, c->seed, anchors);
	status = centre_sample(a, x, n, d, D, out, y, p);
	if (status == QDB_OK)
		status = beams_init(a, out, &bs, y, n);
	for (book = 0; book < nbooks && status == QDB_OK; book++)
	{
		float	   *cb = out->codebooks + (size_t) book * QDB_KSUB * D;
		double		obj = 0,
					mse = 0;

		/* the residuals of each row's best partial code */
		for (i = 0; i < n; i++)
			residual(out->codebooks, D, y + i * D, bs.codes + i * bs.B * M, book,
					 resid + i * D);
		/* every book starts from the residuals of the same rows (see the top) */
		for (k = 0; k < QDB_KSUB; k++)
			memcpy(cb + (size_t) k * D, resid + anchors[k] * D, sizeof(float) * D);
		status = qdb_kmeans_cancellable(a, resid, n, D, QDB_KSUB, c->kmeans_iters,
										c->max_points_per_centroid, c->seed, 1, cb, &obj,
										p, "rq");
		if (status != QDB_OK)
			break;
		/* padded dims are zero in every row; k-means' split may leave a trace */
		for (k = 0; D > d && out->linear == NULL && k < QDB_KSUB; k++)
			memset(cb + (size_t) k * D + d, 0, sizeof(float) * (D - d));
		qdb_centroid_norms(cb, QDB_KSUB, D, cnorm + (size_t) book * QDB_KSUB);
		status = qdb_rq_lut_step(a, out->codebooks, cnorm, D, M, book, y, n, &bs, NULL, p,
								 "rq");
		if (status != QDB_OK)
			break;
		for (i = 0; i < n; i++)
			mse += bs.err[i * bs.B];
		last_mse = mse;
		status = qdb_progress_report(p, "rq", book + 1, nbooks, mse / (double) n);
	}
	/* the residuals are done with: room for the refits' system */
	qdb_free(a, resid);
	resid = NULL;
	/*
	 * Joint refits while the system stays small (256 MB of G at most).  A
	 * refit whose rows' error is higher than before it is undone and ends
	 * them: on few rows a codeword (800 rows for 768 codewords) the least
	 * squares overfit and the re-encoding then lost what the greedy pass
	 * had (sift-photos-128, 800 rows: validation 10-recall@10 0.727 before
	 * the refits, 0.600 after 16; session 59's valgrind run,
	 * /work/runs/valgrind-s59.md F1).
	 */
	if (status == QDB_OK && qdb_rq_refits(c) > 0 &&
		(size_t) nbooks * QDB_KSUB <= RQ_MAX_REFIT_CODEWORDS)
	{
		kept_books = qdb_malloc(a, (size_t) nbooks * QDB_KSUB * D, sizeof(float));
		kept_norms = qdb_malloc(a, (size_t) M * QDB_KSUB, sizeof(float));
		kept_codes = qdb_malloc(a, n, M);
	}
	/* without room to undo one, no refits (as without room for their system) */
	for (round = 0; status == QDB_OK && kept_books && kept_norms && kept_codes &&
		 round < qdb_rq_refits(c); round++)
	{
		double		mse = 0;

		memcpy(kept_books, out->codebooks, sizeof(float) * nbooks * QDB_KSUB * D);
		memcpy(kept_norms, cnorm, sizeof(float) * M * QDB_KSUB);
		for (i = 0; i < n; i++)
			memcpy(kept_codes + i * M, bs.codes + i * bs.B * M, M);
		status = refit_books(a, out, nbooks, y, n, &bs, cnorm, p);
		for (i = 0; i < n && status == QDB_OK; i++)
			mse += bs.err[i * bs.B];
		if (status == QDB_OK && mse > last_mse)
		{
			/* worse than what it refit: back to that, and no more refits */
			memcpy(out->codebooks, kept_books, sizeof(float) * nbooks * QDB_KSUB * D);
			memcpy(cnorm, kept_norms, sizeof(float) * M * QDB_KSUB);
			for (i = 0; i < n; i++)
				memcpy(bs.codes + i * bs.B * M, kept_codes + i * M, M);
			status = qdb_progress_report(p, "rq refit undone", round + 1, qdb_rq_refits(c),
										 last_mse / (double) n);
			break;
		}
		if (status == QDB_OK)
			status = qdb_progress_report(p, "rq refit", round + 1, qdb_rq_refits(c),
										 mse / (double) n);
		last_mse = mse;
	}
	if (status == QDB_OK && nbooks < M)
	{
		uint8_t    *codes = qdb_malloc(a, n, M);

		if (!codes)
			status = QDB_ERR_NOMEM;
		else
		{
			for (i = 0; i < n; i++)
				memcpy(codes + i * M, bs.codes + i * bs.B * M, M);
			status = train_levels(out, codes, n);
			qdb_free(a, codes);
		}
	}
	if (status == QDB_OK)
	{
		out->config = *c;
		out->config.kind = QDB_KIND_RQ;
	}

done:
	beams_free(a, &bs);
	qdb_free(a, kept_books);
	qdb_free(a, kept_norms);
	qdb_free(a, kept_codes);
	qdb_free(a, cnorm);
	qdb_free(a, resid);
	qdb_free(a, y);
	if (status != QDB_OK)
		qdb_model_free(out);
	return status;
}
