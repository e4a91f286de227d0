/*
 * qdb_cuda.h
 *	  Internal header of the cuda backend (quantumdb_cuda.so): the state one
 *	  create() returns, error capture, the row-major cuBLAS wrappers and the
 *	  kernel launchers, grouped by the file that defines them.
 *
 * Everything here has hidden visibility (-fvisibility=hidden); the object
 * exports only qdb_cuda_neural_ops.  Tensors are row-major, as on the host.
 */
#ifndef QDB_CUDA_H
#define QDB_CUDA_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "neural.h"

#define QDB_CUDA_MAX_K		256		/* codes are bytes */
#define QDB_CUDA_ERRLEN		256

/* Indexes into QdbCudaState.acc, the step's device-side sums (doubles). */
#define QDB_ACC_RECON		0		/* sum_r |x - xhat|^2 */
#define QDB_ACC_COMMIT		1		/* sum_r |z - q|^2, also the cluster loss */
#define QDB_ACC_DIVERSITY	2		/* sum_m sum_k pbar log pbar */
#define QDB_ACC_TRIPLET		3		/* sum_b max(0, hinge) */
#define QDB_ACC_SUMSQ		4		/* Adam: sum of squared gradients */
#define QDB_ACC_COUNT		5

typedef struct QdbCudaState
{
	QdbNeuralShape s;
	QdbNeuralLayout l;
	int			max_rows;
	QdbAlloc	alloc;			/* a copy: the caller's may not outlive us */
	cudaStream_t stream;
	cublasHandle_t blas;
	int			have_stream;
	int			have_blas;
	/* device tensors; params, grads and the Adam moments are (l.total) */
	float	   *params;
	float	   *grads;
	float	   *adam_m;
	float	   *adam_v;
	float	   *x;				/* (max_rows, D) */
	float	   *h;				/* (max_rows, H) after ReLU */
	float	   *dh;				/* (max_rows, H) */
	float	   *z;				/* (max_rows, T) */
	float	   *dz;				/* (max_rows, T) */
	float	   *q;				/* (max_rows, T) */
	float	   *dq;				/* (max_rows, T) */
	float	   *xhat;			/* (max_rows, D), then dxhat in place */
	float	   *soft;			/* (max_rows, M, K): z.c, then the softmax */
	float	   *dl;				/* (max_rows, M, K): dsoft, then dlogits */
	int		   *idx;			/* (max_rows, M) hard codes */
	uint8_t    *codes;			/* (max_rows, M) encode's output */
	float	   *cn;				/* (M, K) squared centroid norms */
	float	   *colsum;			/* (M, K) column sums (pbar, then dlogits) */
	float	   *extra;			/* (M, K) the diversity loss's dsoft */
	float	   *tau;			/* (M) */
	float	   *ones;			/* (max_rows) of 1: column sums by gemv */
	double	   *acc;			/* (QDB_ACC_COUNT) */
	char		err[QDB_CUDA_ERRLEN];
} QdbCudaState;

/* ops.cu: error capture; each returns QDB_OK or QDB_ERR_DEVICE */
int			qdb_cuda_check(QdbCudaState *st, cudaError_t e, const char *what);
int			qdb_cublas_check(QdbCudaState *st, cublasStatus_t s, const char *what);

/* Return a failed status at once; TRY_CUDA also records the CUDA error. */
#define TRY(expr) \
	do { \
		int			rc_ = (expr); \
		if (rc_ != QDB_OK) \
			return rc_; \
	} while (0)
#define TRY_CUDA(expr, what)	TRY(qdb_cuda_check(st, (expr), (what)))

/*
 * blas.cu: row-major products through column-major cuBLAS.
 * C (m,n) = alpha op(A) op(B) + beta C, op(X) = X^T when tX is nonzero;
 * lda, ldb, ldc are the row strides of the matrices as stored.
 */
int			qdb_gemm(QdbCudaState *st, int ta, int tb, int m, int n, int k,
					 float alpha, const float *A, int lda, const float *B, int ldb,
					 float beta, float *C, int ldc);
/* The same for count products, the i-th on A + i sa, B + i sb, C + i sc. */
int			qdb_gemm_batched(QdbCudaState *st, int ta, int tb, int m, int n, int k,
							 float alpha, const float *A, int lda, long long sa,
							 const float *B, int ldb, long long sb, float beta,
							 float *C, int ldc, long long sc, int count);
