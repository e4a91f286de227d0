/*
 * autotune_stages.c
 *	  The auto-tuner's stages: which points each tries, whether a trial
 *	  may start, running it (in a subtransaction), its row and NOTICE, and
 *	  which trial is kept (see autotune.c for the plan).
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "autotune.h"
#include "qdb_internal.h"

static const QdbTuneStage *const stages = QdbTuneStages;

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
	QdbTuneRun   *rs;
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
write_trial_row(QdbTuneRun *rs, const QdbTrialRow *row)
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
report_trial(QdbTuneRun *rs, int stage, const double *v, const QdbTrialResult *r,
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

/*
 * Would a trial of kind on rows training rows at stage st pass end?  The
 * estimate: seconds of training per row of the kind's finished trials at
 * this stage, or at the latest earlier stage scaled by QdbTuneWorkRatio, plus the
 * mean scoring time.  Without any finished trial of the kind, only a stage
 * already past its end says yes.
 */
static bool
would_overrun(QdbTuneRun *rs, QdbKind kind, const QdbTuneStage *st, int rows, double end)
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
			QdbTuneRan	ran;

			ran.opq_alternations = rs->opq_ran[k][s] / rs->per_row_n[k][s];
			ran.opq_all_stalled = rs->opq_stalled[k][s] == rs->per_row_n[k][s];
			per_row *= QdbTuneWorkRatio(kind, st, &stages[s], &ran);
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
settings_of(QdbTuneRun *rs, const double *v)
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
next_point(QdbTuneRun *rs, int stage, double *v)
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
run_trial(QdbTuneRun *rs, const QdbTuneStage *st, const double *v, double stage_end)
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
	/* an alternation count not known (-1) makes the mean <= 0: not used */
	rs->opq_ran[kind_slot(t, kind)][st->stage - 1] += r.model.opq_alternations;
	if (QdbTuneStalled(st, r.model.opq_alternations))
		rs->opq_stalled[kind_slot(t, kind)][st->stage - 1]++;
	rs->scoring += r.seconds - r.train_seconds - r.graph_seconds;
	rs->scoring_n++;
	/* the lowest finished score (before any, -w_memory: the lowest possible) */
	rs->min_score = rs->ndone == 0 ? r.score : Min(rs->min_score, r.score);
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
	const QdbTuneFinished *x = a,
			   *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return 0;
}

/* The n best finished points of stage (fewer if fewer finished); how many. */
static int
best_of_stage(QdbTuneRun *rs, int stage, int n, double **out)
{
	QdbTuneFinished *f = palloc(sizeof(QdbTuneFinished) * Max(rs->ndone, 1));
	int			nf = 0;

	for (int i = 0; i < rs->ndone; i++)
		if (rs->done[i].stage == stage)
			f[nf++] = rs->done[i];
	/* a stable order for equal scores: the earlier trial first */
	for (int i = 1; i < nf; i++)
		for (int j = i; j > 0 && cmp_finished(&f[j - 1], &f[j]) > 0; j--)
		{
			QdbTuneFinished x = f[j];

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

/*
 * Runs count trials of stage (1: random points, 2: TPE's, 3: the best
 * distinct points of stage 2, or of stage 1 when stage 2 finished none),
 * starting none that would pass end.
 */
void
QdbTuneRunStage(QdbTuneRun *rs, int stage, int count, double end)
{
	const QdbTuneStage *st = &stages[stage - 1];

	if (stage < 3)
	{
		for (int i = 0; i < count; i++)
		{
			double		v[TP_COUNT];

			next_point(rs, stage, v);
			run_trial(rs, st, v, end);
		}
		return;
	}
	{
		double	  **top = palloc(sizeof(double *) * count);
		int			ntop = best_of_stage(rs, 2, count, top);

		if (ntop == 0)
			ntop = best_of_stage(rs, 1, count, top);
		for (int i = 0; i < ntop; i++)
			run_trial(rs, st, top[i], end);
		pfree(top);
	}
}
