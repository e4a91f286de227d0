/*-------------------------------------------------------------------------
 *
 * build_model.c
 *	  The compressor a build embeds in its index (index_build.c): the one
 *	  WITH (compressor = ...) names, from the catalog, checked against the
 *	  index's metric and page size; or, with none named, an opq compressor
 *	  trained now on a sample of the rows, which the train worker's build
 *	  stops when a session waits for the table; or none, below 256
 *	  distinct vectors, in a binary upgrade, or on a Citus shell table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/partition.h"
#include "commands/progress.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "replication/logicalworker.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "index.h"

/*
 * The ERROR of options whose level-0 node would not fit on a page: with
 * inline_codes each of its 2 m neighbours carries its code (a 100-byte
 * code at m 40: 8,320 bytes), and an index whose nodes cannot be written
 * would refuse every row.
 */
void
QdbBuildCheckNodeFits(Relation index, int code_size, int m, bool inline_codes)
{
	if (QdbNodeFits(code_size, m, 0, inline_codes))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("a node of index \"%s\" would not fit on a page",
					RelationGetRelationName(index)),
			 inline_codes ?
			 errdetail("With inline_codes, each of a node's %d level-0 neighbours carries its %d-byte code: %zu bytes, over the %zu a page holds.",
					   2 * m, code_size,
					   (Size) QdbNodeSize(code_size, m, 0, true), QdbMaxNodeSize()) :
			 errdetail("A level-0 node with %d neighbours and a %d-byte code takes %zu bytes, over the %zu a page holds.",
					   2 * m, code_size,
					   (Size) QdbNodeSize(code_size, m, 0, false), QdbMaxNodeSize()),
			 errhint("Lower m, turn inline_codes off, or use a compressor with shorter codes.")));
}

/*
 * Whether this build is the rebuild of an index of a temporary table ON
 * COMMIT DELETE ROWS, which COMMIT empties: the only build of a temporary
 * table's index with no snapshot set (a statement always has one).  Its
 * NOTICE of no compressor would come at every COMMIT.
 */
static bool
emptied_at_commit(Relation heap)
{
	return RelationUsesLocalBuffers(heap) && !ActiveSnapshotSet();
}

/*
 * Why the index cannot be built on model (NULL: it can): trained for
 * another metric, or with codes too long for its nodes.
 */
static char *
model_misfit(Relation index, const char *name, const QdbModel *model, QdbMetric metric)
{
	if (model->metric != metric)
		return psprintf("compressor \"%s\" was trained for metric %s, but the operator class uses %s",
						name, qdb_metric_name(model->metric), qdb_metric_name(metric));
	if (!QdbNodeFits((int) qdb_code_size(model), QdbGetM(index), 0, QdbGetInlineCodes(index)))
		return psprintf("a node of index \"%s\" would not fit on a page with the %d-byte codes of compressor \"%s\"",
						RelationGetRelationName(index), (int) qdb_code_size(model), name);
	return NULL;
}

/*
 * Compressor name from the catalog, for the index to embed; ERROR when it
 * is missing, not the current user's to use, or unfit for the index.
 *
 * Except at COMMIT, when a temporary table ON COMMIT DELETE ROWS is
 * emptied and its indexes rebuilt: that truncation is not transactional,
 * so a build that failed there would leave the index without pages, and
 * every later COMMIT would fail the same way.  There the index builds
 * without a compressor (NULL, after a WARNING) and takes one again at the
 * first COMMIT that finds it usable.  And in logical replication's apply
 * worker, a TRUNCATE's rebuild of the empty table: an ERROR there stops
 * the subscription, retried every few seconds until someone mends the
 * subscriber's index (session 61's hunt, F3), for an index that needs no
 * model to be empty.
 */
