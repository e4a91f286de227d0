/*
 * neural_model.c
 *	  The neural kind's parameters inside a QdbModel: allocation, the flat
 *	  parameter vector the training step works on, and the encoder's
 *	  forward pass that encoding and ADC use (neural.h has the model).
 */
#include <cblas.h>

#include "neural.h"
#include "nn.h"
#include "qdb_distance.h"
#include "qdb_internal.h"

#define NEURAL_BLOCK_ROWS	1024	/* rows per encoder block: bounds the hidden scratch */

int
qdb_model_alloc_neural(QdbModel *m, const QdbAlloc *a, QdbMetric metric,
					   int dim, int dim_pq, int M, int hidden)
{
	int			rc;

	if (hidden < 1 || hidden > QDB_MAX_HIDDEN || metric == QDB_METRIC_IP)
		return QDB_ERR_ARG;
	rc = qdb_model_alloc(m, a, QDB_KIND_NEURAL, metric, dim, dim_pq, M, 1, 0);
	if (rc != QDB_OK)
		return rc;
	m->hidden = hidden;
	m->config.hidden = hidden;
	m->enc_w1 = qdb_calloc(a, (size_t) hidden * dim, sizeof(float));
	m->enc_b1 = qdb_calloc(a, hidden, sizeof(float));
	m->enc_w2 = qdb_calloc(a, (size_t) dim_pq * hidden, sizeof(float));
	m->enc_b2 = qdb_calloc(a, dim_pq, sizeof(float));
	m->dec_w = qdb_calloc(a, (size_t) dim * dim_pq, sizeof(float));
	m->dec_b = qdb_calloc(a, dim, sizeof(float));
	if (!m->enc_w1 || !m->enc_b1 || !m->enc_w2 || !m->enc_b2 || !m->dec_w || !m->dec_b)
	{
		qdb_model_free(m);
		return QDB_ERR_NOMEM;
	}
	return QDB_OK;
}

void
qdb_neural_shape_of(const QdbModel *m, QdbNeuralShape *s)
{
	s->dim = m->dim;
	s->hidden = m->hidden;
	s->dim_pq = m->dim_pq;
	s->M = m->M;
	s->K = QDB_KSUB;
	s->dsub = m->dsub;
}

/* The model's tensors, in layout order, paired with their lengths. */
static void
model_tensors(const QdbModel *m, float **t, size_t *len)
{
	QdbNeuralShape s;
	QdbNeuralLayout l;

	qdb_neural_shape_of(m, &s);
	qdb_neural_layout(&s, &l);
	t[0] = m->enc_w1, len[0] = l.b1 - l.w1;
	t[1] = m->enc_b1, len[1] = l.w2 - l.b1;
	t[2] = m->enc_w2, len[2] = l.b2 - l.w2;
	t[3] = m->enc_b2, len[3] = l.codebooks - l.b2;
	t[4] = m->codebooks, len[4] = l.dec_w - l.codebooks;
	t[5] = m->dec_w, len[5] = l.dec_b - l.dec_w;
	t[6] = m->dec_b, len[6] = l.total - l.dec_b;
}

void
qdb_neural_pack(const QdbModel *m, float *params)
{
	float	   *t[7];
	size_t		len[7];

	model_tensors(m, t, len);
	for (int i = 0; i < 7; i++)
	{
		memcpy(params, t[i], sizeof(float) * len[i]);
		params += len[i];
	}
}

void
qdb_neural_unpack(QdbModel *m, const float *params)
{
	float	   *t[7];
	size_t		len[7];

	model_tensors(m, t, len);
	for (int i = 0; i < 7; i++)
	{
		memcpy(t[i], params, sizeof(float) * len[i]);
		params += len[i];
	}
}

/* y (dim_pq) = encoder of one centred row v, without BLAS (see qdb_apply_linear) */
void
qdb_neural_encode_one(const QdbModel *m, const float *v, float *y)
{
	float		h[QDB_MAX_HIDDEN];
	int			j;

	for (j = 0; j < m->hidden; j++)
	{
		float		a = qdb_kernels.dot(m->enc_w1 + (size_t) j * m->dim, v, m->dim) +
			m->enc_b1[j];

		h[j] = a > 0.0f ? a : 0.0f;
	}
	for (j = 0; j < m->dim_pq; j++)
		y[j] = qdb_kernels.dot(m->enc_w2 + (size_t) j * m->hidden, h, m->hidden) +
			m->enc_b2[j];
}

/* y (n, dim_pq) = encoder of n centred rows */
int
qdb_neural_encode_rows(const QdbModel *m, const float *x, size_t n, float *y)
{
	float	   *h;
	size_t		i0;

	h = qdb_malloc(m->alloc, (size_t) NEURAL_BLOCK_ROWS * m->hidden, sizeof(float));
	if (!h)
		return QDB_ERR_NOMEM;
	for (i0 = 0; i0 < n; i0 += NEURAL_BLOCK_ROWS)
	{
		int			b = (int) (n - i0 < NEURAL_BLOCK_ROWS ? n - i0 : NEURAL_BLOCK_ROWS);

		qdb_nn_linear_forward(h, x + i0 * m->dim, m->enc_w1, m->enc_b1, b, m->dim,
							  m->hidden);
		qdb_nn_relu_forward(h, h, (size_t) b * m->hidden);
		qdb_nn_linear_forward(y + i0 * m->dim_pq, h, m->enc_w2, m->enc_b2, b,
							  m->hidden, m->dim_pq);
	}
	qdb_free(m->alloc, h);
	return QDB_OK;
}

/* x (n, dim) = mean + decoder of the centroids y (n, dim_pq) */
void
qdb_neural_decode_rows(const QdbModel *m, const float *y, size_t n, float *x)
{
	qdb_nn_linear_forward(x, y, m->dec_w, m->dec_b, (int) n, m->dim_pq, m->dim);
	if (m->mean)
		for (size_t i = 0; i < n; i++)
			for (int j = 0; j < m->dim; j++)
				x[i * m->dim + j] += m->mean[j];
}
