/*
 * train.c
 *	  quantumdb.train(): check the settings, sample a real[] column through
 *	  SPI, hold out a validation split, train (train_backend.c), store the
 *	  model in the catalog and return a summary row.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/acl.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "compressor.h"
#include "qdb_internal.h"
#include "rq.h"

PG_FUNCTION_INFO_V1(quantumdb_train);

#define MIN_TRAIN_ROWS	QDB_KSUB
#define MAX_SAMPLE		2000000

/* Argument n (dflt when NULL), an ERROR outside [lo, hi]; autotune.c's too. */
int
QdbIntArg(FunctionCallInfo fcinfo, int n, const char *what, int lo, int hi, int dflt)
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

/* ERROR unless the user may insert into quantumdb.<table>. */
void
QdbCheckTableInsert(const char *table, const char *detail)
{
	Oid			nsp = get_namespace_oid("quantumdb", false);
	Oid			rel = get_relname_relid(table, nsp);

	if (!OidIsValid(rel))
		elog(ERROR, "catalog table quantumdb.%s is missing", table);
	if (pg_class_aclcheck(rel, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table quantumdb.%s", table),
				 errdetail("%s", detail),
				 errhint("An administrator can GRANT INSERT ON quantumdb.%s.", table)));
}

static double
float_arg(FunctionCallInfo fcinfo, int n, const char *what, double lo, double hi,
		  double dflt)
{
	double		v;

	if (PG_ARGISNULL(n))
		return dflt;
	v = PG_GETARG_FLOAT8(n);
	if (!(v >= lo && v <= hi))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between %g and %g, not %g", what, lo, hi, v)));
	return v;
}

static QdbDevice
device_arg(FunctionCallInfo fcinfo, int n)
{
	char	   *d;

	if (PG_ARGISNULL(n))
		return QDB_DEVICE_AUTO;
	d = text_to_cstring(PG_GETARG_TEXT_PP(n));
	if (pg_strcasecmp(d, "auto") == 0)
		return QDB_DEVICE_AUTO;
	if (pg_strcasecmp(d, "cpu") == 0)
		return QDB_DEVICE_CPU;
	if (pg_strcasecmp(d, "cuda") == 0)
		return QDB_DEVICE_CUDA;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown device \"%s\"", d),
			 errhint("The devices are auto, cpu and cuda.")));
	return QDB_DEVICE_AUTO;		/* keep the compiler quiet */
}

/*
 * Arguments 24 to 26 (0.7.0 on; a function of an older install script
 * has 24 arguments): kind rq's beam, eta and refits.  Any set away from
 * its default for a kind or metric that cannot use it is an ERROR, not a
 * silent no-op.  For refits either default is taken, 16 or 0.7.0's 4:
 * the function of 0.7.0's script passes 4 until ALTER EXTENSION UPDATE.
 */
static void
rq_args(FunctionCallInfo fcinfo, QdbTrainConfig *cfg)
{
	if (PG_NARGS() > 24)
		cfg->rq_beam = QdbIntArg(fcinfo, 24, "beam", 1, QDB_RQ_BEAM_MAX, cfg->rq_beam);
	if (PG_NARGS() > 25)
		cfg->rq_eta = (float) float_arg(fcinfo, 25, "eta", 1.0, QDB_RQ_ETA_MAX, cfg->rq_eta);
	if (PG_NARGS() > 26)
		cfg->rq_refits = QdbIntArg(fcinfo, 26, "refits", 0, QDB_RQ_REFITS_MAX, cfg->rq_refits);
	if (cfg->kind != QDB_KIND_RQ && (cfg->rq_beam != QDB_RQ_BEAM || cfg->rq_eta != 1.0f ||
									 (cfg->rq_refits != QDB_RQ_REFITS &&
									  cfg->rq_refits != QDB_RQ_REFITS_UNSTATED)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("beam, eta and refits are settings of kind rq, not of kind %s",
						qdb_kind_name(cfg->kind))));
	if (cfg->rq_eta != 1.0f && cfg->metric == QDB_METRIC_L2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("eta needs metric cosine or ip, not l2"),
				 errdetail("eta weighs the error along each row's direction, which moves "
						   "inner products; an l2 distance has no such direction."),
				 errhint("Leave eta at 1 for l2.")));
}