static QdbLoadedModel *
load_named(Relation heap, Relation index, const char *name, QdbMetric metric)
{
	QdbLoadedModel *lm;
	char	   *problem;
	bool		at_commit = emptied_at_commit(heap);

	if (at_commit || (IsLogicalWorker() && RelationGetNumberOfBlocks(heap) == 0))
	{
		lm = QdbTryLoadCompressor(name, CurrentMemoryContext, &problem);
		if (lm)
			problem = model_misfit(index, name, &lm->model, metric);
		if (problem == NULL)
			return lm;
		ereport(WARNING,
				(errmsg("index \"%s\" was rebuilt without a compressor: %s",
						RelationGetRelationName(index), problem),
				 at_commit ?
				 errdetail("COMMIT empties temporary table \"%s\" (ON COMMIT DELETE ROWS) and rebuilds its indexes. Until the index has its compressor again, it stores nothing and its scans read every row of the table, in exact order.",
						   RelationGetRelationName(heap)) :
				 errdetail("A TRUNCATE of table \"%s\" that logical replication applied rebuilt its indexes. Until the index has its compressor again, it stores nothing and its scans read every row of the table, in exact order.",
						   RelationGetRelationName(heap)),
				 at_commit ?
				 errhint("Make compressor \"%s\" usable again, or ALTER INDEX %s SET (compressor = ...) another: the next COMMIT's rebuild takes it.",
						 name, QdbRelationSqlName(index)) :
				 errhint("Make compressor \"%s\" usable again and REINDEX INDEX %s, or ALTER INDEX %s RESET (compressor) and let it train one of its own.",
						 name, QdbRelationSqlName(index), QdbRelationSqlName(index))));
		return NULL;
	}
	/*
	 * a partition's index takes the option from its partitioned index,
	 * whose options PostgreSQL will not change: every new partition fails
	 * until the compressor is back (session 65's hunt,
	 * /work/runs/hunt-s65c.md F4)
	 */
	if (index->rd_rel->relispartition && !QdbCompressorExists(name))
	{
		Oid			parent = get_partition_parent(RelationGetRelid(index), true);

		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("compressor \"%s\" does not exist", name),
				 errdetail("Index \"%s\" takes WITH (compressor = %s) from partitioned index %s, whose options ALTER INDEX cannot change.",
						   RelationGetRelationName(index), quote_literal_cstr(name),
						   OidIsValid(parent) && get_rel_name(parent) ?
						   quote_qualified_identifier(get_namespace_name(get_rel_namespace(parent)),
													  get_rel_name(parent)) : "?"),
				 errhint("Train or import a compressor named \"%s\" again (quantumdb.import of its export), or build the new partition's index yourself WITH another compressor or none and then ATTACH PARTITION.",
						 name)));
	}
	/* a parallel pg_restore may build the index before the catalog's rows */
	lm = QdbLoadCompressor(name, CurrentMemoryContext,
						   "Train one with quantumdb.train() or load one with quantumdb.import(). "
						   "In a restore by pg_restore --jobs, which can build an index before the "
						   "compressors (they come with the data): restore --section=pre-data "
						   "--section=data first, then --section=post-data; a --schema-only "
						   "restore has no compressors (they are data): restore its pre-data "
						   "section, then the data, then its post-data. In a restore, also "
						   "check that the COPY of quantumdb.compressors did not fail (a restore "
						   "must run as a superuser, which row-level security does not stop).");
	if (lm->model.metric != metric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("compressor \"%s\" was trained for metric %s, but the operator class uses %s",
						name, qdb_metric_name(lm->model.metric), qdb_metric_name(metric)),
				 errhint("Train a compressor with metric => '%s', or use the operator class for %s.",
						 qdb_metric_name(metric), qdb_metric_name(lm->model.metric))));
	/* before the compressor goes to a Citus table's workers */
	QdbBuildCheckNodeFits(index, (int) qdb_code_size(&lm->model), QdbGetM(index),
					QdbGetInlineCodes(index));
	return lm;
}

/* The train worker's check while its build trains (yield_in_training). */
typedef struct TrainYield
{
	Relation	heap;
	TimestampTz asked_at;		/* the last look, or 0 */
} TrainYield;

/*
 * The training's stop hook in the train worker's build: true once a DDL
 * statement waits for the table (QdbTrainWorkerShouldYieldQuietly, which
 * never throws: the trainer's frames are below), looked at most four times
 * a second of training.  Never true outside the worker.
 */
static bool
yield_in_training(const QdbEpochStats *s, void *arg)
{
	TrainYield *y = arg;
	TimestampTz now = GetCurrentTimestamp();

	if (!TimestampDifferenceExceeds(y->asked_at, now, 250))
		return false;
	y->asked_at = now;
	return QdbTrainWorkerShouldYieldQuietly(y->heap);
}

/*
 * The model the index will embed: from the catalog, or trained now.  False
 * when no compressor was named and the table has too few vectors to train
 * one: the index starts without one (QDB_BUILT_UNTRAINED); *heap_tuples
 * then has the rows the sample's scan saw and *dim their dimensions (0
 * without any).  *trained_rows: the rows a compressor trained now was
 * trained on (left as it is for a named one).
 */
