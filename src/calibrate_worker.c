/*
 * calibrate_worker.c
 *	  A new calibration after VACUUM, measured by a background worker.
 *
 * VACUUM (amvacuumcleanup) only decides: when the index holds a quarter
 * more or fewer live nodes than when its calibration was taken, it starts
 * a dynamic background worker and goes on.  The measurement does not run
 * inside VACUUM: there its snapshot would not hold back other backends'
 * pruning (PROC_IN_VACUUM), a parallel VACUUM's leader is in parallel mode,
 * and an error would abort the VACUUM after it has freed nodes.  The
 * worker connects to the database as the bootstrap superuser, as
 * autovacuum does, opens the index (quietly gone if it was dropped), checks
 * again that it is stale, and calibrates it in a transaction of its own as
 * the table's owner in a restricted security context (index_calibrate.c).
 * When no worker slot is free nothing happens: the next VACUUM tries again.
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
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
	return cal->nodes > 0 &&
		(live_nodes < cal->nodes / STALE_FACTOR || live_nodes > cal->nodes * STALE_FACTOR);
}

/* Starts a worker that calibrates index again; false if none could start. */
bool
QdbLaunchCalibrationWorker(Relation index)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *h;
	Oid			db = MyDatabaseId;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "quantumdb");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "quantumdb_calibrate_worker_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "quantumdb calibrate %u", RelationGetRelid(index));
	snprintf(w.bgw_type, BGW_MAXLEN, "quantumdb calibrate");
	w.bgw_main_arg = ObjectIdGetDatum(RelationGetRelid(index));
	memcpy(w.bgw_extra, &db, sizeof(Oid));
	w.bgw_notify_pid = 0;
	if (!RegisterDynamicBackgroundWorker(&w, &h))
		return false;
	pfree(h);
	return true;
}

void
quantumdb_calibrate_worker_main(Datum arg)
{
	Oid			indexoid = DatumGetObjectId(arg);
	Oid			db;
	Relation	index;
	Relation	heap;
	QdbCalibration old;

	memcpy(&db, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(db, InvalidOid, 0);
	/* never wait long behind a lock: the next VACUUM tries again */
	SetConfigOption("lock_timeout", "10000", PGC_SUSET, PGC_S_OVERRIDE);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "quantumdb calibrate");
	index = try_relation_open(indexoid, AccessShareLock);
	if (index == NULL || index->rd_rel->relkind != RELKIND_INDEX || index->rd_indam == NULL ||
		index->rd_indam->ambuild != qdbbuild ||
		!index->rd_index->indisready || !index->rd_index->indisvalid ||
		!QdbReadCalibrationQuiet(index, &old) ||
		!QdbCalibrationStale(&old, QdbCountLiveNodes(index)))
	{
		/* dropped, replaced, or calibrated since: nothing to do */
		if (index)
			relation_close(index, AccessShareLock);
		PopActiveSnapshot();
		CommitTransactionCommand();
		proc_exit(0);
	}
	heap = table_open(index->rd_index->indrelid, AccessShareLock);
	QdbRecalibrate(heap, index, &old);
	table_close(heap, AccessShareLock);
	relation_close(index, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
