/*
 * calibrate_worker.c
 *	  A new calibration after VACUUM, measured by a background worker.
 *
 * For indexes WITH (calibrate_after_vacuum = on), the default.  The
 * worker's transaction holds back VACUUM's horizon while it measures, as a
 * long query does (seconds on 100,000 rows); an index can opt out with
 * calibrate_after_vacuum = off.  It was off by default while a scan that
 * walked twice past dead rows returned rows of the second walk after
 * nearer rows of the first: test/t/004_concurrency.pl (deletes and VACUUM
 * in a loop beside queries that check their order) failed 4 of 5 runs with
 * the worker on.  Scans keep their order across walks now
 * (quantumdb.iterative_scan, strict_order), and 004 passed 3 of 3 with it
 * on.
 *
 * VACUUM (amvacuumcleanup) only decides: when the index holds a quarter
 * more or fewer live nodes than when its calibration was taken, or VACUUMs
 * removed as many entries as a quarter of its nodes since (rows replaced
 * by others, the count kept), it starts a dynamic background worker and
 * goes on.  The measurement does not run
 * inside VACUUM: there its snapshot would not hold back other backends'
 * pruning (PROC_IN_VACUUM), a parallel VACUUM's leader is in parallel mode,
 * and an error would abort the VACUUM after it has freed nodes.  The
 * worker connects to the database as the bootstrap superuser, as
 * autovacuum does, locks the table and then the index (quietly gone if
 * either was dropped, or if another worker holds the index), checks again
 * that it is stale, and calibrates it in a transaction of its own as the
 * table's owner in a restricted security context (index_calibrate.c).  It
 * holds ACCESS SHARE on the table while it measures (seconds on 100,000
 * rows): DDL on the table waits for it, as for a long query.  When no
 * worker slot is free nothing happens: the next VACUUM tries again.  Temp
 * tables get no worker (other backends cannot read them).
 *
 * The calibration also measures how well the compressor fits the rows
 * (fit, calibration.h).  When that is much worse than at the build
 * (QdbFitStale: the rows moved away from those the compressor was trained
 * on; session 63's hunt, /work/runs/hunt-s63a.md F2, saw 10-recall@10
 * fall from 0.95 to 0.89 on glove-100-angular and from 0.998 to 0.81 on
 * drifting sift rows while a REINDEX gave 0.97 and 0.998), the worker
 * says so in the server log and, for an index whose build trained its
 * compressor, marks it (QDB_BUILT_FIT_STALE): the next VACUUM has the
 * train worker build it again (index_vacuum.c, train_worker.c).  An
 * index that names a compressor keeps it: the log says to train another.
 */
#include "postgres.h"

#include <math.h>

#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "calibration.h"
#include "index.h"
#include "worker_place.h"

PGDLLEXPORT void quantumdb_calibrate_worker_main(Datum arg);

/*
 * the index's calibration is stale: it saw a quarter more or fewer nodes,
 * or a quarter of its nodes were removed since
 */
#define STALE_FACTOR 1.25

bool
QdbCalibrationStale(const QdbCalibration *cal, double live_nodes)
{
	/* an emptied index keeps its calibration: there is nothing to measure */
	return cal->nodes > 0 && live_nodes > 0 &&
		(live_nodes < cal->nodes / STALE_FACTOR || live_nodes > cal->nodes * STALE_FACTOR ||
		 cal->removed >= cal->nodes * (STALE_FACTOR - 1));
}

/*
 * The coding error a compressor trained on n rows gives rows it was not
 * trained on, from fit, what it gives its training rows: fit x (1 + 20 /
 * sqrt(n)).  Measured for opq, the kind a build trains: on
 * glove-100-angular the rows of the kind it was trained on that it was not
 * trained on measured 1.82, 1.40, 1.20 and 1.07 times its training rows
 * at 1,000, 2,000, 10,000 and 50,000 training rows (session 64's review,
 * /work/runs/review-s64.md F1; /work/runs/fit-ratios-random-s64.log),
 * sift-photos-128 1.14 at 10,000 (test/bench/fit_drift.py --ratios).
 * n 0 (not known): fit.
 */
double
QdbFitExpected(double fit, double trained_rows)
{
	return trained_rows >= 1 ? fit * (1 + 20 / sqrt(trained_rows)) : fit;
}

/*
 * The compressor fits the rows much worse than at the build: their coding
 * error is 1.3 times what rows of the kind it was trained on would give
 * (fit_at_build, QdbFitExpected).  Rows moved away measure more: sift rows
 * moved by 0.4 of a standard deviation in each dimension 2.4 times the
 * training rows', glove's later, rarer words under a compressor of its
 * first 10,000 1.8 to 2.7 times (test/bench/fit_drift.py --ratios).
 */
#define FIT_STALE_FACTOR 1.3

