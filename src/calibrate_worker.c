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
 * more or fewer live nodes than when its calibration was taken, it starts
 * a dynamic background worker and goes on.  The measurement does not run
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
 */
#include "postgres.h"

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

PGDLLEXPORT void quantumdb_calibrate_worker_main(Datum arg);

/* the index's calibration is stale: it saw a quarter more or fewer nodes */
#define STALE_FACTOR 1.25

bool
QdbCalibrationStale(const QdbCalibration *cal, double live_nodes)
{
	/* an emptied index keeps its calibration: there is nothing to measure */
	return cal->nodes > 0 && live_nodes > 0 &&
		(live_nodes < cal->nodes / STALE_FACTOR || live_nodes > cal->nodes * STALE_FACTOR);
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

void
quantumdb_calibrate_worker_main(Datum arg)
{
	Oid			indexoid = DatumGetObjectId(arg);
	Oid			heapoid;
	Relation	index;
	Relation	heap;
	QdbCalibration old;
	QdbIndexWorkerContext wc;
	ErrorContextCallback errcb;

	wc.doing = "calibrating";
	wc.why = " again after a VACUUM changed its size";
	wc.retry = "; the next such VACUUM tries again";
	QdbIndexWorkerStart(&wc, &errcb, indexoid, "quantumdb calibrate");
	/* never wait long behind a lock: the next VACUUM tries again */
	SetConfigOption("lock_timeout", "10000", PGC_SUSET, PGC_S_OVERRIDE);

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
		proc_exit(0);
	}
	QdbRecalibrate(heap, index, &old);
	relation_close(index, NoLock);
	relation_close(heap, NoLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
