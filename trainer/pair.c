/*
 * pair.c
 *	  Symmetric distances between two codes, for linking the nodes of an
 *	  index graph that keeps only codes: a table of centroid-pair terms per
 *	  sub-quantizer, looked up once per sub-quantizer.
 *
 * With xhat = mean + A^T c and c the concatenated centroids of a code:
 *	 L2: xhat_a - xhat_b = A^T (c_a - c_b), so ||xhat_a - xhat_b||^2 =
 *	   sum_s ||c_a,s - c_b,s||^2 when A A^T = I (orthonormal rows) or A is
 *	   NULL, where the padded dims (beyond dim) are left out of the sums.
 *	 IP: xhat_a . xhat_b = c_a . c_b + (A mean) . c_a + (A mean) . c_b +
 *	   |mean|^2; the middle terms are per-code biases.
 *	 cosine (every kind; neural in its latent space, f(mean) for A mean,
 *	   as in adc.c): 1 - xhat_a . xhat_b / (|xhat_a| |xhat_b|),
 *	   as qdb_adc_distance's cosine (the angle to the decoded vector), the
 *	   dot product as for IP and |xhat_a|^2 = xhat_a . xhat_a from the
 *	   same tables (the pair terms' diagonal).  An index build and an
 *	   insert compare these with ADC distances, so the two share units.
 *	 Kind opq's error byte (opq_error.c) adds both rows' squared errors,
 *	   an estimate of ||x_a - x_b||^2 in the units of ADC's.
 * Each pair term is computed once and mirrored, so d(a, b) == d(b, a)
 * exactly, and the diagonal of the L2 terms is zero (but for an error
 * byte's).
 */
#include <math.h>

#include "qdb_distance.h"
#include "qdb_internal.h"
#include "rq.h"

/* 1 - ab / sqrt(aa bb), clamped to [0, 2]; 1 for a reconstruction at 0 */
static inline float
angle_distance(double ab, double aa, double bb)
{
	double		c;

	if (!(aa > 0) || !(bb > 0))
		return 1.0f;
	c = ab / sqrt(aa * bb);
	return (float) (1.0 - (c > 1 ? 1 : c < -1 ? -1 : c));
}

size_t
qdb_pair_table_floats(const QdbModel *m)
{
	if (!m || m->M < 1)
		return 0;
	if (m->kind == QDB_KIND_RQ)
		return (size_t) m->dim_pq + 1;	/* A mean and |mean|^2 */
	return (size_t) m->M * QDB_KSUB * QDB_KSUB + (size_t) m->M * QDB_KSUB + 1;
}

int
qdb_compute_pair_table(const QdbModel *m, float *table)
{
	float	   *pair = table;	/* (M, ksub, ksub) */
	float	   *bias;			/* (M, ksub) */
	float	   *amean = NULL;	/* (dim_pq): A mean, or the mean padded */
	int			dsub,
				s,
				i,
				j;

	if (qdb_model_check(m) != QDB_OK || table == NULL)
		return QDB_ERR_ARG;
	qdb_distance_init();
	if (m->kind == QDB_KIND_RQ)
	{
		qdb_apply_linear(m, m->mean, table);
		table[m->dim_pq] = qdb_kernels.dot(m->mean, m->mean, m->dim);
		return QDB_OK;
	}
	dsub = m->dsub;
	bias = table + (size_t) m->M * QDB_KSUB * QDB_KSUB;

	for (s = 0; s < m->M; s++)
	{
		const float *cb = m->codebooks + (size_t) s * QDB_KSUB * dsub;
		float	   *ps = pair + (size_t) s * QDB_KSUB * QDB_KSUB;
		int			len = dsub;

		/* without A, dims past dim are padding that decoding drops */
		if (!m->linear && m->kind != QDB_KIND_NEURAL)
		{
			len = m->dim - s * dsub;
			len = len < 0 ? 0 : (len > dsub ? dsub : len);
		}
		/* the error byte: both rows' squared errors (opq_error.c) */
		if (s >= qdb_model_books(m))
		{
			for (i = 0; i < QDB_KSUB; i++)
				for (j = 0; j < QDB_KSUB; j++)
					ps[i * QDB_KSUB + j] = cb[(size_t) i * dsub] + cb[(size_t) j * dsub];
			continue;
		}
		for (i = 0; i < QDB_KSUB; i++)
		{
			const float *ci = cb + (size_t) i * dsub;

			for (j = i; j < QDB_KSUB; j++)
			{
				const float *cj = cb + (size_t) j * dsub;
				float		v;

				if (len == 0)
					v = 0;
				else if (m->metric == QDB_METRIC_IP || qdb_cosine_of_xhat(m))
					v = qdb_kernels.dot(ci, cj, len);
				else if (i == j)
					v = 0;
				else
					v = qdb_kernels.l2sq(ci, cj, len);
				ps[i * QDB_KSUB + j] = v;
				ps[j * QDB_KSUB + i] = v;
			}
		}
	}

	memset(bias, 0, sizeof(float) * ((size_t) m->M * QDB_KSUB + 1));
	if ((m->metric == QDB_METRIC_IP || qdb_cosine_of_xhat(m)) && m->mean)
	{
		amean = qdb_malloc(m->alloc, m->dim_pq, sizeof(float));
		if (!amean)
			return QDB_ERR_NOMEM;
		if (m->kind == QDB_KIND_NEURAL)
			qdb_apply_linear(m, m->mean, amean);	/* f(mean): see adc.c */
		else if (m->linear)
			for (j = 0; j < m->dim_pq; j++)
				amean[j] = qdb_kernels.dot(m->linear + (size_t) j * m->dim, m->mean,
										   m->dim);
		else
		{
			memcpy(amean, m->mean, sizeof(float) * m->dim);
			memset(amean + m->dim, 0, sizeof(float) * (m->dim_pq - m->dim));
		}
		for (s = 0; s < m->M; s++)
			for (i = 0; i < QDB_KSUB; i++)
				bias[s * QDB_KSUB + i] =
					qdb_kernels.dot(amean + (size_t) s * dsub,
									m->codebooks + ((size_t) s * QDB_KSUB + i) * dsub,
									dsub);
		bias[(size_t) m->M * QDB_KSUB] = m->kind == QDB_KIND_NEURAL ?
			qdb_kernels.dot(amean, amean, m->dim_pq) :
			qdb_kernels.dot(m->mean, m->mean, m->dim);
		qdb_free(m->alloc, amean);
	}
	return QDB_OK;
}