/*
 * The neural kind's settings away from their defaults on another kind: an
 * ERROR naming the first, as rq_args does for rq's (the defaults of every
 * install script's function are qdb_train_config_init's).  device is not
 * one of them: it names where any kind trains.
 */
static void
refuse_neural_settings(const QdbTrainConfig *cfg)
{
	QdbTrainConfig d;
	const char *given = NULL;

	qdb_train_config_init(&d);
	if (cfg->epochs != d.epochs)
		given = "epochs";
	else if (cfg->batch_size != d.batch_size)
		given = "batch_size";
	else if (cfg->lr != d.lr)
		given = "lr";
	else if (cfg->hidden != d.hidden)
		given = "hidden";
	else if (cfg->k_neighbors != d.k_neighbors)
		given = "k_neighbors";
	else if (cfg->w_recon != d.w_recon)
		given = "w_reconstruction";
	else if (cfg->w_cluster != d.w_cluster)
		given = "w_cluster";
	else if (cfg->w_diversity != d.w_diversity)
		given = "w_diversity";
	else if (cfg->w_commit != d.w_commit)
		given = "w_commitment";
	else if (cfg->w_triplet != d.w_triplet)
		given = "w_triplet";
	else if (cfg->patience != d.patience)
		given = "patience";
	if (given)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is a setting of kind neural, not of kind %s",
						given, qdb_kind_name(cfg->kind)),
				 errhint("Leave it out, or pass kind => 'neural'.")));
}

/* Arguments 12 on: the neural kind's settings, and the device. */
static QdbDevice
neural_args(FunctionCallInfo fcinfo, QdbTrainConfig *cfg)
{
	QdbDevice	device = device_arg(fcinfo, 12);

	cfg->epochs = QdbIntArg(fcinfo, 13, "epochs", 0, 10000, cfg->epochs);
	cfg->batch_size = QdbIntArg(fcinfo, 14, "batch_size", 1, 65536, cfg->batch_size);
	cfg->lr = (float) float_arg(fcinfo, 15, "lr", 1e-9, 1.0, cfg->lr);
	cfg->hidden = QdbIntArg(fcinfo, 16, "hidden", 1, QDB_MAX_HIDDEN, 0);
	cfg->k_neighbors = QdbIntArg(fcinfo, 17, "k_neighbors", 1, 1000, cfg->k_neighbors);
	cfg->w_recon = (float) float_arg(fcinfo, 18, "w_reconstruction", 0, 1e6, cfg->w_recon);
	cfg->w_cluster = (float) float_arg(fcinfo, 19, "w_cluster", 0, 1e6, cfg->w_cluster);
	cfg->w_diversity = (float) float_arg(fcinfo, 20, "w_diversity", 0, 1e6, cfg->w_diversity);
	cfg->w_commit = (float) float_arg(fcinfo, 21, "w_commitment", 0, 1e6, cfg->w_commit);
	cfg->w_triplet = (float) float_arg(fcinfo, 22, "w_triplet", 0, 1e6, cfg->w_triplet);
	cfg->patience = QdbIntArg(fcinfo, 23, "patience", 1, 10000, cfg->patience);
	if (cfg->kind != QDB_KIND_NEURAL)
		refuse_neural_settings(cfg);
	if (cfg->kind == QDB_KIND_NEURAL && cfg->metric == QDB_METRIC_IP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("kind neural does not support metric ip"),
				 errdetail("Its ADC compares distances in the encoder's space, which keeps no inner products."),
				 errhint("Use metric => 'cosine' or 'l2', or kind => 'opq' for ip.")));
	return device;
}

/*
 * kind rq under l2 and cosine spends its last byte on the norm; dims > 0:
 * subvectors was left out and the column has that many dimensions
 */
