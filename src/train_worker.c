/*
 * train_worker.c
 *	  An index without a compressor trained by a background worker once a
 *	  VACUUM finds its table large enough.
 *
 * A build on fewer than 256 rows leaves an index without a compressor
 * (QDB_BUILT_UNTRAINED), whose scans read the whole heap: the index of a
 * table created empty by a migration, or emptied by TRUNCATE, stays that
 * way however many rows come after, until REINDEX.  With the index option
 * train_after_rows (10,000 by default; 0 turns it off), a VACUUM that finds
 * the table holding at least that many rows (and 256) starts this worker,
 * which runs REINDEX INDEX CONCURRENTLY on it: the build trains a
 * compressor from the table's rows as the table's owner, and the index
 * keeps its name, options and every use while it runs (inserts go on; its
 * scans read the heap until the swap).
 *
 * The worker connects as the bootstrap superuser, as autovacuum does, and
 * waits for the VACUUM that started it to end (SHARE UPDATE EXCLUSIVE on
 * the table, asked for without waiting once a second for half an hour, so that
 * it never queues behind, or cancels, an autovacuum).  It does nothing when
 * the index has gone, has a compressor, is not valid, has the option off
 * now, or when the table has a leftover of a REINDEX CONCURRENTLY of it
 * that did not finish (an index named like it with _ccnew, not valid):
 * such an index takes every insert, so it is named in a WARNING for the
 * DBA to drop, not dropped here (VACUUM names it and starts no worker).
 * When the REINDEX fails (an ERROR, a cancel), the worker drops the copy
 * it made (DROP INDEX CONCURRENTLY), or the old index when it failed after
 * its swap, logs why, and notes the failure (train_retry.c) for VACUUM's
 * back-off; a worker killed (SIGTERM, server stop), or cancelled again
 * during that drop, leaves the copy for VACUUM to name (train_leftover.c).
 * One worker runs at a time in a database, and at most
 * quantumdb.max_train_workers in the cluster (worker_place.c); after its
 * index it takes the others that wait (their own workers left), until none
 * is left or a REINDEX was cancelled.  Its REINDEX gives way to a session
 * that waits for a lock it blocks (train_yield.c).  Locks are waited
 * for as any REINDEX CONCURRENTLY waits (behind transactions older than the
 * build), under the server's lock_timeout.
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/stratnum.h"
#include "utils/fmgroids.h"
#include "access/table.h"
#include "access/genam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "index.h"
#include "worker_place.h"

PGDLLEXPORT void quantumdb_train_worker_main(Datum arg);

/*
 * How long the worker waits for the VACUUM that started it to let go of
 * the table, in seconds: half an hour, since a VACUUM holds the table's
 * lock through its TOAST table's vacuum too (PostgreSQL 15's vacuum_rel
 * takes it for the session), which for rows of 1,536 floats, kept out of
 * line, can take long.  Waiting costs a wake-up a second, outside any
 * transaction, and this database's one train worker slot.
 */
#define TABLE_LOCK_TRIES	1800

