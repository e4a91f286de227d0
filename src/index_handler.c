/*
 * index_handler.c
 *	  The access method handler, its reloptions and its GUCs.
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "commands/progress.h"
#include "commands/vacuum.h"
#include "utils/guc.h"

#include "calibration.h"
#include "compressor.h"
#include "index.h"
#include "worker_place.h"

PG_FUNCTION_INFO_V1(quantumdb_index_handler);
PG_FUNCTION_INFO_V1(quantumdb_metric_l2);
PG_FUNCTION_INFO_V1(quantumdb_metric_ip);
PG_FUNCTION_INFO_V1(quantumdb_metric_cosine);

int			qdb_ef_search = 40;
int			qdb_rerank = 100;
bool		qdb_rerank_memo = true;
bool		qdb_approximate_under_rls = false;
int			qdb_max_scan_tuples = 20000;
int			qdb_iterative_scan = QDB_ITERATIVE_STRICT;

/* pgvector's names for hnsw.iterative_scan */
static const struct config_enum_entry iterative_scan_options[] = {
	{"off", QDB_ITERATIVE_OFF, false},
	{"strict_order", QDB_ITERATIVE_STRICT, false},
	{"relaxed_order", QDB_ITERATIVE_RELAXED, false},
	{NULL, 0, false}
};

static relopt_kind qdb_relopt_kind;

/* the rule and the ERROR (42602) of quantumdb.train's name (session 66's hunt F10: 22023 here) */
static void
validate_compressor_name(const char *value)
{
	if (value != NULL)
		QdbCheckCompressorName(value);
}

