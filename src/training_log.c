/*
 * training_log.c
 *	  One row per epoch of neural training in quantumdb.training_log,
 *	  visible to other sessions while training still runs.
 *
 * The training transaction cannot commit midway, so each row is written
 * by a short-lived dynamic background worker: it logs in as the session
 * user (who could log in; the current role, reached with SET ROLE, may be
 * NOLOGIN), takes on the training's current role and security context,
 * inserts the row it finds in a small DSM segment, commits, and says so
 * in the segment: a stopped worker is not proof of a written row.  The
 * training backend waits for it, so rows land in order, but on its latch:
 * a query cancel, statement timeout or termination ends the wait (and the
 * worker), and the progress callback then reports the cancel.
 *
 * With no worker to be had the row is inserted in the training transaction
 * instead (visible at its commit), after one WARNING.  A row that could not
 * be written is a WARNING too, once per run, and the run's count of lost
 * rows is one more WARNING when training ends.
 *
 * Called from the trainer's progress callback, which must not throw: the
 * worker path holds interrupts and looks at the pending flags itself.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "compressor.h"

PGDLLEXPORT void quantumdb_log_worker_main(Datum arg);

#define LOG_COLUMNS 14
#define LOG_POLL_MS 1000		/* the latch wakes us sooner */

/* One row to write: an epoch of quantumdb.training_log ... */
typedef struct QdbLogRow
{
	int64		run;
	int32		epoch;
	float4		v[10];			/* total, recon, cluster, diversity, commit,
								 * triplet, entropy, recall, samples/s, tau */
	bool		best;
	bool		cuda;
	char		compressor[NAMEDATALEN];
} QdbLogRow;

/* ... or a trial of quantumdb.autotune_trials (QdbTrialRow, compressor.h). */
typedef enum LogTable
{
	LOG_TABLE_EPOCH = 1,
	LOG_TABLE_TRIAL
} LogTable;

/* What the worker reads and reports through (a DSM segment per row). */
typedef enum LogStatus
{
	LOG_NOT_STARTED = 0,		/* the worker has not attached */
	LOG_STARTED,				/* attached, not yet committed */
	LOG_WRITTEN,				/* committed */
	LOG_FAILED					/* an ERROR, in message */
} LogStatus;

#define QDB_LOG_MAGIC	0x51444C47	/* "QDLG" */

typedef struct QdbLogShared
{
	uint32		magic;			/* QDB_LOG_MAGIC: a segment made for us */
	int			trainer_pid;	/* the backend that waits (bgw_notify_pid) */
	pg_atomic_uint32 status;	/* LogStatus */
	Oid			database;
	Oid			login;			/* the session user: it could log in */
	Oid			userid;			/* the role the row is written as */
	int			sec_context;
	LogTable	table;
	union
	{
		QdbLogRow	epoch;
		QdbTrialRow trial;
	}			row;
	char		message[256];	/* with LOG_FAILED */
} QdbLogShared;

static const char *insert_sql =
"INSERT INTO quantumdb.training_log (run, compressor, epoch, device, loss, "
"reconstruction_loss, cluster_loss, diversity_loss, commitment_loss, "
"triplet_loss, code_entropy, validation_recall, samples_per_second, temperature, best) "
"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

static const char *trial_sql =
"INSERT INTO quantumdb.autotune_trials (run, compressor, trial, stage, kind, settings, "
"training_rows, quality, compression, speed, memory, score, seconds, walk_distances, "
"walk_microseconds, status) "
"VALUES ($1, $2, $3, $4, $5, $6::pg_catalog.jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

static void
insert_trial(const QdbTrialRow *r)
{
	Oid			types[16] = {INT8OID, TEXTOID, INT4OID, INT4OID, TEXTOID, TEXTOID, INT4OID};
	Datum		values[16];
	char		nulls[16];
	int			rc;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(r->run);
	values[1] = CStringGetTextDatum(r->compressor);
	values[2] = Int32GetDatum(r->trial);
	values[3] = Int32GetDatum(r->stage);
	values[4] = CStringGetTextDatum(r->kind);
	values[5] = CStringGetTextDatum(r->settings);
	values[6] = Int32GetDatum(r->training_rows);
	for (int i = 0; i < 8; i++)
	{
		types[7 + i] = FLOAT8OID;
		values[7 + i] = Float8GetDatum(r->v[i]);
		if (isnan(r->v[i]))
			nulls[7 + i] = 'n';
	}
	types[15] = TEXTOID;
	values[15] = CStringGetTextDatum(r->status);
	rc = SPI_execute_with_args(trial_sql, 16, types, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "autotune trial insert failed: %s", SPI_result_code_string(rc));
}

static void
insert_epoch(const QdbLogRow *r)
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

