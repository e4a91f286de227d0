/*
 * autotune.c
 *	  quantumdb.autotune(): trains and keeps the best compressor for a
 *	  column within a time budget, and recommends the index's m and
 *	  ef_construction.
 *
 * One sample of the column (training rows plus held-out rows, as
 * quantumdb.train draws it) serves every trial.  Three stages:
 *  1. random search: n1 points drawn from the space, each trained briefly
 *     (10% of the training rows, 2 neural epochs, fewer k-means and OPQ
 *     iterations);
 *  2. TPE (tune_search.c, told every finished trial's score): n2 points on
 *     50% of the rows, 4 neural epochs; a neural trial whose validation
 *     recall at epoch 2 is below the median of the stage's earlier ones
 *     there is pruned;
 *  3. the best n3 points of stage 2 (stage 1 when stage 2 finished none)
 *     trained fully (all rows, the kinds' default iterations and epochs).
 * The kept compressor is the best-scoring trial of the last stage that
 * finished one.  n1, n2, n3 are 30, 15 and 5 for a budget of 10 minutes
 * and scale with it (at least 6, 3 and 1), or are given (stage_trials).  Stage 1 may run until 30% of
 * the budget, stage 2 until 65%; a trial is not started when the seconds
 * per training row of the finished trials of its kind say it would pass
 * its stage's end (a row with status "skipped"), and a running one is
 * stopped at the budget's end ("over budget"); one that fails (an ERROR,
 * say past maintenance_work_mem) is a WARNING and "failed", and the run
 * goes on.  Each trial is one NOTICE
 * and one row of quantumdb.autotune_trials, written as it ends by a
 * background worker (training_log.c) so that other sessions see it.
 *
 * Scores are counted, not timed (autotune_trial.c, autotune_speed.c), and
 * the proposals are seeded: a seed gives the same trials in the same order
 * and the same choice, as long as the same trials fit in the budget.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/sequence.h"
#include "datatype/timestamp.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "autotune.h"
#include "qdb_internal.h"

PG_FUNCTION_INFO_V1(quantumdb_autotune);

#define GRAPH_ROWS		4000	/* rows of the walks' graphs */
#define NSTAGES			3

static const QdbTuneStage stages[NSTAGES] = {
	/* stage, share, epochs, prune_epoch, kmeans_iters, opq_iters */
	{1, 0.10, 2, 0, 10, 10},
	{2, 0.50, 4, 2, 15, 25},
	{3, 1.00, 10, 0, 25, 50},
};

/* A finished trial: its point and score (stage 3 picks from these). */
typedef struct Finished
{
	double	   *v;
	char	   *settings;		/* QdbTuneSettingsJson of v */
	double		score;
	int			stage;
} Finished;

typedef struct RunState
{
	QdbTune		t;
	QdbTuneSearch search;
	QdbTrainingLog log;
	int			trial;			/* trials started or skipped so far */
	int			npruned,
				nskipped,
				nfailed,
				ndone;
	Finished   *done;
	/* seconds of training per row of finished trials, per kind and stage */
	double		per_row[4][NSTAGES];
	int			per_row_n[4][NSTAGES];
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
} RunState;

static void
free_search(void *arg)
{
	qdb_tune_free((QdbTuneSearch *) arg);
}

static double
float_arg(FunctionCallInfo fcinfo, int n, const char *what, double dflt)
{
	double		v = PG_ARGISNULL(n) ? dflt : PG_GETARG_FLOAT8(n);

	if (!(v >= 0 && v <= 100))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between 0 and 100, not %g", what, v)));
	return v;
}

