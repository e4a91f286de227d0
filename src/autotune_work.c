/*
 * autotune_work.c
 *	  The work of a trial at one stage relative to a finished trial's at
 *	  another, by what dominates its kind's training (autotune_work.h).
 */
#include "postgres.h"

#include "autotune_work.h"

const QdbTuneStage QdbTuneStages[TUNE_NSTAGES] = {
	/* stage, share, epochs, prune_epoch, kmeans_iters, opq_iters */
	{1, 0.10, 2, 0, 10, 10},
	{2, 0.50, 4, 2, 15, 25},
	{3, 1.00, 10, 0, 25, 50},
};

/* Whether a trial at st that ran alternations OPQ alternations stalled. */
bool
QdbTuneStalled(const QdbTuneStage *st, int alternations)
{
	return alternations > 0 && alternations <= TUNE_STALLED_SHARE * st->opq_iters;
}

/*
 * b's work over a's, for a trial of kind: k-means iterations for pq and
 * rq, OPQ alternations for opq, epochs or alternations for neural.  Kind
 * opq stops its alternations once its error stalls, and a stall comes
 * after about as many alternations at a stage with more of them: where
 * every trial at a stalled (QdbTuneStalled: by four fifths of a's
 * opq_iters), a trial at b is taken to run as many as they
 * did (at most b's), not b's opq_iters; train's opq on glove-100-angular
 * stalls after 15 or 16, where a final-stage trial (50) was estimated at
 * twice the time of one of stage 2 (25).  Where some ran all of a's, the
 * ratio of the stages' opq_iters stands: b's opq_iters over the mean run
 * (session 50's version of this rule) put it higher still, 2.5 for
 * stage-2 trials that ran 20 on average, and skipped more trials.
 */
double
QdbTuneWorkRatio(QdbKind kind, const QdbTuneStage *b, const QdbTuneStage *a,
				 const QdbTuneRan *ran)
{
	double		kmeans = (double) b->kmeans_iters / a->kmeans_iters,
				opq = (double) b->opq_iters / a->opq_iters;

	switch (kind)
	{
		case QDB_KIND_NEURAL:
			return Max((double) b->epochs / a->epochs, opq);
		case QDB_KIND_OPQ:
			if (ran && ran->opq_alternations > 0 && ran->opq_all_stalled)
				return Min((double) b->opq_iters, ran->opq_alternations) /
					ran->opq_alternations;
			return opq;
		default:
			return kmeans;
	}
}
