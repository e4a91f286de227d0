/*
 * robust_mean.h
 *	  The centre of a training sample that a few rows far out of scale do
 *	  not drag away from the rest (robust_mean.c).
 */
#ifndef QDB_ROBUST_MEAN_H
#define QDB_ROBUST_MEAN_H

#include <stddef.h>

#include "pq.h"
#include "qdb_trainer.h"

/*
 * A row counts as far out of scale when its squared distance from the
 * coordinates' medians exceeds this many times the median row's (100 times
 * the distance).  On the shared sets the largest ratio is 6.7
 * (glove-100-angular's raw rows; fashion-mnist-784 3.7, sift-photos-128
 * 1.6), so none of their rows is ever left out.
 */
#define QDB_FAR_RATIO	1e4
#define QDB_FAR_STAGE	"rows far out of scale, left out of the centre"

/*
 * mean (d) of the rows of x (n x d) that are not far out of scale, in
 * double, the mean of all rows when none is (the same floats as a plain
 * mean).  kept (n) says which rows the mean is of, *nkept how many (at
 * least half of n).  Rows far out of scale drag a plain mean away from the others:
 * centred on it, those others' differences fall below float's resolution
 * and the covariance, the rotation and the codebooks fit the few far
 * rows (2.5% of 2,000 rows at 1e9 times the rest's scale left opq's
 * validation recall at 0.02: session 62's hunt, /work/runs/hunt-s62c.md F3).
 * When some are left out, p (may be NULL) hears of it as the stage
 * QDB_FAR_STAGE: how many of n, and the squared distance beyond which.
 */
int			qdb_robust_mean(const QdbAlloc *a, const float *x, size_t n, int d,
							float *mean, unsigned char *kept, size_t *nkept,
							const QdbProgressCtx *p);

#endif							/* QDB_ROBUST_MEAN_H */