static void
insert_row(const QdbLogShared *sh)
{
	if (sh->table == LOG_TABLE_TRIAL)
		insert_trial(&sh->row.trial);
	else
		insert_epoch(&sh->row.epoch);
}

void
quantumdb_log_worker_main(Datum arg)
{
	dsm_segment *seg;
	QdbLogShared *sh;
	MemoryContext cxt;

	/* a cancel or terminate also ends a lock wait */
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		proc_exit(0);			/* the trainer stopped waiting already */
	sh = dsm_segment_address(seg);
	/* a late start may find the handle reused by an unrelated segment */
	if (dsm_segment_map_length(seg) < sizeof(QdbLogShared) || sh->magic != QDB_LOG_MAGIC ||
		sh->trainer_pid != (int) MyBgworkerEntry->bgw_notify_pid)
		proc_exit(0);
	pg_atomic_write_u32(&sh->status, LOG_STARTED);

	BackgroundWorkerInitializeConnectionByOid(sh->database, sh->login, 0);
	/* a lock the training's own transaction holds must not hang it */
	SetConfigOption("lock_timeout", "5000", PGC_USERSET, PGC_S_SESSION);
	/*
	 * The login role's search_path (ALTER ROLE ... SET) is not the one of
	 * the role the row is written as (a SECURITY DEFINER function's owner):
	 * no schema of the login role's may choose a type or function here.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* privileges are those of the training's current role */
	SetUserIdAndSecContext(sh->userid, sh->sec_context);
	PG_TRY();
	{
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, sh->table == LOG_TABLE_TRIAL ?
							   "quantumdb autotune trials" : "quantumdb training log");
		insert_row(sh);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		strlcpy(sh->message, e->message ? e->message : "unknown error",
				sizeof(sh->message));
		pg_write_barrier();
		pg_atomic_write_u32(&sh->status, LOG_FAILED);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pg_atomic_write_u32(&sh->status, LOG_WRITTEN);
	pgstat_report_activity(STATE_IDLE, NULL);
	dsm_detach(seg);
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

/* A row that was not written: one WARNING per run, and counted. */
void
QdbTrainingLogLost(QdbTrainingLog *log, const char *what, const char *reason)
{
	log->lost++;
	if (log->lost > 1)
		return;
	ereport(WARNING,
			(errmsg("training \"%s\": the log row of %s was not written: %s",
					log->compressor, what, reason),
			 errdetail("Rows of run " INT64_FORMAT " that cannot be written are counted and reported when training ends.",
					   log->run)));
}

/* When training ends: how many rows of the run are missing. */
void
QdbTrainingLogEnd(QdbTrainingLog *log)
{
	if (log->run <= 0 || log->lost == 0)
		return;
	ereport(WARNING,
			(errmsg("training \"%s\": %d of %d training log rows of run " INT64_FORMAT " were not written",
					log->compressor, log->lost, log->lost + log->written, log->run),
			 errhint("The server log may say why.")));
}

/* Whether a cancel, timeout or termination waits to be processed. */
static bool
interrupt_waiting(void)
{
	return QueryCancelPending || ProcDiePending;
}

/* A dynamic worker of this library: runs function, named type, never restarted. */
void
QdbInitWorker(BackgroundWorker *w, const char *function, const char *type)
{
	memset(w, 0, sizeof(BackgroundWorker));
	w->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w->bgw_start_time = BgWorkerStart_RecoveryFinished;
	w->bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w->bgw_library_name, BGW_MAXLEN, "quantumdb");
	snprintf(w->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(w->bgw_name, BGW_MAXLEN, "%s", type);
	snprintf(w->bgw_type, BGW_MAXLEN, "%s", type);
}

/*
 * Has a worker write sh->row and waits for it.  LOG_WRITTEN, LOG_FAILED
 * (or LOG_STARTED for a worker that stopped midway), or LOG_NOT_STARTED
 * when no worker ran; *interrupted when the wait was cut short.
 */
static LogStatus
write_by_worker(dsm_segment *seg, bool *interrupted)
{
	QdbLogShared *sh = dsm_segment_address(seg);
	BackgroundWorker w;
	BackgroundWorkerHandle *h;
	pid_t		pid;

	*interrupted = false;
	QdbInitWorker(&w, "quantumdb_log_worker_main", "quantumdb training log");
	w.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	w.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&w, &h))
		return LOG_NOT_STARTED;

	for (;;)
	{
		BgwHandleStatus st = GetBackgroundWorkerPid(h, &pid);

		if (st == BGWH_STOPPED || st == BGWH_POSTMASTER_DIED)
			break;
		if (interrupt_waiting())
		{
			TerminateBackgroundWorker(h);
			*interrupted = true;
			break;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 LOG_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	pfree(h);
	return (LogStatus) pg_atomic_read_u32(&sh->status);
}

/*
 * Writes the row in *sh (its table and row filled; sh is in a DSM segment
 * seg, or palloc'd with seg NULL when no segment could be had); false when
 * an interrupt cut the wait short (the caller reports the cancel).  A row
 * that could not be written is a WARNING (QdbTrainingLogLost) naming it as
 * what, never an ERROR from the worker path.
 */
static bool
write_row(QdbTrainingLog *log, dsm_segment *seg, QdbLogShared *sh, const char *what)
{
	LogStatus	st = LOG_NOT_STARTED;
	bool		interrupted = false;

	if (seg)
	{
		sh->magic = QDB_LOG_MAGIC;
		sh->trainer_pid = MyProcPid;
		sh->database = MyDatabaseId;
		sh->login = GetSessionUserId();
		GetUserIdAndSecContext(&sh->userid, &sh->sec_context);
		pg_write_barrier();
		HOLD_INTERRUPTS();
		st = write_by_worker(seg, &interrupted);
		RESUME_INTERRUPTS();
		pg_read_barrier();
	}
	if (interrupted)
	{
		/* the cancel error says it all; the row may be there or not */
		dsm_detach(seg);
		return false;
	}
	if (st == LOG_WRITTEN)
		log->written++;
	else if (st == LOG_FAILED)
		QdbTrainingLogLost(log, what, sh->message);
	else if (st == LOG_STARTED)
		QdbTrainingLogLost(log, what,
						   "the background worker writing it stopped before it committed");
	else
	{
		/*
		 * No worker ran: insert in the training transaction.  Interrupts
		 * stay live here (a lock wait must not hang the trainer); the
		 * caller's subtransaction catches a cancel and keeps it.
		 */
		if (!log->warned_in_transaction)
			ereport(WARNING,
					(errmsg("%s rows are written in the training transaction",
							sh->table == LOG_TABLE_TRIAL ? "autotune trial" : "training log"),
					 errdetail("No background worker could be started to write them at once."),
					 errhint("Raise max_worker_processes for rows other sessions can watch while training runs.")));
		log->warned_in_transaction = true;
		SPI_connect();
		insert_row(sh);
		SPI_finish();
		log->written++;
	}
	if (seg)
		dsm_detach(seg);
	else
		pfree(sh);
	return true;
}

/* A zeroed row to fill, in a new DSM segment (*seg) or, failing that, palloc'd. */
static QdbLogShared *
new_row(dsm_segment **seg, LogTable table)
{
	QdbLogShared *sh;

	*seg = dsm_create(sizeof(QdbLogShared), DSM_CREATE_NULL_IF_MAXSEGMENTS);
	sh = *seg ? dsm_segment_address(*seg) : palloc(sizeof(QdbLogShared));
	memset(sh, 0, sizeof(*sh));
	pg_atomic_init_u32(&sh->status, LOG_NOT_STARTED);
	sh->table = table;
	return sh;
}

/* Writes the log row of epoch s (write_row). */
bool
QdbTrainingLogWrite(QdbTrainingLog *log, const QdbEpochStats *s)
{
	const QdbNeuralEpoch *e = s->neural;
	dsm_segment *seg;
	QdbLogShared *sh = new_row(&seg, LOG_TABLE_EPOCH);
	QdbLogRow  *r = &sh->row.epoch;
	char		what[32];

	r->run = log->run;
	r->epoch = s->iter;
	r->v[0] = (float4) e->total;
	r->v[1] = (float4) e->recon;
	r->v[2] = (float4) e->cluster;
	r->v[3] = (float4) e->diversity;
	r->v[4] = (float4) e->commit;
	r->v[5] = (float4) e->triplet;
	r->v[6] = (float4) e->code_entropy;
	r->v[7] = (float4) e->val_recall;
	r->v[8] = (float4) e->samples_per_sec;
	r->v[9] = (float4) e->tau;
	r->best = e->best != 0;
	r->cuda = e->device && strcmp(e->device, "cuda") == 0;
	strlcpy(r->compressor, log->compressor, sizeof(r->compressor));
	snprintf(what, sizeof(what), "epoch %d", s->iter);
	return write_row(log, seg, sh, what);
}

/* Writes a trial's row of quantumdb.autotune_trials (write_row). */
bool
QdbAutotuneTrialWrite(QdbTrainingLog *log, const QdbTrialRow *row)
{
	dsm_segment *seg;
	QdbLogShared *sh = new_row(&seg, LOG_TABLE_TRIAL);
	char		what[32];

	sh->row.trial = *row;
	sh->row.trial.run = log->run;
	strlcpy(sh->row.trial.compressor, log->compressor, NAMEDATALEN);
	snprintf(what, sizeof(what), "trial %d", row->trial);
	return write_row(log, seg, sh, what);
}
