/*
 * kernels_quantize.cu
 *	  The sub-quantizer kernels: squared distances from the z . c products
 *	  (cuBLAS computes those), the straight-through Gumbel-softmax forward
 *	  and backward of trainer/nn.c, the diversity loss and nearest-centroid
 *	  assignment.  One warp handles one (row, sub-quantizer) pair; each lane
 *	  keeps K / 32 centroids in registers.
 */
#include "qdb_cuda.h"
#include "reduce.h"

#define QDB_SLOTS	(QDB_CUDA_MAX_K / QDB_WARP)

static __global__ void
codebook_norms_kernel(const float *c, float *cn, int MK, int dsub)
{
	int			i = blockIdx.x * blockDim.x + threadIdx.x;
	float		s = 0.0f;

	if (i >= MK)
		return;
	for (int j = 0; j < dsub; j++)
		s += c[(size_t) i * dsub + j] * c[(size_t) i * dsub + j];
	cn[i] = s;
}

cudaError_t
qdb_launch_codebook_norms(cudaStream_t s, const float *c, float *cn, int MK, int dsub)
{
	codebook_norms_kernel<<<grid_for(MK), QDB_BLOCK, 0, s>>>(c, cn, MK, dsub);
	return cudaGetLastError();
}

/* Of two (value, index) candidates, the larger value, then the lower index. */
static __device__ __forceinline__ void
warp_argmax(float *v, int *k)
{
	for (int o = QDB_WARP / 2; o > 0; o >>= 1)
	{
		float		ov = __shfl_xor_sync(0xffffffffu, *v, o);
		int			ok = __shfl_xor_sync(0xffffffffu, *k, o);

		if (ov > *v || (ov == *v && ok < *k))
		{
			*v = ov;
			*k = ok;
		}
	}
}

static __global__ void
gumbel_forward_kernel(const float *z, const float *c, const float *cn,
					  const float *tau, float *soft, int *idx, float *q, float *dz,
					  float *dc, int R, int M, int K, int dsub, uint64_t seed,
					  float g_commit, float g_cluster, double *acc)
{
	int			lane = threadIdx.x % QDB_WARP;
	size_t		pair = (blockIdx.x * (size_t) blockDim.x + threadIdx.x) / QDB_WARP;
	double		ss = 0.0;

	if (pair < (size_t) R * M)
	{
		int			r = (int) (pair / M);
		int			m = (int) (pair % M);
		size_t		zo = (size_t) r * M * dsub + (size_t) m * dsub;
		const float *cm = c + (size_t) m * K * dsub;
		float	   *row = soft + pair * K;
		float		t = tau[m];
		float		val[QDB_SLOTS];
		float		zn = 0.0f,
					best = -INFINITY,
					sum = 0.0f,
					dsum = 0.0f;
		int			bk = K;

		for (int j = lane; j < dsub; j += QDB_WARP)
			zn += z[zo + j] * z[zo + j];
		zn = warp_sum(zn);

		/* logits -|z - c_k|^2 / tau plus the shared noise; row holds z . c_k */
#pragma unroll
		for (int sl = 0; sl < QDB_SLOTS; sl++)
		{
			int			k = lane + sl * QDB_WARP;

			val[sl] = -INFINITY;
			if (k >= K)
				continue;
			val[sl] = -(zn - 2.0f * row[k] + cn[m * K + k]) / t;
			if (seed != 0)
				val[sl] += qdb_gumbel_hash(seed, QDB_GUMBEL_INDEX(r, m, k, M, K));
			if (val[sl] > best)
			{
				best = val[sl];
				bk = k;
			}
		}
		warp_argmax(&best, &bk);
		if (bk >= K)
			bk = 0;				/* no finite logit: nn.c keeps index 0 */

		/* softmax shifted by the max, as nn.c */
#pragma unroll
		for (int sl = 0; sl < QDB_SLOTS; sl++)
		{
			val[sl] = lane + sl * QDB_WARP < K ? expf(val[sl] - best) : 0.0f;
			sum += val[sl];
		}
		sum = warp_sum(sum);
#pragma unroll
		for (int sl = 0; sl < QDB_SLOTS; sl++)
			if (lane + sl * QDB_WARP < K)
				row[lane + sl * QDB_WARP] = val[sl] / sum;
		if (lane == 0)
			idx[pair] = bk;

		/* q = c[idx]; commitment into dz, the cluster loss into dc[idx] */
		for (int j = lane; j < dsub; j += QDB_WARP)
		{
			float		cv = cm[(size_t) bk * dsub + j];
			float		zv = z[zo + j];
			float		d = zv - cv;

			q[zo + j] = cv;
			dz[zo + j] = g_commit * (zv - cv);
			atomicAdd(dc + (size_t) m * K * dsub + (size_t) bk * dsub + j,
					  g_cluster * (cv - zv));
			dsum += d * d;
		}
		dsum = warp_sum(dsum);
		if (lane == 0)
			ss = dsum;
	}
	block_sum_atomic(ss, acc);
}

cudaError_t
qdb_launch_gumbel_forward(cudaStream_t s, const float *z, const float *c,
						  const float *cn, const float *tau, float *soft, int *idx,
						  float *q, float *dz, float *dc, int R, int M, int K,
						  int dsub, uint64_t seed, float g_commit, float g_cluster,
						  double *acc)
{
	size_t		threads = (size_t) R * M * QDB_WARP;

	gumbel_forward_kernel<<<(unsigned int) ((threads + QDB_BLOCK - 1) / QDB_BLOCK),
		QDB_BLOCK, 0, s>>>(z, c, cn, tau, soft, idx, q, dz, dc, R, M, K, dsub,
						   seed, g_commit, g_cluster, acc);
	return cudaGetLastError();
}

