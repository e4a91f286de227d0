/*
 * rq_lut.c
 *	  Kind rq's beam step from lookup tables (rq_beam.h), for training.
 *
 * A partial code a_0 .. a_{t-1} of row y has the residual
 * r = y - sum_s c_s(a_s), so its inner product with codeword k of book t
 * is y . c_t(k) - sum_s <c_s(a_s), c_t(k)>.  The first term is one row of
 * Y C_t^T, shared by the row's B partial codes; the second, t rows of the
 * tables X_s = C_s C_t^T (256 x 256 each), built once per book for every
 * row.  A step then costs 256 D multiply-adds per row and t * 256 adds per
 * partial code, against B * 256 * D multiply-adds and the residuals'
 * B * t * D for rq.c's step.  The squared error follows as in rq.c:
 * ||r - c||^2 = ||r||^2 - 2 r . c + ||c||^2.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "qdb_distance.h"
#include "qdb_internal.h"
#include "rq_beam.h"
#include "task_pool.h"

int			qdb_rq_lut_portable = 0;

typedef struct LutScratch
{
	float	   *ydots;			/* (rows, 256) y . c_book(k) */
	float	   *udots;			/* (rows, 256) u . c_book(k), anisotropic only */
	float	   *score;			/* (256) one partial code's scores */
	uint8_t    *ncodes;			/* (B, M) one row's extended codes */
	float	   *nerr;			/* (B) */
	float	   *npar;			/* (B) */
} LutScratch;

static void
lut_free(const QdbAlloc *a, LutScratch *s)
{
	qdb_free(a, s->ydots);
	qdb_free(a, s->udots);
	qdb_free(a, s->score);
	qdb_free(a, s->ncodes);
	qdb_free(a, s->nerr);
	qdb_free(a, s->npar);
}

static int
lut_alloc(const QdbAlloc *a, LutScratch *s, size_t rows, int B, int M, int aniso)
{
	s->ydots = qdb_malloc(a, rows * QDB_KSUB, sizeof(float));
	s->udots = aniso ? qdb_malloc(a, rows * QDB_KSUB, sizeof(float)) : NULL;
	s->score = qdb_malloc(a, QDB_KSUB, sizeof(float));
	s->ncodes = qdb_malloc(a, B, M);
	s->nerr = qdb_malloc(a, B, sizeof(float));
	s->npar = qdb_malloc(a, B, sizeof(float));
	return s->ydots && (s->udots || !aniso) && s->score && s->ncodes &&
		s->nerr && s->npar ? QDB_OK : QDB_ERR_NOMEM;
}

/*
 * One partial code's 256 scores into sc: base (its ||r||^2) - 2 r . c +
 * ||c||^2, plus w (pb - ud)^2 when ud (anisotropic), with r . c = yd less
 * the table rows of code's first book bytes; and in mask[j] the lanes of
 * sc[16 j .. 16 j + 16) that are not >= bound (qdb_topk_insert's own test;
 * all of them when open).  The portable version sums 32 lanes at a time.
 */
void
qdb_rq_lut_scores(const float *yd, const float *X, const uint8_t *code, int book, float base,
		   const float *cn, const float *ud, float pb, float w, float bound, int open,
		   float *sc, uint16_t *mask)
{
	int			k0,
				k,
				t;

	for (k0 = 0; k0 < QDB_KSUB; k0 += 32)
	{
		float		acc[32];

		for (k = 0; k < 32; k++)
			acc[k] = yd[k0 + k];
		for (t = 0; t < book; t++)
		{
			const float *x = X + ((size_t) t * QDB_KSUB + code[t]) * QDB_KSUB + k0;

			for (k = 0; k < 32; k++)
				acc[k] -= x[k];
		}
		for (k = 0; k < 32; k++)
			sc[k0 + k] = base - 2.0f * acc[k] + cn[k0 + k];
	}
	if (ud)
		for (k = 0; k < QDB_KSUB; k++)
		{
			float		pk = pb - ud[k];

			sc[k] += w * pk * pk;
		}
	for (k0 = 0; k0 < QDB_KSUB; k0 += 16)
	{
		uint16_t	m = 0;

		for (k = 0; k < 16; k++)
			if (open || !(sc[k0 + k] >= bound))
				m |= (uint16_t) (1u << k);
		mask[k0 / 16] = m;
	}
}

#if defined(__x86_64__)
/*
 * The same in 16 AVX-512 registers, rounded the same way: no fused steps
 * (this file is built with -ffp-contract=off, so that the compiler does
 * not fuse the anisotropic term's multiply and add into one FMA here while
 * the portable version, built for CPUs without FMA, rounds twice).
 */
