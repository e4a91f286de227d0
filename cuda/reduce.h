/*
 * reduce.h
 *	  Warp and block reductions shared by the kernel files.
 */
#ifndef QDB_CUDA_REDUCE_H
#define QDB_CUDA_REDUCE_H

#define QDB_WARP	32
#define QDB_BLOCK	256			/* threads per block of every kernel */

template<typename T>
static __device__ __forceinline__ T
warp_sum(T v)
{
	for (int o = QDB_WARP / 2; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/*
 * Adds v of every thread of the block into *acc with one atomic; every
 * thread of the block must call it (it synchronises).
 */
static __device__ __forceinline__ void
block_sum_atomic(double v, double *acc)
{
	__shared__ double part[QDB_BLOCK / QDB_WARP];
	int			lane = threadIdx.x % QDB_WARP;
	int			warp = threadIdx.x / QDB_WARP;

	v = warp_sum(v);
	if (lane == 0)
		part[warp] = v;
	__syncthreads();
	if (warp == 0)
	{
		v = lane < (int) (blockDim.x / QDB_WARP) ? part[lane] : 0.0;
		v = warp_sum(v);
		if (lane == 0 && v != 0.0)
			atomicAdd(acc, v);
	}
}

static inline unsigned int
grid_for(size_t n)
{
	size_t		b = (n + QDB_BLOCK - 1) / QDB_BLOCK;

	/* grid-stride loops cover the rest */
	return (unsigned int) (b < 65535 * 16 ? (b > 0 ? b : 1) : 65535 * 16);
}

#endif							/* QDB_CUDA_REDUCE_H */