/* The kinds searched: all that support the metric, or the kinds argument's. */
static void
kinds_arg(FunctionCallInfo fcinfo, int n, QdbTune *t)
{
	static const QdbKind all[] = {QDB_KIND_PQ, QDB_KIND_OPQ, QDB_KIND_RQ, QDB_KIND_NEURAL};
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;

	t->nkinds = 0;
	if (PG_ARGISNULL(n))
	{
		for (int i = 0; i < lengthof(all); i++)
			if (!(all[i] == QDB_KIND_NEURAL && t->metric == QDB_METRIC_IP))
				t->kinds[t->nkinds++] = all[i];
		return;
	}
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(n), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	for (int i = 0; i < nelems; i++)
	{
		char	   *name;
		QdbKind		k;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("kinds must not hold NULL")));
		name = TextDatumGetCString(elems[i]);
		if (qdb_kind_parse(name, &k) != QDB_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown compressor kind \"%s\"", name),
					 errhint("The kinds are pq, opq, rq and neural.")));
		if (k == QDB_KIND_NEURAL && t->metric == QDB_METRIC_IP)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("kind neural does not support metric ip"),
					 errhint("Leave neural out of kinds, or use metric cosine or l2.")));
		{
			bool		dup = false;

			for (int j = 0; j < t->nkinds; j++)
				dup |= t->kinds[j] == k;
			if (!dup)
				t->kinds[t->nkinds++] = k;
		}
	}
	if (t->nkinds == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("kinds must name at least one kind")));
}

/* stage_trials: three counts of trials, each 1 to 1000, instead of the budget's */
static void
stage_trials_arg(FunctionCallInfo fcinfo, int n, int *counts)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;

	if (PG_ARGISNULL(n))
		return;
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(n), INT4OID, 4, true, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	if (nelems != NSTAGES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stage_trials must hold 3 counts, one per stage, not %d", nelems)));
	for (int i = 0; i < NSTAGES; i++)
	{
		if (nulls[i] || DatumGetInt32(elems[i]) < 1 || DatumGetInt32(elems[i]) > 1000)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("stage_trials counts must be between 1 and 1000")));
		counts[i] = DatumGetInt32(elems[i]);
	}
}

static int
kind_slot(const QdbTune *t, QdbKind k)
{
	for (int i = 0; i < t->nkinds; i++)
		if (t->kinds[i] == k)
			return i;
	return 0;
}

/*
 * Runs fn(arg) in a subtransaction; NULL, or the ERROR it raised (copied,
 * the subtransaction rolled back) unless that was a cancel or termination,
 * which is thrown on.
 */
static ErrorData *
in_subtransaction(void (*fn) (void *), void *arg, MemoryContext cxt)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *e = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		e = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		CurrentResourceOwner = oldowner;
		if (e->sqlerrcode == ERRCODE_QUERY_CANCELED || e->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN ||
			QueryCancelPending || ProcDiePending)
			ReThrowError(e);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	return e;
}

typedef struct RowCall
{
	RunState   *rs;
	const QdbTrialRow *row;
	bool		interrupted;
} RowCall;

static void
call_write_row(void *arg)
{
	RowCall    *c = arg;

	c->interrupted = !QdbAutotuneTrialWrite(&c->rs->log, c->row);
}

/*
 * Writes a trial's row (by a worker, or in a subtransaction of the run's
 * transaction when no worker could start): one that fails is counted and
 * a WARNING (QdbTrainingLogLost), never the end of the run.
 */
static void
write_trial_row(RunState *rs, const QdbTrialRow *row)
{
	RowCall		c = {rs, row, false};
	ErrorData  *e = in_subtransaction(call_write_row, &c, CurrentMemoryContext);

	if (e)
	{
		char		what[32];

		snprintf(what, sizeof(what), "trial %d", row->trial);
		QdbTrainingLogLost(&rs->log, what, e->message);
		FreeErrorData(e);
	}
	if (c.interrupted)
		CHECK_FOR_INTERRUPTS();
}

