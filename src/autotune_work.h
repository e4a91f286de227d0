/*
 * autotune_work.h
 *	  The auto-tuner's stages as their trials' work, and how a trial's work
 *	  at one stage compares with a finished trial's at another (the
 *	  estimate that skips a trial which would pass the stage's end).  Pure:
 *	  the unit test test/unit/test_autotune_work.c links it alone.
 */
#ifndef QDB_AUTOTUNE_WORK_H
#define QDB_AUTOTUNE_WORK_H

#include "qdb_trainer.h"

/* How a stage trains its trials. */
typedef struct QdbTuneStage
{
	int			stage;			/* 1, 2, 3 */
	double		share;			/* of the training rows */
	int			epochs;			/* kind neural */
	int			prune_epoch;	/* 0: no pruning */
	int			kmeans_iters;
	int			opq_iters;
} QdbTuneStage;

/*
 * What the finished trials of a kind at one stage did: for kind opq, the
 * OPQ alternations they ran on average (<= 0: not known) and whether every
 * one of them stopped before the stage's opq_iters because its error
 * stalled (trainer/opq.c).
 */
typedef struct QdbTuneRan
{
	double		opq_alternations;
	bool		opq_all_stalled;
} QdbTuneRan;

#define TUNE_NSTAGES	3

/* The stages, 1 to TUNE_NSTAGES, at [stage - 1] (autotune_work.c) */
extern const QdbTuneStage QdbTuneStages[TUNE_NSTAGES];

/*
 * A trial at a stage counts as stalled when it stopped its alternations at
 * or before this share of the stage's opq_iters: one that stopped near the
 * cap might have run on under a higher one.
 */
#define TUNE_STALLED_SHARE	0.8

extern bool QdbTuneStalled(const QdbTuneStage *st, int alternations);
extern double QdbTuneWorkRatio(QdbKind kind, const QdbTuneStage *b, const QdbTuneStage *a,
							   const QdbTuneRan *ran);

#endif							/* QDB_AUTOTUNE_WORK_H */
