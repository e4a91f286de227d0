/*
 * ops.cu
 *	  The QdbNeuralOps table of the cuda backend and its one exported entry
 *	  point: state creation and teardown, parameter transfer, Adam, embed
 *	  and encode, and the capture of CUDA and cuBLAS errors as statuses.
 *	  Nothing here aborts: every library call is checked, and a failure
 *	  becomes QDB_ERR_DEVICE with the library's message in last_error().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qdb_cuda.h"

static void
set_text(char *buf, size_t len, const char *what, const char *msg)
{
	if (buf == NULL || len == 0)
		return;
	if (what)
		snprintf(buf, len, "%s: %s", what, msg);
	else
		snprintf(buf, len, "%s", msg);
}

int
qdb_cuda_check(QdbCudaState *st, cudaError_t e, const char *what)
{
	if (e == cudaSuccess)
		return QDB_OK;
	set_text(st->err, sizeof(st->err), what, cudaGetErrorString(e));
	/* clears the error unless it is sticky; a sticky one stays for later calls */
	(void) cudaGetLastError();
	return QDB_ERR_DEVICE;
}

int
qdb_cublas_check(QdbCudaState *st, cublasStatus_t s, const char *what)
{
	if (s == CUBLAS_STATUS_SUCCESS)
		return QDB_OK;
	set_text(st->err, sizeof(st->err), what, cublasGetStatusString(s));
	return QDB_ERR_DEVICE;
}

static void *
host_alloc(const QdbAlloc *a, size_t size)
{
	return a ? a->alloc(size, a->st) : malloc(size);
}

static void
host_free(const QdbAlloc *a, void *p)
{
	if (a)
		a->free(p, a->st);
	else
		free(p);
}

static void
cuda_destroy(void *vst)
{
	QdbCudaState *st = (QdbCudaState *) vst;
	QdbAlloc	a;

	if (st == NULL)
		return;
	/* errors are ignored: after a sticky error this is all we can do */
	cudaFree(st->params);
	cudaFree(st->grads);
	cudaFree(st->adam_m);
	cudaFree(st->adam_v);
	cudaFree(st->x);
	cudaFree(st->h);
	cudaFree(st->dh);
	cudaFree(st->z);
	cudaFree(st->dz);
	cudaFree(st->q);
	cudaFree(st->dq);
	cudaFree(st->xhat);
	cudaFree(st->soft);
	cudaFree(st->dl);
	cudaFree(st->idx);
	cudaFree(st->codes);
	cudaFree(st->cn);
	cudaFree(st->colsum);
	cudaFree(st->extra);
	cudaFree(st->tau);
	cudaFree(st->ones);
	cudaFree(st->acc);
	if (st->have_blas)
		cublasDestroy(st->blas);
	if (st->have_stream)
		cudaStreamDestroy(st->stream);
	(void) cudaGetLastError();
	a = st->alloc;
	host_free(a.alloc ? &a : NULL, st);
}

/* cudaMalloc of n elements of size bytes each, overflow-checked */
static int
dev_alloc(QdbCudaState *st, void **p, size_t n, size_t size, const char *what)
{
	if (size != 0 && n > SIZE_MAX / size)
	{
		set_text(st->err, sizeof(st->err), what, "size overflow");
		return QDB_ERR_NOMEM;
	}
	return qdb_cuda_check(st, cudaMalloc(p, n * size > 0 ? n * size : 1), what);
}

