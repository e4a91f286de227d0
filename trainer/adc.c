/*
 * adc.c
 *	  Asymmetric distance computation: a per-query table of distances to
 *	  every centroid, summed over a code's sub-quantizers; and the recall
 *	  of exhaustive ADC search against exact search.
 *
 * With the transform y = A (x - mean) and xhat = mean + A^T c:
 *	 L2: ||q - xhat||^2 = ||A(q - mean) - c||^2 + bias, where bias =
 *	   ||q - mean||^2 - ||A(q - mean)||^2 is exact when A has orthonormal
 *	   rows (dim_pq <= dim); without A or with padding (dim_pq > dim) it is 0.
 *	   Kind opq's error byte (opq_error.c) adds the row's squared error as
 *	   the table's last row, the same for every query.
 *	 IP: q . xhat = (A q) . c + q . mean.
 *	 cosine (kinds pq, opq and rq): the query normalised, the cosine
 *	   distance to the reconstruction, 1 - q . xhat / ||xhat||, from two
 *	   sums of lookups: q . xhat = (A q) . c + q . mean as for IP, and
 *	   ||xhat||^2 = ||mean||^2 + 2 (A mean) . c + ||c||^2, whose terms are
 *	   per sub-quantizer (pq, opq; kind rq's ||c||^2 is its norm byte's
 *	   level), exact when A has orthonormal rows and nearly so with
 *	   orthonormal columns (the codewords' share outside A's range).  The
 *	   table is then 2 x M x ksub floats: the query's terms, then the
 *	   norm's (||mean||^2 in its first row), and bias is q . mean.
 *	   Reconstructions shrink towards the mean unevenly (k-means averages
 *	   unit vectors); dividing by ||xhat|| undoes that, where the earlier
 *	   ||q - xhat||^2 / 2 favoured the short ones and 1 - q . xhat the long
 *	   ones: 10-recall@10 by exhaustive ADC on glove-100 (opq, a 25,000-row
 *	   sample) 0.5062 against 0.4600 and 0.4200.
 *	 cosine, kind neural: the same two tables in its latent space, with
 *	   f(mean) for A mean and z = f(q - mean) + f(mean), normalised, for
 *	   A q: 1 - z . (f(mean) + c) / ||f(mean) + c||, the angle about the
 *	   mean's image (at the opq start, f = A, opq's angle exactly).  The
 *	   plain latent ||z - c||^2 / 2 it scored before 2026-12-05 searched
 *	   4 points worse than opq on glove (test/bench/neural_cosine_sim.py).
 */
#include <cblas.h>
#include <math.h>

#include "qdb_distance.h"
#include "qdb_internal.h"
#include "rq.h"

#define RECALL_QUERY_BLOCK	256
#define RECALL_BASE_BLOCK	4096
#define RECALL_COSINE_BLOCK	512		/* base rows normalised at a time, under cosine */

size_t
qdb_table_floats(const QdbModel *m)
{
	if (m == NULL)
		return 0;
	return (size_t) m->M * m->ksub * (qdb_cosine_of_xhat(m) ? 2 : 1);
}

/*
 * Dims of book s that count under cosine: a pq sub-quantizer's own dsub (an
 * rq book's all of dim_pq), less, without A, the padding past dim that
 * decoding drops.
 */
static inline int
cosine_book_len(const QdbModel *m, int s)
{
	int			len;

	if (m->kind == QDB_KIND_RQ)
		return m->dim_pq;
	if (m->linear || m->kind == QDB_KIND_NEURAL)
		return m->dsub;
	len = m->dim - s * m->dsub;
	return len < 0 ? 0 : (len > m->dsub ? m->dsub : len);
}

/* A codeword's width: dsub, or all of dim_pq for an rq book */
static inline int
book_width(const QdbModel *m)
{
	return m->kind == QDB_KIND_RQ ? m->dim_pq : m->dsub;
}

