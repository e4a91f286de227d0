/*
 * opq_cross.c
 *	  The cross-covariance C = Yhat^T Z that the OPQ rotation step solves
 *	  for, from the codes instead of the decoded rows.
 *
 * Row i of Yhat is the concatenation of centroid code[i][m] of each
 * sub-space m, so the block of C for sub-space m is sum_k c_mk s_mk^T,
 * where s_mk is the sum of the rows z_i coded k there: one pass adding
 * each z_i into M sums (n M t adds) and M small products (256 t dim_pq in
 * all), against n t dim_pq for decoding every row and one big product.
 */
#include <cblas.h>

#include "opq.h"
#include "qdb_internal.h"

void
qdb_opq_cross(const float *codebooks, int dim_pq, int M, const uint8_t *codes,
			  const float *z, size_t n, int t, float *sums, float *C)
{
	int			dsub = dim_pq / M;
	size_t		i;
	int			m,
				j;

	memset(sums, 0, sizeof(float) * M * QDB_KSUB * t);
	for (i = 0; i < n; i++)
	{
		const float *zr = z + i * t;

		for (m = 0; m < M; m++)
		{
			float	   *s = sums + ((size_t) m * QDB_KSUB + codes[i * M + m]) * t;

			for (j = 0; j < t; j++)
				s[j] += zr[j];
		}
	}
	/* rows m dsub.. of C (dsub x t) = codebook_m^T (dsub x 256) sums_m (256 x t) */
	for (m = 0; m < M; m++)
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dsub, t, QDB_KSUB,
					1.0f, codebooks + (size_t) m * QDB_KSUB * dsub, dsub,
					sums + (size_t) m * QDB_KSUB * t, t,
					0.0f, C + (size_t) m * dsub * t, t);
}