bool
QdbFitStale(const QdbCalibration *cal)
{
	return cal->fit_at_build > 0 && cal->fit > cal->fit_at_build * FIT_STALE_FACTOR;
}

/*
 * After a new calibration cal of index: when the compressor fits the rows
 * much worse than at the build, a message at elevel (LOG from the worker,
 * NOTICE from quantumdb.calibrate) says so, and an index whose build
 * trained its compressor is marked to be trained again (the VACUUM that
 * finds its table and the index holding train_after_rows rows starts the
 * worker: index_vacuum.c).
 */
void
QdbCheckFit(Relation index, const QdbCalibration *cal, int elevel)
{
	QdbMetaPageData meta;
	bool		own;
	double		after = QdbTrainAfterRows(index);	/* 0: never, temp tables too */

	if (!QdbFitStale(cal))
		return;
	QdbReadMeta(index, &meta);
	own = meta.compressor_name[0] == '\0' && (meta.build_flags & QDB_BUILT_TRAINED) && after > 0;
	if (own)
		QdbSetBuildFlag(index, QDB_BUILT_FIT_STALE);
	ereport(elevel,
			(errmsg("quantumdb: the compressor of index \"%s\" fits its rows worse than at its build: coding error %.4g against %.4g expected",
					RelationGetRelationName(index), cal->fit, cal->fit_at_build),
			 own ?
			 errdetail("A VACUUM of its table that finds it and the index holding %.0f rows (its option train_after_rows) has a background worker rebuild it with a compressor trained on the rows it has then (REINDEX INDEX CONCURRENTLY).",
					   after) :
			 meta.compressor_name[0] != '\0' ?
			 errdetail("The index uses compressor \"%s\": train another on the rows the table has now and build the index with it.",
					   meta.compressor_name) :
			 errdetail("No worker trains it again (its option train_after_rows is 0, or its table is temporary); REINDEX does."),
			 errhint("Its 10-recall@10 may have fallen: quantumdb.estimate_recall() measures it.")));
}

/*
 * Starts a worker that calibrates index again; false if none could start.
 * None unless the index's calibrate_after_vacuum option is on, nor for an
 * index of a temporary table (no other backend can read it) or whose
 * calibration_queries is 0.
 */
bool
QdbLaunchCalibrationWorker(Relation index)
{
	if (!QdbGetCalibrateAfterVacuum(index) ||
		index->rd_rel->relpersistence == RELPERSISTENCE_TEMP ||
		QdbGetCalibrationQueries(index) == 0)
		return true;

	return QdbLaunchIndexWorker(RelationGetRelid(index), "quantumdb_calibrate_worker_main",
								"quantumdb calibrate");
}

/*
 * Calibrates index again if its calibration is still stale, in the
 * transaction open (with an active snapshot), which it commits.
 */