/*
 * row (256 floats) of book s: each codeword's dot product with y, or its
 * squared distance to y when l2, over len dims (y at the book's own dims);
 * from the prepared model's transposed books when it has them.
 */
static void
book_row(const QdbModel *m, int s, const float *y, int len, int l2, float *row)
{
	int			w = book_width(m);
	const float *c = m->codebooks + (size_t) s * QDB_KSUB * w;
	int			k;

	if (len == 0)
		memset(row, 0, sizeof(float) * QDB_KSUB);
	else if (m->books_t)
		qdb_book_row(m->books_t + (size_t) s * QDB_KSUB * w, y, len, l2, row);
	else
		for (k = 0; k < QDB_KSUB; k++)
			row[k] = l2 ? qdb_kernels.l2sq(y, c + (size_t) k * w, len) :
				qdb_kernels.dot(y, c + (size_t) k * w, len);
}

/*
 * Under cosine, ||xhat||^2 as M x 256 lookups: row s
 * holds 2 (A mean)_s . c + ||c||^2 per codeword c of book s (rq: the norm
 * byte's level in its last row stands in for ||sum of c||^2), ||mean||^2
 * added to row 0.  It depends on the model alone, so a prepared model
 * (qdb_model_prepare) keeps it and queries copy it.  am: dim_pq floats.
 */
static void
cosine_norm_table(const QdbModel *m, float *am, float *nt)
{
	int			rq = m->kind == QDB_KIND_RQ;
	int			nbooks = rq ? qdb_rq_books(m) : m->M;
	int			w = book_width(m);
	float		mm = 0;
	int			s,
				k;

	if (m->mean)
	{
		qdb_apply_linear(m, m->mean, am);
		/* neural: |f(mean)|^2, the mean's image in its latent space */
		mm = m->kind == QDB_KIND_NEURAL ? qdb_kernels.dot(am, am, m->dim_pq) :
			qdb_kernels.dot(m->mean, m->mean, m->dim);
	}
	else
		memset(am, 0, sizeof(float) * m->dim_pq);
	for (s = 0; s < nbooks; s++)
	{
		int			off = rq ? 0 : s * m->dsub;
		int			len = cosine_book_len(m, s);

		for (k = 0; k < QDB_KSUB; k++)
		{
			const float *c = m->codebooks + ((size_t) s * QDB_KSUB + k) * w;

			nt[s * QDB_KSUB + k] = len == 0 ? 0.0f :
				2.0f * qdb_kernels.dot(am + off, c, len) +
				(rq ? 0.0f : qdb_kernels.dot(c, c, len));
		}
	}
	for (k = 0; nbooks < m->M && k < QDB_KSUB; k++)
		nt[nbooks * QDB_KSUB + k] = m->codebooks[((size_t) nbooks * QDB_KSUB + k) * w];
	for (k = 0; k < QDB_KSUB; k++)
		nt[k] += mm;
}

/*
 * Kind neural under cosine: yq = z / ||z|| with z = f(q - mean) + f(mean)
 * (q normalised; am: f(mean), the prepared model's copy or computed here,
 * or 0 without a mean) and the bias z . f(mean).
 * q is copied to take the mean off: r is dim floats of scratch past am.
 */
static void
neural_query(const QdbModel *m, const float *q, float *am, float *yq, float *bias)
{
	float	   *r = am + m->dim_pq;
	float		n;
	int			j;

	if (m->mean_image)
		memcpy(am, m->mean_image, sizeof(float) * m->dim_pq);
	else if (m->mean)
		qdb_apply_linear(m, m->mean, am);
	else
		memset(am, 0, sizeof(float) * m->dim_pq);
	for (j = 0; j < m->dim; j++)
		r[j] = q[j] - (m->mean ? m->mean[j] : 0.0f);
	qdb_apply_linear(m, r, yq);
	for (j = 0; j < m->dim_pq; j++)
		yq[j] += am[j];
	n = sqrtf(qdb_kernels.dot(yq, yq, m->dim_pq));
	if (n > 0)
		for (j = 0; j < m->dim_pq; j++)
			yq[j] /= n;
	*bias = qdb_kernels.dot(yq, am, m->dim_pq);
}

