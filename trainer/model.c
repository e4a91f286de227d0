/*
 * model.c
 *	  The trained compressor: allocation, settings, and the transform,
 *	  encoding and decoding every backend shares.
 *
 * Encoding: x -> (cosine: x/|x|) -> y = A (x - mean) -> nearest centroid
 * of each sub-vector.  All of it runs on blocks of rows so that the linear
 * map is one sgemm per block and scratch memory stays bounded.
 */
#include <cblas.h>
#include <math.h>

#include "neural.h"
#include "pq.h"
#include "qdb_distance.h"
#include "qdb_internal.h"
#include "rq.h"
#include "rq_beam.h"

#define MODEL_BLOCK_ROWS	4096	/* rows per transform block */
#define ENCODE_BLOCK_FLOATS	(8 << 20)	/* scratch bound when encoding */
#define DECODE_BLOCK_ROWS	4096
#define TRANSFORM_DIRECT_ROWS	2	/* up to this many rows: no sgemm (as pq.c) */

void
qdb_train_config_init(QdbTrainConfig *c)
{
	memset(c, 0, sizeof(*c));
	c->kind = QDB_KIND_OPQ;
	c->metric = QDB_METRIC_L2;
	c->dim = 0;					/* the caller's */
	c->M = 16;
	c->dim_pq = 0;
	c->kmeans_iters = 25;
	c->opq_iters = 50;				/* as Faiss: 20 lose 0.02 recall on fashion-mnist */
	c->opq_pq_iters = 4;
	c->max_points_per_centroid = 256;
	c->seed = 42;
	c->epochs = 10;
	c->batch_size = 256;
	c->lr = 1e-4f;
	c->clip = 1.0f;
	c->hidden = 0;
	c->k_neighbors = 10;
	c->patience = 3;
	c->neural_rows = 20000;
	c->w_recon = 0.3f;
	c->w_cluster = 0.2f;
	c->w_diversity = 0.1f;
	c->w_commit = 0.1f;
	c->w_triplet = 0.3f;
	c->rq_beam = QDB_RQ_BEAM;
	c->rq_refits = QDB_RQ_REFITS;
	c->rq_eta = 1.0f;
	c->opq_error = QDB_OPQ_ERROR_AUTO;
}

