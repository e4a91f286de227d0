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
 * finished one.  Stages 1 and 2 never repeat a point's settings.  n1, n2,
 * n3 are 30, 15 and 5 for a budget of 10 minutes or more, fewer for less
 * (at least 6, 3 and 1), or are given (stage_trials).  Stage 1 may run
 * until 30% of the budget, stage 2 until 65%; a trial is not started past
 * its stage's end or when the finished trials of its kind say it would
 * pass it ("skipped"), and one is stopped at the budget's end ("over
 * budget"); one that fails (an ERROR, say past maintenance_work_mem) is a
 * WARNING and "failed", and the run goes on (autotune_stages.c).  Each
 * trial is one NOTICE and one row of quantumdb.autotune_trials, written as
 * it ends by a background worker (training_log.c) so that other sessions
 * see it.
 *
 * Scores are counted, not timed (autotune_trial.c, autotune_speed.c), and
 * the proposals are seeded: a seed gives the same trials in the same order
 * and the same choice, as long as the same trials fit in the budget and
 * neural trials train on the CPU (the CUDA step's atomic sums vary).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_opclass.h"
#include "commands/defrem.h"
#include "commands/sequence.h"
#include "datatype/timestamp.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/catcache.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "autotune.h"
#include "qdb_internal.h"

PG_FUNCTION_INFO_V1(quantumdb_autotune);

#define GRAPH_ROWS		4000	/* rows of the walks' graphs */

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
				 errmsg("%s must be between 0 and 100, not %.15g", what, v)));
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

/*
 * The operator class a CREATE INDEX on relid.column needs for metric, with
 * a leading space ("" for l2, the default of each type): real_cosine_ops,
 * vector_ip_ops, ..., schema-qualified when the search path does not find
 * it (the extension installed in a schema off the path).  Of several
 * classes of that name for the access method, one an extension installed.
 */
static const char *
opclass_for(Oid relid, const char *column, QdbMetric metric)
{
	QdbVecType	t = QdbVecTypeOf(getBaseType(get_atttype(relid, get_attnum(relid, column))));
	char	   *name;
	CatCList   *list;
	Oid			found = InvalidOid;

	if (metric == QDB_METRIC_L2)
		return "";
	name = psprintf("%s_%s_ops",
					t == QDB_VEC_VECTOR ? "vector" : t == QDB_VEC_HALFVEC ? "halfvec" : "real",
					qdb_metric_name(metric));
	list = SearchSysCacheList2(CLAAMNAMENSP,
							   ObjectIdGetDatum(get_am_oid("quantumdb", false)),
							   CStringGetDatum(name));
	for (int i = 0; i < list->n_members; i++)
	{
		Oid			oid = ((Form_pg_opclass) GETSTRUCT(&list->members[i]->tuple))->oid;

		if (!OidIsValid(found) ||
			OidIsValid(getExtensionOfObject(OperatorClassRelationId, oid)))
			found = oid;
	}
	ReleaseSysCacheList(list);
	if (OidIsValid(found))
		name = generate_opclass_name(found);
	return psprintf(" %s", name);
}