/*
 * Under cosine: q (normalised) . xhat in table's first
 * M x 256 floats (with bias), ||xhat||^2 in its second (cosine_norm_table,
 * or the prepared model's copy).  am: dim_pq floats of scratch (kind
 * neural: dim_pq + dim); yq: A q.
 */
static void
cosine_tables(const QdbModel *m, const float *q, float *am, float *yq, float *table,
			  float *bias)
{
	int			rq = m->kind == QDB_KIND_RQ;
	int			nbooks = rq ? qdb_rq_books(m) : m->M;
	float	   *nt = table + (size_t) m->M * QDB_KSUB;
	int			s,
				k;

	if (m->kind == QDB_KIND_NEURAL)
		neural_query(m, q, am, yq, bias);
	else
	{
		qdb_apply_linear(m, q, yq);
		*bias = m->mean ? qdb_kernels.dot(q, m->mean, m->dim) : 0;
	}
	/* a pq sub-quantizer sees its own dims; an rq book all of them */
	for (s = 0; s < nbooks; s++)
		book_row(m, s, yq + (rq ? 0 : s * m->dsub), cosine_book_len(m, s), 0,
				 table + s * QDB_KSUB);
	for (k = 0; nbooks < m->M && k < QDB_KSUB; k++)
		table[nbooks * QDB_KSUB + k] = 0;
	if (m->norm_table)
		memcpy(nt, m->norm_table, sizeof(float) * m->M * QDB_KSUB);
	else
		cosine_norm_table(m, am, nt);
}

int
qdb_model_prepare(QdbModel *m)
{
	int			nbooks,
				w,
				s;
	float	   *am = NULL;
	float	   *nt = NULL;
	float	   *bt;

	if (qdb_model_check(m) != QDB_OK)
		return QDB_ERR_ARG;
	if (m->books_t)
		return QDB_OK;
	qdb_distance_init();
	nbooks = m->kind == QDB_KIND_RQ ? qdb_rq_books(m) : qdb_model_books(m);
	w = book_width(m);
	bt = qdb_malloc(m->alloc, (size_t) nbooks * QDB_KSUB * w, sizeof(float));
	if (qdb_cosine_of_xhat(m))
	{
		am = qdb_malloc(m->alloc, m->dim_pq, sizeof(float));
		nt = qdb_malloc(m->alloc, (size_t) m->M * QDB_KSUB, sizeof(float));
	}
	if (!bt || (qdb_cosine_of_xhat(m) && (!am || !nt)))
	{
		qdb_free(m->alloc, bt);
		qdb_free(m->alloc, am);
		qdb_free(m->alloc, nt);
		return QDB_ERR_NOMEM;
	}
	for (s = 0; s < nbooks; s++)
		qdb_transpose_book(m->codebooks + (size_t) s * QDB_KSUB * w, w,
						   bt + (size_t) s * QDB_KSUB * w);
	if (nt)
		cosine_norm_table(m, am, nt);
	/* kind neural keeps f(mean) (cosine_norm_table's am) for its queries */
	if (am && m->kind == QDB_KIND_NEURAL && m->mean)
		m->mean_image = am;
	else
		qdb_free(m->alloc, am);
	m->books_t = bt;
	m->norm_table = nt;
	return QDB_OK;
}

/*
 * kind rq (rq.h) under ip and l2 (cosine: cosine_tables): a lookup per
 * codeword byte of <A q, c> (ip; q not centred, the mean's share in the
 * bias) or -2 <A (q - mean), c> (l2, with the norm byte's levels as the
 * last row and ||q - mean||^2 as the bias).
 */