/* Writes the trial's row and says it in a NOTICE. */
static void
report_trial(RunState *rs, int stage, const double *v, const QdbTrialResult *r,
			 const char *status, int rows)
{
	QdbTrialRow row;
	StringInfoData s;

	memset(&row, 0, sizeof(row));
	initStringInfo(&s);
	QdbTuneSettingsJson(&rs->t, v, &s);
	row.trial = rs->trial;
	row.stage = stage;
	row.training_rows = rows;
	strlcpy(row.kind, qdb_kind_name(rs->t.kinds[(int) v[TP_KIND]]), sizeof(row.kind));
	strlcpy(row.status, status, sizeof(row.status));
	strlcpy(row.settings, s.data, sizeof(row.settings));
	if (r)
	{
		row.v[0] = r->quality;
		row.v[1] = r->compression;
		row.v[2] = r->speed;
		row.v[3] = r->memory;
		row.v[4] = r->score;
		row.v[5] = r->seconds;
		row.v[6] = strcmp(status, "done") == 0 ? r->walk_distances : NAN;
		row.v[7] = strcmp(status, "done") == 0 ? r->walk_us : NAN;
	}
	else
		for (int i = 0; i < 8; i++)
			row.v[i] = NAN;
	if (r && strcmp(status, "done") == 0)
		ereport(NOTICE,
				(errmsg("autotune \"%s\": stage %d trial %d (%s, %d rows): score %.4f (quality %.4f, compression %.4f, speed %.4f, memory %.4f) in %.1f s",
						rs->t.name, stage, rs->trial, row.kind, rows, r->score, r->quality,
						r->compression, r->speed, r->memory, r->seconds),
				 errdetail_internal("%s", s.data)));
	else
		ereport(NOTICE,
				(errmsg("autotune \"%s\": stage %d trial %d (%s, %d rows): %s",
						rs->t.name, stage, rs->trial, row.kind, rows, status),
				 errdetail_internal("%s", s.data)));
	write_trial_row(rs, &row);
	pfree(s.data);
}

/* The work of a trial at stage b relative to stage a, by what dominates its kind. */
static double
work_ratio(QdbKind kind, const QdbTuneStage *b, const QdbTuneStage *a)
{
	double		kmeans = (double) b->kmeans_iters / a->kmeans_iters,
				opq = (double) b->opq_iters / a->opq_iters;

	switch (kind)
	{
		case QDB_KIND_NEURAL:
			return Max((double) b->epochs / a->epochs, opq);
		case QDB_KIND_OPQ:
			return opq;
		default:
			return kmeans;
	}
}

/*
 * Would a trial of kind on rows training rows at stage st pass end?  The
 * estimate: seconds of training per row of the kind's finished trials at
 * this stage, or at the latest earlier stage scaled by work_ratio, plus the
 * mean scoring time.  Without any finished trial of the kind, only a stage
 * already past its end says yes.
 */
static bool
would_overrun(RunState *rs, QdbKind kind, const QdbTuneStage *st, int rows, double end)
{
	int			k = kind_slot(&rs->t, kind);
	double		now = qdb_now();

	if (now >= end)
		return true;
	for (int s = st->stage - 1; s >= 0; s--)
		if (rs->per_row_n[k][s] > 0)
		{
			double		per_row = rs->per_row[k][s] / rs->per_row_n[k][s];
			double		scoring = rs->scoring_n ? rs->scoring / rs->scoring_n : 0;

			per_row *= work_ratio(kind, st, &stages[s]);
			return now + per_row * rows + scoring > end;
		}
	return false;
}

typedef struct TrialCall
{
	QdbTune    *t;
	const QdbTuneStage *st;
	const double *v;
	MemoryContext cxt;
	QdbTrialResult *r;
} TrialCall;

static void
call_trial(void *arg)
{
	TrialCall  *c = arg;

	QdbTuneRunTrial(c->t, c->st, c->v, c->cxt, c->r);
}

/*
 * QdbTuneRunTrial in a subtransaction: a trial that fails (say, past
 * maintenance_work_mem) is a WARNING and false, and the run goes on.
 */