/* stage_trials: three counts of trials, each 1 to 1000, instead of the budget's */
static void
stage_trials_arg(FunctionCallInfo fcinfo, int n, int *counts)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;

	/* a definition from before stage_trials passes fewer arguments */
	if (PG_NARGS() <= n || PG_ARGISNULL(n))
		return;
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(n), INT4OID, 4, true, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	if (nelems != TUNE_NSTAGES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stage_trials must hold 3 counts, one per stage, not %d", nelems)));
	for (int i = 0; i < TUNE_NSTAGES; i++)
	{
		if (nulls[i] || DatumGetInt32(elems[i]) < 1 || DatumGetInt32(elems[i]) > 1000)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("stage_trials counts must be between 1 and 1000")));
		counts[i] = DatumGetInt32(elems[i]);
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
	QdbTuneRun *rs = palloc0(sizeof(QdbTuneRun));
	QdbTune    *t = &rs->t;
	char	   *name;
	Oid			relid;
	char	   *column;
	double		budget,
				t0 = qdb_now();
	int			sample_rows,
				validation_rows,
				counts[TUNE_NSTAGES];
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

	/* as quantumdb.train: on a standby or in a read-only transaction, 25006 */
	PreventCommandIfReadOnly("quantumdb.autotune()");
	QdbCheckTableInsert("compressors", "The auto-tuner stores the compressor it keeps there.");
	QdbCheckNewCompressorName(name);
	QdbCheckTableInsert("autotune_trials", "The auto-tuner writes one row per trial there.");
	rs->log.run = nextval_internal(get_relname_relid("autotune_run_seq",
													 get_namespace_oid("quantumdb", false)),
								   false);
	rs->log.compressor = name;

	/*
	 * the sample: as quantumdb.train draws it; under cosine, unit rows.  It
	 * is sized for the hungriest kind searched at its defaults
	 * (train_backend.c's estimates); a kind whose training cannot take the
	 * fewest rows a search needs within maintenance_work_mem is left out,
	 * with a NOTICE (at the default 64MB, neural, and rq past about 60
	 * dimensions), while another remains.
	 */
	{
		QdbTrainConfig fits[lengthof(t->kinds)];
		bool		left_out[lengthof(t->kinds)];
		int			kept = 0;

		for (int i = 0; i < t->nkinds; i++)
		{
			qdb_train_config_init(&fits[i]);
			fits[i].kind = t->kinds[i];
			fits[i].metric = t->metric;
		}
		QdbSampleColumnKinds(relid, column, sample_rows + validation_rows, t->seed,
							 t->metric == QDB_METRIC_COSINE, fits, t->nkinds,
							 TUNE_MIN_SAMPLE, left_out, &s);
		for (int i = 0; i < t->nkinds; i++)
			if (!left_out[i])
				t->kinds[kept++] = t->kinds[i];
		t->nkinds = kept;
	}
	/* split as quantumdb.train splits */
	QdbSplitSample(s.n, sample_rows, validation_rows, &t->n_train, &t->n_val);
	if (t->n_train < 1000 || t->n_val < 10)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("too few vectors to tune on: %d distinct non-NULL vectors, at least %d needed",
						s.n, TUNE_MIN_SAMPLE),
				 errdetail("A tenth of the rows (at most validation) are held out, and trials train on at least 1000.")));
	t->dim = s.dim;
	t->x = s.x;
	t->table_rows = (double) s.rows_seen;	/* the sample scans every row */
	t->graph_rows = Min(t->n_train, GRAPH_ROWS);
	/*
	 * The walks' rows, a copy: the graphs' exact distances need unit rows
	 * under cosine, and the trials train on the rows as sampled (exactly
	 * what quantumdb.train gets for the same seed and sizes).
	 */
	{
		int			nw = t->graph_rows + t->n_val;
		float	   *w = palloc_extended(sizeof(float) * (Size) nw * s.dim, MCXT_ALLOC_HUGE);

		memcpy(w, s.x, sizeof(float) * (Size) t->graph_rows * s.dim);
		memcpy(w + (Size) t->graph_rows * s.dim, s.x + (Size) t->n_train * s.dim,
			   sizeof(float) * (Size) t->n_val * s.dim);
		if (t->metric == QDB_METRIC_COSINE)
			for (int i = 0; i < nw; i++)
				QdbNormalize(w + (Size) i * s.dim, s.dim);
		t->walk_x = w;
	}
	t->graph_cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb autotune graphs",
										 ALLOCSET_DEFAULT_SIZES);
	t->mid_recalls = palloc(sizeof(double));
	t->val_kth = palloc(sizeof(float) * t->n_val);
	t->val_kth_known = 0;
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
	rs->done = palloc(sizeof(QdbTuneFinished) * (counts[0] + counts[1] + counts[2]));
	rs->best_v = palloc(sizeof(double) * TP_COUNT);
	rs->tried = palloc(sizeof(char *) * (counts[0] + counts[1] + counts[2]));
	/* what a pruned point is told before any trial finished: the lowest score */
	rs->min_score = -t->w.memory;
	ereport(NOTICE,
			(errmsg("autotune \"%s\" (run " INT64_FORMAT ", %s): %d training and %d validation vectors of %d dimensions, budget %.0f s: %d, %d and %d trials in stages 1, 2 and 3",
					name, rs->log.run, qdb_metric_name(t->metric), t->n_train, t->n_val,
					t->dim, budget, counts[0], counts[1], counts[2])));

	QdbTuneRunStage(rs, 1, counts[0], t0 + 0.30 * budget);
	QdbTuneRunStage(rs, 2, counts[1], t0 + 0.65 * budget);
	QdbTuneRunStage(rs, 3, counts[2], t->deadline);
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
			 errhint("CREATE INDEX ON %s USING quantumdb (%s%s) WITH (%s);",
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												get_rel_name(relid)),
					 quote_identifier(column), opclass_for(relid, column, t->metric),
					 opts.data)));

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