static void
rq_table(const QdbModel *m, const float *q, float *r, float *yq, float *table,
		 float *bias)
{
	int			nbooks = qdb_rq_books(m);
	int			D = m->dim_pq;
	int			j,
				k;

	if (m->metric == QDB_METRIC_IP)
		*bias = qdb_kernels.dot(q, m->mean, m->dim);
	else
	{
		for (j = 0; j < m->dim; j++)
			r[j] = q[j] - m->mean[j];
		*bias = qdb_kernels.dot(r, r, m->dim);
		q = r;
	}
	qdb_apply_linear(m, q, yq);
	for (j = 0; j < nbooks; j++)
		book_row(m, j, yq, D, 0, table + (size_t) j * QDB_KSUB);
	if (nbooks == m->M)
		return;
	/* ||r_q - yhat||^2 */
	for (j = 0; j < nbooks * QDB_KSUB; j++)
		table[j] *= -2.0f;
	for (k = 0; k < QDB_KSUB; k++)
		table[nbooks * QDB_KSUB + k] = m->codebooks[((size_t) nbooks * QDB_KSUB + k) * D];
}

int
qdb_compute_distance_table(const QdbModel *m, const float *query,
						   float *table, float *bias)
{
	float	   *r;
	float	   *yq;
	const float *q = query;
	int			dsub,
				j,
				s;

	if (qdb_model_check(m) != QDB_OK || query == NULL || table == NULL || bias == NULL)
		return QDB_ERR_ARG;
	qdb_distance_init();
	dsub = m->dsub;
	r = qdb_malloc(m->alloc, 2 * (size_t) m->dim + 2 * (size_t) m->dim_pq, sizeof(float));
	if (!r)
		return QDB_ERR_NOMEM;
	yq = r + m->dim;

	if (m->metric == QDB_METRIC_COSINE)
	{
		if (qdb_normalize(query, m->dim, r) != QDB_OK)
		{
			qdb_free(m->alloc, r);
			return QDB_ERR_DATA;
		}
		q = r;					/* r is rewritten in place below */
	}

	if (qdb_cosine_of_xhat(m))
		cosine_tables(m, q, yq + m->dim_pq, yq, table, bias);
	else if (m->kind == QDB_KIND_RQ)
		rq_table(m, q, r, yq, table, bias);
	else if (m->metric == QDB_METRIC_IP)
	{
		qdb_apply_linear(m, q, yq);
		for (s = 0; s < m->M; s++)
			book_row(m, s, yq + (size_t) s * dsub, dsub, 0, table + s * QDB_KSUB);
		*bias = m->mean ? qdb_kernels.dot(q, m->mean, m->dim) : 0;
	}
	else
	{
		float		b;

		/* r = q - mean (l2: cosine took cosine_tables above) */
		for (j = 0; j < m->dim; j++)
			r[j] = q[j] - (m->mean ? m->mean[j] : 0.0f);
		qdb_apply_linear(m, r, yq);
		for (s = 0; s < qdb_model_books(m); s++)
			book_row(m, s, yq + (size_t) s * dsub, dsub, 1, table + s * QDB_KSUB);
		/* the error byte's levels, the same for every query (opq_error.c) */
		if (m->err_byte)
			for (j = 0; j < QDB_KSUB; j++)
				table[(size_t) s * QDB_KSUB + j] =
					m->codebooks[((size_t) s * QDB_KSUB + j) * dsub];
		if (m->linear && m->dim_pq <= m->dim)
			b = qdb_kernels.dot(r, r, m->dim) - qdb_kernels.dot(yq, yq, m->dim_pq);
		else
			b = 0;
		*bias = b;
	}
	qdb_free(m->alloc, r);
	/*
	 * Under l2, a query whose squared norm passes float's range (components
	 * past about 1e19) makes inf - inf of the expanded squares: NaN, which a
	 * sum would carry and the square root's guard turn into 0, every row
	 * nearest.  Such a query is infinitely far from every code instead (an
	 * l2 table's entries only add distance).  The dot products of ip and
	 * cosine tables keep their NaN: sum_distance makes a NaN sum far.
	 */
	if (m->metric == QDB_METRIC_L2)
	{
		for (size_t i = 0; i < qdb_table_floats(m); i++)
			if (isnan(table[i]))
				table[i] = INFINITY;
		if (isnan(*bias))
			*bias = INFINITY;
	}
	return QDB_OK;
}