int
qdb_train_config_check(const QdbTrainConfig *c)
{
	int			padded,
				books;

	if (c == NULL)
		return QDB_ERR_ARG;
	if (c->kind < QDB_KIND_PQ || c->kind > QDB_KIND_LAST)
		return QDB_ERR_ARG;
	/* rq under l2 and cosine spends one byte on the norm: one more for codewords */
	if (c->kind == QDB_KIND_RQ && c->metric != QDB_METRIC_IP && c->M < 2)
		return QDB_ERR_ARG;
	if (c->metric != QDB_METRIC_L2 && c->metric != QDB_METRIC_IP &&
		c->metric != QDB_METRIC_COSINE)
		return QDB_ERR_ARG;
	if (c->dim < 1 || c->dim > QDB_MAX_DIM)
		return QDB_ERR_ARG;
	if (c->M < 1 || c->M > QDB_MAX_SUBQUANTIZERS)
		return QDB_ERR_ARG;
	if (c->opq_error < QDB_OPQ_ERROR_AUTO || c->opq_error > 1)
		return QDB_ERR_ARG;
	/* dim_pq (0: the default): a multiple of the sub-quantizers, up to dim padded */
	books = qdb_config_books(c);
	padded = qdb_padded_dim(c->dim, books);
	if (c->dim_pq != 0 &&
		(c->dim_pq < books || c->dim_pq > padded ||
		 c->dim_pq % books != 0))
		return QDB_ERR_ARG;
	if (c->kmeans_iters < 1 || c->kmeans_iters > 1000)
		return QDB_ERR_ARG;
	if (c->opq_iters < 0 || c->opq_iters > 1000)
		return QDB_ERR_ARG;
	if (c->opq_pq_iters < 1 || c->opq_pq_iters > 1000)
		return QDB_ERR_ARG;
	if (c->max_points_per_centroid < 1 || c->max_points_per_centroid > 65536)
		return QDB_ERR_ARG;
	/* rq's beam and score weight; the weight has no direction to use under l2 */
	/* (0 in either: the default, as in a model read from before the settings) */
	if (c->rq_beam < 0 || c->rq_beam > QDB_RQ_BEAM_MAX ||
		!(c->rq_eta == 0.0f || (c->rq_eta >= 1.0f && c->rq_eta <= QDB_RQ_ETA_MAX)) ||
		(c->rq_eta > 1.0f && (c->kind != QDB_KIND_RQ || c->metric == QDB_METRIC_L2)) ||
		(c->rq_beam > 0 && c->rq_beam != QDB_RQ_BEAM && c->kind != QDB_KIND_RQ) ||
		c->rq_refits < 0 || c->rq_refits > QDB_RQ_REFITS_MAX)
		return QDB_ERR_ARG;
	if (c->kind != QDB_KIND_NEURAL)
		return QDB_OK;
	/* the encoder's space has no inner products to preserve */
	if (c->metric == QDB_METRIC_IP)
		return QDB_ERR_ARG;
	if (c->epochs < 0 || c->epochs > 10000 || c->batch_size < 1 ||
		c->batch_size > 65536 || !(c->lr > 0.0f && c->lr <= 1.0f) ||
		!(c->clip >= 0.0f) || c->hidden < 0 || c->hidden > QDB_MAX_HIDDEN ||
		c->k_neighbors < 1 || c->k_neighbors > 1000 || c->patience < 1 ||
		c->patience > 10000 || c->neural_rows < 2 * QDB_KSUB)
		return QDB_ERR_ARG;
	if (!(c->w_recon >= 0.0f) || !(c->w_cluster >= 0.0f) ||
		!(c->w_diversity >= 0.0f) || !(c->w_commit >= 0.0f) ||
		!(c->w_triplet >= 0.0f) || !isfinite(c->w_recon + c->w_cluster +
											c->w_diversity + c->w_commit + c->w_triplet))
		return QDB_ERR_ARG;
	return QDB_OK;
}

int
qdb_model_alloc(QdbModel *m, const QdbAlloc *a, QdbKind kind, QdbMetric metric,
				int dim, int dim_pq, int M, int with_mean, int with_linear)
{
	return qdb_model_alloc_coded(m, a, kind, metric, dim, dim_pq, M, 0, with_mean,
								 with_linear);
}

int
qdb_model_alloc_coded(QdbModel *m, const QdbAlloc *a, QdbKind kind, QdbMetric metric,
					  int dim, int dim_pq, int M, int err_byte, int with_mean,
					  int with_linear)
{
	int			books = M - err_byte;

	if (m == NULL)
		return QDB_ERR_ARG;
	memset(m, 0, sizeof(*m));
	m->opq_alternations = -1;
	if (err_byte != 0 &&
		(err_byte != 1 || kind != QDB_KIND_OPQ || metric != QDB_METRIC_L2 || M < 2 ||
		 !with_mean || !with_linear))
		return QDB_ERR_ARG;
	if (dim < 1 || dim > QDB_MAX_DIM || M < 1 || M > QDB_MAX_SUBQUANTIZERS ||
		dim_pq < books || dim_pq % books != 0 ||
		dim_pq > qdb_padded_dim(dim, books))
		return QDB_ERR_ARG;
	/* without a linear map (or an encoder), dims are only padded, never dropped */
	if (!with_linear && dim_pq < dim && kind != QDB_KIND_NEURAL)
		return QDB_ERR_ARG;

	m->kind = kind;
	m->metric = metric;
	m->dim = dim;
	m->dim_pq = dim_pq;
	m->M = M;
	m->ksub = QDB_KSUB;
	/* rq's codewords span all of dim_pq (rq.h) */
	m->dsub = kind == QDB_KIND_RQ ? dim_pq : dim_pq / books;
	m->err_byte = err_byte;
	m->alloc = a;
	qdb_train_config_init(&m->config);
	m->config.kind = kind;
	m->config.metric = metric;
	m->config.dim = dim;
	m->config.M = M;
	m->config.dim_pq = dim_pq;
	m->config.opq_error = err_byte;

	m->codebooks = qdb_calloc(a, (size_t) QDB_KSUB * M * m->dsub, sizeof(float));
	if (with_mean)
		m->mean = qdb_calloc(a, dim, sizeof(float));
	if (with_linear)
		m->linear = qdb_calloc(a, (size_t) dim_pq * dim, sizeof(float));
	if (!m->codebooks || (with_mean && !m->mean) || (with_linear && !m->linear))
	{
		qdb_model_free(m);
		return QDB_ERR_NOMEM;
	}
	return QDB_OK;
}