static int
create_device_state(QdbCudaState *st)
{
	const QdbNeuralShape *s = &st->s;
	size_t		n = st->l.total;
	size_t		rows = (size_t) st->max_rows;
	size_t		mk = (size_t) s->M * s->K;

	TRY_CUDA(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking),
			 "cudaStreamCreate");
	st->have_stream = 1;
	TRY(qdb_cublas_check(st, cublasCreate(&st->blas), "cublasCreate"));
	st->have_blas = 1;
	TRY(qdb_cublas_check(st, cublasSetStream(st->blas, st->stream), "cublasSetStream"));
	/* plain fp32 products (no TF32), so the device matches the CPU reference */
	TRY(qdb_cublas_check(st, cublasSetMathMode(st->blas, CUBLAS_DEFAULT_MATH),
						 "cublasSetMathMode"));

	TRY(dev_alloc(st, (void **) &st->params, n, sizeof(float), "cudaMalloc params"));
	TRY(dev_alloc(st, (void **) &st->grads, n, sizeof(float), "cudaMalloc grads"));
	TRY(dev_alloc(st, (void **) &st->adam_m, n, sizeof(float), "cudaMalloc adam"));
	TRY(dev_alloc(st, (void **) &st->adam_v, n, sizeof(float), "cudaMalloc adam"));
	TRY(dev_alloc(st, (void **) &st->x, rows * s->dim, sizeof(float), "cudaMalloc x"));
	TRY(dev_alloc(st, (void **) &st->h, rows * s->hidden, sizeof(float), "cudaMalloc h"));
	TRY(dev_alloc(st, (void **) &st->dh, rows * s->hidden, sizeof(float), "cudaMalloc dh"));
	TRY(dev_alloc(st, (void **) &st->z, rows * s->dim_pq, sizeof(float), "cudaMalloc z"));
	TRY(dev_alloc(st, (void **) &st->dz, rows * s->dim_pq, sizeof(float), "cudaMalloc dz"));
	TRY(dev_alloc(st, (void **) &st->q, rows * s->dim_pq, sizeof(float), "cudaMalloc q"));
	TRY(dev_alloc(st, (void **) &st->dq, rows * s->dim_pq, sizeof(float), "cudaMalloc dq"));
	TRY(dev_alloc(st, (void **) &st->xhat, rows * s->dim, sizeof(float), "cudaMalloc xhat"));
	TRY(dev_alloc(st, (void **) &st->soft, rows * mk, sizeof(float), "cudaMalloc soft"));
	TRY(dev_alloc(st, (void **) &st->dl, rows * mk, sizeof(float), "cudaMalloc dlogits"));
	TRY(dev_alloc(st, (void **) &st->idx, rows * s->M, sizeof(int), "cudaMalloc idx"));
	TRY(dev_alloc(st, (void **) &st->codes, rows * s->M, 1, "cudaMalloc codes"));
	TRY(dev_alloc(st, (void **) &st->cn, mk, sizeof(float), "cudaMalloc cn"));
	TRY(dev_alloc(st, (void **) &st->colsum, mk, sizeof(float), "cudaMalloc colsum"));
	TRY(dev_alloc(st, (void **) &st->extra, mk, sizeof(float), "cudaMalloc extra"));
	TRY(dev_alloc(st, (void **) &st->tau, s->M, sizeof(float), "cudaMalloc tau"));
	TRY(dev_alloc(st, (void **) &st->ones, rows, sizeof(float), "cudaMalloc ones"));
	TRY(dev_alloc(st, (void **) &st->acc, QDB_ACC_COUNT, sizeof(double), "cudaMalloc acc"));

	TRY_CUDA(qdb_launch_fill(st->stream, st->ones, rows, 1.0f), "fill kernel");
	TRY_CUDA(cudaMemsetAsync(st->params, 0, sizeof(float) * n, st->stream), "memset");
	TRY_CUDA(cudaMemsetAsync(st->grads, 0, sizeof(float) * n, st->stream), "memset");
	TRY_CUDA(cudaMemsetAsync(st->adam_m, 0, sizeof(float) * n, st->stream), "memset");
	TRY_CUDA(cudaMemsetAsync(st->adam_v, 0, sizeof(float) * n, st->stream), "memset");
	TRY_CUDA(cudaStreamSynchronize(st->stream), "create");
	return QDB_OK;
}

static int
cuda_create(void **out, const QdbNeuralShape *s, int max_rows, const QdbAlloc *a,
			char *err, size_t errlen)
{
	QdbCudaState *st;
	cudaError_t e;
	int			ndev = 0;
	int			rc;

	if (out == NULL)
		return QDB_ERR_ARG;
	*out = NULL;
	if (s == NULL || s->dim <= 0 || s->hidden <= 0 || s->M <= 0 || s->dsub <= 0 ||
		s->K <= 0 || s->K > QDB_CUDA_MAX_K || s->dim_pq != s->M * s->dsub ||
		max_rows <= 0)
	{
		set_text(err, errlen, NULL, "cuda backend: invalid shape or row count");
		return QDB_ERR_ARG;
	}
	e = cudaGetDeviceCount(&ndev);
	if (e != cudaSuccess || ndev == 0)
	{
		set_text(err, errlen, "cudaGetDeviceCount",
				 e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device");
		(void) cudaGetLastError();
		return QDB_ERR_NO_DEVICE;
	}

	st = (QdbCudaState *) host_alloc(a, sizeof(QdbCudaState));
	if (st == NULL)
	{
		set_text(err, errlen, NULL, "out of memory");
		return QDB_ERR_NOMEM;
	}
	memset(st, 0, sizeof(*st));
	if (a)
		st->alloc = *a;
	st->s = *s;
	st->max_rows = max_rows;
	qdb_neural_layout(s, &st->l);

	rc = create_device_state(st);
	if (rc != QDB_OK)
	{
		set_text(err, errlen, NULL, st->err);
		cuda_destroy(st);
		return rc;
	}
	*out = st;
	return QDB_OK;
}

static int
cuda_set_params(void *vst, const float *params)
{
	QdbCudaState *st = (QdbCudaState *) vst;
	size_t		bytes = sizeof(float) * st->l.total;

	if (params == NULL)
		return QDB_ERR_ARG;
	TRY_CUDA(cudaMemcpyAsync(st->params, params, bytes, cudaMemcpyHostToDevice,
							 st->stream), "upload params");
	TRY_CUDA(cudaMemsetAsync(st->adam_m, 0, bytes, st->stream), "memset");
	TRY_CUDA(cudaMemsetAsync(st->adam_v, 0, bytes, st->stream), "memset");
	TRY_CUDA(cudaStreamSynchronize(st->stream), "set_params");
	return QDB_OK;
}

static int
download(QdbCudaState *st, void *dst, const void *src, size_t bytes, const char *what)
{
	if (dst == NULL)
		return QDB_ERR_ARG;
	TRY_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, st->stream), what);
	TRY_CUDA(cudaStreamSynchronize(st->stream), what);
	return QDB_OK;
}