static inline float
adc_sum(int M, const float *table, const uint8_t *code)
{
	float		sum = 0;
	int			s;

	for (s = 0; s < M; s++)
		sum += table[s * QDB_KSUB + code[s]];
	return sum;
}

/* 1 - dot / sqrt(nn), the cosine distance from its two sums, in [0, 2] */
static inline float
cosine_finish(float dot, float nn)
{
	float		cs;

	/* a reconstruction at the origin has no direction: orthogonal to all */
	if (!(nn > 0))
		return 1.0f;
	cs = dot / sqrtf(nn);
	/* rounding (and a norm byte's quantization) can pass +-1 */
	return 1.0f - (cs > 1.0f ? 1.0f : cs < -1.0f ? -1.0f : cs);
}

/* 1 - q . xhat / ||xhat|| from cosine_tables' two tables */
static inline float
cosine_of_xhat_distance(int M, const float *table, float bias, const uint8_t *code)
{
	const float *nt = table + (size_t) M * QDB_KSUB;
	float		dot = bias,
				nn = 0;
	int			s;

	for (s = 0; s < M; s++)
	{
		dot += table[s * QDB_KSUB + code[s]];
		nn += nt[s * QDB_KSUB + code[s]];
	}
	return cosine_finish(dot, nn);
}

/* The metric's distance from a plain table's sum (not cosine_of_xhat's) */
static inline float
sum_distance(QdbMetric metric, float sum)
{
	if (isnan(sum))				/* + and - infinities summed: no distance known */
		return INFINITY;
	switch (metric)
	{
		case QDB_METRIC_IP:
			return -sum;
		case QDB_METRIC_COSINE:
			return 1.0f - sum;
		default:
			return sqrtf(sum > 0 ? sum : 0);
	}
}

float
qdb_adc_distance(const QdbModel *m, const float *table, float bias,
				 const uint8_t *code)
{
	if (qdb_cosine_of_xhat(m))
		return cosine_of_xhat_distance(m->M, table, bias, code);
	return sum_distance(m->metric, adc_sum(m->M, table, code) + bias);
}

/*
 * qdb_adc_distance of n codes, bit for bit: out[i] for codes[i].  The
 * codes of a block go through the books side by side, so that their table
 * lookups do not wait on each other as one code's chain of additions does
 * (a walk's neighbour list at a time); each code's sums still add its
 * books in order, from the same start, so every distance is the one
 * qdb_adc_distance gives.
 */
#define ADC_BLOCK 8

void
qdb_adc_distances(const QdbModel *m, const float *table, float bias,
				  const uint8_t *const *codes, int n, float *out)
{
	const int	M = m->M;
	const float *nt = table + (size_t) M * QDB_KSUB;
	const int	cosine = qdb_cosine_of_xhat(m);
	int			b;

	for (b = 0; b < n; b += ADC_BLOCK)
	{
		const uint8_t *c[ADC_BLOCK];
		float		sum[ADC_BLOCK],
					nn[ADC_BLOCK];
		int			w = n - b < ADC_BLOCK ? n - b : ADC_BLOCK,
					j,
					s;

		/* a short last block repeats its first code in the spare lanes */
		for (j = 0; j < ADC_BLOCK; j++)
		{
			c[j] = codes[b + (j < w ? j : 0)];
			sum[j] = cosine ? bias : 0;
			nn[j] = 0;
		}
		if (cosine)
			for (s = 0; s < M; s++)
				for (j = 0; j < ADC_BLOCK; j++)
				{
					sum[j] += table[s * QDB_KSUB + c[j][s]];
					nn[j] += nt[s * QDB_KSUB + c[j][s]];
				}
		else
			for (s = 0; s < M; s++)
				for (j = 0; j < ADC_BLOCK; j++)
					sum[j] += table[s * QDB_KSUB + c[j][s]];
		for (j = 0; j < w; j++)
			out[b + j] = cosine ? cosine_finish(sum[j], nn[j])
				: sum_distance(m->metric, sum[j] + bias);
	}
}