void
qdb_model_free(QdbModel *m)
{
	if (m == NULL)
		return;
	qdb_free(m->alloc, m->codebooks);
	qdb_free(m->alloc, m->mean);
	qdb_free(m->alloc, m->linear);
	qdb_free(m->alloc, m->enc_w1);
	qdb_free(m->alloc, m->enc_b1);
	qdb_free(m->alloc, m->enc_w2);
	qdb_free(m->alloc, m->enc_b2);
	qdb_free(m->alloc, m->dec_w);
	qdb_free(m->alloc, m->dec_b);
	qdb_free(m->alloc, m->books_t);
	qdb_free(m->alloc, m->norm_table);
	qdb_free(m->alloc, m->mean_image);
	memset(m, 0, sizeof(*m));
}

size_t
qdb_code_size(const QdbModel *m)
{
	return m ? (size_t) m->M : 0;
}

/*
 * Is the model's shape consistent?  (It may come from a parsed file.)  The
 * one rule that encoding, decoding, ADC and pair tables all apply.
 */
int
qdb_model_check(const QdbModel *m)
{
	if (m == NULL || m->codebooks == NULL)
		return QDB_ERR_ARG;
	if (m->dim < 1 || m->dim > QDB_MAX_DIM || m->M < 1 ||
		m->M > QDB_MAX_SUBQUANTIZERS || m->ksub != QDB_KSUB || m->dsub < 1)
		return QDB_ERR_ARG;
	/* an error byte: opq under l2, with its mean and map (opq_error.c) */
	if (m->err_byte != 0 &&
		(m->err_byte != 1 || m->kind != QDB_KIND_OPQ || m->metric != QDB_METRIC_L2 ||
		 m->M < 2 || m->mean == NULL || m->linear == NULL))
		return QDB_ERR_ARG;
	if (m->kind == QDB_KIND_RQ ? m->dsub != m->dim_pq || m->mean == NULL ||
		(m->metric != QDB_METRIC_IP && m->M < 2) :
		(size_t) qdb_model_books(m) * m->dsub != (size_t) m->dim_pq)
		return QDB_ERR_ARG;
	if (m->kind == QDB_KIND_NEURAL)
	{
		if (!m->enc_w1 || !m->enc_b1 || !m->enc_w2 || !m->enc_b2 || !m->dec_w ||
			!m->dec_b || m->hidden < 1 || m->hidden > QDB_MAX_HIDDEN ||
			m->metric == QDB_METRIC_IP)
			return QDB_ERR_ARG;
	}
	else if (m->linear == NULL && m->dim_pq < m->dim)
		return QDB_ERR_ARG;
	if (m->metric != QDB_METRIC_L2 && m->metric != QDB_METRIC_IP &&
		m->metric != QDB_METRIC_COSINE)
		return QDB_ERR_ARG;
	return QDB_OK;
}

/*
 * Transform of a block of b rows; buf holds b x dim floats when
 * the rows must be normalised or centred first.
 */
