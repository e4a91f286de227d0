/*
 * pq.h
 *	  Product quantizer on data already transformed to dim_pq dims: training
 *	  of the M sub-quantizers, encoding and decoding.  Also the progress
 *	  reporting shared by the training stages.
 */
#ifndef QDB_PQ_H
#define QDB_PQ_H

#include <stddef.h>
#include <stdint.h>

#include "qdb_trainer.h"

/* The caller's progress callback and when training started. */
typedef struct QdbProgressCtx
{
	QdbProgress cb;				/* may be NULL */
	void	   *arg;
	double		t0;				/* qdb_now() at the start */
} QdbProgressCtx;

/* QDB_OK, or QDB_ERR_CANCELLED when the callback asks to stop */
int			qdb_progress_report(const QdbProgressCtx *p, const char *stage,
								int iter, int iters, double loss);

/* a chance to cancel during long work with nothing to report (stage's) */
/* the same with value named by measure (e.g. "10-recall@10") instead of the error */
int			qdb_progress_report_measure(const QdbProgressCtx *p, const char *stage,
										int iter, int iters, double value,
										const char *measure);
int			qdb_progress_heartbeat(const QdbProgressCtx *p, const char *stage);

/*
 * Trains codebooks (M x QDB_KSUB x dsub) on y (n x dim_pq) with niter Lloyd
 * iterations per sub-space; warm nonzero starts from the codebooks given.
 * When p is not NULL, reports stage after each sub-space (loss: the summed
 * mean squared error of the sub-spaces done).  Sub-spaces train on as many
 * threads as the process may use (QDB_NUM_THREADS overrides); the result
 * does not depend on it.
 */
int			qdb_pq_train(const QdbAlloc *a, const float *y, size_t n, int dim_pq,
						 int M, int niter, int max_points_per_centroid,
						 uint64_t seed, int warm, float *codebooks,
						 const QdbProgressCtx *p, const char *stage);

/* codes (n x M); sse, when not NULL, gets the summed squared error */
int			qdb_pq_encode(const QdbAlloc *a, const float *codebooks, int dim_pq,
						  int M, const float *y, size_t n, uint8_t *codes,
						  double *sse);

/* y (n x dim_pq) = concatenated centroids of the codes */
void		qdb_pq_decode(const float *codebooks, int dim_pq, int M,
						  const uint8_t *codes, size_t n, float *y);

#endif							/* QDB_PQ_H */