/*
 * A max-heap of the k best (smallest) distances so far; on equal distances
 * the larger id counts as worse, so results do not depend on scan order.
 */
static inline int
heap_worse(float da, int64_t ia, float db, int64_t ib)
{
	return da > db || (da == db && ia > ib);
}

static void
heap_push(float *hd, int64_t *hi, int *size, int k, float d, int64_t id)
{
	int			i;

	if (*size == k)
	{
		if (!heap_worse(hd[0], hi[0], d, id))
			return;
		/* replace the root and sift down */
		i = 0;
		for (;;)
		{
			int			l = 2 * i + 1,
						r = l + 1,
						w = i;
			float		wd = d;
			int64_t		wi = id;

			if (l < k && heap_worse(hd[l], hi[l], wd, wi))
			{
				w = l;
				wd = hd[l];
				wi = hi[l];
			}
			if (r < k && heap_worse(hd[r], hi[r], wd, wi))
				w = r;
			if (w == i)
				break;
			hd[i] = hd[w];
			hi[i] = hi[w];
			i = w;
		}
		hd[i] = d;
		hi[i] = id;
		return;
	}
	i = (*size)++;
	while (i > 0)
	{
		int			p = (i - 1) / 2;

		if (!heap_worse(d, id, hd[p], hi[p]))
			break;
		hd[i] = hd[p];
		hi[i] = hi[p];
		i = p;
	}
	hd[i] = d;
	hi[i] = id;
}

/*
 * The metric's exact distance; q is normalised under cosine, and b is
 * normalised into scratch (d floats) first: in double, as a row of tiny or
 * huge floats needs (qdb_adc_recall checked that none is zero).
 */
static inline float
exact_distance(int metric, const float *q, const float *b, int d, float *scratch)
{
	switch (metric)
	{
		case QDB_METRIC_IP:
			return -qdb_kernels.dot(q, b, d);
		case QDB_METRIC_COSINE:
			(void) qdb_normalize(b, d, scratch);
			return 1.0f - qdb_kernels.dot(q, scratch, d);
		default:
			return qdb_kernels.l2sq(q, b, d);
	}
}

typedef struct RecallWork
{
	uint8_t    *codes;			/* (nb x M) */
	float	   *bnorm;			/* (nb): ||b||^2 for L2 */
	float	   *bbuf;			/* (RECALL_COSINE_BLOCK x dim): base rows normalised */
	float	   *qbuf;			/* (RECALL_QUERY_BLOCK x dim) prepared queries */
	float	   *qnorm;			/* (RECALL_QUERY_BLOCK) */
	float	   *dots;			/* (RECALL_QUERY_BLOCK x RECALL_BASE_BLOCK) */
	float	   *hd;				/* (RECALL_QUERY_BLOCK x k) */
	int64_t    *hi;
	int		   *hsize;			/* (RECALL_QUERY_BLOCK) */
	float	   *table;			/* (qdb_table_floats) */
	float	   *ad;				/* (k) ADC heap */
	int64_t    *ai;
} RecallWork;

/*
 * Exact k-NN of a block of prepared queries: sgemm against blocks of the
 * base, distances from the dot products, a heap per query.
 */
