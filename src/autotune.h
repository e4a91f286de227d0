/*
 * autotune.h
 *	  quantumdb.autotune(): a search over compressor and index settings
 *	  within a time budget.  autotune.c takes the arguments, draws the
 *	  sample and stores the winner; autotune_stages.c runs the three stages
 *	  (random search, TPE with median pruning, the best trained fully);
 *	  autotune_trial.c trains and scores one trial;
 *	  autotune_speed.c measures a trial's codes walking HNSW graphs built
 *	  over part of the sample; autotune_work.c estimates a trial's training
 *	  from the finished trials of an earlier stage.  The search itself (random, TPE, pruning) is
 *	  the trainer core's (trainer/tune_search.c).
 */
#ifndef QDB_AUTOTUNE_H
#define QDB_AUTOTUNE_H

#include "lib/stringinfo.h"

#include "autotune_work.h"
#include "compressor.h"
#include "graph_memory.h"
#include "tune_search.h"

/* The search space: one value per parameter, as tune_search.c proposes. */
typedef enum QdbTuneParamId
{
	TP_KIND,					/* choice of QdbTune.kinds */
	TP_DIMS_PER_SUB,			/* choice of tune_dims_per_sub: target_dim / M */
	TP_LR,
	TP_BATCH,					/* choice of tune_batch */
	TP_W_RECON,
	TP_W_CLUSTER,
	TP_W_DIVERSITY,
	TP_W_COMMIT,
	TP_W_TRIPLET,
	TP_K_NEIGHBORS,
	TP_HIDDEN,					/* choice of tune_hidden_mult: hidden / target_dim */
	TP_M,						/* choice of tune_m */
	TP_EFC,						/* choice of tune_efc */
	TP_COUNT
} QdbTuneParamId;

#define TUNE_NM		5
#define TUNE_NEFC	3
extern const int tune_m[TUNE_NM];
extern const int tune_efc[TUNE_NEFC];

/* The score's weights (SQL: w_quality, w_compression, w_speed, w_memory). */
typedef struct QdbTuneWeights
{
	double		quality,
				compression,
				speed,
				memory;
} QdbTuneWeights;

/* How a stage trains its trials: QdbTuneStage, in autotune_work.h */

/* What every trial of a run shares. */
typedef struct QdbTune
{
	const char *name;
	QdbMetric	metric;
	const float *x;				/* n_train training rows, then n_val held out,
								 * as sampled (what trials train on) */
	const float *walk_x;		/* the first graph_rows training rows, then
								 * the held-out rows: unit rows under cosine */
	int			n_train;
	int			n_val;
	int			dim;
	double		table_rows;		/* the table's rows, for the speed and memory terms */
	uint64		seed;
	QdbTuneWeights w;
	QdbKind		kinds[4];
	int			nkinds;
	double		deadline;		/* qdb_now() past which nothing runs */
	QdbTuneParam space[TP_COUNT];
	/* the walks' graphs (autotune_speed.c), built on first use */
	int			graph_rows;
	QdbMemGraph *graphs[TUNE_NM][TUNE_NEFC];
	MemoryContext graph_cxt;
	/* stage 2's pruning: neural trials' validation recall at prune_epoch */
	double	   *mid_recalls;
	int			nmid;
	/* the held-out rows' exact 10th distances, shared by the trials' recalls */
	float	   *val_kth;
	int			val_kth_known;
} QdbTune;

/* One trial's outcome. */
typedef struct QdbTrialResult
{
	QdbModel	model;			/* empty unless status is "done" */
	QdbTrainConfig cfg;
	int			m;
	int			ef_construction;
	int			training_rows;
	double		quality,		/* the score's terms, each in [0, 1] */
				compression,
				speed,
				memory,
				score;
	double		seconds;		/* training and scoring */
	double		train_seconds;
	double		graph_seconds;	/* building walks' graphs, within seconds */
	double		walk_distances; /* per query */
	double		walk_us;		/* per query, measured (not scored) */
	const char *status;			/* "done", "pruned", "over budget" */
} QdbTrialResult;

/* A finished trial: its point and score (stage 3 picks from these). */
typedef struct QdbTuneFinished
{
	double	   *v;
	char	   *settings;		/* QdbTuneSettingsJson of v */
	double		score;
	int			stage;
} QdbTuneFinished;

/* TUNE_NSTAGES and the stages' table: autotune_work.h */

/* the fewest distinct vectors a search samples: 1,000 to train, 10% held out */
#define TUNE_MIN_SAMPLE	1111

/* A run: what autotune.c sets up and autotune_stages.c fills. */
typedef struct QdbTuneRun
{
	QdbTune		t;
	QdbTuneSearch search;
	QdbTrainingLog log;
	int			trial;			/* trials started or skipped so far */
	int			npruned,
				nskipped,
				nfailed,
				ndone;
	QdbTuneFinished *done;
	/* seconds of training per row of finished trials, per kind and stage */
	double		per_row[4][TUNE_NSTAGES];
	int			per_row_n[4][TUNE_NSTAGES];
	/* kind opq: the alternations they ran, and how many stopped as stalled */
	double		opq_ran[4][TUNE_NSTAGES];
	int			opq_stalled[4][TUNE_NSTAGES];
	/* seconds of scoring (graphs not counted) of finished trials */
	double		scoring;
	int			scoring_n;
	/* the settings of every point tried (stages 1 and 2 do not repeat one) */
	char	  **tried;
	int			ntried;
	/* the best of the last stage that finished a trial */
	QdbTrialResult best;
	double	   *best_v;
	int			best_stage;
	MemoryContext best_cxt;
	double		min_score;
} QdbTuneRun;

/* autotune_stages.c: count trials of stage (1, 2, 3), none started past end */
extern void QdbTuneRunStage(QdbTuneRun *rs, int stage, int count, double end);

/* autotune_trial.c */
extern void QdbTuneSpaceInit(QdbTune *t);
extern void QdbTuneSettingsJson(const QdbTune *t, const double *v, StringInfo out);
extern void QdbTuneRunTrial(QdbTune *t, const QdbTuneStage *st, const double *v,
							MemoryContext cxt, QdbTrialResult *r);

/* autotune_speed.c */
extern double QdbTuneRowBytes(int code_size, int m);
extern bool QdbTuneMeasureWalks(QdbTune *t, const QdbModel *model, int mi, int ei,
								QdbTrialResult *r);

#endif							/* QDB_AUTOTUNE_H */