static __global__ void
diversity_kernel(const float *pbar_sum, float *extra, int MK, int R, float weight,
				 double *acc)
{
	int			i = blockIdx.x * blockDim.x + threadIdx.x;
	double		e = 0.0;

	if (i < MK)
	{
		double		p = (double) pbar_sum[i] / R;

		if (p > 0.0)
			e = p * log(p);
		/* log clamped as nn.c: a column that underflowed gets a finite push */
		extra[i] = (float) (weight * (log(p > 1e-30 ? p : 1e-30) + 1.0) / R);
	}
	block_sum_atomic(e, acc);
}

cudaError_t
qdb_launch_diversity(cudaStream_t s, const float *pbar_sum, float *extra, int M,
					 int K, int R, float weight, double *acc)
{
	diversity_kernel<<<grid_for(M * K), QDB_BLOCK, 0, s>>>(pbar_sum, extra, M * K,
														   R, weight, acc);
	return cudaGetLastError();
}

static __global__ void
gumbel_backward_kernel(const float *soft, float *dl, const float *extra,
					   const float *tau, int R, int M, int K)
{
	int			lane = threadIdx.x % QDB_WARP;
	size_t		pair = (blockIdx.x * (size_t) blockDim.x + threadIdx.x) / QDB_WARP;
	int			m;
	const float *sf;
	float	   *row;
	float		g,
				dot = 0.0f;

	if (pair >= (size_t) R * M)
		return;
	m = (int) (pair % M);
	sf = soft + pair * K;
	row = dl + pair * K;
	g = 2.0f / tau[m];
	for (int k = lane; k < K; k += QDB_WARP)
	{
		row[k] = extra[m * K + k];
		dot += sf[k] * row[k];
	}
	dot = warp_sum(dot);
	for (int k = lane; k < K; k += QDB_WARP)
		row[k] = g * (sf[k] * (row[k] - dot));
}

cudaError_t
qdb_launch_gumbel_backward(cudaStream_t s, const float *soft, float *dl,
						   const float *extra, const float *tau, int R, int M, int K)
{
	size_t		threads = (size_t) R * M * QDB_WARP;

	gumbel_backward_kernel<<<(unsigned int) ((threads + QDB_BLOCK - 1) / QDB_BLOCK),
		QDB_BLOCK, 0, s>>>(soft, dl, extra, tau, R, M, K);
	return cudaGetLastError();
}

/*
 * Straight-through backward of q = c[idx]: dz += dq, dc[m][idx] += dq.
 * dq and dz are (R, T) with T = M dsub, so element i is pair i / dsub.
 */
static __global__ void
straight_through_kernel(const float *dq, const int *idx, float *dz, float *dc,
						int M, int K, int dsub, size_t n)
{
	for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
	{
		size_t		pair = i / dsub;
		int			m = (int) (pair % M);
		float		g = dq[i];

		dz[i] += g;
		atomicAdd(dc + ((size_t) m * K + idx[pair]) * dsub + i % dsub, g);
	}
}

cudaError_t
qdb_launch_straight_through(cudaStream_t s, const float *dq, const int *idx, float *dz,
							float *dc, int R, int M, int K, int dsub)
{
	size_t		n = (size_t) R * M * dsub;

	straight_through_kernel<<<grid_for(n), QDB_BLOCK, 0, s>>>(dq, idx, dz, dc, M, K,
															  dsub, n);
	return cudaGetLastError();
}

static __global__ void
sub_scaled_kernel(float *a, const float *b, const float *scale, size_t n, int d)
{
	for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
		 i += (size_t) gridDim.x * blockDim.x)
		a[i] -= scale[i / d] * b[i];
}

cudaError_t
qdb_launch_sub_scaled(cudaStream_t s, float *a, const float *b, const float *scale,
					  size_t groups, int d)
{
	size_t		n = groups * d;

	sub_scaled_kernel<<<grid_for(n), QDB_BLOCK, 0, s>>>(a, b, scale, n, d);
	return cudaGetLastError();
}

static __global__ void
assign_kernel(const float *dot, const float *cn, uint8_t *codes, int R, int M, int K)
{
	int			lane = threadIdx.x % QDB_WARP;
	size_t		pair = (blockIdx.x * (size_t) blockDim.x + threadIdx.x) / QDB_WARP;
	const float *row;
	float		best = -INFINITY;
	int			m,
				bk = K;

	if (pair >= (size_t) R * M)
		return;
	m = (int) (pair % M);
	row = dot + pair * K;
	/* the largest 2 z.c - |c|^2 is the nearest centroid (|z|^2 is shared) */
	for (int k = lane; k < K; k += QDB_WARP)
	{
		float		v = 2.0f * row[k] - cn[m * K + k];

		if (v > best)
		{
			best = v;
			bk = k;
		}
	}
	warp_argmax(&best, &bk);
	if (lane == 0)
		codes[pair] = (uint8_t) (bk < K ? bk : 0);
}

cudaError_t
qdb_launch_assign(cudaStream_t s, const float *dot, const float *cn, uint8_t *codes,
				  int R, int M, int K)
{
	size_t		threads = (size_t) R * M * QDB_WARP;

	assign_kernel<<<(unsigned int) ((threads + QDB_BLOCK - 1) / QDB_BLOCK),
		QDB_BLOCK, 0, s>>>(dot, cn, codes, R, M, K);
	return cudaGetLastError();
}