static bool
trial_in_subtransaction(QdbTune *t, const QdbTuneStage *st, const double *v,
						MemoryContext cxt, QdbTrialResult *r)
{
	TrialCall	c = {t, st, v, cxt, r};
	ErrorData  *e = in_subtransaction(call_trial, &c, cxt);

	if (e == NULL)
		return true;
	ereport(WARNING,
			(errcode(e->sqlerrcode),
			 errmsg("autotune \"%s\": a trial failed: %s", t->name, e->message),
			 e->hint ? errhint("%s", e->hint) : 0));
	FreeErrorData(e);
	return false;
}

/* Point v's settings as JSON (what trials compare to tell points apart). */
static char *
settings_of(RunState *rs, const double *v)
{
	StringInfoData s;

	initStringInfo(&s);
	QdbTuneSettingsJson(&rs->t, v, &s);
	return s.data;
}

/*
 * The next point of stage 1 (random) or 2 (TPE): one whose settings no
 * trial has had, if one is found in 32 draws (irrelevant parameters, such
 * as a pq point's learning rate, and target dims past the column's make
 * many points one setting, and TPE, sure of a good region, proposes its
 * mode again); stage 2's last 16 draws are random.
 */
static void
next_point(RunState *rs, int stage, double *v)
{
	for (int attempt = 0; attempt < 32; attempt++)
	{
		char	   *settings;
		bool		seen = false;

		if (stage == 1 || attempt >= 16)
			qdb_tune_random(&rs->search, v);
		else
			qdb_tune_propose(&rs->search, v);
		settings = settings_of(rs, v);
		for (int i = 0; i < rs->ntried && !seen; i++)
			seen = strcmp(rs->tried[i], settings) == 0;
		pfree(settings);
		if (!seen)
			return;
	}
}

/* Runs point v at stage st; keeps its model when it is the best so far. */
static void
run_trial(RunState *rs, const QdbTuneStage *st, const double *v, double stage_end)
{
	QdbTune    *t = &rs->t;
	char	   *settings = settings_of(rs, v);
	QdbKind		kind = t->kinds[(int) v[TP_KIND]];
	int			rows = Min(t->n_train, Max((int) ceil(st->share * t->n_train),
										  Min(t->n_train, 1000)));
	MemoryContext cxt;
	QdbTrialResult r;

	CHECK_FOR_INTERRUPTS();
	rs->trial++;
	rs->tried[rs->ntried++] = settings;
	if (would_overrun(rs, kind, st, rows, Min(stage_end, t->deadline)))
	{
		rs->nskipped++;
		report_trial(rs, st->stage, v, NULL, "skipped", rows);
		return;
	}
	cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb autotune trial",
								ALLOCSET_DEFAULT_SIZES);
	if (!trial_in_subtransaction(t, st, v, cxt, &r))
	{
		rs->nfailed++;
		report_trial(rs, st->stage, v, NULL, "failed", rows);
		MemoryContextDelete(cxt);
		return;
	}
	report_trial(rs, st->stage, v, &r, r.status, r.training_rows);

	if (strcmp(r.status, "done") != 0)
	{
		if (strcmp(r.status, "pruned") == 0)
		{
			rs->npruned++;
			/* TPE learns a pruned point as the worst seen */
			(void) qdb_tune_tell(&rs->search, v, rs->min_score);
		}
		MemoryContextDelete(cxt);
		return;
	}
	rs->per_row[kind_slot(t, kind)][st->stage - 1] += r.train_seconds / r.training_rows;
	rs->per_row_n[kind_slot(t, kind)][st->stage - 1]++;
	rs->scoring += r.seconds - r.train_seconds - r.graph_seconds;
	rs->scoring_n++;
	rs->min_score = Min(rs->min_score, r.score);
	(void) qdb_tune_tell(&rs->search, v, r.score);
	rs->done[rs->ndone].v = palloc(sizeof(double) * TP_COUNT);
	memcpy(rs->done[rs->ndone].v, v, sizeof(double) * TP_COUNT);
	rs->done[rs->ndone].settings = settings;
	rs->done[rs->ndone].score = r.score;
	rs->done[rs->ndone].stage = st->stage;
	rs->ndone++;

	if (st->stage > rs->best_stage || r.score > rs->best.score)
	{
		if (rs->best_cxt)
			MemoryContextDelete(rs->best_cxt);
		rs->best_cxt = cxt;
		rs->best = r;
		rs->best_stage = st->stage;
		memcpy(rs->best_v, v, sizeof(double) * TP_COUNT);
	}
	else
		MemoryContextDelete(cxt);
}

