/*
 * rq_aniso.c
 *	  Score-aware (anisotropic) residual quantization under cosine and ip.
 *
 * Under cosine and ip the index ranks a row by the inner product of the
 * query with its reconstruction, and the queries that matter for a row
 * (those it is a near neighbour of) point nearly along it: an error r
 * along the row's direction u moves their scores by about |r . u|, an
 * error across it much less.  So the beam (rq.c) ranks partial codes by
 * ||r||^2 + (eta - 1) (r . u)^2, and the refits fit the books to the same
 * weighted loss (Guo et al., "Accelerating large-scale inference with
 * anisotropic vector quantization", ICML 2020, whose loss this is; the
 * setting rq_eta is their ratio of the parallel to the orthogonal weight).
 *
 * The weighted normal equations couple every codeword with every
 * dimension (W_i is not diagonal), too many unknowns for a direct solve;
 * conjugate gradients apply the operator one row at a time, each
 * application a pass over the codes (2 n nbooks D multiply-adds), and the
 * isotropic system's Cholesky factor, already computed by the refit, is
 * the preconditioner: W_i differs from I by rank one, so a few steps
 * converge (the residual falls by about 1e-3 per step on glove).
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "qdb_distance.h"
#include "qdb_internal.h"
#include "rq.h"
#include "rq_aniso.h"

#define ANISO_CG_STEPS	8		/* at most; earlier once converged */
#define ANISO_CG_TOL	1e-8	/* relative to the first preconditioned residual */

int
qdb_rq_directions(const QdbModel *m, const float *y, size_t n, float *U)
{
	int			D = m->dim_pq;
	float	   *off = qdb_malloc(m->alloc, D, sizeof(float));
	size_t		i;
	int			j;

	if (!off)
		return QDB_ERR_NOMEM;

	/* y = A (x - mean) (A: the PCA map, or the identity padded): x's image is y + A mean */
	for (j = 0; j < D; j++)
	{
		if (m->linear)
			off[j] = qdb_kernels.dot(m->linear + (size_t) j * m->dim, m->mean, m->dim);
		else
			off[j] = j < m->dim ? m->mean[j] : 0.0f;
	}
	for (i = 0; i < n; i++)
	{
		float	   *u = U + i * D;
		float		nn;

		for (j = 0; j < D; j++)
			u[j] = y[i * D + j] + off[j];
		nn = qdb_kernels.dot(u, u, D);
		nn = nn > 0 ? 1.0f / sqrtf(nn) : 0.0f;
		for (j = 0; j < D; j++)
			u[j] *= nn;
	}
	qdb_free(m->alloc, off);
	return QDB_OK;
}

/* out = A X (both K x D row-major), A the weighted system's matrix with its ridge */
static void
aniso_apply(const QdbRqAniso *an, size_t n, int K, int D, float lambda,
			const float *X, float *out, float *v)
{
	float		w = an->eta - 1.0f;
	size_t		i;
	int			s,
				j;

	for (j = 0; j < K * D; j++)
		out[j] = lambda * X[j];
	for (i = 0; i < n; i++)
	{
		const uint8_t *code = an->codes + i * an->stride * an->M;
		const float *u = an->U + i * D;
		float		t;

		memset(v, 0, sizeof(float) * D);
		for (s = 0; s < an->nbooks; s++)
		{
			const float *c = X + (size_t) (s * QDB_KSUB + code[s]) * D;

			for (j = 0; j < D; j++)
				v[j] += c[j];
		}
		t = w * qdb_kernels.dot(u, v, D);
		for (j = 0; j < D; j++)
			v[j] += t * u[j];
		for (s = 0; s < an->nbooks; s++)
		{
			float	   *o = out + (size_t) (s * QDB_KSUB + code[s]) * D;

			for (j = 0; j < D; j++)
				o[j] += v[j];
		}
	}
}