__attribute__((target("avx512f")))
void
qdb_rq_lut_scores_avx512(const float *yd, const float *X, const uint8_t *code, int book, float base,
				  const float *cn, const float *ud, float pb, float w, float bound, int open,
				  float *sc, uint16_t *mask)
{
	__m512		acc[16];
	__m512		b = _mm512_set1_ps(bound);
	int			j,
				t;

	for (j = 0; j < 16; j++)
		acc[j] = _mm512_loadu_ps(yd + 16 * j);
	for (t = 0; t < book; t++)
	{
		const float *x = X + ((size_t) t * QDB_KSUB + code[t]) * QDB_KSUB;

		for (j = 0; j < 16; j++)
			acc[j] = _mm512_sub_ps(acc[j], _mm512_loadu_ps(x + 16 * j));
	}
	for (j = 0; j < 16; j++)
	{
		__m512		v = _mm512_add_ps(_mm512_sub_ps(_mm512_set1_ps(base),
												   _mm512_mul_ps(_mm512_set1_ps(2.0f), acc[j])),
									 _mm512_loadu_ps(cn + 16 * j));

		if (ud)
		{
			__m512		pk = _mm512_sub_ps(_mm512_set1_ps(pb), _mm512_loadu_ps(ud + 16 * j));

			v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(w), pk), pk));
		}
		_mm512_storeu_ps(sc + 16 * j, v);
		mask[j] = open ? 0xFFFF : (uint16_t) _mm512_cmp_ps_mask(v, b, _CMP_NGE_UQ);
	}
}
#endif

/*
 * The lanes of sc[0 .. 16) that are not >= bound (qdb_topk_insert's own
 * test), as a mask: the beam's bound now, which only falls as a row's
 * candidates go in, so a group is tested against a bound at least as tight
 * as the one its partial code's masks were made with.
 */
static inline unsigned
lanes_below(const float *sc, float bound)
{
	unsigned	m = 0;

	for (int k = 0; k < 16; k++)
		if (!(sc[k] >= bound))
			m |= 1u << k;
	return m;
}

#if defined(__x86_64__)
__attribute__((target("avx512f")))
static unsigned
lanes_below_avx512(const float *sc, float bound)
{
	return (unsigned) _mm512_cmp_ps_mask(_mm512_loadu_ps(sc), _mm512_set1_ps(bound), _CMP_NGE_UQ);
}
#endif

/* One row's step: its partial codes extended by book, the B best kept. */
static void
lut_row(const float *X, const float *cn, int M, int book, size_t row, const float *yd,
		const float *ud, QdbRqBeams *bs, LutScratch *s, int avx512)
{
	int			B = bs->B;
	float		w = bs->eta - 1.0f;
	float		best[QDB_RQ_BEAM_MAX];
	int			ids[QDB_RQ_BEAM_MAX];
	uint16_t	mask[QDB_KSUB / 16];
	int			len = 0,
				stale = 0,
				e,
				j;
	float	   *sc = s->score;

	for (e = 0; e < bs->nbeam[row]; e++)
	{
		const uint8_t *code = bs->codes + (row * B + e) * M;
		float		base = bs->err[row * B + e];
		float		pb = ud ? bs->par[row * B + e] : 0.0f;
		int			open = len < B;
		float		bound = open ? 0.0f : best[B - 1];

#if defined(__x86_64__)
		if (avx512)
			qdb_rq_lut_scores_avx512(yd, X, code, book, base, cn, ud, pb, w, bound, open, sc, mask);
		else
#endif
			qdb_rq_lut_scores(yd, X, code, book, base, cn, ud, pb, w, bound, open, sc, mask);
		/*
		 * In lane order, each through qdb_topk_insert's own test.  The masks
		 * hold every lane that could go in while best[B - 1] only falls; a
		 * NaN that goes in (last) lets anything in after it, so from there
		 * every lane is tried, as rq.c's step does.
		 */
		for (j = 0; j < QDB_KSUB / 16; j++)
		{
			unsigned	m = stale ? 0xFFFFu : mask[j];

			/*
			 * Once the beam is full, only lanes below its bound now can go
			 * in: on glove's training, most of a row's first partial code's
			 * 256 lanes (all open) are not.
			 */
			if (m != 0 && !stale && len == B)
			{
#if defined(__x86_64__)
				if (avx512)
					m &= lanes_below_avx512(sc + 16 * j, best[B - 1]);
				else
#endif
					m &= lanes_below(sc + 16 * j, best[B - 1]);
			}
			while (m)
			{
				int			lane = __builtin_ctz(m);
				int			k = 16 * j + lane;

				m &= m - 1;
				qdb_topk_insert(best, ids, &len, B, sc[k], e * QDB_KSUB + k);
				if (!stale && len == B && isnan(best[B - 1]))
				{
					stale = 1;
					m = 0xFFFFu & ~((2u << lane) - 1);
				}
			}
		}
	}
	qdb_rq_beam_keep(bs, row, M, book, best, ids, len, ud, s->ncodes, s->nerr, s->npar);
}

void
qdb_rq_book_tables(const float *books, int D, int book, float *X)
{
	const float *cb = books + (size_t) book * QDB_KSUB * D;

	for (int t = 0; t < book; t++)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, QDB_KSUB, QDB_KSUB, D,
					1.0f, books + (size_t) t * QDB_KSUB * D, D, cb, D, 0.0f,
					X + (size_t) t * QDB_KSUB * QDB_KSUB, QDB_KSUB);
}

