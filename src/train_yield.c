/*-------------------------------------------------------------------------
 *
 * train_yield.c
 *	  The train worker's REINDEX gives way to a session that waits for a
 *	  lock it blocks, as autovacuum does (train_worker.c): nobody asked for
 *	  this work.  The build and the calibration ask QdbTrainWorkerShouldYield
 *	  between their steps, the training's progress callback asks
 *	  QdbTrainWorkerShouldYieldQuietly, and the worker tells a REINDEX that
 *	  gave way from one that failed (QdbTrainWorkerGaveWay).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/rel.h"

#include "index.h"

/* the table whose index the worker's REINDEX is training, else InvalidOid */
static Oid	reindexing_heap = InvalidOid;
/* that index (the one the REINDEX replaces), else InvalidOid */
static Oid	reindexing_index = InvalidOid;
/* its REINDEX ended in QdbTrainWorkerYield's ERROR */
static bool yielded_to_lock = false;

/*
 * The worker's REINDEX is about to build index indexoid's replacement on
 * table heapoid (InvalidOid, InvalidOid: it ended): what the yield checks
 * below look at.
 */
void
QdbTrainWorkerReindexing(Oid heapoid, Oid indexoid)
{
	reindexing_heap = heapoid;
	reindexing_index = indexoid;
	if (OidIsValid(heapoid))
		yielded_to_lock = false;
}

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
bool
QdbTrainWorkerGaveWay(int sqlerrcode, Oid heapoid, Oid indexoid)
{
	return yielded_to_lock ||
		(sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED && stronger_waiter(heapoid, indexoid));
}