/* z = P^-1 r: the Cholesky solve, through the column-major layout it needs */
static int
precondition(const float *chol, int K, int D, const float *r, float *z, float *colmajor)
{
	int			info = 0,
				k,
				j;

	for (k = 0; k < K; k++)
		for (j = 0; j < D; j++)
			colmajor[(size_t) j * K + k] = r[(size_t) k * D + j];
	spotrs_("L", &K, &D, chol, &K, colmajor, &K, &info);
	for (k = 0; k < K; k++)
		for (j = 0; j < D; j++)
			z[(size_t) k * D + j] = colmajor[(size_t) j * K + k];
	return info;
}

int
qdb_rq_aniso_refit(const QdbAlloc *a, const QdbRqAniso *an, const float *y, size_t n,
				   int K, int D, float lambda, const float *chol, float *Xc,
				   const QdbProgressCtx *p)
{
	size_t		KD = (size_t) K * D;
	float	   *x = qdb_malloc(a, KD, sizeof(float));
	float	   *r = qdb_calloc(a, KD, sizeof(float));
	float	   *z = qdb_malloc(a, KD, sizeof(float));
	float	   *pv = qdb_malloc(a, KD, sizeof(float));
	float	   *Ap = qdb_malloc(a, KD, sizeof(float));
	float	   *cm = qdb_malloc(a, KD, sizeof(float));
	float	   *v = qdb_malloc(a, D, sizeof(float));
	float		w = an->eta - 1.0f;
	double		rz,
				rz0,
				pAp;
	size_t		i,
				q;
	int			s,
				j,
				k,
				step,
				status = QDB_OK;

	if (!x || !r || !z || !pv || !Ap || !cm || !v)
	{
		/* not the isotropic books under a model that says eta: an error */
		status = QDB_ERR_NOMEM;
		goto done;
	}
	for (k = 0; k < K; k++)
		for (j = 0; j < D; j++)
			x[(size_t) k * D + j] = Xc[(size_t) j * K + k];
	/* r = b - A x, b = sum_i B_i^T W_i y_i */
	for (i = 0; i < n; i++)
	{
		const uint8_t *code = an->codes + i * an->stride * an->M;
		const float *u = an->U + i * D;
		const float *yi = y + i * D;
		float		t = w * qdb_kernels.dot(u, yi, D);

		for (s = 0; s < an->nbooks; s++)
		{
			float	   *o = r + (size_t) (s * QDB_KSUB + code[s]) * D;

			for (j = 0; j < D; j++)
				o[j] += yi[j] + t * u[j];
		}
	}
	aniso_apply(an, n, K, D, lambda, x, Ap, v);
	for (q = 0; q < KD; q++)
		r[q] -= Ap[q];
	if (precondition(chol, K, D, r, z, cm) != 0)
		goto done;
	memcpy(pv, z, KD * sizeof(float));
	rz = rz0 = cblas_dsdot((int) KD, r, 1, z, 1);
	for (step = 0; step < ANISO_CG_STEPS && rz > ANISO_CG_TOL * rz0 && rz0 > 0; step++)
	{
		double		alpha,
					rz_next;

		if ((status = qdb_progress_heartbeat(p, "rq refit")) != QDB_OK)
			goto done;
		aniso_apply(an, n, K, D, lambda, pv, Ap, v);
		pAp = cblas_dsdot((int) KD, pv, 1, Ap, 1);
		if (!(pAp > 0))
			break;
		alpha = rz / pAp;
		for (q = 0; q < KD; q++)
		{
			x[q] += (float) alpha * pv[q];
			r[q] -= (float) alpha * Ap[q];
		}
		if (precondition(chol, K, D, r, z, cm) != 0)
			break;
		rz_next = cblas_dsdot((int) KD, r, 1, z, 1);
		for (q = 0; q < KD; q++)
			pv[q] = z[q] + (float) (rz_next / rz) * pv[q];
		rz = rz_next;
	}
	for (k = 0; k < K; k++)
		for (j = 0; j < D; j++)
			Xc[(size_t) j * K + k] = x[(size_t) k * D + j];

done:
	qdb_free(a, x);
	qdb_free(a, r);
	qdb_free(a, z);
	qdb_free(a, pv);
	qdb_free(a, Ap);
	qdb_free(a, cm);
	qdb_free(a, v);
	return status;
}