bool
QdbBuildObtainModel(Relation heap, Relation index, IndexInfo *indexInfo, QdbMetric metric,
			 QdbModel *model, char *name_out, uint32 *flags, double *heap_tuples,
			 int *dim, double *trained_rows)
{
	char	   *name = QdbGetCompressorName(index);
	AttrNumber	attnum = indexInfo->ii_IndexAttrNumbers[0];

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("quantumdb indexes on expressions are not supported"),
				 errhint("Index a column of type real[], vector or halfvec; a stored generated column can hold the expression's value.")));
	/*
	 * pg_upgrade's restore of the schema builds each index on an empty
	 * table before quantumdb.compressors has its rows, then moves the old
	 * cluster's index files over what the build wrote: the compressor is
	 * not looked up (session 63's hunt, /work/runs/hunt-s63b.md F1: every
	 * index naming one stopped pg_upgrade with 42704).  The init fork of
	 * an unlogged index is not moved: qdbvacuumcleanup writes it again.
	 */
	if (IsBinaryUpgrade)
	{
		*heap_tuples = 0;
		*dim = 0;
		return false;
	}
	if (name && QdbCitusBuildEmpty(heap, name))
	{
		ereport(DEBUG1,
				(errmsg("index \"%s\" of a Citus shell table builds empty: compressor \"%s\" is not on this node",
						RelationGetRelationName(index), name)));
		*heap_tuples = 0;
		*dim = 0;
		return false;
	}
	if (name)
	{
		QdbLoadedModel *lm = load_named(heap, index, name, metric);

		if (lm == NULL)
		{
			*heap_tuples = 0;
			*dim = 0;
			return false;
		}
		*model = lm->model;
		strlcpy(name_out, name, NAMEDATALEN);
		/* a Citus table's shard indexes are built next, on the workers */
		QdbCitusBeforeShardIndexes(heap, name);
	}
	else
	{
		QdbTrainConfig cfg;
		QdbSample	s;
		double		seconds;
		const char *device;
		QdbTrainHook hook = {0};
		TrainYield	yield;

		pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, QDB_PHASE_TRAIN);
		qdb_train_config_init(&cfg);
		cfg.kind = QDB_KIND_OPQ;
		cfg.metric = metric;
		/* no query: the planner could not open an index being rebuilt */
		*heap_tuples = QdbSampleIndexBuild(heap, index, indexInfo, QDB_BUILD_SAMPLE,
										   cfg.seed, metric == QDB_METRIC_COSINE, &cfg, &s);
		if (s.n < QDB_KSUB)
		{
			/* distinct vectors: 400 copies of one count as one (session 66's hunt F8) */
			ereport(s.n == 0 && (QdbCitusTable(heap) || emptied_at_commit(heap)) ? DEBUG1 : NOTICE,
					(errmsg_plural("index \"%s\" has no compressor yet: %d distinct vector in the %s, at least %d needed to train one",
								   "index \"%s\" has no compressor yet: %d distinct vectors in the %s, at least %d needed to train one",
								   s.n, RelationGetRelationName(index), s.n,
								   indexInfo->ii_Predicate != NIL ? "rows it covers" : "table", QDB_KSUB),
					 errdetail("Until it has one, the index stores nothing and its scans read every row of the table, in exact order."),
					 errhint("REINDEX INDEX %s once the table holds enough rows, or name a compressor trained elsewhere: WITH (compressor = 'name').",
							 QdbRelationSqlName(index))));
			*dim = s.dim;
			return false;
		}
		cfg.dim = s.dim;
		cfg.M = Min(QDB_BUILD_SUBQUANTIZERS, s.dim);
		ereport(NOTICE,
				(errmsg("index \"%s\" has no compressor: training an opq compressor on %d of its rows",
						RelationGetRelationName(index), s.n),
				 errhint("Train one with quantumdb.train() and name it with WITH (compressor = 'name') to reuse it across indexes.")));
		hook.progress_view = true;
		hook.stop = yield_in_training;
		hook.arg = &yield;
		yield.heap = heap;
		yield.asked_at = 0;
		seconds = QdbTrainModel(RelationGetRelationName(index), s.x, s.n, &cfg,
								QDB_DEVICE_CPU, 0, CurrentMemoryContext, model, &device, &hook);
		/* the train worker gives way: its training stopped for it, or ended */
		if (hook.stopped)
			QdbTrainWorkerYield(heap, true);
		if (QdbTrainWorkerShouldYield(heap))
			QdbTrainWorkerYield(heap, false);
		ereport(NOTICE,
				(errmsg("trained the compressor of index \"%s\" in %.1f s",
						RelationGetRelationName(index), seconds)));
		name_out[0] = '\0';
		*flags |= QDB_BUILT_TRAINED;
		*trained_rows = s.n;
		/*
		 * a sample that took every row the index covers (not a full one),
		 * fewer than train_after_rows: VACUUM compares the rows the index
		 * covers then, so the rebuild samples at least as many, or the
		 * sample's limit, and is not marked again
		 */
		if (QdbTrainAfterRows(index) > 0 && s.n < QdbTrainAfterRows(index) &&
			s.n < QDB_BUILD_SAMPLE)
			*flags |= QDB_BUILT_SMALL_SAMPLE;
	}
	return true;
}