static void
exact_block(const QdbModel *m, RecallWork *w, const float *base, size_t nb,
			size_t qb, int k)
{
	int			d = m->dim;
	size_t		b0,
				i,
				j;

	size_t		step = m->metric == QDB_METRIC_COSINE ? RECALL_COSINE_BLOCK : RECALL_BASE_BLOCK;

	for (i = 0; i < qb; i++)
		w->hsize[i] = 0;
	for (b0 = 0; b0 < nb; b0 += step)
	{
		size_t		bb = nb - b0 < step ? nb - b0 : step;
		const float *rows = base + b0 * d;

		/* under cosine, unit rows: 1 - dot is the distance */
		if (m->metric == QDB_METRIC_COSINE)
		{
			for (j = 0; j < bb; j++)
				(void) qdb_normalize(base + (b0 + j) * d, d, w->bbuf + j * d);
			rows = w->bbuf;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) qb, (int) bb, d,
					1.0f, w->qbuf, d, rows, d, 0.0f, w->dots, (int) bb);
		for (i = 0; i < qb; i++)
		{
			const float *dr = w->dots + i * bb;
			float	   *hd = w->hd + i * k;
			int64_t    *hi = w->hi + i * k;

			for (j = 0; j < bb; j++)
			{
				float		dist;

				if (m->metric == QDB_METRIC_L2)
					dist = w->qnorm[i] + w->bnorm[b0 + j] - 2.0f * dr[j];
				else if (m->metric == QDB_METRIC_IP)
					dist = -dr[j];
				else
					dist = 1.0f - dr[j];
				heap_push(hd, hi, &w->hsize[i], k, dist, (int64_t) (b0 + j));
			}
		}
	}
}

static void
free_recall_work(const QdbAlloc *a, RecallWork *w)
{
	qdb_free(a, w->codes);
	qdb_free(a, w->bnorm);
	qdb_free(a, w->bbuf);
	qdb_free(a, w->qbuf);
	qdb_free(a, w->qnorm);
	qdb_free(a, w->dots);
	qdb_free(a, w->hd);
	qdb_free(a, w->hi);
	qdb_free(a, w->hsize);
	qdb_free(a, w->table);
	qdb_free(a, w->ad);
	qdb_free(a, w->ai);
}

/*
 * An ADC result is a hit when its exact distance is within the exact k-th
 * nearest distance: ties at the k-th place (duplicates in the base) count
 * whichever of the tied rows either search picked.  Both distances come
 * from the same kernel, so exact duplicates compare equal.
 */
int
qdb_adc_recall(const QdbModel *m, const float *base, size_t nb,
			   const float *queries, size_t nq, int k, double *recall)
{
	return qdb_adc_recall_shared(m, base, nb, queries, nq, k, NULL, NULL, recall);
}