static void
calibrate_one(Oid indexoid)
{
	Oid			heapoid;
	Relation	index;
	Relation	heap;
	QdbCalibration old;

	/*
	 * The table first, then the index, as every command locks them.  The
	 * index in SHARE UPDATE EXCLUSIVE mode, taken only if free: one worker
	 * per index at a time (a later VACUUM's worker leaves), and none beside
	 * a REINDEX CONCURRENTLY of it.
	 */
	heapoid = IndexGetRelation(indexoid, true);
	heap = OidIsValid(heapoid) ? try_relation_open(heapoid, AccessShareLock) : NULL;
	index = NULL;
	if (heap != NULL && ConditionalLockRelationOid(indexoid, ShareUpdateExclusiveLock))
	{
		index = try_relation_open(indexoid, NoLock);
		if (index == NULL)
			UnlockRelationOid(indexoid, ShareUpdateExclusiveLock);
	}
	if (index == NULL || index->rd_rel->relkind != RELKIND_INDEX || index->rd_indam == NULL ||
		index->rd_indam->ambuild != qdbbuild || index->rd_index->indrelid != heapoid ||
		!index->rd_index->indisready || !index->rd_index->indisvalid ||
		!QdbReadCalibrationQuiet(index, &old) ||
		!QdbCalibrationStale(&old, QdbCountLiveNodes(index)))
	{
		/* dropped, replaced, being measured, or calibrated since: nothing to do */
		if (index)
			relation_close(index, NoLock);
		if (heap)
			relation_close(heap, NoLock);
		PopActiveSnapshot();
		CommitTransactionCommand();	/* releases the locks */
		return;
	}
	{
		QdbCalibration cal;

		if (QdbRecalibrate(heap, index, &old, &cal))
			QdbCheckFit(index, &cal, LOG);
	}
	relation_close(index, NoLock);
	relation_close(heap, NoLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * The indexes this worker has taken and not yet measured: the queue it
 * works through, from position unmeasured_from on.  An exit before the
 * queue's end (a cancel, pg_terminate_backend, a shutdown) notes them
 * again for the database's next calibration worker (requeue_at_exit):
 * before, a terminated worker lost the notes it had claimed, and their
 * indexes stayed stale until a VACUUM found them so again (session 65's
 * third review, /work/runs/review-s65c.md K5).
 */
static List *unmeasured = NIL;
static int	unmeasured_from = 0;

/* A before_shmem_exit callback: notes again the indexes taken and not measured. */
static void
requeue_at_exit(int code, Datum arg)
{
	for (int k = unmeasured_from; k < list_length(unmeasured); k++)
		QdbNoteIndex(QDB_NOTE_CALIBRATE_WAITING, list_nth_oid(unmeasured, k));
	unmeasured = NIL;
}

void
quantumdb_calibrate_worker_main(Datum arg)
{
	Oid			indexoid = DatumGetObjectId(arg);
	QdbIndexWorkerContext wc;
	ErrorContextCallback errcb;
	List	   *queue;
	ListCell   *lc;
	MemoryContext keep;
	bool		looked_again = false;
	volatile bool cancelled = false;

	wc.doing = "calibrating";
	wc.why = " again after VACUUMs changed its size or replaced its rows";
	wc.retry = "; the next such VACUUM tries again";
	QdbIndexWorkerStart(&wc, &errcb, indexoid, "quantumdb calibrate");
	/* never wait long behind a lock: the next VACUUM tries again */
	SetConfigOption("lock_timeout", "10000", PGC_SUSET, PGC_S_OVERRIDE);

	/* its own transaction ends: each index below has one */
	PopActiveSnapshot();
	CommitTransactionCommand();
	/* one at a time in a database, a few in the cluster (worker_place.c) */
	if (!QdbWorkerBegin(QDB_WORKER_CALIBRATE, indexoid))
		proc_exit(0);

	/*
	 * Its own index, then the indexes other workers noted, each in a
	 * transaction of its own: a lock timeout on one (its table held by DDL)
	 * ends that one only (review s65c K5)
	 */
	keep = AllocSetContextCreate(TopMemoryContext, "quantumdb calibrate worker",
								 ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(keep);
	queue = list_make1_oid(indexoid);
	before_shmem_exit(requeue_at_exit, (Datum) 0);
	for (;;)
	{
		MemoryContext old;

		if (queue == NIL)
		{
			old = MemoryContextSwitchTo(keep);
			queue = QdbNotesTake(QDB_NOTE_CALIBRATE_WAITING);
			MemoryContextSwitchTo(old);
		}
		/*
		 * once for each time the queue was found empty: a note that cannot
		 * be claimed (its file not renamed) does not keep it looking
		 * (session 66's review, /work/runs/review-s66.md R5)
		 */
		if (queue == NIL && !looked_again && QdbWorkerAnotherRound(QDB_WORKER_CALIBRATE))
		{
			looked_again = true;
			/* a cancel here leaves what it did not take noted (session 66's review S6) */
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		if (queue == NIL)
			break;
		looked_again = false;
		unmeasured = queue;
		foreach(lc, queue)
		{
			Oid			next = lfirst_oid(lc);

			unmeasured_from = foreach_current_index(lc);
			CHECK_FOR_INTERRUPTS();
			if (next != wc.indexoid)
			{
				wc.indexoid = next;
				wc.name = NULL; /* named by its OID in the CONTEXT line */
			}
			/* an ERROR (a lock_timeout) ends this one, not the rest */
			PG_TRY();
			{
				SetCurrentStatementStartTimestamp();
				StartTransactionCommand();
				PushActiveSnapshot(GetTransactionSnapshot());
				calibrate_one(next);
			}
			PG_CATCH();
			{
				ErrorData  *e;

				HOLD_INTERRUPTS();
				EmitErrorReport();
				MemoryContextSwitchTo(keep);
				e = CopyErrorData();
				AbortOutOfAnyTransaction();
				FlushErrorState();
				RESUME_INTERRUPTS();
				/*
				 * a cancel stops the worker, as it did before the queue; the
				 * rest is noted again as it ends (below)
				 */
				if (e->sqlerrcode == ERRCODE_QUERY_CANCELED)
				{
					unmeasured_from = foreach_current_index(lc) + 1;
					cancelled = true;
				}
				FreeErrorData(e);
			}
			PG_END_TRY();
			if (cancelled)
				break;
		}
		if (cancelled)
			break;
		unmeasured = NIL;
		list_free(queue);
		queue = NIL;
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	/*
	 * a cancel ends the round as its end does: the rest noted again, then
	 * the place handed on, to this database too (unlike a terminate, which
	 * leaves its database's notes to its next VACUUM: session 67's second
	 * review S4)
	 */
	requeue_at_exit(0, (Datum) 0);
	QdbWorkerEnd(QDB_WORKER_CALIBRATE);
	proc_exit(cancelled ? 1 : 0);
}
