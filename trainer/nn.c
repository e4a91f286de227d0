/*
 * nn.c
 *	  CPU reference layers of the learned compressor: the readable version
 *	  that a GPU twin is checked against, not the fast one.  Products go
 *	  through cblas_sgemm; everything else is a plain loop.
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>

#include "nn.h"

void
qdb_nn_linear_forward(float *out, const float *inp, const float *w, const float *b,
			   int B, int C, int OC)
{
	int			i,
				o;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, C,
				1.0f, inp, C, w, C, 0.0f, out, OC);
	if (b == NULL)
		return;
	for (i = 0; i < B; i++)
		for (o = 0; o < OC; o++)
			out[(size_t) i * OC + o] += b[o];
}

void
qdb_nn_linear_backward(float *dinp, float *dw, float *db, const float *dout,
				const float *inp, const float *w, int B, int C, int OC)
{
	int			i,
				o;

	if (dinp)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, OC,
					1.0f, dout, OC, w, C, 1.0f, dinp, C);
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, B,
				1.0f, dout, OC, inp, C, 1.0f, dw, C);
	if (db == NULL)
		return;
	for (i = 0; i < B; i++)
		for (o = 0; o < OC; o++)
			db[o] += dout[(size_t) i * OC + o];
}

void
qdb_nn_relu_forward(float *out, const float *inp, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void
qdb_nn_relu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		if (inp[i] > 0.0f)
			dinp[i] += dout[i];
}

int
qdb_nn_gumbel_acts_init(const QdbAlloc *a, QdbGumbelActs *acts, int B, int K)
{
	size_t		bk;
	float	   *mem;

	memset(acts, 0, sizeof(*acts));
	if (B <= 0 || K <= 0)
		return QDB_ERR_ARG;
	bk = (size_t) B * K;
	/* three (B,K) float tensors, then B ints (same size, so aligned) */
	mem = qdb_malloc(a, 3 * bk + (size_t) B, sizeof(float));
	if (mem == NULL)
		return QDB_ERR_NOMEM;
	acts->B = B;
	acts->K = K;
	acts->logits = mem;
	acts->soft = mem + bk;
	acts->dlogits = mem + 2 * bk;
	acts->idx = (int *) (mem + 3 * bk);
	return QDB_OK;
}

void
qdb_nn_gumbel_acts_free(const QdbAlloc *a, QdbGumbelActs *acts)
{
	qdb_free(a, acts->logits);
	memset(acts, 0, sizeof(*acts));
}

int
qdb_nn_gumbel_quantize_forward(float *q, QdbGumbelActs *acts, const float *z,
						const float *c, int B, int K, int d,
						float tau, const float *noise, int straight_through)
{
	int			i,
				k,
				j;

	if (B <= 0 || B > acts->B || K != acts->K || d <= 0 || !(tau > 0.0f))
		return QDB_ERR_ARG;
	acts->tau = tau;
	for (i = 0; i < B; i++)
	{
		const float *zi = z + (size_t) i * d;
		float	   *lg = acts->logits + (size_t) i * K;
		float	   *sf = acts->soft + (size_t) i * K;
		float		mx = -INFINITY,
					sum = 0.0f;
		int			best = 0;

		for (k = 0; k < K; k++)
		{
			const float *ck = c + (size_t) k * d;
			float		s = 0.0f;

			for (j = 0; j < d; j++)
				s += (zi[j] - ck[j]) * (zi[j] - ck[j]);
			lg[k] = -s / tau;
			sf[k] = noise ? lg[k] + noise[(size_t) i * K + k] : lg[k];
			if (sf[k] > mx)
			{
				mx = sf[k];
				best = k;
			}
		}
		/* shifting by the max keeps expf in range; the argmax is the hard code */
		for (k = 0; k < K; k++)
		{
			sf[k] = expf(sf[k] - mx);
			sum += sf[k];
		}
		for (k = 0; k < K; k++)
			sf[k] /= sum;
		acts->idx[i] = best;
	}
	if (straight_through)
	{
		for (i = 0; i < B; i++)
			memcpy(q + (size_t) i * d, c + (size_t) acts->idx[i] * d,
				   sizeof(float) * d);
	}
	else
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, d, K,
					1.0f, acts->soft, K, c, d, 0.0f, q, d);
	return QDB_OK;
}

