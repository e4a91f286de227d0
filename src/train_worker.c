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
 * the table, asked for without waiting once a second for a minute, so that
 * it never queues behind, or cancels, an autovacuum).  It does nothing when
 * the index has gone, has a compressor, is not valid, has the option off
 * now, or when the table has a leftover of a REINDEX CONCURRENTLY of it
 * that did not finish (an index named like it with _ccnew, not valid):
 * such an index takes every insert, so it is named in a WARNING for the
 * DBA to drop, not dropped here.  When the REINDEX fails (an ERROR, a
 * cancel), the worker drops the copy it made (DROP INDEX CONCURRENTLY),
 * logs why, and the next VACUUM tries again; a worker killed (SIGTERM,
 * server stop) leaves the copy for the next one to name.  Locks are waited
 * for as any REINDEX CONCURRENTLY waits (behind transactions older than the
 * build), under the server's lock_timeout.
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/wait_event.h"

#include "index.h"

PGDLLEXPORT void quantumdb_train_worker_main(Datum arg);

/* how long the worker waits for the VACUUM that started it, in seconds */
#define TABLE_LOCK_TRIES	60

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
 * Whether name is what REINDEX CONCURRENTLY names index_name's copy:
 * index_name_ccnew, then digits when that was taken, index_name cut short
 * when the whole would pass NAMEDATALEN - 1 bytes (ChooseRelationName).
 */
static bool
is_copy_name(const char *name, const char *index_name)
{
	const char *suffix = NULL;
	const char *p;
	size_t		n;

	for (p = strstr(name, "_ccnew"); p != NULL; p = strstr(p + 1, "_ccnew"))
		suffix = p;
	if (suffix == NULL)
		return false;
	for (p = suffix + 6; *p >= '0' && *p <= '9'; p++)
		;
	if (*p != '\0')
		return false;
	n = suffix - name;
	if (strncmp(name, index_name, n) != 0 || n > strlen(index_name))
		return false;
	return n == strlen(index_name) || strlen(name) > NAMEDATALEN - 1 - MAX_MULTIBYTE_CHAR_LEN;
}

/*
 * The indexes of heap that are not valid and named as index's REINDEX
 * CONCURRENTLY copy, leaving out those in skip (OIDs).
 */
static List *
invalid_copies(Relation heap, Relation index, List *skip)
{
	List	   *found = NIL;
	ListCell   *lc;
	const char *name = RelationGetRelationName(index);

	foreach(lc, RelationGetIndexList(heap))
	{
		Oid			oid = lfirst_oid(lc);
		HeapTuple	tup;
		char	   *relname;

		if (oid == RelationGetRelid(index) || list_member_oid(skip, oid))
			continue;
		relname = get_rel_name(oid);
		if (relname == NULL || !is_copy_name(relname, name))
			continue;
		tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(oid));
		if (!HeapTupleIsValid(tup))
			continue;
		if (!((Form_pg_index) GETSTRUCT(tup))->indisvalid)
			found = lappend_oid(found, oid);
		ReleaseSysCache(tup);
	}
	return found;
}

/*
 * Waits, without queueing, for SHARE UPDATE EXCLUSIVE on the index's table
 * and then on the index, and opens both; false (nothing held, nothing
 * open) when the index has gone or the minute ran out.  In a transaction
 * with an active snapshot, which it leaves open either way.
 */
