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
 * during that drop, leaves the copy for VACUUM to name.  One worker runs at a time in a
 * database, and after its index it takes the others that wait (their own
 * workers left), until none is left or a REINDEX was cancelled.  Locks are waited
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

/* Whether name ends with suffix, then digits or nothing. */
static bool
has_suffix(const char *name, const char *suffix)
{
	const char *at = NULL;
	const char *p;

	for (p = strstr(name, suffix); p != NULL; p = strstr(p + 1, suffix))
		at = p;
	if (at == NULL)
		return false;
	for (p = at + strlen(suffix); *p >= '0' && *p <= '9'; p++)
		;
	return *p == '\0';
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

/* A pg_index column that may be null (indexprs, indpred) as text, or "". */
static char *
index_text_attr(HeapTuple tup, AttrNumber att)
{
	bool		isnull;
	Datum		d = SysCacheGetAttr(INDEXRELID, tup, att, &isnull);

	return isnull ? "" : TextDatumGetCString(d);
}

/* The access method of relation oid, InvalidOid if it is gone. */
static Oid
rel_am(Oid oid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(oid));
	Oid			am = InvalidOid;

	if (HeapTupleIsValid(tup))
	{
		am = ((Form_pg_class) GETSTRUCT(tup))->relam;
		ReleaseSysCache(tup);
	}
	return am;
}

/*
 * Whether indexes a and b index the same thing as a REINDEX CONCURRENTLY
 * copy does its index: access method, columns, operator classes,
 * collations, options per column, expressions and predicate (not the
 * storage options or tablespace, which ALTER INDEX changes for the index
 * but not for a copy left before).
 */
static bool
same_definition(Oid a, Oid b)
{
	HeapTuple	ta = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(a));
	HeapTuple	tb = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(b));
	bool		same = false;

	if (HeapTupleIsValid(ta) && HeapTupleIsValid(tb))
	{
		Form_pg_index fa = (Form_pg_index) GETSTRUCT(ta);
		Form_pg_index fb = (Form_pg_index) GETSTRUCT(tb);
		bool		isnull;
		oidvector  *ca = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, ta, Anum_pg_index_indclass, &isnull));
		oidvector  *cb = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, tb, Anum_pg_index_indclass, &isnull));
		oidvector  *la = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, ta, Anum_pg_index_indcollation, &isnull));
		oidvector  *lb = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, tb, Anum_pg_index_indcollation, &isnull));
		int2vector *oa = (int2vector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, ta, Anum_pg_index_indoption, &isnull));
		int2vector *ob = (int2vector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, tb, Anum_pg_index_indoption, &isnull));
		int			n = fa->indnatts;

		same = rel_am(a) == rel_am(b) &&
			n == fb->indnatts && fa->indnkeyatts == fb->indnkeyatts &&
			memcmp(fa->indkey.values, fb->indkey.values, n * sizeof(int16)) == 0 &&
			memcmp(ca->values, cb->values, fa->indnkeyatts * sizeof(Oid)) == 0 &&
			memcmp(la->values, lb->values, fa->indnkeyatts * sizeof(Oid)) == 0 &&
			memcmp(oa->values, ob->values, fa->indnkeyatts * sizeof(int16)) == 0 &&
			strcmp(index_text_attr(ta, Anum_pg_index_indexprs),
				   index_text_attr(tb, Anum_pg_index_indexprs)) == 0 &&
			strcmp(index_text_attr(ta, Anum_pg_index_indpred),
				   index_text_attr(tb, Anum_pg_index_indpred)) == 0;
	}
	if (HeapTupleIsValid(ta))
		ReleaseSysCache(ta);
	if (HeapTupleIsValid(tb))
		ReleaseSysCache(tb);
	return same;
}

/*
 * The indexes of heap named as a REINDEX CONCURRENTLY copy of the index
 * named name, leaving out those in skip (OIDs): only those not valid, or,
 * with any_state, valid ones too (a table rewrite, TRUNCATE or ALTER
 * COLUMN TYPE, rebuilds a copy left not valid and makes it valid); name
 * NULL: every index of heap, dead ones too.  With
 * like valid (that index's OID), a copy whose name was cut short (so it
 * could be another long name's) must also index what like does, as a copy
 * does.
 */