static void
check_rq_subvectors(const QdbTrainConfig *cfg, int dims)
{
	if (cfg->kind == QDB_KIND_RQ && cfg->metric != QDB_METRIC_IP && cfg->M < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("kind rq under metric %s needs at least 2 subvectors",
						qdb_metric_name(cfg->metric)),
				 errdetail("Its last byte holds the norm of the reconstruction."),
				 dims > 0 ? errhint("The column has %d dimension, one subvector's worth: use metric ip, or kind pq or opq.",
									dims) : 0));
}

/*
 * quantumdb.train(name, source, column, kind, metric, subvectors, target_dim,
 *                 sample, validation, seed, kmeans_iters, opq_iters, device,
 *                 epochs, batch_size, lr, hidden, k_neighbors, w_reconstruction,
 *                 w_cluster, w_diversity, w_commitment, w_triplet, patience)
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
	QdbDevice	device;
	int64		log_run = 0;
	bool		default_m;
	const char *device_used = "cpu";
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
					 errhint("The kinds are pq, opq, rq and neural.")));
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
	cfg.M = QdbIntArg(fcinfo, 5, "subvectors", 1, QDB_MAX_SUBQUANTIZERS, cfg.M);
	cfg.dim_pq = QdbIntArg(fcinfo, 6, "target_dim", 1, QDB_MAX_DIM, 0);
	/*
	 * subvectors NULL (the default since 0.8.4): 16, or one per dimension
	 * quantized when there are fewer, as CREATE INDEX chooses (a given
	 * target_dim now, the column's dimensions once sampled)
	 */
	default_m = PG_ARGISNULL(5);
	if (default_m && cfg.dim_pq != 0)
		cfg.M = Min(cfg.M, cfg.dim_pq);
	sample_rows = QdbIntArg(fcinfo, 7, "sample", MIN_TRAIN_ROWS, MAX_SAMPLE, 50000);
	validation_rows = QdbIntArg(fcinfo, 8, "validation", 0, 100000, 1000);
	if (!PG_ARGISNULL(9))
	{
		int64		seed = PG_GETARG_INT64(9);

		if (seed < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("seed must not be negative")));
		cfg.seed = (uint64) seed;
	}
	cfg.kmeans_iters = QdbIntArg(fcinfo, 10, "kmeans_iters", 1, 1000, cfg.kmeans_iters);
	cfg.opq_iters = QdbIntArg(fcinfo, 11, "opq_iters", 1, 1000, cfg.opq_iters);
	check_rq_subvectors(&cfg, 0);
	if (cfg.dim_pq != 0 && cfg.dim_pq % cfg.M != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target_dim %d is not a multiple of subvectors %d",
						cfg.dim_pq, cfg.M),
				 default_m ? errhint("subvectors was left out, so it is %d; pass one that divides target_dim.",
									 cfg.M) : 0));

	device = neural_args(fcinfo, &cfg);
	rq_args(fcinfo, &cfg);
	if (cfg.hidden != 0 && cfg.hidden < (cfg.dim_pq ? cfg.dim_pq : 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hidden %d is narrower than target_dim %d", cfg.hidden, cfg.dim_pq)));

	/*
	 * fail before the work, not after it, when the model cannot be stored:
	 * on a standby or in a read-only transaction (25006), or without INSERT
	 */
	PreventCommandIfReadOnly("quantumdb.train()");
	QdbCheckTableInsert("compressors", "Training stores the compressor there.");
	/*
	 * and when the name is taken (42710), as autotune does: a whole
	 * training was thrown away first (session 66's hunt,
	 * /work/runs/hunt-s66c.md F1); the store checks again, for a trainer
	 * of the same name that finishes first
	 */
	QdbCheckNewCompressorName(name);
	if (cfg.kind == QDB_KIND_NEURAL)
	{
		QdbTrainingLogCheck();
		log_run = QdbTrainingLogRun();
	}

	/* sample the column: training rows plus the validation split */
	QdbSampleColumn(relid, column, sample_rows + validation_rows, cfg.seed,
					cfg.metric == QDB_METRIC_COSINE, &cfg, &s);
	/* (an empty sample, dim 0, is the "too few vectors" ERROR below) */
	if (default_m && cfg.dim_pq == 0 && s.dim > 0)
	{
		cfg.M = Min(cfg.M, s.dim);
		check_rq_subvectors(&cfg, s.dim);
	}
	QdbSplitSample(s.n, sample_rows, validation_rows, &n_train, &n_val);
	/* too few: the split held out a tenth of the rows drawn (at most validation) */
	if (n_train < MIN_TRAIN_ROWS)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("too few vectors to train on: %d distinct non-NULL vectors, at least %d needed",
						s.n, MIN_TRAIN_ROWS + Min(validation_rows, MIN_TRAIN_ROWS / 9)),
				 errdetail("Each of the %d sub-quantizers has %d centroids.",
						   cfg.M, QDB_KSUB),
				 s.n >= MIN_TRAIN_ROWS ?
				 errhint("With validation => 0 no rows are held out to measure recall, and all %d train.",
						 s.n) : 0));
	cfg.dim = s.dim;
	if (cfg.dim_pq > s.dim)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target_dim %d is larger than the column's %d dimensions",
						cfg.dim_pq, s.dim)));
	if ((cfg.dim_pq ? cfg.dim_pq : s.dim) < cfg.M)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("subvectors %d is more than the %d dimensions to quantize",
						cfg.M, cfg.dim_pq ? cfg.dim_pq : s.dim),
				 errhint("Each sub-quantizer needs at least one dimension.")));
	/*
	 * the default target_dim is known now: hidden must be as wide (a
	 * target_dim given was checked before sampling)
	 */
	if (cfg.kind == QDB_KIND_NEURAL && cfg.hidden != 0 && cfg.dim_pq == 0)
	{
		int			t = qdb_config_dim_pq(&cfg);

		if (cfg.hidden < t)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("hidden %d is narrower than target_dim %d", cfg.hidden, t),
					 errdetail("The encoder starts as the opq transform, one hidden unit per reduced dimension; by default target_dim is the column's dimensions padded to a multiple of subvectors, at most 16 per subvector."),
					 errhint("Pass hidden => %d or more, or a smaller target_dim.", t)));
	}
	rc = qdb_train_config_check(&cfg);
	QdbReportStatus(rc, "invalid training settings", NULL);
	ereport(NOTICE,
			(errmsg("training \"%s\" (%s, %s): %d training and %d validation vectors of %d dimensions, sampled from " INT64_FORMAT " rows",
					name, qdb_kind_name(cfg.kind), qdb_metric_name(cfg.metric),
					n_train, n_val, s.dim, s.rows_seen)));

	tcxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb training",
								 ALLOCSET_DEFAULT_SIZES);
	seconds = QdbTrainModel(name, s.x, n_train, &cfg, device, log_run, tcxt, &model,
							&device_used, NULL);

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
	if (cfg.kind == QDB_KIND_NEURAL)
		appendStringInfo(&extra, ", \"device\": \"%s\", \"training_log_run\": " INT64_FORMAT
						 ", \"hidden\": %d, \"epochs\": %d, \"batch_size\": %d, \"lr\": %g"
						 ", \"k_neighbors\": %d, \"patience\": %d, \"neural_rows\": %d"
						 ", \"w_reconstruction\": %g, \"w_cluster\": %g, \"w_diversity\": %g"
						 ", \"w_commitment\": %g, \"w_triplet\": %g",
						 device_used, log_run, model.hidden, cfg.epochs, cfg.batch_size,
						 cfg.lr, cfg.k_neighbors, cfg.patience, cfg.neural_rows,
						 cfg.w_recon, cfg.w_cluster, cfg.w_diversity, cfg.w_commit,
						 cfg.w_triplet);
	QdbStoreCompressor(name, &model, extra.data, seconds, recall, relid, column);
	/* recall < 0: no validation split (validation => 0) */
	if (recall >= 0)
		ereport(NOTICE,
				(errmsg("trained \"%s\" in %.1f s: 10-recall@10 on the validation split %.3f",
						name, seconds, recall)));
	else
		ereport(NOTICE,
				(errmsg("trained \"%s\" in %.1f s, without a validation split",
						name, seconds)));

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
