/*
 * training_log.c
 *	  One row per epoch of neural training in quantumdb.training_log,
 *	  visible to other sessions while training still runs.
 *
 * The training transaction cannot commit midway, so each row is written
 * by a short-lived dynamic background worker: it connects to the same
 * database as the same user, inserts the row carried in bgw_extra, commits
 * and exits, and the training backend waits for it so rows land in order.
 * With no free worker slot the row is inserted in the training
 * transaction instead (visible at its commit), after one WARNING.
 *
 * Called from the trainer's progress callback, which must not throw:
 * interrupts are held while a row is written, and a cancel is noticed by
 * the callback afterwards.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "quantumdb.h"

PGDLLEXPORT void quantumdb_log_worker_main(Datum arg);

#define LOG_COLUMNS 14

/* What a worker gets in bgw_extra (BGW_EXTRALEN = 128 bytes). */
typedef struct QdbLogRow
{
	int64		run;
	Oid			userid;
	int32		epoch;
	float4		v[10];			/* total, recon, cluster, diversity, commit,
								 * triplet, entropy, recall, samples/s, tau */
	bool		best;
	bool		cuda;
	char		compressor[NAMEDATALEN];
} QdbLogRow;

StaticAssertDecl(sizeof(QdbLogRow) <= BGW_EXTRALEN, "a log row must fit in bgw_extra");

static const char *insert_sql =
"INSERT INTO quantumdb.training_log (run, compressor, epoch, device, loss, "
"reconstruction_loss, cluster_loss, diversity_loss, commitment_loss, "
"triplet_loss, code_entropy, validation_recall, samples_per_second, temperature, best) "
"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

static void
insert_row(const QdbLogRow *r)
{
	Oid			types[LOG_COLUMNS + 1] = {INT8OID, TEXTOID, INT4OID, TEXTOID};
	Datum		values[LOG_COLUMNS + 1];
	int			rc;

	values[0] = Int64GetDatum(r->run);
	values[1] = CStringGetTextDatum(r->compressor);
	values[2] = Int32GetDatum(r->epoch);
	values[3] = CStringGetTextDatum(r->cuda ? "cuda" : "cpu");
	for (int i = 0; i < 10; i++)
	{
		types[4 + i] = FLOAT8OID;
		values[4 + i] = Float8GetDatum((double) r->v[i]);
	}
	types[14] = BOOLOID;
	values[14] = BoolGetDatum(r->best);
	rc = SPI_execute_with_args(insert_sql, LOG_COLUMNS + 1, types, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "training log insert failed: %s", SPI_result_code_string(rc));
}

void
quantumdb_log_worker_main(Datum arg)
{
	QdbLogRow	row;

	memcpy(&row, MyBgworkerEntry->bgw_extra, sizeof(row));
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), row.userid, 0);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "quantumdb training log");
	insert_row(&row);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}

/* A fresh run number for the log (a sequence: not rolled back). */
int64
QdbTrainingLogRun(void)
{
	Oid			nsp = get_namespace_oid("quantumdb", false);
	Oid			seq = get_relname_relid("training_run_seq", nsp);

	if (!OidIsValid(seq))
		elog(ERROR, "sequence quantumdb.training_run_seq is missing");
	/* the run number is the extension's own bookkeeping: no USAGE needed */
	return nextval_internal(seq, false);
}

/* Fails before training when the user could not write the log. */
void
QdbTrainingLogCheck(void)
{
	QdbCheckTableInsert("training_log", "Training writes one row per epoch there.");
}

static bool
start_worker(const QdbLogRow *r)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *h;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "quantumdb");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "quantumdb_log_worker_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "quantumdb training log");
	snprintf(w.bgw_type, BGW_MAXLEN, "quantumdb training log");
	w.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	w.bgw_notify_pid = MyProcPid;
	memcpy(w.bgw_extra, r, sizeof(*r));
	if (!RegisterDynamicBackgroundWorker(&w, &h))
		return false;
	/* interrupts are held: this returns when the worker is gone */
	return WaitForBackgroundWorkerShutdown(h) == BGWH_STOPPED;
}

void
QdbTrainingLogWrite(int64 run, const char *compressor, const QdbEpochStats *s,
					bool *warned)
{
	const QdbNeuralEpoch *e = s->neural;
	QdbLogRow	r;

	memset(&r, 0, sizeof(r));
	r.run = run;
	r.userid = GetUserId();
	r.epoch = s->iter;
	r.v[0] = (float4) e->total;
	r.v[1] = (float4) e->recon;
	r.v[2] = (float4) e->cluster;
	r.v[3] = (float4) e->diversity;
	r.v[4] = (float4) e->commit;
	r.v[5] = (float4) e->triplet;
	r.v[6] = (float4) e->code_entropy;
	r.v[7] = (float4) e->val_recall;
	r.v[8] = (float4) e->samples_per_sec;
	r.v[9] = (float4) e->tau;
	r.best = e->best != 0;
	r.cuda = e->device && strcmp(e->device, "cuda") == 0;
	strlcpy(r.compressor, compressor, sizeof(r.compressor));

	HOLD_INTERRUPTS();
	if (!start_worker(&r))
	{
		if (!*warned)
			ereport(WARNING,
					(errmsg("training log rows are written in the training transaction"),
					 errdetail("No background worker could be started to write them at once."),
					 errhint("Raise max_worker_processes for rows other sessions can watch while training runs.")));
		*warned = true;
		SPI_connect();
		insert_row(&r);
		SPI_finish();
	}
	RESUME_INTERRUPTS();
}