static bool
lock_table_and_index(Oid indexoid, Relation *heap, Relation *index)
{
	for (int i = 0; i < TABLE_LOCK_TRIES; i++)
	{
		Oid			heapoid = IndexGetRelation(indexoid, true);

		if (!OidIsValid(heapoid))
			return false;
		if (ConditionalLockRelationOid(heapoid, ShareUpdateExclusiveLock))
		{
			*heap = try_relation_open(heapoid, NoLock);
			if (*heap != NULL && ConditionalLockRelationOid(indexoid, ShareUpdateExclusiveLock))
			{
				*index = try_relation_open(indexoid, NoLock);
				if (*index != NULL && (*index)->rd_index != NULL &&
					(*index)->rd_index->indrelid == heapoid)
					return true;
				if (*index != NULL)
					relation_close(*index, NoLock);
			}
			if (*heap != NULL)
				relation_close(*heap, NoLock);
			return false;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	ereport(LOG,
			(errmsg("the table of the index with OID %u stayed locked for a minute; no compressor trained",
					indexoid)));
	return false;
}

/*
 * One such worker at a time per database: a session-level advisory lock of
 * this key (its last field 3, where the SQL functions' are 1 and 2), taken
 * only if free.  Each REINDEX trains with up
 * to maintenance_work_mem and takes a background worker slot, which
 * parallel queries share: a partitioned table whose every partition's
 * index crossed the threshold in one autovacuum round must not start them
 * all at once.
 */
static bool
only_train_worker(void)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0x51444254, 0x5241494e, 3);
	return LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
}

/* Whether index is still one this worker should reindex. */
static bool
still_untrained(Relation index)
{
	QdbMetaPageData meta;

	if (index->rd_rel->relkind != RELKIND_INDEX || index->rd_indam == NULL ||
		index->rd_indam->ambuild != qdbbuild ||
		!index->rd_index->indisvalid || !index->rd_index->indisready ||
		QdbTrainAfterRows(index) <= 0)
		return false;
	QdbReadMeta(index, &meta);
	return QdbMetaUntrained(&meta);
}

/*
 * After a REINDEX that failed: drops the copy it made, if any (an index of
 * heapoid named as the copy of index_name, not valid, not in before), with
 * keep as the memory context that outlives the drop's transactions.
 */