/* The rows a VACUUM must find before it starts a worker; 0: never. */
double
QdbTrainAfterRows(Relation index)
{
	int			rows = QdbGetTrainAfterRows(index);

	if (rows <= 0 || index->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		return 0;
	return Max(rows, QDB_KSUB);
}

/* Starts the worker for index; false when none could start. */
bool
QdbLaunchTrainWorker(Relation index)
{
	return QdbLaunchIndexWorker(RelationGetRelid(index), "quantumdb_train_worker_main",
								"quantumdb train");
}

/*
 * Starts a transaction that holds SHARE UPDATE EXCLUSIVE on table heapoid,
 * asked for without queueing once a second for up to TABLE_LOCK_TRIES
 * seconds; false, with no transaction open, when it stayed taken.  Between
 * tries no transaction is open, so no snapshot of the worker's holds back
 * what waits for older snapshots (CREATE INDEX CONCURRENTLY, REINDEX
 * CONCURRENTLY, anywhere in the database).
 */
static bool
begin_with_table_lock(Oid heapoid)
{
	for (int i = 0; i < TABLE_LOCK_TRIES; i++)
	{
		StartTransactionCommand();
		if (ConditionalLockRelationOid(heapoid, ShareUpdateExclusiveLock))
			return true;
		CommitTransactionCommand();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return false;
}

/*
 * The index and its table, opened, with SHARE UPDATE EXCLUSIVE on both, in
 * a transaction with an active snapshot: the table's lock waited for as
 * begin_with_table_lock() does (the VACUUM that started the worker holds
 * it), the index's taken only if free.  False, with a LOG line unless the
 * index has gone, and no transaction open, otherwise.
 */
static bool
lock_table_and_index(Oid indexoid, Relation *heap, Relation *index)
{
	Oid			heapoid;

	StartTransactionCommand();
	heapoid = IndexGetRelation(indexoid, true);
	CommitTransactionCommand();
	if (!OidIsValid(heapoid))
		return false;
	if (!begin_with_table_lock(heapoid))
	{
		ereport(LOG,
				(errmsg("the table of the index with OID %u stayed locked for %d seconds; no compressor trained",
						indexoid, TABLE_LOCK_TRIES)));
		return false;
	}
	PushActiveSnapshot(GetTransactionSnapshot());
	*heap = try_relation_open(heapoid, NoLock);
	*index = NULL;
	if (*heap != NULL && IndexGetRelation(indexoid, true) == heapoid)
	{
		if (ConditionalLockRelationOid(indexoid, ShareUpdateExclusiveLock))
			*index = try_relation_open(indexoid, NoLock);
		else
			ereport(LOG,
					(errmsg("another command holds the index with OID %u; no compressor trained",
							indexoid)));
	}
	if (*index != NULL)
		return true;
	if (*heap != NULL)
		relation_close(*heap, NoLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return false;
}

/* how long the drop of a failed copy waits for the table's writers */
#define DROP_LOCK_TIMEOUT	"10min"

/*
 * Whether the rows the index covers are enough for its build to train a
 * compressor (256 with a vector): else the REINDEX would leave it without
 * one again, at every VACUUM (a partial index covering a few rows of a
 * large table).  Read as the table's owner, whose predicate functions run,
 * in a security-restricted operation with search_path pinned, as a build.
 */
static bool
covers_enough(Relation heap, Relation index)
{
	QdbAsRole	as;
	bool		enough;

	QdbAsRoleBegin(&as, heap->rd_rel->relowner, 0);
	enough = QdbHeapCoversRows(heap, index, QDB_KSUB);
	QdbAsRoleEnd(&as);
	return enough;
}

/*
 * Whether index is still one this worker should reindex; *retrain: 0 if it
 * has no compressor, else why it is trained again (its QDB_BUILT_RETRAIN
 * flags: trained on a small sample, or fitting its rows worse than at its
 * build), which the messages name.
 */
static bool
still_untrained(Relation index, uint32 *retrain)
{
	QdbMetaPageData meta;

	*retrain = 0;
	if (index->rd_rel->relkind != RELKIND_INDEX || index->rd_indam == NULL ||
		index->rd_indam->ambuild != qdbbuild ||
		!index->rd_index->indisvalid || !index->rd_index->indisready ||
		QdbTrainAfterRows(index) <= 0)
		return false;
	QdbReadMeta(index, &meta);
	*retrain = QdbMetaUntrained(&meta) ? 0 : (meta.build_flags & QDB_BUILT_RETRAIN);
	return QdbMetaWantsTraining(&meta);
}

/*
 * Closes what lock_table_and_index() opened and ends its transaction,
 * which releases the locks: true, for train_one to return (the round goes
 * on).
 */
static bool
let_go(Relation heap, Relation index)
{
	relation_close(index, NoLock);
	relation_close(heap, NoLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return true;
}

/*
 * In a PG_CATCH: logs the ERROR, aborts every transaction and forgets the
 * cancel that raised it, if one did, so that the worker can go on.
 */
static void
log_and_abort(void)
{
	HOLD_INTERRUPTS();
	EmitErrorReport();
	AbortOutOfAnyTransaction();
	FlushErrorState();
	RESUME_INTERRUPTS();
	QueryCancelPending = false;
}

/*
 * After a REINDEX that failed: drops the copy it made, if any (an index of
 * heapoid named as the copy of index_name, not in before: not valid, or
 * valid once a table rewrite rebuilt it), or the old index when it failed
 * after its swap (then true, once dropped), with keep as the memory
 * context that outlives the drop's transactions.  Leaves no transaction.
 */
static bool
drop_failed_copy(Oid heapoid, Oid indexoid, const char *index_name, List *before,
				 MemoryContext keep, bool *cancelled)
{
	Relation	heap;
	List	   *copies = NIL;
	bool		old_index = false;
	volatile bool dropped = false;

	/*
	 * Under the table's SHARE UPDATE EXCLUSIVE no REINDEX CONCURRENTLY or
	 * CREATE INDEX CONCURRENTLY of it is under way (each holds that lock from
	 * start to end), so a copy not valid is one left by a REINDEX that
	 * ended: not another session's in the making.  No snapshot is held
	 * while it waits (such a command waits for older snapshots: a deadlock).
	 */
	if (!begin_with_table_lock(heapoid))
	{
		ereport(LOG,
				(errmsg("the table of index \"%s\" stayed locked for %d seconds: the copy of it the failed REINDEX CONCURRENTLY made, if any, is left",
						index_name, TABLE_LOCK_TRIES)));
		return false;
	}
	/* the drop commits: what it keeps across must not be in a transaction's memory */
	MemoryContextSwitchTo(keep);
	/*
	 * By the index's name as it was: a REINDEX CONCURRENTLY of it that
	 * another session ran meanwhile may have replaced it (its OID is gone)
	 * and left ours behind all the same
	 */
	heap = try_relation_open(heapoid, NoLock);
	if (heap != NULL)
	{
		copies = QdbIndexCopiesOf(heap, index_name, InvalidOid, before, true);
		relation_close(heap, NoLock);
	}

	/*
	 * None: the REINDEX may have failed after its swap, while it waited to
	 * drop the old index, which is this one now, not valid, renamed
	 * index_name_ccold: what it would have dropped
	 */
	if (copies == NIL)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
		char	   *now = get_rel_name(indexoid);

		if (HeapTupleIsValid(tup))
		{
			if (!((Form_pg_index) GETSTRUCT(tup))->indisvalid && now != NULL &&
				strcmp(now, index_name) != 0 && QdbOldIndexName(now))
			{
				copies = list_make1_oid(indexoid);
				old_index = true;
			}
			ReleaseSysCache(tup);
		}
	}

	if (list_length(copies) == 1)
	{
		ObjectAddress obj;
		ObjectAddresses *objs = new_object_addresses();
		char	   *copy = get_rel_name(linitial_oid(copies));
		char	   *timeout;

		ObjectAddressSet(obj, RelationRelationId, linitial_oid(copies));
		add_exact_object_address(&obj, objs);

		/*
		 * As DROP INDEX CONCURRENTLY: it commits and starts transactions of
		 * its own (popping this snapshot).  Not performDeletion, whose
		 * ACCESS EXCLUSIVE lock on the index takes a transaction ID (logged
		 * for standbys), which a concurrent drop refuses.
		 */
		PushActiveSnapshot(GetTransactionSnapshot());
		/*
		 * It waits for the table's writers as DROP INDEX CONCURRENTLY does,
		 * up to DROP_LOCK_TIMEOUT whatever lock_timeout says: a short one
		 * would leave the copy, which takes every insert and stops every
		 * later worker (session 54's chaos hunt), but forever would hold
		 * the table's lock against autovacuum, wraparound's included
		 */
		timeout = pstrdup(GetConfigOption("lock_timeout", false, false));
		SetConfigOption("lock_timeout", DROP_LOCK_TIMEOUT, PGC_SUSET, PGC_S_OVERRIDE);
		PG_TRY();
		{
			performMultipleDeletions(objs, DROP_RESTRICT,
									 PERFORM_DELETION_CONCURRENTLY | PERFORM_DELETION_INTERNAL);
			dropped = true;
			ereport(LOG,
					(errmsg("dropped index \"%s\", what the failed REINDEX CONCURRENTLY of index \"%s\" left",
							copy ? copy : "?", index_name)));
		}
		PG_CATCH();
		{
			/* a cancel here stops the worker's round too */
			*cancelled = geterrcode() == ERRCODE_QUERY_CANCELED;
			log_and_abort();
			ereport(LOG,
					(errmsg("index \"%s\", what the failed REINDEX CONCURRENTLY of index \"%s\" left, could not be dropped and is left",
							copy ? copy : "?", index_name),
					 errhint("DROP INDEX CONCURRENTLY it: it takes every insert, and the index trains no compressor by itself while it is there.")));
		}
		PG_END_TRY();
		SetConfigOption("lock_timeout", timeout, PGC_SUSET, PGC_S_OVERRIDE);
	}
	else if (list_length(copies) > 1)
		ereport(LOG,
				(errmsg("%d copies of index \"%s\" are left of REINDEX CONCURRENTLY runs that failed; none dropped",
						list_length(copies), index_name),
				 errhint("DROP INDEX CONCURRENTLY each of them.")));
	/* a drop that failed (a second cancel) aborted every transaction */
	if (IsTransactionState())
	{
		if (ActiveSnapshotSet())
			PopActiveSnapshot();
		CommitTransactionCommand();
	}
	return dropped && old_index;
}

/*
 * Logs what the REINDEX left under the index's name: a compressor, or none
 * (fewer than 256 distinct vectors among the rows it covers: copies of a
 * few vectors, or rows deleted meanwhile; or it is gone).  Returns the OID
 * the name has now (InvalidOid if none), whether that index has a
 * compressor in *trained_out, and its relfilenode in *filenode.  retrain:
 * the index had a compressor before (the messages say "trained again").
 */
static Oid
report_result(RangeVar *rv, Oid *filenode, bool failed, bool retrain, bool *trained_out)
{
	Oid			oid;
	bool		trained = false;
	bool		small = false;

	StartTransactionCommand();
	oid = RangeVarGetRelid(rv, AccessShareLock, true);
	if (OidIsValid(oid))
	{
		Relation	index = try_relation_open(oid, NoLock);

		if (index != NULL && index->rd_indam != NULL && index->rd_indam->ambuild == qdbbuild)
		{
			QdbMetaPageData meta;

			QdbReadMeta(index, &meta);
			trained = !QdbMetaWantsTraining(&meta);
			small = !QdbMetaUntrained(&meta) && !trained;
			*filenode = index->rd_node.relNode;
		}
		if (index != NULL)
			relation_close(index, NoLock);
	}
	if (trained)
		ereport(LOG,
				(retrain ? errmsg("index \"%s\" has a compressor trained again", rv->relname) :
				 errmsg("index \"%s\" now has a compressor", rv->relname),
				 failed ? errdetail("Its REINDEX CONCURRENTLY failed after the new index took its place, while the old one waited to be dropped.") : 0));
	else if (small && !failed)
		ereport(LOG,
				(errmsg("index \"%s\" was trained again on fewer rows than its train_after_rows", rv->relname),
				 errdetail("Fewer rows it covers had a vector when it was rebuilt than when VACUUM counted them.")));
	else if (!failed)
		ereport(LOG,
				(errmsg("index \"%s\" was rebuilt without a compressor", rv->relname),
				 errdetail("Fewer than 256 distinct vectors were among the rows it covers when it was rebuilt, or the index is gone.")));
	CommitTransactionCommand();
	*trained_out = trained;
	return oid;
}

/*
 * Trains the compressor of one index (see the top), leaving no transaction
 * open; the index its REINDEX made goes to *tried.  False when the worker
 * is to stop: its REINDEX was cancelled.
 */
static bool
train_one(Oid indexoid, QdbIndexWorkerContext *wc, List **tried)
{
	Oid			heapoid;
	Relation	heap;
	Relation	index;
	List	   *before;
	Oid			leftover;
	char	   *nspname;
	char	   *relname;
	ReindexStmt *stmt;
	MemoryContext keep;
	volatile bool go_on = true;
	bool		done = false;
	Oid			filenode;
	Oid			newnode = InvalidOid;
	volatile bool swapped = false;
	TimestampTz next;
	int			failures;
	uint32		retrain;

	if (!lock_table_and_index(indexoid, &heap, &index))
		return true;
	nspname = get_namespace_name(RelationGetNamespace(index));
	wc->indexoid = indexoid;
	wc->name = MemoryContextStrdup(TopMemoryContext,
								   quote_qualified_identifier(nspname, RelationGetRelationName(index)));
	if (!still_untrained(index, &retrain))
	{
		return let_go(heap, index);
	}
	if (!QdbTrainRetryNow(index, &next, &failures))
	{
		/* a VACUUM that starts no worker says why; the round goes on */
		ereport(DEBUG1,
				(errmsg("index \"%s\" is not trained before %s: its last %d tries failed",
						RelationGetRelationName(index), timestamptz_to_str(next), failures)));
		return let_go(heap, index);
	}
	heapoid = RelationGetRelid(heap);
	leftover = QdbTrainLeftover(heap, index);
	if (OidIsValid(leftover))
	{
		ereport(WARNING,
				(errmsg("index \"%s\" is not trained while index \"%s\" is left of a REINDEX CONCURRENTLY of it",
						RelationGetRelationName(index), get_rel_name(leftover)),
				 errdetail("That index is not valid: %s.", QdbLeftoverCost(leftover)),
				 errhint("DROP INDEX CONCURRENTLY %s;",
						 quote_qualified_identifier(nspname, get_rel_name(leftover)))));
		return let_go(heap, index);
	}
	if (!covers_enough(heap, index))
	{
		/*
		 * A failure for the back-off: the search may have read the whole
		 * table, and every VACUUM (autovacuum's too) would start it again
		 */
		failures = QdbTrainRetryNote(RelationGetRelid(index), index->rd_node.relNode, true, &next);
		ereport(LOG,
				(errmsg("index \"%s\" covers fewer than 256 rows with a vector: no compressor trained",
						RelationGetRelationName(index)),
				 errdetail("A REINDEX would leave it without one again. %s",
						   next > GetCurrentTimestamp() ?
						   psprintf("No VACUUM starts another worker for it before %s (%d time%s in a row; quantumdb.train_retry_delay).",
									timestamptz_to_str(next), failures, failures == 1 ? "" : "s") :
						   "The next VACUUM that finds the table large enough looks again.")));
		return let_go(heap, index);
	}

	filenode = index->rd_node.relNode;
	if (!QdbLockIndexObjects(index))
	{
		/* a DROP of its operator class (or of what holds it), or an ALTER of it */
		ereport(LOG,
				(errmsg("index \"%s\" is not trained now: another session holds a lock on an object it depends on (its operator class, or a function of its expressions or predicate)",
						RelationGetRelationName(index)),
				 errdetail("A DROP or ALTER of that object is under way; the next VACUUM that finds the table large enough tries again.")));
		return let_go(heap, index);
	}

	/* what outlives the REINDEX's transactions */
	keep = AllocSetContextCreate(TopMemoryContext, "quantumdb train worker",
								 ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(keep);
	before = QdbIndexCopiesOf(heap, NULL, InvalidOid, NIL, true);
	relname = pstrdup(RelationGetRelationName(index));
	nspname = pstrdup(nspname);
	stmt = makeNode(ReindexStmt);
	stmt->kind = REINDEX_OBJECT_INDEX;
	stmt->relation = makeRangeVar(nspname, relname, -1);
	stmt->params = list_make1(makeDefElem("concurrently", NULL, -1));
	relation_close(index, NoLock);
	relation_close(heap, NoLock);
	ereport(LOG,
			(retrain ?
			 errmsg("index \"%s\" has a compressor %s: training another (REINDEX INDEX CONCURRENTLY)",
					relname, (retrain & QDB_BUILT_FIT_STALE) ?
					"that fits its rows worse than at its build" :
					"trained on a sample smaller than its table has now") :
			 errmsg("index \"%s\" has no compressor and its table has rows enough: training one (REINDEX INDEX CONCURRENTLY)",
					relname)));

	/* the locks above stay held until the REINDEX takes its own */
	PG_TRY();
	{
		ParseState *pstate = make_parsestate(NULL);

		/* its memory contexts hang from PortalContext, which a worker lacks */
		PortalContext = keep;
		QdbTrainWorkerReindexing(heapoid, indexoid);
		ExecReindex(pstate, stmt, true);
		QdbTrainWorkerReindexing(InvalidOid, InvalidOid);
		QdbUnlockIndexObjects();
		if (ActiveSnapshotSet())
			PopActiveSnapshot();
		CommitTransactionCommand();
		done = true;
	}
	PG_CATCH();
	{
		ErrorData  *e;
		bool		yielded;

		QdbTrainWorkerReindexing(InvalidOid, InvalidOid);
		MemoryContextSwitchTo(keep);
		e = CopyErrorData();
		yielded = QdbTrainWorkerGaveWay(e->sqlerrcode, heapoid, indexoid);
		if (yielded)
		{
			/* no failure: a LOG line, not the ERROR's report */
			HOLD_INTERRUPTS();
			AbortOutOfAnyTransaction();
			FlushErrorState();
			RESUME_INTERRUPTS();
			QueryCancelPending = false;
			ereport(LOG,
					(errmsg("training a compressor for index \"%s\" gave way to another session waiting for a lock on it, its table or an object it depends on",
							relname),
					 e->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ?
					 errdetail_internal("%s: %s", e->message, e->detail ? e->detail : "") :
					 e->detail ? errdetail_internal("%s", e->detail) : 0));
		}
		else
			log_and_abort();
		/* the abort released the objects' locks with the REINDEX's own */
		QdbUnlockIndexObjects();
		/* a cancel stops the worker once its copy is dropped */
		go_on = e->sqlerrcode != ERRCODE_QUERY_CANCELED;
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* noted first: the drop waits for locks, where a second cancel lands */
		if (!yielded)
			failures = QdbTrainRetryNote(indexoid, filenode, true, &next);
		PG_TRY();
		{
			/* cancelled after its swap: the new index is in place, trained */
			bool		trained = false;
			bool		cancelled = false;

			if (drop_failed_copy(heapoid, indexoid, relname, before, keep, &cancelled))
			{
				Oid			now = report_result(stmt->relation, &newnode, true, retrain, &trained);

				/* not taken again in this round (session 66's review T2) */
				if (OidIsValid(now))
				{
					MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

					*tried = lappend_oid(*tried, now);
					MemoryContextSwitchTo(old);
				}
			}
			swapped = trained;
			if (cancelled)
				go_on = false;
		}
		PG_CATCH();
		{
			/* a second cancel, or a lock_timeout: the copy is left, for VACUUM to name */
			log_and_abort();
			go_on = false;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(keep);
		if (swapped)
			QdbTrainRetryNote(indexoid, filenode, false, &next);
		else if (yielded)
			ereport(LOG,
					(retrain ?
					 errmsg("index \"%s\" keeps its compressor: the next VACUUM that finds its table large enough tries again",
							relname) :
					 errmsg("index \"%s\" still has no compressor: the next VACUUM that finds its table large enough tries again",
							relname)));
		else
		{
			ereport(LOG,
					(errmsg("training a compressor for index \"%s\" failed (%d time%s in a row): %s",
							relname, failures, failures == 1 ? "" : "s",
							next > GetCurrentTimestamp() ?
							psprintf("no VACUUM starts another try before %s", timestamptz_to_str(next)) :
							"the next VACUUM that finds the table large enough tries again"),
					 (e->sqlerrcode == ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE ||
					  e->sqlerrcode == ERRCODE_DATA_EXCEPTION) ?
					 errhint("A row of the table is one the index cannot hold once trained (the ERROR before this line names it): change or delete it; then REINDEX INDEX CONCURRENTLY %s; trains it now.",
							 quote_qualified_identifier(nspname, relname)) :
					 errhint("The setting quantumdb.train_retry_delay says how long VACUUM waits; REINDEX INDEX CONCURRENTLY %s; trains it now.",
							 quote_qualified_identifier(nspname, relname))));
		}
	}
	PG_END_TRY();
	if (done)
	{
		bool		trained;
		Oid			now = report_result(stmt->relation, &newnode, false, retrain, &trained);
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		QdbTrainRetryNote(indexoid, filenode, false, &next);
		/* the new index is not taken again in this round (session 66's review T2) */
		if (OidIsValid(now))
			*tried = lappend_oid(*tried, now);
		if (OidIsValid(now) && !trained)
		{
			/*
			 * Still without one: a failure for the back-off (else every
			 * VACUUM of a table of a few distinct vectors would rebuild it)
			 */
			QdbTrainRetryNote(now, newnode, true, &next);
		}
		MemoryContextSwitchTo(old);
	}
	MemoryContextSwitchTo(TopMemoryContext);
	PortalContext = NULL;
	MemoryContextDelete(keep);
	return go_on;
}

/*
 * The next index of this database to train, not in tried: a valid one of
 * this access method, without a compressor or marked to be trained again
 * (covering train_after_rows rows), whose table (not temporary)
 * the last VACUUM or ANALYZE counted at its train_after_rows or more;
 * the largest table first.  InvalidOid when none is left.  This is how the
 * indexes whose workers left while this one trained (one at a time) are
 * trained: the partitions of a table VACUUM went through, say.
 */
static Oid
next_candidate(List *tried)
{
	Oid			found = InvalidOid;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();
	if (SPI_execute("SELECT i.indexrelid, t.reltuples, c.reltuples FROM pg_catalog.pg_index i "
					"JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid "
					"JOIN pg_catalog.pg_am a ON a.oid OPERATOR(pg_catalog.=) c.relam "
					"JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) i.indrelid "
					"WHERE a.amname OPERATOR(pg_catalog.=) 'quantumdb' AND c.relkind OPERATOR(pg_catalog.=) 'i' "
					"AND i.indisvalid AND i.indisready "
					"AND c.relpersistence OPERATOR(pg_catalog.<>) 't' "
					"AND t.reltuples OPERATOR(pg_catalog.>=) 256 "
					"ORDER BY t.reltuples DESC, i.indexrelid", true, 0) == SPI_OK_SELECT)
	{
		for (uint64 r = 0; r < SPI_processed && !OidIsValid(found); r++)
		{
			bool		isnull;
			Oid			oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[r],
															   SPI_tuptable->tupdesc, 1, &isnull));
			float4		reltuples = DatumGetFloat4(SPI_getbinval(SPI_tuptable->vals[r],
																 SPI_tuptable->tupdesc, 2, &isnull));
			/* the index's entries as the last VACUUM counted them (its live nodes) */
			float4		entries = DatumGetFloat4(SPI_getbinval(SPI_tuptable->vals[r],
															   SPI_tuptable->tupdesc, 3, &isnull));
			Relation	index;
			double		threshold;

			if (list_member_oid(tried, oid))
				continue;
			/* never waits for a lock with this snapshot held: skipped, tried later */
			if (!ConditionalLockRelationOid(oid, AccessShareLock))
				continue;
			index = try_relation_open(oid, NoLock);
			if (index == NULL)
			{
				UnlockRelationOid(oid, AccessShareLock);
				continue;
			}
			threshold = QdbTrainAfterRows(index);
			if (index->rd_rel->relkind == RELKIND_INDEX &&
				index->rd_indam != NULL && index->rd_indam->ambuild == qdbbuild &&
				threshold > 0 && reltuples >= threshold &&
				RelationGetNumberOfBlocks(index) > 0)
			{
				QdbMetaPageData meta;

				/*
				 * indexes without a compressor, and those marked to be trained
				 * again whose live nodes (the rows they cover, as the last
				 * VACUUM counted them: not read here, review T1) reach the
				 * threshold too, as retrain_cleanup asks (index_vacuum.c): the
				 * worker started for one of these by a VACUUM of many
				 * partitions left while this one trained, and only 52 of 300
				 * were trained again (session 66's hunt,
				 * /work/runs/hunt-s66e.md F5)
				 */
				QdbReadMeta(index, &meta);
				if (QdbMetaUntrained(&meta) ||
					(QdbMetaWantsTraining(&meta) && entries >= threshold))
					found = oid;
			}
			relation_close(index, AccessShareLock);
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return found;
}

/*
 * The indexes other workers of this database noted when they left
 * (worker_place.c) that this worker took and has not yet tried, in
 * TopMemoryContext: a worker that ends before them (a cancel,
 * pg_terminate_backend, a shutdown) notes them again for the database's
 * next worker (note_again_at_exit), as the calibration worker does.
 */
static List *noted = NIL;

static void
note_again_at_exit(int code, Datum arg)
{
	ListCell   *lc;

	foreach(lc, noted)
		QdbNoteIndex(QDB_NOTE_TRAIN_WAITING, lfirst_oid(lc));
	noted = NIL;
}

/*
 * The next index to train, not in tried: a candidate (next_candidate), or
 * else one the workers that left noted, which this worker takes into
 * noted.  InvalidOid when none is left.
 */
static Oid
next_index(List *tried)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	List	   *taken = QdbNotesTake(QDB_NOTE_TRAIN_WAITING);
	Oid			found;

	noted = list_concat(noted, taken);
	list_free(taken);
	MemoryContextSwitchTo(old);
	found = next_candidate(tried);
	/*
	 * the noted ones last, unless the round took them (one marked to be
	 * trained again is a candidate once a VACUUM counted its entries)
	 */
	while (!OidIsValid(found) && noted != NIL)
	{
		Oid			oid = linitial_oid(noted);

		noted = list_delete_first(noted);
		if (!list_member_oid(tried, oid))
			found = oid;
	}
	return found;
}

void
quantumdb_train_worker_main(Datum arg)
{
	Oid			indexoid = DatumGetObjectId(arg);
	QdbIndexWorkerContext wc;
	ErrorContextCallback errcb;
	List	   *tried = NIL;
	bool		looked_again = false;

	wc.doing = "training a compressor for";
	wc.why = " (REINDEX INDEX CONCURRENTLY) in a background worker";
	/* one ended mid-REINDEX may leave a copy, which VACUUM names (session 66's hunt F6) */
	wc.retry = "; a later VACUUM that finds the table large enough tries again (quantumdb.train_retry_delay), once any copy of the index it left (..._ccnew, ..._ccold) is dropped";
	QdbIndexWorkerStart(&wc, &errcb, indexoid, "quantumdb train");
	/*
	 * A statement that waits for the REINDEX's lock while the REINDEX waits
	 * for it (its wait for older snapshots or for lockers, where the
	 * worker no longer looks) is a deadlock that the first of the two to
	 * check finds, and the victim is the one that checks: the worker
	 * checks 50 ms into a wait, so it is the victim, which counts as
	 * giving way (QdbTrainWorkerGaveWay), and the user's statement goes on (session
	 * 65's hunt, /work/runs/hunt-s65c.md F1: DDL that came during the
	 * build's calibration died of the deadlock instead)
	 */
	SetConfigOption("deadlock_timeout", "50ms", PGC_SUSET, PGC_S_OVERRIDE);

	/* no transaction while it waits for a place or a table */
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (!QdbWorkerBegin(QDB_WORKER_TRAIN, indexoid))
		proc_exit(0);
	/* registered after the place's own callback: it runs before it */
	before_shmem_exit(note_again_at_exit, (Datum) 0);
	for (;;)
	{
		MemoryContext old;

		if (!OidIsValid(indexoid))
			indexoid = next_index(tried);
		/*
		 * once for each time none was left: a note whose index is not
		 * trained does not keep it looking (the calibration worker's rule,
		 * session 66's review R5)
		 */
		if (!OidIsValid(indexoid) && !looked_again && QdbWorkerAnotherRound(QDB_WORKER_TRAIN))
		{
			looked_again = true;
			continue;
		}
		if (!OidIsValid(indexoid))
			break;
		looked_again = false;
		old = MemoryContextSwitchTo(TopMemoryContext);
		tried = lappend_oid(tried, indexoid);
		MemoryContextSwitchTo(old);
		if (!train_one(indexoid, &wc, &tried))
			break;
		CHECK_FOR_INTERRUPTS();
		indexoid = InvalidOid;
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	/*
	 * what a cancelled REINDEX left of the notes taken, noted again before
	 * the hand-off reads the notes: after it, nobody served them (session
	 * 67's second review, /work/runs/review-s67b.md S1)
	 */
	note_again_at_exit(0, (Datum) 0);
	QdbWorkerEnd(QDB_WORKER_TRAIN);
	proc_exit(0);
}
