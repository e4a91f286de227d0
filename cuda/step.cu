/*
 * step.cu
 *	  One training step on the device: the forward pass of neural.h, the
 *	  five losses and the backward pass, in the order of the CPU reference
 *	  (trainer/neural_cpu.c with the layers of trainer/nn.c).  Every matrix
 *	  product goes through cuBLAS; the sub-quantizer products are batched
 *	  over the M sub-quantizers as strided column blocks of z (R,T).
 */
#include "qdb_cuda.h"

/* z (rows, T) of x (rows, D) in st->x, st->h and st->z; rows <= max_rows */
int
qdb_cuda_forward_z(QdbCudaState *st, const float *x, int rows)
{
	const QdbNeuralShape *s = &st->s;
	const QdbNeuralLayout *l = &st->l;
	const float *p = st->params;

	TRY_CUDA(cudaMemcpyAsync(st->x, x, sizeof(float) * rows * s->dim,
							 cudaMemcpyHostToDevice, st->stream), "upload rows");
	/* h = relu(x W1^T + b1), z = h W2^T + b2 */
	TRY(qdb_gemm(st, 0, 1, rows, s->hidden, s->dim, 1.0f, st->x, s->dim,
				 p + l->w1, s->dim, 0.0f, st->h, s->hidden));
	TRY_CUDA(qdb_launch_bias_act(st->stream, st->h, p + l->b1, rows, s->hidden, 1),
			 "bias_relu kernel");
	TRY(qdb_gemm(st, 0, 1, rows, s->dim_pq, s->hidden, 1.0f, st->h, s->hidden,
				 p + l->w2, s->hidden, 0.0f, st->z, s->dim_pq));
	TRY_CUDA(qdb_launch_bias_act(st->stream, st->z, p + l->b2, rows, s->dim_pq, 0),
			 "bias kernel");
	return QDB_OK;
}

/*
 * Forward and backward of one step; returns after the device is done, with
 * the losses in out.
 */