/*
 * y (dim_pq) = A v for one vector, or v padded with zeros: one dot product
 * per row of A.  For a single query BLAS costs more than the arithmetic
 * (sgemv woke OpenBLAS's threads for each index scan).
 */
void
qdb_apply_linear(const QdbModel *m, const float *v, float *y)
{
	int			j;

	if (m->kind == QDB_KIND_NEURAL)
		qdb_neural_encode_one(m, v, y);
	else if (m->linear)
	{
		for (j = 0; j < m->dim_pq; j++)
			y[j] = qdb_kernels.dot(m->linear + (size_t) j * m->dim, v, m->dim);
	}
	else
	{
		memcpy(y, v, sizeof(float) * m->dim);
		memset(y + m->dim, 0, sizeof(float) * (m->dim_pq - m->dim));
	}
}

static int
transform_block(const QdbModel *m, const float *x, size_t b, float *buf, float *y)
{
	int			d = m->dim;
	int			dp = m->dim_pq;
	const float *src = x;
	size_t		i;
	int			j;

	if (m->metric == QDB_METRIC_COSINE || m->mean)
	{
		for (i = 0; i < b; i++)
		{
			const float *xr = x + i * d;
			float	   *br = buf + i * d;

			if (m->metric == QDB_METRIC_COSINE)
			{
				if (qdb_normalize(xr, d, br) != QDB_OK)
					return QDB_ERR_DATA;
				xr = br;
			}
			for (j = 0; j < d; j++)
				br[j] = xr[j] - (m->mean ? m->mean[j] : 0.0f);
		}
		src = buf;
	}
	if (m->kind == QDB_KIND_NEURAL && b > TRANSFORM_DIRECT_ROWS)
		return qdb_neural_encode_rows(m, src, b, y);
	if ((m->linear || m->kind == QDB_KIND_NEURAL) && b <= TRANSFORM_DIRECT_ROWS)
	{
		/* an index insert: sgemm would pack all of A for one row */
		for (i = 0; i < b; i++)
			qdb_apply_linear(m, src + i * d, y + i * dp);
	}
	else if (m->linear)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) b, dp, d,
					1.0f, src, d, m->linear, d, 0.0f, y, dp);
	else
	{
		for (i = 0; i < b; i++)
		{
			memcpy(y + i * dp, src + i * d, sizeof(float) * d);
			memset(y + i * dp + d, 0, sizeof(float) * (dp - d));
		}
	}
	return QDB_OK;
}

int
qdb_model_transform(const QdbModel *m, const float *x, size_t n, float *y)
{
	float	   *buf;
	size_t		i0;
	int			status = QDB_OK;

	if ((status = qdb_model_check(m)) != QDB_OK || x == NULL || y == NULL)
		return status ? status : QDB_ERR_ARG;
	buf = qdb_malloc(m->alloc, (size_t) MODEL_BLOCK_ROWS * m->dim, sizeof(float));
	if (!buf)
		return QDB_ERR_NOMEM;
	for (i0 = 0; i0 < n && status == QDB_OK; i0 += MODEL_BLOCK_ROWS)
	{
		size_t		b = n - i0 < MODEL_BLOCK_ROWS ? n - i0 : MODEL_BLOCK_ROWS;

		status = transform_block(m, x + i0 * m->dim, b, buf, y + i0 * m->dim_pq);
	}
	qdb_free(m->alloc, buf);
	return status;
}