/* Called from _PG_init: reloptions and GUCs. */
void
QdbIndexInit(void)
{
	qdb_relopt_kind = add_reloption_kind();
	add_int_reloption(qdb_relopt_kind, "m",
					  "Neighbours per node above level 0 (twice as many at level 0)",
					  QDB_DEFAULT_M, QDB_MIN_M, QDB_MAX_M, AccessExclusiveLock);
	add_int_reloption(qdb_relopt_kind, "ef_construction",
					  "Candidate list size while building the graph",
					  QDB_DEFAULT_EF_CONSTRUCTION, QDB_MIN_EF_CONSTRUCTION,
					  QDB_MAX_EF_CONSTRUCTION, AccessExclusiveLock);
	add_bool_reloption(qdb_relopt_kind, "inline_codes",
					   "Store each neighbour's code beside its link: fewer page reads per scan, a larger index",
					   false, AccessExclusiveLock);
	add_int_reloption(qdb_relopt_kind, "calibration_queries",
					  "Rows of the table the build measures recall on for quantumdb.target_recall (0: none)",
					  QDB_DEFAULT_CALIBRATION_QUERIES, 0, QDB_MAX_CALIBRATION_QUERIES,
					  AccessExclusiveLock);
	add_bool_reloption(qdb_relopt_kind, "calibrate_after_vacuum",
					   "After a VACUUM that finds the index a quarter larger or smaller than at its calibration, a background worker calibrates it again",
					   true, AccessExclusiveLock);
	add_int_reloption(qdb_relopt_kind, "train_after_rows",
					  "An index without a compressor: after a VACUUM that finds the table holding this many rows (256 at least), a background worker trains one by REINDEX INDEX CONCURRENTLY (0: never)",
					  QDB_DEFAULT_TRAIN_AFTER_ROWS, 0, INT_MAX, ShareUpdateExclusiveLock);
	add_string_reloption(qdb_relopt_kind, "compressor",
						 "Compressor from quantumdb.compressors; the build trains one when unset",
						 NULL, validate_compressor_name, AccessExclusiveLock);

	DefineCustomIntVariable("quantumdb.ef_search",
							"Candidate list size of an index scan's graph walk.",
							"Larger finds more true neighbours, slower.",
							&qdb_ef_search, 40, 1, 10000,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("quantumdb.rerank",
							"Candidates re-scored with the exact distance from the heap row.",
							"0 returns rows in compressed-distance order without reading the heap.",
							&qdb_rerank, 100, 0, 10000,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("quantumdb.approximate_under_rls",
							 "Let users subject to row-level security on a table scan its quantumdb indexes approximately.",
							 "Off: such a user's scans read the heap and return rows in exact order, since the order and choice of rows an approximate scan returns depend on the rows the policies hide (the index's compressor and graph are built from every row).",
							 &qdb_approximate_under_rls, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("quantumdb.rerank_memo",
							 "Keep the rerank's exact distances for the executor's own evaluation of the ORDER BY distance.",
							 "Spares a second detoast of each returned row stored compressed or out of line.",
							 &qdb_rerank_memo, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("quantumdb.code_cache_size",
							"Memory each backend may keep, per index, for the codes of nodes its scans have read.",
							"Codes found there cost a scan no page read.  0 turns the cache off.",
							&qdb_code_cache_kb, 32 * 1024, 0, MAX_KILOBYTES,
							PGC_USERSET, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("quantumdb.index_cache_size",
							"Memory each backend may keep for the indexes it has used: their compressors, code caches and code-to-code tables.",
							"When a statement starts to use an index, the caches of indexes not in use go, least recently used first, until all fit.  0 keeps only the caches in use.",
							&qdb_index_cache_kb, 128 * 1024, 0, MAX_KILOBYTES,
							PGC_USERSET, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("quantumdb.max_scan_tuples",
							"Most graph nodes an index scan visits when a filter keeps asking for rows.",
							NULL,
							&qdb_max_scan_tuples, 20000, 1, INT_MAX,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("quantumdb.iterative_scan",
							 "What an index scan does when the executor wants more rows than its walk found.",
							 "strict_order walks again and returns rows in non-decreasing distance, skipping a row nearer than one already returned; "
							 "relaxed_order walks again and returns every new row, in exact order within each walk's rerank; off stops after one walk.",
							 &qdb_iterative_scan, QDB_ITERATIVE_STRICT, iterative_scan_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	QdbScanSettingsInit();
	QdbTrainRetryInit();
	QdbWorkerPlaceInit();
}

/* ERROR unless ef_construction is at least twice m (the build's lists need it) */
void
QdbCheckEfConstruction(int m, int ef_construction)
{
	if (ef_construction < 2 * m)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ef_construction must be at least twice m"),
				 errdetail("ef_construction is %d and m is %d.", ef_construction, m)));
}

bytea *
qdboptions(Datum reloptions, bool validate)
{
	static const relopt_parse_elt tab[] = {
		{"m", RELOPT_TYPE_INT, offsetof(QdbOptions, m)},
		{"ef_construction", RELOPT_TYPE_INT, offsetof(QdbOptions, ef_construction)},
		{"compressor", RELOPT_TYPE_STRING, offsetof(QdbOptions, compressor_offset)},
		{"inline_codes", RELOPT_TYPE_BOOL, offsetof(QdbOptions, inline_codes)},
		{"calibration_queries", RELOPT_TYPE_INT, offsetof(QdbOptions, calibration_queries)},
		{"calibrate_after_vacuum", RELOPT_TYPE_BOOL, offsetof(QdbOptions, calibrate_after_vacuum)},
		{"train_after_rows", RELOPT_TYPE_INT, offsetof(QdbOptions, train_after_rows)},
	};

	QdbOptions *opts = build_reloptions(reloptions, validate, qdb_relopt_kind,
										sizeof(QdbOptions), tab, lengthof(tab));

	/*
	 * The build's own check (index_build.c), here too for ALTER INDEX ...
	 * SET: accepted there, the options would fail every later rebuild
	 * (TRUNCATE, REINDEX, VACUUM FULL, a restore of a dump).
	 */
	if (validate && opts)
		QdbCheckEfConstruction(opts->m, opts->ef_construction);
	return (bytea *) opts;
}

int
QdbGetM(Relation index)
{
	QdbOptions *opts = (QdbOptions *) index->rd_options;

	return opts ? opts->m : QDB_DEFAULT_M;
}

int
QdbGetEfConstruction(Relation index)
{
	QdbOptions *opts = (QdbOptions *) index->rd_options;

	return opts ? opts->ef_construction : QDB_DEFAULT_EF_CONSTRUCTION;
}

bool
QdbGetInlineCodes(Relation index)
{
	QdbOptions *opts = (QdbOptions *) index->rd_options;

	return opts ? opts->inline_codes : false;
}

int
QdbGetCalibrationQueries(Relation index)
{
	QdbOptions *opts = (QdbOptions *) index->rd_options;

	return opts ? opts->calibration_queries : QDB_DEFAULT_CALIBRATION_QUERIES;
}

bool
QdbGetCalibrateAfterVacuum(Relation index)
{
	QdbOptions *opts = (QdbOptions *) index->rd_options;

	return opts ? opts->calibrate_after_vacuum : true;
}

int
QdbGetTrainAfterRows(Relation index)
{
	QdbOptions *opts = (QdbOptions *) index->rd_options;

	return opts ? opts->train_after_rows : QDB_DEFAULT_TRAIN_AFTER_ROWS;
}

/* The compressor option, or NULL when the build is to train one. */
char *
QdbGetCompressorName(Relation index)
{
	QdbOptions *opts = (QdbOptions *) index->rd_options;

	if (opts == NULL || opts->compressor_offset == 0)
		return NULL;
	return (char *) opts + opts->compressor_offset;
}

char *
qdbbuildphasename(int64 phasenum)
{
	switch (phasenum)
	{
		case PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE:
			return "initializing";
		case QDB_PHASE_TRAIN:
			return "training compressor";
		case QDB_PHASE_LOAD:
			return "loading tuples";
		case QDB_PHASE_WRITE:
			return "writing graph";
		case QDB_PHASE_CALIBRATE:
			return "calibrating recall";
		default:
			return NULL;
	}
}

/*
 * pg_index_column_has_property: a quantumdb index's column orders by
 * distance (its one operator, strategy 1, is an ORDER BY operator; GiST
 * answers the same for its distance operators).  The rest is core's
 * answer from the other IndexAmRoutine fields.
 */
static bool
qdbproperty(Oid index_oid, int attno, IndexAMProperty prop, const char *propname,
			bool *res, bool *isnull)
{
	if (attno > 0 && prop == AMPROP_DISTANCE_ORDERABLE)
	{
		*res = true;
		*isnull = false;
		return true;
	}
	return false;
}

Datum
quantumdb_index_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *amroutine = makeNode(IndexAmRoutine);

	amroutine->amstrategies = QDB_NSTRATEGIES;
	amroutine->amsupport = QDB_NPROC;
	amroutine->amoptsprocnum = 0;
	amroutine->amcanorder = false;
	amroutine->amcanorderbyop = true;
	amroutine->amcanbackward = false;
	amroutine->amcanunique = false;
	amroutine->amcanmulticol = false;
	amroutine->amoptionalkey = true;
	amroutine->amsearcharray = false;
	amroutine->amsearchnulls = false;
	amroutine->amstorage = false;
	amroutine->amclusterable = false;
	amroutine->ampredlocks = false;
	amroutine->amcanparallel = false;
	amroutine->amcaninclude = false;
	amroutine->amusemaintenanceworkmem = false;
	amroutine->amparallelvacuumoptions = VACUUM_OPTION_PARALLEL_BULKDEL;
	amroutine->amkeytype = InvalidOid;

	amroutine->ambuild = qdbbuild;
	amroutine->ambuildempty = qdbbuildempty;
	amroutine->aminsert = qdbinsert;
	amroutine->ambulkdelete = qdbbulkdelete;
	amroutine->amvacuumcleanup = qdbvacuumcleanup;
	amroutine->amcanreturn = NULL;
	amroutine->amcostestimate = qdbcostestimate;
	amroutine->amoptions = qdboptions;
	amroutine->amproperty = qdbproperty;
	amroutine->ambuildphasename = qdbbuildphasename;
	amroutine->amvalidate = qdbvalidate;
	amroutine->amadjustmembers = NULL;
	amroutine->ambeginscan = qdbbeginscan;
	amroutine->amrescan = qdbrescan;
	amroutine->amgettuple = qdbgettuple;
	amroutine->amgetbitmap = NULL;
	amroutine->amendscan = qdbendscan;
	amroutine->ammarkpos = NULL;
	amroutine->amrestrpos = NULL;
	amroutine->amestimateparallelscan = NULL;
	amroutine->aminitparallelscan = NULL;
	amroutine->amparallelrescan = NULL;

	PG_RETURN_POINTER(amroutine);
}

/* Support function 2 of each operator class: the metric the index uses. */
Datum
quantumdb_metric_l2(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(QDB_METRIC_L2);
}

Datum
quantumdb_metric_ip(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(QDB_METRIC_IP);
}

Datum
quantumdb_metric_cosine(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(QDB_METRIC_COSINE);
}