static int
cmp_finished(const void *a, const void *b)
{
	const Finished *x = a,
			   *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return 0;
}

/* The n best finished points of stage (fewer if fewer finished); how many. */
static int
best_of_stage(RunState *rs, int stage, int n, double **out)
{
	Finished   *f = palloc(sizeof(Finished) * Max(rs->ndone, 1));
	int			nf = 0;

	for (int i = 0; i < rs->ndone; i++)
		if (rs->done[i].stage == stage)
			f[nf++] = rs->done[i];
	/* a stable order for equal scores: the earlier trial first */
	for (int i = 1; i < nf; i++)
		for (int j = i; j > 0 && cmp_finished(&f[j - 1], &f[j]) > 0; j--)
		{
			Finished	x = f[j];

			f[j] = f[j - 1];
			f[j - 1] = x;
		}
	/* distinct settings only: the first (best) of each */
	{
		int			nout = 0;

		for (int i = 0; i < nf && nout < n; i++)
		{
			bool		seen = false;

			for (int j = 0; j < i; j++)
				seen |= strcmp(f[j].settings, f[i].settings) == 0;
			if (!seen)
				out[nout++] = f[i].v;
		}
		return nout;
	}
}

static double
interval_seconds(Interval *iv)
{
	return iv->time / 1e6 + iv->day * (double) SECS_PER_DAY +
		iv->month * (double) DAYS_PER_MONTH * SECS_PER_DAY;
}

/*
 * quantumdb.autotune(name, source, column, metric, budget, w_quality,
 *                    w_compression, w_speed, w_memory, seed, sample,
 *                    validation, kinds, stage_trials)
 */