static List *
copies_of(Relation heap, const char *name, Oid like, List *skip, bool any_state)
{
	List	   *found = NIL;
	Relation	pg_index = table_open(IndexRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	/*
	 * pg_index itself, not the relcache's list, which leaves out an index
	 * that a DROP INDEX CONCURRENTLY cut short left dead (not live)
	 */
	ScanKeyInit(&key, Anum_pg_index_indrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(RelationGetRelid(heap)));
	scan = systable_beginscan(pg_index, IndexIndrelidIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_index f = (Form_pg_index) GETSTRUCT(tup);
		char	   *relname;

		if (list_member_oid(skip, f->indexrelid))
			continue;
		if (name == NULL)
		{
			found = lappend_oid(found, f->indexrelid);
			continue;
		}
		relname = get_rel_name(f->indexrelid);
		if (relname == NULL || !is_copy_name(relname, name))
			continue;
		if (OidIsValid(like) && strncmp(relname, name, strlen(name)) != 0 &&
			!same_definition(f->indexrelid, like))
			continue;
		if (any_state || !f->indisvalid)
			found = lappend_oid(found, f->indexrelid);
	}
	systable_endscan(scan);
	table_close(pg_index, AccessShareLock);
	return found;
}

/*
 * An index of index's table that a REINDEX CONCURRENTLY of it left after
 * its swap (the old index, named index_name_ccold, then digits when that
 * was taken), not valid: a kill, a server stop or a promotion between the
 * swap and its drop leaves it, taking every insert until it goes (session
 * 66's hunt, /work/runs/hunt-s66d.md F4).  InvalidOid if none.  Only a
 * name not cut short is matched (an index name of 57 bytes or more gets
 * a shortened one), and only an index defined as index is.
 */
static Oid
old_leftover(Relation heap, Relation index)
{
	List	   *all = copies_of(heap, NULL, InvalidOid, list_make1_oid(RelationGetRelid(index)), true);
	const char *name = RelationGetRelationName(index);
	size_t		n = strlen(name);
	ListCell   *lc;

	foreach(lc, all)
	{
		Oid			oid = lfirst_oid(lc);
		char	   *relname = get_rel_name(oid);
		HeapTuple	tup;
		bool		valid = true;

		if (relname == NULL || strncmp(relname, name, n) != 0 ||
			strncmp(relname + n, "_ccold", 6) != 0 ||
			strspn(relname + n + 6, "0123456789") != strlen(relname + n + 6))
			continue;
		tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(oid));
		if (HeapTupleIsValid(tup))
		{
			valid = ((Form_pg_index) GETSTRUCT(tup))->indisvalid;
			ReleaseSysCache(tup);
		}
		/* and indexing what index does: not a user's index named so (session 66's review S2) */
		if (!valid && same_definition(oid, RelationGetRelid(index)))
			return oid;
	}
	return InvalidOid;
}

/*
 * The OID of an index of index's table left by a REINDEX CONCURRENTLY of it
 * that did not finish (named as its copy, or as the old index after the
 * swap; not valid), InvalidOid if none:
 * no worker trains index while one is there (see the top).
 */
Oid
QdbTrainLeftover(Relation heap, Relation index)
{
	List	   *left = copies_of(heap, RelationGetRelationName(index), RelationGetRelid(index),
								 list_make1_oid(RelationGetRelid(index)), false);

	return left != NIL ? linitial_oid(left) : old_leftover(heap, index);
}

/*
 * What such a leftover costs, for a message: an index whose build got as
 * far as ready takes every insert; one stopped before (indisready off, a
 * worker killed while it built) takes none (session 62's hunt,
 * /work/runs/hunt-s62b.md F3: the message said it took every insert).
 */
const char *
QdbLeftoverCost(Oid leftover)
{
	HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(leftover));
	bool		ready = true;

	if (HeapTupleIsValid(tup))
	{
		ready = ((Form_pg_index) GETSTRUCT(tup))->indisready;
		ReleaseSysCache(tup);
	}
	/* a copy whose build stopped early, or an old index marked dead (session 66's review S1) */
	return ready ? "it serves no query and takes every insert" :
		"it serves no query and takes no insert";
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

/*
 * At most quantumdb.max_train_workers such workers in the whole cluster,
 * each holding one of as many session-level advisory locks of database 0
 * (its last field 16 and up), taken only if free: the lock of
 * only_train_worker is per database, and 9 databases vacuumed at once ran
 * 7 trainings together, every free worker slot, so that a parallel query
 * elsewhere launched none of its workers (session 65's hunt,
 * /work/runs/hunt-s65a.md F2).  A worker that finds none free notes its
 * index and leaves; the first worker to end its round releases its slot
 * and starts one for it (hand_off_slot, train_handoff.c).
 */