/*
 * kind rq: the reconstructions ya, yb summed a chunk of dims at a time (no
 * allocation: the build's threads call this); l2 from ||ya - yb||^2 as
 * for pq, ip from <ya, yb> and the mean's terms (table), cosine from the
 * same and the two norms (|xhat|^2 = |y|^2 + 2 (A mean) . y + |mean|^2).
 */
#define RQ_PAIR_CHUNK 256

static float
rq_pair_distance(const QdbModel *m, const float *table, const uint8_t *a,
				 const uint8_t *b)
{
	int			D = m->dim_pq;
	int			nbooks = qdb_rq_books(m);
	float		ya[RQ_PAIR_CHUNK],
				yb[RQ_PAIR_CHUNK];
	double		acc = 0,
				aa = 0,
				bb = 0;
	int			j0,
				s,
				j;

	for (j0 = 0; j0 < D; j0 += RQ_PAIR_CHUNK)
	{
		int			len = D - j0 < RQ_PAIR_CHUNK ? D - j0 : RQ_PAIR_CHUNK;

		memset(ya, 0, sizeof(float) * len);
		memset(yb, 0, sizeof(float) * len);
		for (s = 0; s < nbooks; s++)
		{
			const float *ca = m->codebooks + ((size_t) s * QDB_KSUB + a[s]) * D + j0;
			const float *cb = m->codebooks + ((size_t) s * QDB_KSUB + b[s]) * D + j0;

			for (j = 0; j < len; j++)
			{
				ya[j] += ca[j];
				yb[j] += cb[j];
			}
		}
		if (m->metric == QDB_METRIC_L2)
			for (j = 0; j < len; j++)
				acc += (double) (ya[j] - yb[j]) * (ya[j] - yb[j]);
		else
			for (j = 0; j < len; j++)
			{
				acc += (double) ya[j] * yb[j] + (double) table[j0 + j] * (ya[j] + yb[j]);
				aa += (double) ya[j] * ya[j] + 2.0 * table[j0 + j] * ya[j];
				bb += (double) yb[j] * yb[j] + 2.0 * table[j0 + j] * yb[j];
			}
	}
	switch (m->metric)
	{
		case QDB_METRIC_IP:
			return (float) -(acc + table[D]);
		case QDB_METRIC_COSINE:
			/* exactly 0 for a code with itself, whatever the rounding */
			if (memcmp(a, b, m->M) == 0)
				return 0.0f;
			return angle_distance(acc + table[D], aa + table[D], bb + table[D]);
		default:
			return (float) sqrt(acc);
	}
}

float
qdb_pair_distance(const QdbModel *m, const float *table, const uint8_t *a,
				  const uint8_t *b)
{
	const float *bias = table + (size_t) m->M * QDB_KSUB * QDB_KSUB;
	float		sum = 0;
	int			s;

	if (m->kind == QDB_KIND_RQ)
		return rq_pair_distance(m, table, a, b);
	for (s = 0; s < m->M; s++)
		sum += table[((size_t) s * QDB_KSUB + a[s]) * QDB_KSUB + b[s]];
	switch (m->metric)
	{
		case QDB_METRIC_IP:
			/* bias[a] + bias[b] is the same sum either way round */
			for (s = 0; s < m->M; s++)
				sum += bias[s * QDB_KSUB + a[s]] + bias[s * QDB_KSUB + b[s]];
			return -(sum + bias[(size_t) m->M * QDB_KSUB]);
		case QDB_METRIC_COSINE:
			{
				/* exactly 0 for a code with itself, whatever the rounding */
				if (memcmp(a, b, m->M) == 0)
					return 0.0f;
				/* sum is c_a . c_b; the diagonal gives |c_a|^2 and |c_b|^2 */
				double		ab = sum + bias[(size_t) m->M * QDB_KSUB],
							aa = bias[(size_t) m->M * QDB_KSUB],
							bb = aa;

				for (s = 0; s < m->M; s++)
				{
					const float *ps = table + (size_t) s * QDB_KSUB * QDB_KSUB;
					float		ba = bias[s * QDB_KSUB + a[s]],
								bbs = bias[s * QDB_KSUB + b[s]];

					ab += ba + bbs;
					aa += ps[a[s] * QDB_KSUB + a[s]] + 2.0f * ba;
					bb += ps[b[s] * QDB_KSUB + b[s]] + 2.0f * bbs;
				}
				return angle_distance(ab, aa, bb);
			}
		default:
			return sqrtf(sum > 0 ? sum : 0);
	}
}