Datum
quantumdb_autotune(PG_FUNCTION_ARGS)
{
	RunState   *rs = palloc0(sizeof(RunState));
	QdbTune    *t = &rs->t;
	char	   *name;
	Oid			relid;
	char	   *column;
	double		budget,
				t0 = qdb_now();
	int			sample_rows,
				validation_rows,
				counts[NSTAGES];
	QdbSample	s;
	MemoryContextCallback *cb;
	StringInfoData extra,
				opts;
	TupleDesc	tupdesc;
	Datum		values[11];
	bool		nulls[11] = {0};

	for (int i = 0; i < 3; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be NULL", i == 0 ? "name" : i == 1 ? "source" : "column")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	relid = PG_GETARG_OID(1);
	column = NameStr(*PG_GETARG_NAME(2));
	t->name = name;
	t->metric = QDB_METRIC_L2;
	if (!PG_ARGISNULL(3))
	{
		char	   *metric = text_to_cstring(PG_GETARG_TEXT_PP(3));

		if (qdb_metric_parse(metric, &t->metric) != QDB_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown metric \"%s\"", metric),
					 errhint("The metrics are l2, ip and cosine.")));
	}
	budget = PG_ARGISNULL(4) ? 600 : interval_seconds(PG_GETARG_INTERVAL_P(4));
	if (!(budget >= 1 && budget <= 7 * SECS_PER_DAY))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("budget must be between 1 second and 7 days")));
	t->w.quality = float_arg(fcinfo, 5, "w_quality", 0.4);
	t->w.compression = float_arg(fcinfo, 6, "w_compression", 0.1);
	t->w.speed = float_arg(fcinfo, 7, "w_speed", 0.4);
	t->w.memory = float_arg(fcinfo, 8, "w_memory", 0.1);
	if (PG_ARGISNULL(9) || PG_GETARG_INT64(9) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("seed must be a non-negative number")));
	t->seed = (uint64) PG_GETARG_INT64(9);
	sample_rows = QdbIntArg(fcinfo, 10, "sample", 1000, 2000000, 50000);
	validation_rows = QdbIntArg(fcinfo, 11, "validation", 10, 10000, 500);
	kinds_arg(fcinfo, 12, t);
	t->deadline = t0 + budget;

	QdbCheckTableInsert("compressors", "The auto-tuner stores the compressor it keeps there.");
	QdbCheckNewCompressorName(name);
	QdbCheckTableInsert("autotune_trials", "The auto-tuner writes one row per trial there.");
	rs->log.run = nextval_internal(get_relname_relid("autotune_run_seq",
													 get_namespace_oid("quantumdb", false)),
								   false);
	rs->log.compressor = name;

	/* the sample: as quantumdb.train draws it; under cosine, unit rows */
	{
		QdbTrainConfig fit;

		qdb_train_config_init(&fit);
		/* sized for the hungriest kind searched (train_backend.c's estimates) */
		fit.kind = t->kinds[t->nkinds - 1];
		for (int i = 0; i < t->nkinds; i++)
			if (t->kinds[i] == QDB_KIND_NEURAL ||
				(t->kinds[i] == QDB_KIND_OPQ && fit.kind != QDB_KIND_NEURAL))
				fit.kind = t->kinds[i];
		fit.metric = t->metric;
		QdbSampleColumn(relid, column, sample_rows + validation_rows, t->seed,
						t->metric == QDB_METRIC_COSINE, &fit, &s);
	}
	t->n_val = Min(validation_rows, s.n / 10);
	t->n_train = s.n - t->n_val;
	if (t->n_train < 1000 || t->n_val < 10)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("too few vectors to tune on: %d non-NULL rows, at least 1111 needed",
						s.n),
				 errdetail("A tenth of the rows (at most validation) are held out, and trials train on at least 1000.")));
	t->dim = s.dim;
	t->x = s.x;
	if (t->metric == QDB_METRIC_COSINE)
		for (int i = 0; i < s.n; i++)
			QdbNormalize(s.x + (Size) i * s.dim, s.dim);
	t->table_rows = (double) s.rows_seen;	/* the sample scans every row */
	t->graph_rows = Min(t->n_train, GRAPH_ROWS);
	t->graph_cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb autotune graphs",
										 ALLOCSET_DEFAULT_SIZES);
	t->mid_recalls = palloc(sizeof(double));
	QdbTuneSpaceInit(t);

	if (qdb_tune_init(&rs->search, t->space, TP_COUNT, t->seed) != QDB_OK)
		elog(ERROR, "invalid auto-tuner search space");
	cb = palloc(sizeof(MemoryContextCallback));
	cb->func = free_search;
	cb->arg = &rs->search;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);

	counts[0] = Max(6, Min(30, (int) rint(30 * budget / 600)));
	counts[1] = Max(3, Min(15, (int) rint(15 * budget / 600)));
	counts[2] = Max(1, Min(5, (int) rint(5 * budget / 600)));
	stage_trials_arg(fcinfo, 13, counts);
	rs->done = palloc(sizeof(Finished) * (counts[0] + counts[1] + counts[2]));
	rs->best_v = palloc(sizeof(double) * TP_COUNT);
	rs->tried = palloc(sizeof(char *) * (counts[0] + counts[1] + counts[2]));
	/* what a pruned point is told before any trial finished: the lowest score */
	rs->min_score = -t->w.memory;
	ereport(NOTICE,
			(errmsg("autotune \"%s\" (run " INT64_FORMAT ", %s): %d training and %d validation vectors of %d dimensions, budget %.0f s: %d, %d and %d trials in stages 1, 2 and 3",
					name, rs->log.run, qdb_metric_name(t->metric), t->n_train, t->n_val,
					t->dim, budget, counts[0], counts[1], counts[2])));

	/* stage 1: random search */
	for (int i = 0; i < counts[0]; i++)
	{
		double		v[TP_COUNT];

		next_point(rs, 1, v);
		run_trial(rs, &stages[0], v, t0 + 0.30 * budget);
	}
	/* stage 2: TPE, told every finished trial, with median pruning */
	for (int i = 0; i < counts[1]; i++)
	{
		double		v[TP_COUNT];

		next_point(rs, 2, v);
		run_trial(rs, &stages[1], v, t0 + 0.65 * budget);
	}
	/* stage 3: the best of stage 2 (or 1) trained fully */
	{
		double	  **top = palloc(sizeof(double *) * counts[2]);
		int			ntop = best_of_stage(rs, 2, counts[2], top);

		if (ntop == 0)
			ntop = best_of_stage(rs, 1, counts[2], top);
		for (int i = 0; i < ntop; i++)
			run_trial(rs, &stages[2], top[i], t->deadline);
	}
	QdbTrainingLogEnd(&rs->log);

	if (rs->best_stage == 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("autotune \"%s\" finished no trial within its budget of %.0f s", name, budget),
				 errhint("Raise budget, or lower sample.")));

	/* keep the best, with its settings and the run that chose it */
	initStringInfo(&extra);
	appendStringInfoString(&extra, "\"source\": ");
	escape_json(&extra, get_rel_name(relid));
	appendStringInfoString(&extra, ", \"column\": ");
	escape_json(&extra, column);
	appendStringInfo(&extra, ", \"training_rows\": %d, \"validation_rows\": %d"
					 ", \"autotune_run\": " INT64_FORMAT ", \"autotune_stage\": %d"
					 ", \"m\": %d, \"ef_construction\": %d",
					 rs->best.training_rows, t->n_val, rs->log.run, rs->best_stage,
					 rs->best.m, rs->best.ef_construction);
	QdbStoreCompressor(name, &rs->best.model, extra.data, rs->best.seconds,
					   rs->best.quality, relid, column);
	initStringInfo(&opts);
	appendStringInfoString(&opts, "compressor = ");
	appendStringInfoString(&opts, quote_literal_cstr(name));
	appendStringInfo(&opts, ", m = %d, ef_construction = %d", rs->best.m,
					 rs->best.ef_construction);
	ereport(NOTICE,
			(errmsg("autotune \"%s\": kept stage %d's best, %s, score %.4f, 10-recall@10 %.4f, after %d trials (%d pruned, %d skipped) in %.1f s",
					name, rs->best_stage, qdb_kind_name(rs->best.model.kind), rs->best.score,
					rs->best.quality, rs->trial, rs->npruned, rs->nskipped,
					qdb_now() - t0),
			 errhint("CREATE INDEX ON %s USING quantumdb (%s) WITH (%s);",
					 get_rel_name(relid), quote_identifier(column), opts.data)));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	{
		StringInfoData settings;

		initStringInfo(&settings);
		QdbTuneSettingsJson(t, rs->best_v, &settings);
		values[0] = CStringGetTextDatum(name);
		values[1] = Int64GetDatum(rs->log.run);
		values[2] = CStringGetTextDatum(qdb_kind_name(rs->best.model.kind));
		values[3] = DirectFunctionCall1(jsonb_in, CStringGetDatum(settings.data));
	}
	values[4] = Float8GetDatum(rs->best.quality);
	values[5] = Float8GetDatum(rs->best.score);
	values[6] = Int32GetDatum(rs->trial);
	values[7] = Int32GetDatum(rs->npruned);
	values[8] = Int32GetDatum(rs->nskipped);
	values[9] = Float8GetDatum(qdb_now() - t0);
	values[10] = CStringGetTextDatum(opts.data);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
