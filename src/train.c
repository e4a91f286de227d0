/*
 * train.c
 *	  quantumdb.train(): sample a real[] column through SPI, hold out a
 *	  validation split, train on the CPU backend, store the model in the
 *	  catalog and return a summary row.
 *
 * Progress goes out as NOTICE lines from the trainer's callback; the same
 * callback turns a pending query cancel into a clean stop (the trainer
 * frees its memory and returns), and CHECK_FOR_INTERRUPTS runs after it.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/acl.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "qdb_internal.h"
#include "quantumdb.h"

PG_FUNCTION_INFO_V1(quantumdb_train);

#define MIN_TRAIN_ROWS	QDB_KSUB
#define MAX_SAMPLE		2000000

typedef struct TrainProgress
{
	const char *name;
	const char *last_stage;
	double		last_notice;
} TrainProgress;

/* One NOTICE per stage change, stage end, or second; nonzero on cancel. */
static int
train_progress(const QdbEpochStats *s, void *arg)
{
	TrainProgress *p = arg;
	bool		changed = p->last_stage == NULL || strcmp(p->last_stage, s->stage) != 0;

	if (QueryCancelPending || ProcDiePending)
		return 1;
	if (changed || s->iter == s->iters || s->seconds - p->last_notice >= 1.0)
	{
		ereport(NOTICE,
				(errmsg("training \"%s\": %s %d/%d, mean squared error %.6g, %.1f s",
						p->name, s->stage, s->iter, s->iters, s->loss, s->seconds)));
		p->last_notice = s->seconds;
	}
	p->last_stage = s->stage;
	return 0;
}

typedef struct BackendHandle
{
	const QdbBackend *backend;
	void	   *ctx;
} BackendHandle;

/* Memory-context reset callback: the backend frees what it holds. */
static void
close_backend(void *arg)
{
	BackendHandle *h = arg;

	if (h->ctx)
		h->backend->close(h->ctx);
	h->ctx = NULL;
}

/*
 * Trains a compressor on x (n rows of cfg->dim) with the cpu backend, the
 * model's arrays in tcxt, whose reset closes the backend (also when an
 * ERROR unwinds).  NOTICEs report progress; a query cancel stops it.
 * Returns the training time in seconds.
 */
double
QdbTrainModel(const char *name, const float *x, int n, QdbTrainConfig *cfg,
			  MemoryContext tcxt, QdbModel *model)
{
	MemoryContextCallback *cb;
	BackendHandle *h;
	const QdbAlloc *alloc;
	TrainProgress progress = {0};
	char		err[256];
	double		t0,
				seconds;
	int			rc;

	alloc = QdbContextAlloc(tcxt);
	h = MemoryContextAllocZero(tcxt, sizeof(BackendHandle));
	h->backend = qdb_cpu_backend();
	cb = MemoryContextAlloc(tcxt, sizeof(MemoryContextCallback));
	cb->func = close_backend;
	cb->arg = h;
	MemoryContextRegisterResetCallback(tcxt, cb);
	err[0] = '\0';
	rc = h->backend->open(&h->ctx, alloc, err, sizeof(err));
	QdbReportStatus(rc, "could not open the cpu backend", err[0] ? err : NULL);

	progress.name = name;
	memset(model, 0, sizeof(*model));
	t0 = qdb_now();
	rc = h->backend->train(h->ctx, x, n, cfg, model, train_progress, &progress);
	seconds = qdb_now() - t0;
	CHECK_FOR_INTERRUPTS();
	QdbReportStatus(rc, "training failed", NULL);
	return seconds;
}

static int
int_arg(FunctionCallInfo fcinfo, int n, const char *what, int lo, int hi, int dflt)
{
	int			v;

	if (PG_ARGISNULL(n))
		return dflt;
	v = PG_GETARG_INT32(n);
	if (v < lo || v > hi)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between %d and %d, not %d", what, lo, hi, v)));
	return v;
}

static void
require_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", what)));
}

static void
check_catalog_insert(void)
{
	Oid			nsp = get_namespace_oid("quantumdb", false);
	Oid			rel = get_relname_relid("compressors", nsp);

	if (!OidIsValid(rel))
		elog(ERROR, "catalog table quantumdb.compressors is missing");
	if (pg_class_aclcheck(rel, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table quantumdb.compressors"),
				 errdetail("Training stores the compressor there."),
				 errhint("An administrator can GRANT INSERT ON quantumdb.compressors.")));
}

/*
 * quantumdb.train(name, source, column, kind, metric, subvectors, target_dim,
 *                 sample, validation, seed, kmeans_iters, opq_iters)
 */