int
qdb_compute_codes_by(const QdbModel *m, const float *x, size_t n, uint8_t *codes, int lut,
					 const float *tables)
{
	float	   *buf;
	float	   *y;
	size_t		i0;
	size_t		rows;
	int			status;

	if ((status = qdb_model_check(m)) != QDB_OK || x == NULL || codes == NULL)
		return status ? status : QDB_ERR_ARG;
	/* big blocks, so that every encoding thread gets rows */
	rows = ENCODE_BLOCK_FLOATS / ((size_t) m->dim + m->dim_pq +
								  (m->kind == QDB_KIND_RQ ? qdb_rq_row_floats(m) : 0));
	rows = rows < MODEL_BLOCK_ROWS ? MODEL_BLOCK_ROWS : rows;
	rows = n < rows ? n : rows;
	if (rows == 0)
		return QDB_OK;
	buf = qdb_malloc(m->alloc, rows * m->dim, sizeof(float));
	y = qdb_malloc(m->alloc, rows * m->dim_pq, sizeof(float));
	if (!buf || !y)
		status = QDB_ERR_NOMEM;
	for (i0 = 0; i0 < n && status == QDB_OK; i0 += rows)
	{
		size_t		b = n - i0 < rows ? n - i0 : rows;

		status = transform_block(m, x + i0 * m->dim, b, buf, y);
		if (status == QDB_OK && m->kind == QDB_KIND_RQ)
			status = qdb_rq_encode_by(m, y, b, codes + i0 * m->M, lut, tables);
		else if (status == QDB_OK && m->err_byte)
			status = qdb_opq_error_encode(m, m->mean ? buf : x + i0 * m->dim, y, b,
										  codes + i0 * m->M);
		else if (status == QDB_OK)
			status = qdb_pq_encode(m->alloc, m->codebooks, m->dim_pq, m->M, y, b,
								   codes + i0 * m->M, NULL);
	}
	qdb_free(m->alloc, y);
	qdb_free(m->alloc, buf);
	return status;
}

int
qdb_compute_codes(const QdbModel *m, const float *x, size_t n, uint8_t *codes)
{
	return qdb_compute_codes_by(m, x, n, codes, 0, NULL);
}

int
qdb_compute_codes_unkept(const QdbModel *m, const float *x, size_t n, uint8_t *codes)
{
	return qdb_compute_codes_by(m, x, n, codes, 1, NULL);
}

int
qdb_decode(const QdbModel *m, const uint8_t *codes, size_t n, float *x)
{
	float	   *y;
	size_t		i0,
				i;
	int			d,
				j;
	int			status;

	if ((status = qdb_model_check(m)) != QDB_OK || codes == NULL || x == NULL)
		return status ? status : QDB_ERR_ARG;
	d = m->dim;
	y = qdb_malloc(m->alloc, (size_t) DECODE_BLOCK_ROWS * m->dim_pq, sizeof(float));
	if (!y)
		return QDB_ERR_NOMEM;
	for (i0 = 0; i0 < n; i0 += DECODE_BLOCK_ROWS)
	{
		size_t		b = n - i0 < DECODE_BLOCK_ROWS ? n - i0 : DECODE_BLOCK_ROWS;
		float	   *xb = x + i0 * d;

		if (m->kind == QDB_KIND_RQ)
			qdb_rq_decode(m, codes + i0 * m->M, b, y);
		else if (m->err_byte)
			for (i = 0; i < b; i++)
				qdb_pq_decode(m->codebooks, m->dim_pq, m->M - 1,
							  codes + (i0 + i) * m->M, 1, y + i * m->dim_pq);
		else
			qdb_pq_decode(m->codebooks, m->dim_pq, m->M, codes + i0 * m->M, b, y);
		if (m->kind == QDB_KIND_NEURAL)
		{
			qdb_neural_decode_rows(m, y, b, xb);
			continue;
		}
		if (m->linear)
			/* x = A^T y, row by row: X = Y A */
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) b, d,
						m->dim_pq, 1.0f, y, m->dim_pq, m->linear, d, 0.0f, xb, d);
		else
			for (i = 0; i < b; i++)
				memcpy(xb + i * d, y + i * m->dim_pq, sizeof(float) * d);
		if (m->mean)
			for (i = 0; i < b; i++)
				for (j = 0; j < d; j++)
					xb[i * d + j] += m->mean[j];
	}
	qdb_free(m->alloc, y);
	return QDB_OK;
}