static int
cuda_get_params(void *vst, float *params)
{
	QdbCudaState *st = (QdbCudaState *) vst;

	return download(st, params, st->params, sizeof(float) * st->l.total,
					"download params");
}

static int
cuda_get_grads(void *vst, float *grads)
{
	QdbCudaState *st = (QdbCudaState *) vst;

	return download(st, grads, st->grads, sizeof(float) * st->l.total,
					"download grads");
}

static int
cuda_adam(void *vst, float lr, int t, float clip, float *grad_norm)
{
	QdbCudaState *st = (QdbCudaState *) vst;
	const float beta1 = 0.9f,
				beta2 = 0.999f,
				eps = 1e-8f;
	double	   *sumsq = st->acc + QDB_ACC_SUMSQ;
	double		ss = 0.0;

	if (t < 1)
		return QDB_ERR_ARG;
	TRY_CUDA(cudaMemsetAsync(sumsq, 0, sizeof(double), st->stream), "memset");
	TRY_CUDA(qdb_launch_sumsq(st->stream, st->grads, st->l.total, sumsq),
			 "sumsq kernel");
	/* bias corrections on the host with powf, exactly as nn.c */
	TRY_CUDA(qdb_launch_adam(st->stream, st->params, st->grads, st->adam_m,
							 st->adam_v, st->l.total, lr, beta1, beta2, eps,
							 1.0f - powf(beta1, (float) t),
							 1.0f - powf(beta2, (float) t), clip, sumsq),
			 "adam kernel");
	TRY(download(st, &ss, sumsq, sizeof(double), "adam"));
	if (grad_norm)
		*grad_norm = (float) sqrt(ss);
	/* as the cpu backend: a non-finite gradient means the training diverged */
	if (!isfinite((float) sqrt(ss)))
	{
		set_text(st->err, sizeof(st->err), NULL, "gradient norm is not finite");
		return QDB_ERR_DATA;
	}
	return QDB_OK;
}

static int
cuda_embed(void *vst, const float *x, int rows, float *z)
{
	QdbCudaState *st = (QdbCudaState *) vst;
	int			T = st->s.dim_pq;

	if (x == NULL || z == NULL || rows < 0)
		return QDB_ERR_ARG;
	/* in chunks of max_rows, so any row count works */
	for (int r0 = 0; r0 < rows; r0 += st->max_rows)
	{
		int			n = rows - r0 < st->max_rows ? rows - r0 : st->max_rows;

		TRY(qdb_cuda_forward_z(st, x + (size_t) r0 * st->s.dim, n));
		TRY(download(st, z + (size_t) r0 * T, st->z, sizeof(float) * n * T,
					 "download z"));
	}
	return QDB_OK;
}

static int
cuda_encode(void *vst, const float *x, int rows, uint8_t *codes)
{
	QdbCudaState *st = (QdbCudaState *) vst;
	const QdbNeuralShape *s = &st->s;
	const float *c = st->params + st->l.codebooks;
	int			MK = s->M * s->K;

	if (x == NULL || codes == NULL || rows < 0)
		return QDB_ERR_ARG;
	TRY_CUDA(qdb_launch_codebook_norms(st->stream, c, st->cn, MK, s->dsub),
			 "codebook_norms kernel");
	for (int r0 = 0; r0 < rows; r0 += st->max_rows)
	{
		int			n = rows - r0 < st->max_rows ? rows - r0 : st->max_rows;

		TRY(qdb_cuda_forward_z(st, x + (size_t) r0 * s->dim, n));
		TRY(qdb_gemm_batched(st, 0, 1, n, s->K, s->dsub, 1.0f, st->z, s->dim_pq,
							 s->dsub, c, s->dsub, (long long) s->K * s->dsub,
							 0.0f, st->soft, MK, s->K, s->M));
		TRY_CUDA(qdb_launch_assign(st->stream, st->soft, st->cn, st->codes, n,
								   s->M, s->K), "assign kernel");
		TRY(download(st, codes + (size_t) r0 * s->M, st->codes, (size_t) n * s->M,
					 "download codes"));
	}
	return QDB_OK;
}

static const char *
cuda_last_error(void *vst)
{
	QdbCudaState *st = (QdbCudaState *) vst;

	return st ? st->err : "cuda backend: no state";
}

static const QdbNeuralOps cuda_ops = {
	QDB_TRAINER_API_VERSION,
	"cuda",
	cuda_create,
	cuda_destroy,
	cuda_set_params,
	cuda_get_params,
	cuda_get_grads,
	qdb_cuda_step,
	cuda_adam,
	cuda_embed,
	cuda_encode,
	cuda_last_error
};

extern "C" __attribute__((visibility("default"))) const QdbNeuralOps *
qdb_cuda_neural_ops(int version)
{
	return version == QDB_TRAINER_API_VERSION ? &cuda_ops : NULL;
}