Datum
quantumdb_train(PG_FUNCTION_ARGS)
{
	char	   *name;
	Oid			relid;
	char	   *column;
	QdbTrainConfig cfg;
	int			sample_rows,
				validation_rows,
				n_val,
				n_train,
				rc;
	QdbSample	s;
	MemoryContext tcxt;
	QdbModel	model;
	double		seconds,
				recall;
	StringInfoData extra;
	TupleDesc	tupdesc;
	Datum		values[10];
	bool		nulls[10] = {0};

	require_arg(fcinfo, 0, "name");
	require_arg(fcinfo, 1, "source");
	require_arg(fcinfo, 2, "column");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	relid = PG_GETARG_OID(1);
	column = NameStr(*PG_GETARG_NAME(2));

	qdb_train_config_init(&cfg);
	if (!PG_ARGISNULL(3))
	{
		char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(3));

		if (qdb_kind_parse(kind, &cfg.kind) != QDB_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown compressor kind \"%s\"", kind),
					 errhint("The kinds are pq, opq and neural.")));
		if (cfg.kind == QDB_KIND_NEURAL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("compressor kind \"neural\" is not built yet"),
					 errhint("Use kind => 'opq' (the default) or 'pq'.")));
	}
	if (!PG_ARGISNULL(4))
	{
		char	   *metric = text_to_cstring(PG_GETARG_TEXT_PP(4));

		if (qdb_metric_parse(metric, &cfg.metric) != QDB_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown metric \"%s\"", metric),
					 errhint("The metrics are l2, ip and cosine.")));
	}
	cfg.subvectors = int_arg(fcinfo, 5, "subvectors", 1, QDB_MAX_SUBVECTORS, cfg.subvectors);
	cfg.target_dim = int_arg(fcinfo, 6, "target_dim", 1, QDB_MAX_DIM, 0);
	sample_rows = int_arg(fcinfo, 7, "sample", MIN_TRAIN_ROWS, MAX_SAMPLE, 50000);
	validation_rows = int_arg(fcinfo, 8, "validation", 0, 100000, 1000);
	if (!PG_ARGISNULL(9))
	{
		int64		seed = PG_GETARG_INT64(9);

		if (seed < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("seed must not be negative")));
		cfg.seed = (uint64) seed;
	}
	cfg.kmeans_iters = int_arg(fcinfo, 10, "kmeans_iters", 1, 1000, cfg.kmeans_iters);
	cfg.opq_iters = int_arg(fcinfo, 11, "opq_iters", 1, 1000, cfg.opq_iters);
	if (cfg.target_dim != 0 && cfg.target_dim % cfg.subvectors != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target_dim %d is not a multiple of subvectors %d",
						cfg.target_dim, cfg.subvectors)));

	/* fail before the work, not after it, when the model cannot be stored */
	check_catalog_insert();

	/* sample the column: training rows plus the validation split */
	QdbSampleColumn(relid, column, sample_rows + validation_rows, cfg.seed,
					cfg.metric == QDB_METRIC_COSINE, &s);
	n_val = Min(validation_rows, s.n / 10);
	n_train = s.n - n_val;
	if (n_train < MIN_TRAIN_ROWS)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("too few vectors to train on: %d non-NULL rows, at least %d needed",
						s.n, MIN_TRAIN_ROWS + MIN_TRAIN_ROWS / 9),
				 errdetail("Each of the %d sub-quantizers has %d centroids.",
						   cfg.subvectors, QDB_KSUB)));
	cfg.dim = s.dim;
	if (cfg.target_dim > s.dim)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target_dim %d is larger than the column's %d dimensions",
						cfg.target_dim, s.dim)));
	if ((cfg.target_dim ? cfg.target_dim : s.dim) < cfg.subvectors)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("subvectors %d is more than the %d dimensions to quantize",
						cfg.subvectors, cfg.target_dim ? cfg.target_dim : s.dim),
				 errhint("Each sub-quantizer needs at least one dimension.")));
	rc = qdb_train_config_check(&cfg);
	QdbReportStatus(rc, "invalid training settings", NULL);
	ereport(NOTICE,
			(errmsg("training \"%s\" (%s, %s): %d training and %d validation vectors of %d dimensions, sampled from " INT64_FORMAT " rows",
					name, qdb_kind_name(cfg.kind), qdb_metric_name(cfg.metric),
					n_train, n_val, s.dim, s.rows_seen)));

	tcxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb training",
								 ALLOCSET_DEFAULT_SIZES);
	seconds = QdbTrainModel(name, s.x, n_train, &cfg, tcxt, &model);

	recall = -1;
	if (n_val > 0)
	{
		rc = qdb_adc_recall(&model, s.x, n_train, s.x + (Size) n_train * s.dim, n_val, 10,
							&recall);
		QdbReportStatus(rc, "validation failed", NULL);
	}

	initStringInfo(&extra);
	appendStringInfoString(&extra, "\"source\": ");
	escape_json(&extra, get_rel_name(relid));
	appendStringInfoString(&extra, ", \"column\": ");
	escape_json(&extra, column);
	appendStringInfo(&extra, ", \"training_rows\": %d, \"validation_rows\": %d",
					 n_train, n_val);
	QdbStoreCompressor(name, &model, extra.data, seconds, recall);
	ereport(NOTICE,
			(errmsg("trained \"%s\" in %.1f s: 10-recall@10 on the validation split %.3f",
					name, seconds, recall)));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(qdb_kind_name(model.kind));
	values[2] = CStringGetTextDatum(qdb_metric_name(model.metric));
	values[3] = Int32GetDatum(model.dim);
	values[4] = Int32GetDatum((int32) qdb_code_size(&model));
	values[5] = Int32GetDatum(n_train);
	values[6] = Int32GetDatum(n_val);
	values[7] = Int64GetDatum(s.rows_seen);
	values[8] = Float8GetDatum(seconds);
	values[9] = Float8GetDatum(recall);
	nulls[9] = recall < 0;
	MemoryContextDelete(tcxt);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
