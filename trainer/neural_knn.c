/*
 * neural_knn.c
 *	  Exact k nearest neighbours by squared L2 for the neural kind's
 *	  training: the triplets' positives and negatives, and the validation
 *	  split's ground truth.  Blocks of sgemm dot products, a sorted
 *	  insertion list per query (k is small).
 */
#include <cblas.h>
#include <math.h>

#include "neural_train.h"
#include "qdb_distance.h"

#define KNN_QUERY_BLOCK	512
#define KNN_BASE_BLOCK	4096

int
qdb_knn_l2(const QdbAlloc *a, const float *base, int nb, const float *queries,
		   int nq, int d, int k, int self, int *out, QdbKnnCancel cancel, void *arg)
{
	float	   *bn = qdb_malloc(a, nb, sizeof(float));
	float	   *dots = qdb_malloc(a, (size_t) KNN_QUERY_BLOCK * KNN_BASE_BLOCK, sizeof(float));
	float	   *ld = qdb_malloc(a, (size_t) KNN_QUERY_BLOCK * k, sizeof(float));
	int		   *len = qdb_malloc(a, KNN_QUERY_BLOCK, sizeof(int));
	int			status = QDB_OK;

	if (k < 1 || k > nb - (self ? 1 : 0))
		status = QDB_ERR_ARG;
	else if (!bn || !dots || !ld || !len)
		status = QDB_ERR_NOMEM;
	qdb_distance_init();
	for (int j = 0; status == QDB_OK && j < nb; j++)
		bn[j] = qdb_kernels.dot(base + (size_t) j * d, base + (size_t) j * d, d);
	for (int q0 = 0; status == QDB_OK && q0 < nq; q0 += KNN_QUERY_BLOCK)
	{
		int			qb = nq - q0 < KNN_QUERY_BLOCK ? nq - q0 : KNN_QUERY_BLOCK;

		if (cancel && cancel(arg))
		{
			status = QDB_ERR_CANCELLED;
			break;
		}
		memset(len, 0, sizeof(int) * qb);
		for (int b0 = 0; b0 < nb; b0 += KNN_BASE_BLOCK)
		{
			int			bb = nb - b0 < KNN_BASE_BLOCK ? nb - b0 : KNN_BASE_BLOCK;

			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, qb, bb, d, 1.0f,
						queries + (size_t) q0 * d, d, base + (size_t) b0 * d, d,
						0.0f, dots, bb);
			for (int i = 0; i < qb; i++)
			{
				const float *dr = dots + (size_t) i * bb;

				/* |q|^2 is the same for every candidate: leave it out */
				for (int j = 0; j < bb; j++)
				{
					if (self && b0 + j == q0 + i)
						continue;
					qdb_topk_insert(ld + (size_t) i * k, out + (size_t) (q0 + i) * k,
									&len[i], k, bn[b0 + j] - 2.0f * dr[j], b0 + j);
				}
			}
		}
	}
	qdb_free(a, len);
	qdb_free(a, ld);
	qdb_free(a, dots);
	qdb_free(a, bn);
	return status;
}
