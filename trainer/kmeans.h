/*
 * kmeans.h
 *	  k-means for the product quantizer's sub-spaces: k-means++ seeding, Lloyd
 *	  iterations with BLAS distances, empty-cluster repair.
 */
#ifndef QDB_KMEANS_H
#define QDB_KMEANS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qdb_trainer.h"

/* most rows per sgemm block when assigning points to centroids */
#define QDB_ASSIGN_BLOCK	512

/* the rows per block qdb_assign_block_rows gives (<= QDB_ASSIGN_BLOCK) */
#define QDB_ASSIGN_ROWS		256

/* rows per assignment sgemm (QDB_ASSIGN_ROWS, whatever d and k) */
int			qdb_assign_block_rows(int d, int k);

/* out (nsample x d) = nsample rows of x (n x d) picked at random, in order */
void		qdb_sample_rows(const float *x, size_t n, int d, size_t nsample,
							uint64_t seed, float *out);

/* cnorm[j] = ||c_j||^2 for k centroids of d dims */
void		qdb_centroid_norms(const float *c, int k, int d, float *cnorm);

/* widest sub-space qdb_assign_k256 takes */
#define QDB_ASSIGN_K256_MAX_DIM	32

/*
 * qdb_nearest_centroids' fused path (assign_k256.c), which calls it only
 * where it chose the AVX-512 argmin (the CPU has it, QDB_SIMD allows it):
 * k = QDB_KSUB centroids of at most QDB_ASSIGN_K256_MAX_DIM dims; false,
 * doing nothing, otherwise.
 */
bool		qdb_assign_k256(const float *x, size_t n, int d, size_t ldx,
							const float *c, const float *cnorm, int k,
							int32_t *labels, float *dist);

/*
 * labels[i] = index of the centroid nearest to row i of x (n rows of d
 * floats, ldx apart); dist[i] its squared distance when dist is not NULL.
 * work holds QDB_ASSIGN_BLOCK * k floats.  Ties go to the lowest index.
 */
void		qdb_nearest_centroids(const float *x, size_t n, int d, size_t ldx,
								  const float *c, const float *cnorm, int k,
								  float *work, int32_t *labels, float *dist);

/*
 * k-means of n points (n x d) into k centroids (k x d).  At most
 * max_points_per_centroid * k points are used (a seeded subsample); warm
 * nonzero starts from the centroids given instead of k-means++.  obj gets
 * the mean squared distance of the last assignment.  QDB_ERR_DATA if n < k.
 */
int			qdb_kmeans(const QdbAlloc *a, const float *x, size_t n, int d, int k,
					   int niter, int max_points_per_centroid, uint64_t seed,
					   int warm, float *centroids, double *obj);

/*
 * The same, on the calling thread, with a chance to cancel (p's heartbeat,
 * as stage) after each iteration: QDB_ERR_CANCELLED when p's callback asks.
 */
struct QdbProgressCtx;
int			qdb_kmeans_cancellable(const QdbAlloc *a, const float *x, size_t n, int d,
								   int k, int niter, int max_points_per_centroid,
								   uint64_t seed, int warm, float *centroids, double *obj,
								   const struct QdbProgressCtx *p, const char *stage);

/*
 * The same without allocating (so that threads may run it): scratch holds
 * qdb_kmeans_scratch_size() bytes.  p (not NULL only in the thread that
 * owns the progress callback) gets a heartbeat after each iteration; once
 * *stop (not NULL) is set, by another thread say, the run ends after the
 * iteration under way with QDB_ERR_CANCELLED.
 */
size_t		qdb_kmeans_scratch_size(size_t n, int d, int k,
									int max_points_per_centroid);
int			qdb_kmeans_run(void *scratch, const float *x, size_t n, int d, int k,
						   int niter, int max_points_per_centroid, uint64_t seed,
						   int warm, float *centroids, double *obj,
						   const struct QdbProgressCtx *p, const char *stage,
						   const int *stop);

#endif							/* QDB_KMEANS_H */
