/*
 * blas.cu
 *	  Row-major matrix products on cuBLAS, which is column-major: a
 *	  row-major X (r,c) is the column-major X^T, so C = op(A) op(B) is
 *	  computed as C^T = op(B)^T op(A)^T with the operands swapped.
 */
#include "qdb_cuda.h"

int
qdb_gemm(QdbCudaState *st, int ta, int tb, int m, int n, int k,
		 float alpha, const float *A, int lda, const float *B, int ldb,
		 float beta, float *C, int ldc)
{
	return qdb_cublas_check(st,
							cublasSgemm(st->blas,
										tb ? CUBLAS_OP_T : CUBLAS_OP_N,
										ta ? CUBLAS_OP_T : CUBLAS_OP_N,
										n, m, k, &alpha, B, ldb, A, lda,
										&beta, C, ldc),
							"cublasSgemm");
}

int
qdb_gemm_batched(QdbCudaState *st, int ta, int tb, int m, int n, int k,
				 float alpha, const float *A, int lda, long long sa,
				 const float *B, int ldb, long long sb, float beta,
				 float *C, int ldc, long long sc, int count)
{
	return qdb_cublas_check(st,
							cublasSgemmStridedBatched(st->blas,
													  tb ? CUBLAS_OP_T : CUBLAS_OP_N,
													  ta ? CUBLAS_OP_T : CUBLAS_OP_N,
													  n, m, k, &alpha, B, ldb, sb,
													  A, lda, sa, &beta, C, ldc, sc,
													  count),
							"cublasSgemmStridedBatched");
}

int
qdb_colsum(QdbCudaState *st, const float *A, int rows, int cols,
		   float alpha, float beta, float *out)
{
	/* column-major, A is (cols, rows): out = A 1 */
	return qdb_cublas_check(st,
							cublasSgemv(st->blas, CUBLAS_OP_N, cols, rows, &alpha,
										A, cols, st->ones, 1, &beta, out, 1),
							"cublasSgemv");
}