int
qdb_cuda_step(void *vst, const float *x, const QdbNeuralStep *step,
			  QdbNeuralLosses *out)
{
	QdbCudaState *st = (QdbCudaState *) vst;
	const QdbNeuralShape *s = &st->s;
	const QdbNeuralLayout *l = &st->l;
	int			B = step ? step->triplets : 0;
	int			R = 3 * B;
	int			D = s->dim,
				H = s->hidden,
				T = s->dim_pq,
				M = s->M,
				K = s->K,
				dsub = s->dsub,
				MK = M * K;
	long long	cstride = (long long) K * dsub;
	const float *p = st->params;
	const float *c = p + l->codebooks;
	float	   *g = st->grads;
	float	   *dc = g + l->codebooks;
	double		acc[QDB_ACC_COUNT];

	if (x == NULL || step == NULL || step->tau == NULL || B <= 0 ||
		B > st->max_rows / 3)
		return QDB_ERR_ARG;
	for (int m = 0; m < M; m++)
		if (!(step->tau[m] > 0.0f))
			return QDB_ERR_ARG;

	TRY_CUDA(cudaMemsetAsync(g, 0, sizeof(float) * l->total, st->stream), "zero grads");
	TRY_CUDA(cudaMemsetAsync(st->acc, 0, sizeof(double) * QDB_ACC_COUNT, st->stream),
			 "zero sums");
	TRY_CUDA(cudaMemcpyAsync(st->tau, step->tau, sizeof(float) * M,
							 cudaMemcpyHostToDevice, st->stream), "upload tau");

	/* encoder, then the Gumbel assignment from the z . c products */
	TRY(qdb_cuda_forward_z(st, x, R));
	TRY_CUDA(qdb_launch_codebook_norms(st->stream, c, st->cn, MK, dsub),
			 "codebook_norms kernel");
	TRY(qdb_gemm_batched(st, 0, 1, R, K, dsub, 1.0f, st->z, T, dsub,
						 c, dsub, cstride, 0.0f, st->soft, MK, K, M));
	TRY_CUDA(qdb_launch_gumbel_forward(st->stream, st->z, c, st->cn, st->tau,
									   st->soft, st->idx, st->q, st->dz, dc,
									   R, M, K, dsub, step->noise_seed,
									   step->w_commit * 2.0f / R,
									   step->w_cluster * 2.0f / R,
									   st->acc + QDB_ACC_COMMIT),
			 "gumbel_forward kernel");

	/* decoder and the reconstruction loss; xhat becomes dxhat */
	TRY(qdb_gemm(st, 0, 1, R, D, T, 1.0f, st->q, T, p + l->dec_w, T,
				 0.0f, st->xhat, D));
	TRY_CUDA(qdb_launch_recon(st->stream, st->xhat, st->x, p + l->dec_b, R, D,
							  step->w_recon * 2.0f / R, st->acc + QDB_ACC_RECON),
			 "recon kernel");
	TRY(qdb_gemm(st, 1, 0, D, T, R, 1.0f, st->xhat, D, st->q, T,
				 1.0f, g + l->dec_w, T));
	TRY(qdb_colsum(st, st->xhat, R, D, 1.0f, 1.0f, g + l->dec_b));
	TRY(qdb_gemm(st, 0, 0, R, T, D, 1.0f, st->xhat, D, p + l->dec_w, T,
				 0.0f, st->dq, T));

	/* triplet: anchors' z against the positives' and negatives' q */
	TRY_CUDA(qdb_launch_triplet(st->stream, st->z, st->q, st->dz, st->dq, B, T,
								step->margin, step->w_triplet * 2.0f / B,
								st->acc + QDB_ACC_TRIPLET),
			 "triplet kernel");

	/* diversity: pbar from the column sums of soft */
	TRY(qdb_colsum(st, st->soft, R, MK, 1.0f, 0.0f, st->colsum));
	TRY_CUDA(qdb_launch_diversity(st->stream, st->colsum, st->extra, M, K, R,
								  step->w_diversity / M,
								  st->acc + QDB_ACC_DIVERSITY),
			 "diversity kernel");

	/* straight through: dz += dq, dc[idx] += dq */
	TRY_CUDA(qdb_launch_straight_through(st->stream, st->dq, st->idx, st->dz, dc,
										 R, M, K, dsub), "straight_through kernel");

	/* diversity to the codebooks through the soft assignment (nn.c, dq NULL) */
	if (step->w_diversity > 0.0f)
	{
		TRY_CUDA(qdb_launch_gumbel_backward(st->stream, st->soft, st->dl, st->extra,
											st->tau, R, M, K),
				 "gumbel_backward kernel");
		/* dc += dl^T z - colsum(dl) c */
		TRY(qdb_gemm_batched(st, 1, 0, K, dsub, R, 1.0f, st->dl, MK, K,
							 st->z, T, dsub, 1.0f, dc, dsub, cstride, M));
		TRY(qdb_colsum(st, st->dl, R, MK, 1.0f, 0.0f, st->colsum));
		TRY_CUDA(qdb_launch_sub_scaled(st->stream, dc, c, st->colsum, (size_t) MK, dsub),
				 "sub_scaled kernel");
	}

	/* encoder backward */
	TRY(qdb_gemm(st, 1, 0, T, H, R, 1.0f, st->dz, T, st->h, H,
				 1.0f, g + l->w2, H));
	TRY(qdb_colsum(st, st->dz, R, T, 1.0f, 1.0f, g + l->b2));
	TRY(qdb_gemm(st, 0, 0, R, H, T, 1.0f, st->dz, T, p + l->w2, H,
				 0.0f, st->dh, H));
	TRY_CUDA(qdb_launch_relu_backward(st->stream, st->dh, st->h, (size_t) R * H),
			 "relu_backward kernel");
	TRY(qdb_gemm(st, 1, 0, H, D, R, 1.0f, st->dh, H, st->x, D,
				 1.0f, g + l->w1, D));
	TRY(qdb_colsum(st, st->dh, R, H, 1.0f, 1.0f, g + l->b1));

	TRY_CUDA(cudaMemcpyAsync(acc, st->acc, sizeof(acc), cudaMemcpyDeviceToHost,
							 st->stream), "download losses");
	TRY_CUDA(cudaStreamSynchronize(st->stream), "step");

	if (out)
	{
		out->recon = acc[QDB_ACC_RECON] / R;
		out->cluster = acc[QDB_ACC_COMMIT] / R;
		out->commit = acc[QDB_ACC_COMMIT] / R;
		out->diversity = acc[QDB_ACC_DIVERSITY] / M;
		out->triplet = acc[QDB_ACC_TRIPLET] / B;
		out->total = step->w_recon * out->recon + step->w_cluster * out->cluster +
			step->w_diversity * out->diversity + step->w_commit * out->commit +
			step->w_triplet * out->triplet;
	}
	return QDB_OK;
}