void
qdb_nn_gumbel_quantize_backward(float *dz, float *dc, const float *dq,
						 const float *dsoft_extra, QdbGumbelActs *acts,
						 const float *z, const float *c, int B, int K, int d)
{
	const float *soft = acts->soft;
	float	   *dl = acts->dlogits;
	float		g = 2.0f / acts->tau;
	size_t		bk = (size_t) B * K;
	size_t		t;
	int			i,
				k,
				j;

	/* dsoft = dq c^T + dsoft_extra, held in dl */
	if (dq)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, K, d,
					1.0f, dq, d, c, d, 0.0f, dl, K);
	else
		memset(dl, 0, sizeof(float) * bk);
	if (dsoft_extra)
		for (t = 0; t < bk; t++)
			dl[t] += dsoft_extra[t];

	/* through the softmax: dl = soft * (dsoft - <soft, dsoft>) per row */
	for (i = 0; i < B; i++)
	{
		const float *sf = soft + (size_t) i * K;
		float	   *row = dl + (size_t) i * K;
		float		dot = 0.0f;

		for (k = 0; k < K; k++)
			dot += sf[k] * row[k];
		for (k = 0; k < K; k++)
			row[k] = sf[k] * (row[k] - dot);
	}

	/* the direct path of q = soft c to the codebook: dc += soft^T dq */
	if (dc && dq)
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, d, B,
					1.0f, soft, K, dq, d, 1.0f, dc, d);

	/*
	 * logits = -||z - c_k||^2 / tau: dz += -g (z rowsum(dl) - dl c),
	 * dc += g (dl^T z - c colsum(dl)).
	 */
	if (dz)
	{
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, d, K,
					g, dl, K, c, d, 1.0f, dz, d);
		for (i = 0; i < B; i++)
		{
			float		rs = 0.0f;

			for (k = 0; k < K; k++)
				rs += dl[(size_t) i * K + k];
			for (j = 0; j < d; j++)
				dz[(size_t) i * d + j] -= g * rs * z[(size_t) i * d + j];
		}
	}
	if (dc)
	{
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, d, B,
					g, dl, K, z, d, 1.0f, dc, d);
		for (k = 0; k < K; k++)
		{
			float		cs = 0.0f;

			for (i = 0; i < B; i++)
				cs += dl[(size_t) i * K + k];
			for (j = 0; j < d; j++)
				dc[(size_t) k * d + j] -= g * cs * c[(size_t) k * d + j];
		}
	}
}

float
qdb_nn_mse_loss_forward(const float *x, const float *xhat, int B, int D)
{
	double		s = 0.0;
	size_t		t,
				n = (size_t) B * D;

	for (t = 0; t < n; t++)
		s += (double) (x[t] - xhat[t]) * (x[t] - xhat[t]);
	return (float) (s / B);
}

void
qdb_nn_mse_loss_backward(float *dxhat, const float *x, const float *xhat,
				  int B, int D, float weight)
{
	float		g = weight * 2.0f / B;
	size_t		t,
				n = (size_t) B * D;

	for (t = 0; t < n; t++)
		dxhat[t] += g * (xhat[t] - x[t]);
}

float
qdb_nn_commitment_loss_forward(const float *z, const float *q, int B, int d)
{
	/* the same sum as the reconstruction loss; only the gradient differs */
	return qdb_nn_mse_loss_forward(q, z, B, d);
}

void
qdb_nn_commitment_loss_backward(float *dz, const float *z, const float *q,
						 int B, int d, float weight)
{
	qdb_nn_mse_loss_backward(dz, q, z, B, d, weight);
}