static int	qdb_max_train_workers = 2;

void
QdbTrainWorkerInit(void)
{
	DefineCustomIntVariable("quantumdb.max_train_workers",
							"Background workers that train indexes' compressors at a time in the whole cluster.",
							"One at a time in each database in any case; a worker that finds them all busy notes its index and leaves, and the first of them to end starts a worker for it.",
							&qdb_max_train_workers, 2, 1, 64,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
}

/* the slot this worker holds, or -1 */
static int	held_slot = -1;

static void
slot_tag(LOCKTAG *tag, int slot)
{
	SET_LOCKTAG_ADVISORY(*tag, InvalidOid, 0x51444254, 0x5241494e, 16 + slot);
}

static bool
cluster_train_slot(void)
{
	for (int slot = 0; slot < qdb_max_train_workers; slot++)
	{
		LOCKTAG		tag;

		slot_tag(&tag, slot);
		if (LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL)
		{
			held_slot = slot;
			return true;
		}
	}
	return false;
}

/*
 * At the end of the worker's round: its place goes to an index of another
 * database whose worker found none (train_handoff.c).  at_exit: from the
 * exit callback below (no transaction may start: the databases are not
 * looked up).
 */
static void
hand_off_slot(bool at_exit)
{
	LOCKTAG		tag;

	if (held_slot < 0)
		return;
	slot_tag(&tag, held_slot);
	LockRelease(&tag, ExclusiveLock, true);
	held_slot = -1;
	QdbTrainHandOff(!at_exit);
}

/*
 * A worker that ends otherwise than at the end of its round (cancelled,
 * terminated, an ERROR) hands its place on too (session 65's second
 * review, /work/runs/review-s65b.md H1).
 */
static void
hand_off_at_exit(int code, Datum arg)
{
	hand_off_slot(true);
}

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

/* the table whose index the worker's REINDEX is training, else InvalidOid */
static Oid	reindexing_heap = InvalidOid;
/* that index (the one the REINDEX replaces), else InvalidOid */
static Oid	reindexing_index = InvalidOid;
/* its REINDEX ended in QdbTrainWorkerYield's ERROR */
static bool yielded_to_lock = false;

/*
 * Whether a session waits for a lock on table heapoid stronger than SHARE
 * UPDATE EXCLUSIVE (DDL, CREATE INDEX, LOCK TABLE) or as strong but with a
 * snapshot the REINDEX's wait for older snapshots would wait for (ANALYZE,
 * CREATE INDEX or REINDEX CONCURRENTLY, DETACH PARTITION CONCURRENTLY: all
 * but a lazy VACUUM; session 65's hunt, /work/runs/hunt-s65c.md F2, saw
 * them wait out the whole training, then deadlock), for one on index
 * indexoid (not InvalidOid) that the REINDEX's SHARE UPDATE EXCLUSIVE
 * blocks (ALTER INDEX, DROP ... CASCADE), or for one on an object the
 * index depends on that the worker holds (its operator class: a DROP, or
 * an ALTER OPERATOR CLASS; train_object_locks.c), from the
 * lock table as pg_locks shows it.
 */
/*
 * Whether process pid is a lazy VACUUM (PROC_IN_VACUUM, which vacuum_rel
 * sets before it waits for its lock): the REINDEX's wait for older
 * snapshots skips it, so it cannot deadlock with the worker.
 */
static bool
vacuum_proc(int pid)
{
	PGPROC	   *proc = BackendPidGetProc(pid);

	return proc != NULL && (proc->statusFlags & PROC_IN_VACUUM) != 0;
}

static bool
stronger_waiter(Oid heapoid, Oid indexoid)
{
	LockData   *data = GetLockStatusData();
	bool		found = false;

	for (int i = 0; i < data->nelements && !found; i++)
	{
		LockInstanceData *l = &data->locks[i];

		found = (l->locktag.locktag_type == LOCKTAG_RELATION &&
				 l->locktag.locktag_field1 == MyDatabaseId &&
				 ((l->locktag.locktag_field2 == heapoid &&
				   (l->waitLockMode > ShareUpdateExclusiveLock ||
					(l->waitLockMode == ShareUpdateExclusiveLock && !vacuum_proc(l->pid)))) ||
				  (OidIsValid(indexoid) && l->locktag.locktag_field2 == indexoid &&
				   l->waitLockMode >= ShareUpdateExclusiveLock))) ||
			(l->waitLockMode > AccessShareLock && QdbLockedIndexObjectTag(&l->locktag));
	}
	pfree(data->locks);
	pfree(data);
	return found;
}

/*
 * Whether a session waits for a lock on relation relid that this backend's
 * SHARE UPDATE EXCLUSIVE on it blocks; false when it holds none.  Neither
 * allocates nor throws (someone_waits).
 */
static bool
held_lock_has_waiters(Oid relid)
{
	LOCKTAG		tag;

	SET_LOCKTAG_RELATION(tag, MyDatabaseId, relid);
	return LockHeldByMe(&tag, ShareUpdateExclusiveLock) &&
		LockHasWaiters(&tag, ShareUpdateExclusiveLock, false);
}

/*
 * Whether heap is the table the worker's REINDEX builds an index of and a
 * session waits for a lock on it that SHARE UPDATE EXCLUSIVE blocks; never
 * allocates nor throws.  Asked of SHARE UPDATE EXCLUSIVE, which the REINDEX
 * holds: LockHasWaiters reads the lock's shared entry, which a lock taken
 * by the fast path (ACCESS SHARE to ROW EXCLUSIVE) lacks; asked of ACCESS
 * SHARE, it followed a NULL pointer (the SIGSEGV of session 59's reverted
 * attempt, found by session 60's review, /work/runs/review-s60.md).
 */
static bool
someone_waits(Relation heap)
{
	StaticAssertStmt(ShareUpdateExclusiveLock > RowExclusiveLock,
					 "a lock the fast path never takes");
	return OidIsValid(reindexing_heap) && RelationGetRelid(heap) == reindexing_heap &&
		((CheckRelationLockedByMe(heap, ShareUpdateExclusiveLock, false) &&
		  LockHasWaitersRelation(heap, ShareUpdateExclusiveLock)) ||
		 (OidIsValid(reindexing_index) && held_lock_has_waiters(reindexing_index)) ||
		 QdbIndexObjectLockHasWaiters());
}

/*
 * Whether the worker's REINDEX, building heap's index, should give way:
 * another session waits for a lock on the table that the REINDEX's SHARE
 * UPDATE EXCLUSIVE blocks and that is stronger than it (DDL such as ALTER
 * TABLE, CREATE INDEX).  As autovacuum gives way to a lock it blocks:
 * nobody asked for this work.  Without it such a statement waited out the
 * whole training and build, and then the REINDEX's wait for older
 * snapshots deadlocked with it and threw the work away (session 59's hunt,
 * /work/runs/hunt-s59b.md F2).  A VACUUM, ANALYZE or concurrent index
 * build (SHARE UPDATE EXCLUSIVE) waits as before: none deadlocks with the
 * REINDEX, and a VACUUM is what starts the worker again.  The build asks
 * when its training ends and between its batches of rows; during the
 * training it asks QdbTrainWorkerShouldYieldQuietly (below).  The lock
 * table is read only once LockHasWaitersRelation says someone waits.
 */
bool
QdbTrainWorkerShouldYield(Relation heap)
{
	return someone_waits(heap) && stronger_waiter(RelationGetRelid(heap), reindexing_index);
}

/*
 * QdbTrainWorkerShouldYield for the training's progress callback, which
 * must not throw (see above): the lock table's copy is read inside a
 * PG_TRY, and whatever it raises (only an allocation can fail, perhaps
 * with the lock partitions held) counts as no waiter.  The training then
 * stops by its hook, with no ERROR, and the build gives way once the
 * trainer has returned.  Without it a DDL statement waited out the whole
 * training (seconds to minutes), the worker looking only when it ended.
 * LockHasWaitersRelation alone neither allocates nor throws, so the lock
 * table is read only while someone waits.
 */
bool
QdbTrainWorkerShouldYieldQuietly(Relation heap)
{
	MemoryContext old = CurrentMemoryContext;
	uint32		holdoff = InterruptHoldoffCount;
	uint32		cancel_holdoff = QueryCancelHoldoffCount;
	uint32		crit = CritSectionCount;
	volatile bool found = false;

	if (!someone_waits(heap))
		return false;
	HOLD_INTERRUPTS();
	PG_TRY();
	{
		found = stronger_waiter(RelationGetRelid(heap), reindexing_index);
	}
	PG_CATCH();
	{
		/*
		 * errfinish() zeroed the hold-off counts before the jump: as they
		 * were, with this function's hold, or the RESUME below would wrap
		 * the count (a worker deaf to cancels and terminates) or trap
		 */
		InterruptHoldoffCount = holdoff + 1;
		QueryCancelHoldoffCount = cancel_holdoff;
		CritSectionCount = crit;
		MemoryContextSwitchTo(old);
		LWLockReleaseAll();
		FlushErrorState();
		found = false;
	}
	PG_END_TRY();
	RESUME_INTERRUPTS();
	return found;
}

void
QdbTrainWorkerYield(Relation heap, bool in_training)
{
	yielded_to_lock = true;
	ereport(ERROR,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("training a compressor on table \"%s\" gave way to another session waiting for a lock on it, the index or an object the index depends on",
					RelationGetRelationName(heap)),
			 in_training ? errdetail("It stopped in the middle of its training.") :
			 errdetail("It stopped after its training.")));
}

