/*
 * neural_train.h
 *	  Pieces of the neural kind's training loop (neural_train.c) that live
 *	  in files of their own.  Internal to the trainer.
 */
#ifndef QDB_NEURAL_TRAIN_H
#define QDB_NEURAL_TRAIN_H

#include "neural.h"
#include "qdb_internal.h"

/* Returns nonzero to stop a long computation (QDB_ERR_CANCELLED). */
typedef int (*QdbKnnCancel) (void *arg);

/*
 * out (nq, k): ids of the k nearest rows of base (nb, d) to each query by
 * squared L2, nearest first.  With self, queries are base itself and a row
 * is not its own neighbour.  QDB_ERR_ARG when k exceeds the candidates.
 */
int			qdb_knn_l2(const QdbAlloc *a, const float *base, int nb,
					   const float *queries, int nq, int d, int k, int self,
					   int *out, QdbKnnCancel cancel, void *arg);

#endif							/* QDB_NEURAL_TRAIN_H */
