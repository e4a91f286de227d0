/*
 * index_worker.c
 *	  What the background workers a VACUUM starts for one index share: the
 *	  start, and the CONTEXT line of what they log.
 *
 * calibrate_worker.c (a calibration after VACUUM) and train_worker.c (a
 * compressor for an index that has none) are started the same way: a
 * dynamic worker of this library, never restarted, given the index's OID
 * as its argument and the database's OID in bgw_extra, named with the
 * index's OID for pg_stat_activity.  Each names the index in a CONTEXT line
 * of everything it logs, and says that the next VACUUM tries again under an
 * ERROR only (its success LOG and its WARNINGs are no failure).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "compressor.h"
#include "index.h"

bool
QdbLaunchIndexWorker(Oid indexoid, const char *function, const char *type)
{
	return QdbLaunchIndexWorkerIn(MyDatabaseId, indexoid, function, type);
}

/* The same for an index of database db (a worker's hand-off of its place, worker_place.c). */
bool
QdbLaunchIndexWorkerIn(Oid db, Oid indexoid, const char *function, const char *type)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *h;

	QdbInitWorker(&w, function, type);
	snprintf(w.bgw_name, BGW_MAXLEN, "%s %u", type, indexoid);
	w.bgw_main_arg = ObjectIdGetDatum(indexoid);
	memcpy(w.bgw_extra, &db, sizeof(Oid));
	w.bgw_notify_pid = 0;
	if (!RegisterDynamicBackgroundWorker(&w, &h))
		return false;
	pfree(h);
	return true;
}

/*
 * The start of such a worker's main function: its CONTEXT line (wc and
 * errcb, which the caller keeps for the worker's life; wc's doing, why and
 * retry set), SIGTERM, the connection to the database as the bootstrap
 * superuser (whatever role or session_authorization the database's
 * settings choose, and whether
 * or not it takes connections), search_path pg_catalog, pg_temp (as
 * autovacuum: the table owner's index predicates and expressions,
 * evaluated as the owner, must not take functions from schemas others may
 * create in), then a
 * transaction with an active snapshot, and the index's name for the log,
 * read before any lock is waited for.
 */
void
QdbIndexWorkerStart(QdbIndexWorkerContext *wc, ErrorContextCallback *errcb,
					Oid indexoid, const char *activity)
{
	Oid			db;
	char	   *relname;
	char	   *nspname;

	memcpy(&db, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	wc->indexoid = indexoid;
	wc->name = NULL;
	errcb->callback = QdbIndexWorkerErrorContext;
	errcb->arg = wc;
	errcb->previous = error_context_stack;
	error_context_stack = errcb;
	pqsignal(SIGTERM, die);
	/* a reload reaches the worker where it looks (train_retry.c's delay) */
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	/*
	 * A database that takes no connections (ALLOW_CONNECTIONS false) still
	 * has its VACUUMs and autovacuum's start workers, as autovacuum works
	 * there; without the bypass each one died at its start (session 65's
	 * hunt, /work/runs/hunt-s65a.md F4)
	 */
	BackgroundWorkerInitializeConnectionByOid(db, InvalidOid, BGWORKER_BYPASS_ALLOWCONN);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	/*
	 * A role the database's or the superuser's settings choose (ALTER
	 * DATABASE ... SET role) is not the worker's: its REINDEX failed for
	 * want of ownership and backed off for good (the same hunt's F3)
	 */
	SetConfigOption("role", "none", PGC_SUSET, PGC_S_OVERRIDE);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();

	/*
	 * Nor is a session_authorization that a database's owner may set (ALTER
	 * DATABASE ... SET session_authorization, which a login pins and a
	 * worker connected without a user took): the worker ran as that role,
	 * and every REINDEX of the database failed for want of ownership
	 * (session 66's hunt, /work/runs/hunt-s66a.md F3).  Its check reads
	 * the catalog, in a transaction.  The bootstrap superuser by name, as
	 * the setting takes it; not a connection as that user, which a role
	 * made NOLOGIN would refuse.
	 */
	SetConfigOption("session_authorization", GetUserNameFromId(BOOTSTRAP_SUPERUSERID, false),
					PGC_SUSET, PGC_S_OVERRIDE);
	/*
	 * and pg_stat_activity, which took the user at the connection, shows
	 * that one: the role the setting named saw the worker as its own
	 * (session 66's review, /work/runs/review-s66.md R7)
	 */
	if (MyBEEntry != NULL)
	{
		volatile PgBackendStatus *be = MyBEEntry;

		PGSTAT_BEGIN_WRITE_ACTIVITY(be);
		be->st_userid = GetSessionUserId();
		PGSTAT_END_WRITE_ACTIVITY(be);
	}
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	relname = get_rel_name(indexoid);
	nspname = relname ? get_namespace_name(get_rel_namespace(indexoid)) : NULL;
	if (nspname != NULL)
		wc->name = MemoryContextStrdup(TopMemoryContext,
									   quote_qualified_identifier(nspname, relname));
}

/* An ErrorContextCallback; arg is the worker's QdbIndexWorkerContext. */
void
QdbIndexWorkerErrorContext(void *arg)
{
	QdbIndexWorkerContext *wc = (QdbIndexWorkerContext *) arg;
	int			class = ERRCODE_TO_CATEGORY(geterrcode());
	bool		failed = class != ERRCODE_SUCCESSFUL_COMPLETION && class != ERRCODE_WARNING;

	if (wc->name != NULL)
		errcontext("%s index %s%s%s", wc->doing, wc->name, wc->why,
				   failed ? wc->retry : "");
	else
		errcontext("%s the index with OID %u%s%s", wc->doing, wc->indexoid, wc->why,
				   failed ? wc->retry : "");
}