int
qdb_adc_recall_shared(const QdbModel *m, const float *base, size_t nb,
					  const float *queries, size_t nq, int k,
					  float *kth_kept, int *known, double *recall)
{
	const int	reuse = kth_kept != NULL && known != NULL && *known;
	const QdbAlloc *a;
	RecallWork	w;
	size_t		hits = 0;
	size_t		q0,
				i,
				j;
	int			d,
				M,
				status;

	if (qdb_model_check(m) != QDB_OK || base == NULL || queries == NULL || recall == NULL ||
		k < 1 || nb == 0 || nq == 0 || (kth_kept == NULL) != (known == NULL))
		return QDB_ERR_ARG;
	qdb_distance_init();
	if ((size_t) k > nb)
		k = (int) nb;
	a = m->alloc;
	d = m->dim;
	M = m->M;
	memset(&w, 0, sizeof(w));
	w.codes = qdb_malloc(a, nb, M);
	w.bnorm = qdb_malloc(a, nb, sizeof(float));
	w.bbuf = qdb_malloc(a, (size_t) RECALL_COSINE_BLOCK * d, sizeof(float));
	w.qbuf = qdb_malloc(a, (size_t) RECALL_QUERY_BLOCK * d, sizeof(float));
	w.qnorm = qdb_malloc(a, RECALL_QUERY_BLOCK, sizeof(float));
	w.dots = qdb_malloc(a, (size_t) RECALL_QUERY_BLOCK * RECALL_BASE_BLOCK, sizeof(float));
	w.hd = qdb_malloc(a, (size_t) RECALL_QUERY_BLOCK * k, sizeof(float));
	w.hi = qdb_malloc(a, (size_t) RECALL_QUERY_BLOCK * k, sizeof(int64_t));
	w.hsize = qdb_malloc(a, RECALL_QUERY_BLOCK, sizeof(int));
	w.table = qdb_malloc(a, qdb_table_floats(m), sizeof(float));
	w.ad = qdb_malloc(a, k, sizeof(float));
	w.ai = qdb_malloc(a, k, sizeof(int64_t));
	if (!w.codes || !w.bnorm || !w.bbuf || !w.qbuf || !w.qnorm || !w.dots || !w.hd ||
		!w.hi || !w.hsize || !w.table || !w.ad || !w.ai)
	{
		status = QDB_ERR_NOMEM;
		goto done;
	}

	status = qdb_compute_codes_unkept(m, base, nb, w.codes);
	if (status != QDB_OK)
		goto done;
	for (j = 0; j < nb; j++)
	{
		/* under cosine a row must have a direction (normalised later) */
		if (m->metric == QDB_METRIC_COSINE)
		{
			if (qdb_normalize(base + j * d, d, w.bbuf) != QDB_OK)
			{
				status = QDB_ERR_DATA;
				goto done;
			}
			w.bnorm[j] = 1.0f;
		}
		else
			w.bnorm[j] = qdb_kernels.dot(base + j * d, base + j * d, d);
	}

	for (q0 = 0; q0 < nq; q0 += RECALL_QUERY_BLOCK)
	{
		size_t		qb = nq - q0 < RECALL_QUERY_BLOCK ? nq - q0 : RECALL_QUERY_BLOCK;

		/* prepared queries: normalised under cosine */
		for (i = 0; i < qb; i++)
		{
			const float *q = queries + (q0 + i) * d;
			float	   *dst = w.qbuf + i * d;

			if (m->metric == QDB_METRIC_COSINE)
			{
				if (qdb_normalize(q, d, dst) != QDB_OK)
				{
					status = QDB_ERR_DATA;
					goto done;
				}
				w.qnorm[i] = 1.0f;
			}
			else
			{
				memcpy(dst, q, sizeof(float) * d);
				w.qnorm[i] = qdb_kernels.dot(q, q, d);
			}
		}
		if (!reuse)
			exact_block(m, &w, base, nb, qb, k);

		for (i = 0; i < qb; i++)
		{
			const float *q = w.qbuf + i * d;
			float		kth = -INFINITY;
			float		tol;
			float		bias;
			int			asize = 0;
			int			t;

			/* the exact k-th distance, recomputed directly (or kept) */
			if (reuse)
				kth = kth_kept[q0 + i];
			else
			{
				for (t = 0; t < w.hsize[i]; t++)
				{
					int64_t		id = w.hi[i * k + t];
					float		ed = exact_distance(m->metric, q, base + id * d, d, w.bbuf);

					if (ed > kth)
						kth = ed;
				}
				if (kth_kept)
					kth_kept[q0 + i] = kth;
			}
			tol = 1e-6f * fabsf(kth);

			status = qdb_compute_distance_table(m, queries + (q0 + i) * d,
												w.table, &bias);
			if (status != QDB_OK)
				goto done;
			for (j = 0; j < nb; j++)
			{
				const uint8_t *code = w.codes + j * M;
				float		s;

				/* the angle needs both sums (and bias) */
				if (qdb_cosine_of_xhat(m))
					s = cosine_of_xhat_distance(M, w.table, bias, code);
				else
				{
					/* distance rises with L2's sum, falls with IP's; bias is constant */
					s = adc_sum(M, w.table, code);
					s = m->metric == QDB_METRIC_L2 ? s : -s;
				}
				heap_push(w.ad, w.ai, &asize, k, s, (int64_t) j);
			}
			for (t = 0; t < asize; t++)
			{
				int64_t		id = w.ai[t];

				if (exact_distance(m->metric, q, base + id * d, d, w.bbuf) <= kth + tol)
					hits++;
			}
		}
	}
	*recall = (double) hits / ((double) nq * k);
	if (known)
		*known = 1;

done:
	free_recall_work(a, &w);
	return status;
}