/* out (cols) = alpha * column sums of A (rows, cols) + beta out */
int			qdb_colsum(QdbCudaState *st, const float *A, int rows, int cols,
					   float alpha, float beta, float *out);

/* kernels_loss.cu: elementwise layers, losses and Adam */
cudaError_t qdb_launch_fill(cudaStream_t s, float *p, size_t n, float v);
/* a (rows, cols) += b (cols) per row, then ReLU when relu is nonzero */
cudaError_t qdb_launch_bias_act(cudaStream_t s, float *a, const float *b,
								int rows, int cols, int relu);
/* dh (n) = 0 where h (n) <= 0 (h after ReLU: the same mask as its input) */
cudaError_t qdb_launch_relu_backward(cudaStream_t s, float *dh, const float *h, size_t n);
/* xhat (R,D) += bd; acc += sum |x - xhat|^2; xhat becomes g (xhat - x) */
cudaError_t qdb_launch_recon(cudaStream_t s, float *xhat, const float *x,
							 const float *bd, int R, int D, float g, double *acc);
/* the triplet hinge on a = z[0:B], p = q[B:2B], n = q[2B:3B] (nn.c) */
cudaError_t qdb_launch_triplet(cudaStream_t s, const float *z, const float *q,
							   float *dz, float *dq, int B, int T, float margin,
							   float g, double *acc);
cudaError_t qdb_launch_sumsq(cudaStream_t s, const float *g, size_t n, double *acc);
cudaError_t qdb_launch_adam(cudaStream_t s, float *p, const float *g, float *m,
							float *v, size_t n, float lr, float beta1, float beta2,
							float eps, float bc1, float bc2, float clip,
							const double *sumsq);

/* kernels_quantize.cu: distances, Gumbel-softmax, assignment */
/* cn (M,K) = |c_mk|^2 */
cudaError_t qdb_launch_codebook_norms(cudaStream_t s, const float *c, float *cn,
									  int MK, int dsub);

/*
 * soft holds z_m . c_mk (R,M,K) on entry and the Gumbel softmax on return;
 * idx (R,M) the hard codes, q (R,T) = c[idx], dz (R,T) = g_commit (z - q),
 * dc[m][idx] += g_cluster (c_idx - z), acc += sum |z - q|^2.
 */
cudaError_t qdb_launch_gumbel_forward(cudaStream_t s, const float *z, const float *c,
									  const float *cn, const float *tau, float *soft,
									  int *idx, float *q, float *dz, float *dc,
									  int R, int M, int K, int dsub, uint64_t seed,
									  float g_commit, float g_cluster, double *acc);

/*
 * From pbar_sum (M,K), the column sums of soft over R rows: acc += sum of
 * pbar log pbar, extra = weight (log pbar + 1) / R.
 */
cudaError_t qdb_launch_diversity(cudaStream_t s, const float *pbar_sum, float *extra,
								 int M, int K, int R, float weight, double *acc);

/*
 * dl (R,M,K) = the softmax backward of dsoft = extra (M,K), the diversity
 * loss's (the same for every row), scaled by 2 / tau_m:
 * dl = (2/tau_m) soft (extra - <soft, extra>).
 */
cudaError_t qdb_launch_gumbel_backward(cudaStream_t s, const float *soft, float *dl,
									   const float *extra, const float *tau,
									   int R, int M, int K);

/* dz += dq; dc[m][idx[r, m]] += dq[r, m] (straight-through backward) */
cudaError_t qdb_launch_straight_through(cudaStream_t s, const float *dq, const int *idx,
										float *dz, float *dc, int R, int M, int K,
										int dsub);

/* a (rows, groups, d) -= scale (rows, groups) * b, for dc -= cs c */
cudaError_t qdb_launch_sub_scaled(cudaStream_t s, float *a, const float *b,
								  const float *scale, size_t groups, int d);

/* codes (R,M) = argmin_k |c_mk|^2 - 2 z_m . c_mk from dot (R,M,K) */
cudaError_t qdb_launch_assign(cudaStream_t s, const float *dot, const float *cn,
							  uint8_t *codes, int R, int M, int K);

/* step.cu */
int			qdb_cuda_forward_z(QdbCudaState *st, const float *x, int rows);
int			qdb_cuda_step(void *vst, const float *x, const QdbNeuralStep *step,
						  QdbNeuralLosses *out);

#endif							/* QDB_CUDA_H */