/* One step over every block of rows, on the trainer's threads. */
typedef struct LutRun
{
	const float *cb;			/* book `book` (256 x D) */
	const float *cn;			/* its squared norms */
	const float *y;
	const float *X;				/* the tables, shared */
	QdbRqBeams *bs;
	LutScratch *ws;				/* one per worker */
	size_t		n;
	int			D,
				M,
				book;
	int			avx512;			/* qdb_rq_lut_scores_avx512 */
	const QdbProgressCtx *p;
	const char *stage;
	int			status;
} LutRun;

static void
lut_block(void *arg, int task, int worker)
{
	LutRun	   *r = arg;
	LutScratch *s = &r->ws[worker];
	size_t		i0 = (size_t) task * QDB_RQ_BLOCK_ROWS;
	size_t		b = r->n - i0 < QDB_RQ_BLOCK_ROWS ? r->n - i0 : QDB_RQ_BLOCK_ROWS;
	size_t		i;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) b, QDB_KSUB, r->D,
				1.0f, r->y + i0 * r->D, r->D, r->cb, r->D, 0.0f, s->ydots, QDB_KSUB);
	if (r->bs->U)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) b, QDB_KSUB, r->D,
					1.0f, r->bs->U + i0 * r->D, r->D, r->cb, r->D, 0.0f, s->udots, QDB_KSUB);
	for (i = 0; i < b; i++)
		lut_row(r->X, r->cn, r->M, r->book, i0 + i, s->ydots + i * QDB_KSUB,
				r->bs->U ? s->udots + i * QDB_KSUB : NULL, r->bs, s, r->avx512);
}

/* In the calling thread: the heartbeat (a cancel stops the run). */
static int
lut_done(void *arg, int task)
{
	LutRun	   *r = arg;

	if ((task == QDB_TASK_POLL || task % 16 == 15) && r->status == QDB_OK)
		r->status = qdb_progress_heartbeat(r->p, r->stage);
	return r->status != QDB_OK;
}

int
qdb_rq_lut_step(const QdbAlloc *a, const float *books, const float *cnorm,
				int D, int M, int book, const float *y, size_t n,
				QdbRqBeams *bs, const float *tables, const QdbProgressCtx *p,
				const char *stage)
{
	LutRun		r = {0};
	size_t		rows = n < QDB_RQ_BLOCK_ROWS ? n : QDB_RQ_BLOCK_ROWS;
	int			ntasks = (int) ((n + QDB_RQ_BLOCK_ROWS - 1) / QDB_RQ_BLOCK_ROWS);
	int			nworkers = qdb_thread_count();
	float	   *X = NULL;
	int		   *order = NULL;
	QdbWorker  *workers = NULL;
	int			w,
				status = QDB_OK;

	if (bs->B > QDB_RQ_BEAM_MAX)
		return QDB_ERR_ARG;
	if (n == 0)
		return QDB_OK;
	nworkers = nworkers < ntasks ? nworkers : ntasks;
	nworkers = nworkers > 0 ? nworkers : 1;
	r.cb = books + (size_t) book * QDB_KSUB * D;
	r.cn = cnorm + (size_t) book * QDB_KSUB;
	r.y = y;
	r.bs = bs;
	r.n = n;
	r.D = D;
	r.M = M;
	r.book = book;
	r.p = p;
	r.stage = stage;
	qdb_distance_init();
	r.avx512 = strcmp(qdb_kernels.name, "avx512") == 0 && !qdb_rq_lut_portable;
	r.ws = qdb_calloc(a, nworkers, sizeof(LutScratch));
	order = qdb_malloc(a, ntasks, sizeof(int));
	workers = qdb_malloc(a, nworkers, sizeof(QdbWorker));
	if (book > 0 && tables == NULL)
		X = qdb_malloc(a, (size_t) book * QDB_KSUB * QDB_KSUB, sizeof(float));
	if (!r.ws || !order || !workers || (book > 0 && tables == NULL && !X))
		status = QDB_ERR_NOMEM;
	for (w = 0; w < nworkers && status == QDB_OK; w++)
		status = lut_alloc(a, &r.ws[w], rows, bs->B, M, bs->U != NULL);
	/* X_t = C_t C_book^T for every earlier book t, unless given */
	if (X != NULL && status == QDB_OK)
		qdb_rq_book_tables(books, D, book, X);
	if (status == QDB_OK)
	{
		r.X = tables != NULL ? tables : X;
		r.status = QDB_OK;
		qdb_run_tasks(nworkers, ntasks, lut_block, lut_done, &r, order, workers);
		status = r.status;
	}
	for (w = 0; r.ws && w < nworkers; w++)
		lut_free(a, &r.ws[w]);
	qdb_free(a, r.ws);
	qdb_free(a, order);
	qdb_free(a, workers);
	qdb_free(a, X);
	return status;
}
