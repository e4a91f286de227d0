/*-------------------------------------------------------------------------
 *
 * train_opclass_lock.c
 *	  The train worker's hold on the operator classes of the index its
 *	  REINDEX INDEX CONCURRENTLY rebuilds (train_worker.c).
 *
 * A DROP ... CASCADE that reaches such an index through its operator class
 * (DROP EXTENSION quantumdb, or quantumdb_pgvector, or vector; DROP
 * OPERATOR CLASS or FAMILY; DROP ACCESS METHOD) reads the class's
 * dependents, then waits for the REINDEX's lock on the index.  Meanwhile
 * the REINDEX's swap moves the old index's dependencies to the new one and
 * deletes the new one's, so once the DROP has its lock both rows it read
 * are gone: it skips both indexes, drops the class, and leaves an index on
 * a class that no longer exists, whose table then no statement can open,
 * DROP TABLE included (XX000 "could not find tuple for opclass"; session
 * 65's hunt, /work/runs/hunt-s65b.md F1: a race in PostgreSQL itself, as
 * for any REINDEX CONCURRENTLY, that the worker runs unasked after a
 * VACUUM).  Such a DROP locks each object before it reads its dependents,
 * so a session-level ACCESS SHARE lock on each operator class, held from
 * before the REINDEX until it ends, makes it wait for the whole REINDEX and
 * then find the new index, which it drops.  While the worker trains and
 * builds it gives way to such a waiter as to DDL on its table
 * (QdbOpclassLockHasWaiters, QdbLockedOpclassTag).  The locks are taken
 * without waiting: a DROP that holds one already wins, and the worker lets
 * the index go.  An abort releases them with the REINDEX's own session
 * locks; QdbUnlockIndexOpclasses releases those still held.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_index.h"
#include "catalog/pg_opclass.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "index.h"

static Oid	locked[INDEX_MAX_KEYS];
static int	nlocked = 0;

static void
opclass_tag(LOCKTAG *tag, Oid opclass)
{
	SET_LOCKTAG_OBJECT(*tag, MyDatabaseId, OperatorClassRelationId, opclass, 0);
}

/*
 * Takes a session-level ACCESS SHARE lock on each operator class of
 * index's key columns, without waiting; false, holding none, when one is
 * locked by another session (a DROP under way) or is gone.
 */
bool
QdbLockIndexOpclasses(Relation index)
{
	int			nkeys = IndexRelationGetNumberOfKeyAttributes(index);
	bool		isnull;
	Datum		d = SysCacheGetAttr(INDEXRELID, index->rd_indextuple,
									Anum_pg_index_indclass, &isnull);
	oidvector  *indclass = (oidvector *) DatumGetPointer(d);

	QdbUnlockIndexOpclasses();
	Assert(!isnull && nkeys <= INDEX_MAX_KEYS);
	for (int i = 0; i < nkeys; i++)
	{
		Oid			opclass = indclass->values[i];
		LOCKTAG		tag;

		opclass_tag(&tag, opclass);
		if (LockAcquire(&tag, AccessShareLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		{
			QdbUnlockIndexOpclasses();
			return false;
		}
		locked[nlocked++] = opclass;
		if (!SearchSysCacheExists1(CLAOID, ObjectIdGetDatum(opclass)))
		{
			QdbUnlockIndexOpclasses();
			return false;
		}
	}
	return true;
}

/* Releases the locks QdbLockIndexOpclasses took that are still held (not after an abort). */
void
QdbUnlockIndexOpclasses(void)
{
	for (int i = 0; i < nlocked; i++)
	{
		LOCKTAG		tag;

		opclass_tag(&tag, locked[i]);
		if (LockHeldByMe(&tag, AccessShareLock))
			LockRelease(&tag, AccessShareLock, true);
	}
	nlocked = 0;
}

/* Whether a session waits for a lock on one of the held classes; neither allocates nor throws. */
bool
QdbOpclassLockHasWaiters(void)
{
	for (int i = 0; i < nlocked; i++)
	{
		LOCKTAG		tag;

		opclass_tag(&tag, locked[i]);
		if (LockHeldByMe(&tag, AccessShareLock) && LockHasWaiters(&tag, AccessShareLock, true))
			return true;
	}
	return false;
}

/* Whether tag (from the lock table) names one of the held classes. */
bool
QdbLockedOpclassTag(const LOCKTAG *tag)
{
	if (tag->locktag_type != LOCKTAG_OBJECT || tag->locktag_field1 != MyDatabaseId ||
		tag->locktag_field2 != OperatorClassRelationId)
		return false;
	for (int i = 0; i < nlocked; i++)
		if (tag->locktag_field3 == locked[i])
			return true;
	return false;
}
