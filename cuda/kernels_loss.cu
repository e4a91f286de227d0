/*
 * kernels_loss.cu
 *	  Elementwise kernels of the step: bias and ReLU, the reconstruction and
 *	  triplet losses with their gradients, and Adam with global-norm clipping.
 *	  The formulas are those of trainer/nn.c; sums of losses are in double.
 */
#include "qdb_cuda.h"
#include "reduce.h"

static __global__ void
fill_kernel(float *p, size_t n, float v)
{
	for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
		p[i] = v;
}

cudaError_t
qdb_launch_fill(cudaStream_t s, float *p, size_t n, float v)
{
	fill_kernel<<<grid_for(n), QDB_BLOCK, 0, s>>>(p, n, v);
	return cudaGetLastError();
}

static __global__ void
bias_act_kernel(float *a, const float *b, size_t n, int cols, int relu)
{
	for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
	{
		float		v = a[i] + b[i % cols];

		a[i] = relu && !(v > 0.0f) ? 0.0f : v;
	}
}

cudaError_t
qdb_launch_bias_act(cudaStream_t s, float *a, const float *b, int rows, int cols,
					int relu)
{
	size_t		n = (size_t) rows * cols;

	bias_act_kernel<<<grid_for(n), QDB_BLOCK, 0, s>>>(a, b, n, cols, relu);
	return cudaGetLastError();
}

static __global__ void
relu_backward_kernel(float *dh, const float *h, size_t n)
{
	for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
		if (!(h[i] > 0.0f))
			dh[i] = 0.0f;
}

cudaError_t
qdb_launch_relu_backward(cudaStream_t s, float *dh, const float *h, size_t n)
{
	relu_backward_kernel<<<grid_for(n), QDB_BLOCK, 0, s>>>(dh, h, n);
	return cudaGetLastError();
}

static __global__ void
recon_kernel(float *xhat, const float *x, const float *bd, size_t n, int D,
			 float g, double *acc)
{
	double		ss = 0.0;

	for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
	{
		float		v = xhat[i] + bd[i % D];
		float		d = x[i] - v;

		ss += (double) d * d;
		xhat[i] = g * (v - x[i]);
	}
	block_sum_atomic(ss, acc);
}

cudaError_t
qdb_launch_recon(cudaStream_t s, float *xhat, const float *x, const float *bd,
				 int R, int D, float g, double *acc)
{
	size_t		n = (size_t) R * D;

	recon_kernel<<<grid_for(n), QDB_BLOCK, 0, s>>>(xhat, x, bd, n, D, g, acc);
	return cudaGetLastError();
}

/* One block per triplet: hinge in double as nn.c, then the three gradients. */
static __global__ void
triplet_kernel(const float *z, const float *q, float *dz, float *dq, int B, int T,
			   float margin, float g, double *acc)
{
	__shared__ double part[2][QDB_BLOCK / QDB_WARP];
	__shared__ double hinge;
	int			b = blockIdx.x;
	const float *a = z + (size_t) b * T;
	const float *p = q + (size_t) (B + b) * T;
	const float *n = q + (size_t) (2 * B + b) * T;
	int			lane = threadIdx.x % QDB_WARP;
	int			warp = threadIdx.x / QDB_WARP;
	double		sp = 0.0,
				sn = 0.0;

	for (int j = threadIdx.x; j < T; j += blockDim.x)
	{
		sp += (double) (a[j] - p[j]) * (a[j] - p[j]);
		sn += (double) (a[j] - n[j]) * (a[j] - n[j]);
	}
	sp = warp_sum(sp);
	sn = warp_sum(sn);
	if (lane == 0)
	{
		part[0][warp] = sp;
		part[1][warp] = sn;
	}
	__syncthreads();
	if (threadIdx.x == 0)
	{
		sp = sn = 0.0;
		for (int w = 0; w < (int) (blockDim.x / QDB_WARP); w++)
		{
			sp += part[0][w];
			sn += part[1][w];
		}
		hinge = sp - sn + margin;
		if (hinge > 0.0)
			atomicAdd(acc, hinge);
	}
	__syncthreads();
	if (!(hinge > 0.0))
		return;
	for (int j = threadIdx.x; j < T; j += blockDim.x)
	{
		float		aj = a[j],
					pj = p[j],
					nj = n[j];

		dz[(size_t) b * T + j] += g * (nj - pj);
		dq[(size_t) (B + b) * T + j] -= g * (aj - pj);
		dq[(size_t) (2 * B + b) * T + j] += g * (aj - nj);
	}
}

cudaError_t
qdb_launch_triplet(cudaStream_t s, const float *z, const float *q, float *dz,
				   float *dq, int B, int T, float margin, float g, double *acc)
{
	triplet_kernel<<<B, 128, 0, s>>>(z, q, dz, dq, B, T, margin, g, acc);
	return cudaGetLastError();
}

static __global__ void
sumsq_kernel(const float *g, size_t n, double *acc)
{
	double		ss = 0.0;

	for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
		ss += (double) g[i] * g[i];
	block_sum_atomic(ss, acc);
}

cudaError_t
qdb_launch_sumsq(cudaStream_t s, const float *g, size_t n, double *acc)
{
	sumsq_kernel<<<grid_for(n), QDB_BLOCK, 0, s>>>(g, n, acc);
	return cudaGetLastError();
}

/* qdb_nn_adam_update, with the norm read from the device */
static __global__ void
adam_kernel(float *p, const float *g, float *m, float *v, size_t n, float lr,
			float beta1, float beta2, float eps, float bc1, float bc2, float clip,
			const double *sumsq)
{
	float		norm = (float) sqrt(*sumsq);
	float		scale = clip > 0.0f && norm > clip ? clip / norm : 1.0f;

	for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
	{
		float		gi = g[i] * scale;
		float		mi = beta1 * m[i] + (1.0f - beta1) * gi;
		float		vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;

		m[i] = mi;
		v[i] = vi;
		p[i] -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
	}
}

cudaError_t
qdb_launch_adam(cudaStream_t s, float *p, const float *g, float *m, float *v,
				size_t n, float lr, float beta1, float beta2, float eps,
				float bc1, float bc2, float clip, const double *sumsq)
{
	adam_kernel<<<grid_for(n), QDB_BLOCK, 0, s>>>(p, g, m, v, n, lr, beta1, beta2,
												  eps, bc1, bc2, clip, sumsq);
	return cudaGetLastError();
}