/*
 * Whether the REINDEX's ERROR means the worker gave way to another
 * session's lock: its own yield, or a deadlock while a statement waits for
 * a stronger lock on the table (asked before the abort lets it go).  A
 * lock_timeout, or a deadlock with anything else, is a failure like any
 * other: counted, so that VACUUM holds the next try back (session 59's
 * review, /work/runs/review-s59.md F1).
 */
static bool
gave_way(int sqlerrcode, Oid heapoid, Oid indexoid)
{
	return yielded_to_lock ||
		(sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED && stronger_waiter(heapoid, indexoid));
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
		copies = copies_of(heap, index_name, InvalidOid, before, true);
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
				strcmp(now, index_name) != 0 && has_suffix(now, "_ccold"))
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
	before = copies_of(heap, NULL, InvalidOid, NIL, true);
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
		reindexing_heap = heapoid;
		reindexing_index = indexoid;
		yielded_to_lock = false;
		ExecReindex(pstate, stmt, true);
		reindexing_heap = InvalidOid;
		reindexing_index = InvalidOid;
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

		reindexing_heap = InvalidOid;
		reindexing_index = InvalidOid;
		MemoryContextSwitchTo(keep);
		e = CopyErrorData();
		yielded = gave_way(e->sqlerrcode, heapoid, indexoid);
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