float
qdb_nn_entropy_loss_forward(const float *soft, int B, int K)
{
	double		s = 0.0;
	int			k;

	for (k = 0; k < K; k++)
	{
		double		p = 0.0;
		int			i;

		for (i = 0; i < B; i++)
			p += soft[(size_t) i * K + k];
		p /= B;
		if (p > 0.0)
			s += p * log(p);
	}
	return (float) s;
}

void
qdb_nn_entropy_loss_backward(float *dsoft, const float *soft, int B, int K,
					  float weight)
{
	double		pbar[256];
	int			k0,
				k,
				i;

	/* K in blocks so that no allocation is needed for any K */
	for (k0 = 0; k0 < K; k0 += 256)
	{
		int			kb = K - k0 < 256 ? K - k0 : 256;

		for (k = 0; k < kb; k++)
		{
			pbar[k] = 0.0;
			for (i = 0; i < B; i++)
				pbar[k] += soft[(size_t) i * K + k0 + k];
			pbar[k] /= B;
			/* log clamped: a column that underflowed to 0 gets a finite push */
			pbar[k] = weight * (log(pbar[k] > 1e-30 ? pbar[k] : 1e-30) + 1.0) / B;
		}
		for (i = 0; i < B; i++)
			for (k = 0; k < kb; k++)
				dsoft[(size_t) i * K + k0 + k] += (float) pbar[k];
	}
}

/* ||a - p||^2 - ||a - n||^2 + margin for one triplet of length D */
static double
triplet_hinge(const float *a, const float *p, const float *n, int D, float margin)
{
	double		dp = 0.0,
				dn = 0.0;
	int			j;

	for (j = 0; j < D; j++)
	{
		dp += (double) (a[j] - p[j]) * (a[j] - p[j]);
		dn += (double) (a[j] - n[j]) * (a[j] - n[j]);
	}
	return dp - dn + margin;
}

float
qdb_nn_triplet_loss_forward(const float *a, const float *p, const float *n,
					 int B, int D, float margin)
{
	double		s = 0.0;
	int			b;

	for (b = 0; b < B; b++)
	{
		double		h = triplet_hinge(a + (size_t) b * D, p + (size_t) b * D,
									  n + (size_t) b * D, D, margin);

		if (h > 0.0)
			s += h;
	}
	return (float) (s / B);
}

void
qdb_nn_triplet_loss_backward(float *da, float *dp, float *dn,
					  const float *a, const float *p, const float *n,
					  int B, int D, float margin, float weight)
{
	float		g = weight * 2.0f / B;
	int			b,
				j;

	for (b = 0; b < B; b++)
	{
		size_t		o = (size_t) b * D;

		if (triplet_hinge(a + o, p + o, n + o, D, margin) <= 0.0)
			continue;
		for (j = 0; j < D; j++)
		{
			if (da)
				da[o + j] += g * (n[o + j] - p[o + j]);
			if (dp)
				dp[o + j] -= g * (a[o + j] - p[o + j]);
			if (dn)
				dn[o + j] += g * (a[o + j] - n[o + j]);
		}
	}
}

float
qdb_nn_adam_update(float *params, const float *grads, float *m, float *v, size_t n,
			float lr, float beta1, float beta2, float eps, int t, float clip)
{
	double		ss = 0.0;
	float		norm,
				scale = 1.0f;
	float		bc1 = 1.0f - powf(beta1, (float) t);
	float		bc2 = 1.0f - powf(beta2, (float) t);
	size_t		i;

	for (i = 0; i < n; i++)
		ss += (double) grads[i] * grads[i];
	norm = (float) sqrt(ss);
	if (clip > 0.0f && norm > clip)
		scale = clip / norm;
	for (i = 0; i < n; i++)
	{
		float		g = grads[i] * scale;

		m[i] = beta1 * m[i] + (1.0f - beta1) * g;
		v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
		params[i] -= lr * (m[i] / bc1) / (sqrtf(v[i] / bc2) + eps);
	}
	return norm;
}