static void
drop_failed_copy(Oid heapoid, Oid indexoid, const char *index_name, List *before,
				 MemoryContext keep)
{
	Relation	heap;
	Relation	index;
	List	   *copies = NIL;

	StartTransactionCommand();
	/* the drop commits: what it keeps across must not be in a transaction's memory */
	MemoryContextSwitchTo(keep);
	PushActiveSnapshot(GetTransactionSnapshot());
	heap = try_relation_open(heapoid, AccessShareLock);
	index = heap ? try_relation_open(indexoid, AccessShareLock) : NULL;
	if (index != NULL)
	{
		copies = invalid_copies(heap, index, before);
		relation_close(index, AccessShareLock);
	}
	if (heap != NULL)
		relation_close(heap, AccessShareLock);

	if (list_length(copies) == 1)
	{
		ObjectAddress obj;
		ObjectAddresses *objs = new_object_addresses();
		char	   *copy = get_rel_name(linitial_oid(copies));

		ObjectAddressSet(obj, RelationRelationId, linitial_oid(copies));
		add_exact_object_address(&obj, objs);

		/*
		 * As DROP INDEX CONCURRENTLY: it commits and starts transactions of
		 * its own.  Not performDeletion, whose ACCESS EXCLUSIVE lock on the
		 * index takes a transaction ID (logged for standbys), which a
		 * concurrent drop refuses.
		 */
		performMultipleDeletions(objs, DROP_RESTRICT,
								 PERFORM_DELETION_CONCURRENTLY | PERFORM_DELETION_INTERNAL);
		ereport(LOG,
				(errmsg("dropped index \"%s\", the copy of index \"%s\" that the failed REINDEX CONCURRENTLY left",
						copy ? copy : "?", index_name)));
	}
	if (ActiveSnapshotSet())
		PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Logs what the REINDEX left under the index's name: a compressor, or none
 * (the rows it covers fell under 256 meanwhile, or it is gone).
 */
static void
report_result(RangeVar *rv)
{
	Oid			oid;
	bool		trained = false;

	StartTransactionCommand();
	oid = RangeVarGetRelid(rv, AccessShareLock, true);
	if (OidIsValid(oid))
	{
		Relation	index = try_relation_open(oid, NoLock);

		if (index != NULL && index->rd_indam != NULL && index->rd_indam->ambuild == qdbbuild)
		{
			QdbMetaPageData meta;

			QdbReadMeta(index, &meta);
			trained = !QdbMetaUntrained(&meta);
		}
		if (index != NULL)
			relation_close(index, NoLock);
	}
	if (trained)
		ereport(LOG,
				(errmsg("index \"%s\" now has a compressor", rv->relname)));
	else
		ereport(LOG,
				(errmsg("index \"%s\" was rebuilt without a compressor", rv->relname),
				 errdetail("The rows it covers were under 256 when it was rebuilt, or the index is gone.")));
	CommitTransactionCommand();
}

void
quantumdb_train_worker_main(Datum arg)
{
	Oid			indexoid = DatumGetObjectId(arg);
	Oid			heapoid;
	Relation	heap;
	Relation	index;
	QdbIndexWorkerContext wc;
	ErrorContextCallback errcb;
	List	   *before;
	List	   *leftovers;
	char	   *nspname;
	char	   *relname;
	ReindexStmt *stmt;
	MemoryContext keep;

	wc.doing = "training a compressor for";
	wc.why = " (REINDEX INDEX CONCURRENTLY) in a background worker";
	wc.retry = "; the next VACUUM that finds the table large enough tries again";
	QdbIndexWorkerStart(&wc, &errcb, indexoid, "quantumdb train");

	if (!only_train_worker())
	{
		ereport(LOG,
				(errmsg("another index's compressor is being trained in this database; the next VACUUM tries again")));
		PopActiveSnapshot();
		CommitTransactionCommand();
		proc_exit(0);
	}
	if (!lock_table_and_index(indexoid, &heap, &index))
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		proc_exit(0);
	}
	if (!still_untrained(index))
	{
		relation_close(index, NoLock);
		relation_close(heap, NoLock);
		PopActiveSnapshot();
		CommitTransactionCommand();	/* releases the locks */
		proc_exit(0);
	}
	heapoid = RelationGetRelid(heap);
	nspname = get_namespace_name(RelationGetNamespace(index));
	leftovers = invalid_copies(heap, index, NIL);
	if (leftovers != NIL)
	{
		ereport(WARNING,
				(errmsg("index \"%s\" has no compressor, and is not trained while index \"%s\" is left of a REINDEX CONCURRENTLY of it",
						RelationGetRelationName(index), get_rel_name(linitial_oid(leftovers))),
				 errdetail("That index is not valid: it serves no query and takes every insert."),
				 errhint("DROP INDEX CONCURRENTLY %s;",
						 quote_qualified_identifier(nspname, get_rel_name(linitial_oid(leftovers))))));
		relation_close(index, NoLock);
		relation_close(heap, NoLock);
		PopActiveSnapshot();
		CommitTransactionCommand();
		proc_exit(0);
	}

	/* what outlives the REINDEX's transactions */
	keep = AllocSetContextCreate(TopMemoryContext, "quantumdb train worker",
								 ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(keep);
	before = list_copy(RelationGetIndexList(heap));
	relname = pstrdup(RelationGetRelationName(index));
	nspname = pstrdup(nspname);
	stmt = makeNode(ReindexStmt);
	stmt->kind = REINDEX_OBJECT_INDEX;
	stmt->relation = makeRangeVar(nspname, relname, -1);
	stmt->params = list_make1(makeDefElem("concurrently", NULL, -1));
	relation_close(index, NoLock);
	relation_close(heap, NoLock);
	ereport(LOG,
			(errmsg("index \"%s\" has no compressor and its table has rows enough: training one (REINDEX INDEX CONCURRENTLY)",
					relname)));

	/* the locks above stay held until the REINDEX takes its own */
	PG_TRY();
	{
		ParseState *pstate = make_parsestate(NULL);

		/* its memory contexts hang from PortalContext, which a worker lacks */
		PortalContext = keep;
		ExecReindex(pstate, stmt, true);
		if (ActiveSnapshotSet())
			PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		EmitErrorReport();
		AbortOutOfAnyTransaction();
		FlushErrorState();
		RESUME_INTERRUPTS();
		/* a cancel is spent; the copy is dropped all the same */
		QueryCancelPending = false;
		drop_failed_copy(heapoid, indexoid, relname, before, keep);
		proc_exit(0);
	}
	PG_END_TRY();
	report_result(stmt->relation);
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