void
quantumdb_train_worker_main(Datum arg)
{
	Oid			indexoid = DatumGetObjectId(arg);
	QdbIndexWorkerContext wc;
	ErrorContextCallback errcb;
	List	   *tried = NIL;
	Oid			noted;

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
	 * giving way (gave_way), and the user's statement goes on (session
	 * 65's hunt, /work/runs/hunt-s65c.md F1: DDL that came during the
	 * build's calibration died of the deadlock instead)
	 */
	SetConfigOption("deadlock_timeout", "50ms", PGC_SUSET, PGC_S_OVERRIDE);

	if (!only_train_worker())
	{
		ereport(LOG,
				(errmsg("another index's compressor is being trained in this database: that worker takes this one next if it still wants training then, else the next VACUUM that finds its table large enough starts another")));
		PopActiveSnapshot();
		CommitTransactionCommand();
		proc_exit(0);
	}
	/*
	 * Its note is written before it looks a second time: a worker that
	 * ends in between finds it (the second review's H1)
	 */
	if (!cluster_train_slot())
	{
		QdbTrainHandOffNote(indexoid);
		if (!cluster_train_slot())
		{
			ereport(LOG,
					(errmsg("%d background workers train compressors in other databases (quantumdb.max_train_workers): the first of them to end starts another for this index",
							qdb_max_train_workers)));
			PopActiveSnapshot();
			CommitTransactionCommand();
			proc_exit(0);
		}
	}
	before_shmem_exit(hand_off_at_exit, (Datum) 0);
	/* this database's note is served here: its index after this one */
	noted = QdbTrainHandOffTake();
	/* no transaction while it waits for a table */
	PopActiveSnapshot();
	CommitTransactionCommand();
	while (OidIsValid(indexoid))
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		tried = lappend_oid(tried, indexoid);
		MemoryContextSwitchTo(old);
		if (!train_one(indexoid, &wc, &tried))
			break;
		CHECK_FOR_INTERRUPTS();
		indexoid = next_candidate(tried);
		/*
		 * the noted index last, unless the round took it (one marked to be
		 * trained again is a candidate once a VACUUM counted its entries)
		 */
		if (!OidIsValid(indexoid) && OidIsValid(noted) && !list_member_oid(tried, noted))
		{
			indexoid = noted;
			noted = InvalidOid;
		}
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	hand_off_slot(false);
	QdbDropNotesOfGoneDatabases();
	proc_exit(0);
}
