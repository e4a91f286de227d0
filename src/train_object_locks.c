/*-------------------------------------------------------------------------
 *
 * train_object_locks.c
 *	  The train worker's hold on the objects the index its REINDEX INDEX
 *	  CONCURRENTLY rebuilds depends on (train_worker.c): its operator
 *	  classes, and the functions, operators, types and collations of its
 *	  expressions and predicate.
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
 * then find the new index, which it drops.  The same holds for every
 * object other than a relation that the index depends on (pg_depend):
 * DROP FUNCTION ... CASCADE of a function in its predicate or expressions
 * raced the same way (session 65's review, /work/runs/review-s65.md G4),
 * so each gets such a lock.  While the worker trains and builds it gives
 * way to a waiter for one as to DDL on its table
 * (QdbIndexObjectLockHasWaiters, QdbLockedIndexObjectTag): a DROP, or an
 * ALTER OPERATOR CLASS ... RENAME, OWNER TO or SET SCHEMA, which takes the
 * same lock.  The locks are taken without waiting: a session that holds
 * one already wins, and the worker lets the index go.  An abort releases
 * them with the REINDEX's own session locks; QdbUnlockIndexObjects
 * releases those still held.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/rel.h"
#include "utils/fmgroids.h"

#include "index.h"

/* the objects locked (classid, objid), at most MAX_LOCKED */
#define MAX_LOCKED 64
static Oid	locked_class[MAX_LOCKED];
static Oid	locked_obj[MAX_LOCKED];
static int	nlocked = 0;

static void
object_tag(LOCKTAG *tag, int i)
{
	SET_LOCKTAG_OBJECT(*tag, MyDatabaseId, locked_class[i], locked_obj[i], 0);
}

/*
 * Takes a session-level ACCESS SHARE lock on each object other than a
 * relation that index depends on, without waiting; false, holding none,
 * when another session holds one in a mode that conflicts (a DROP or an
 * ALTER under way).  Objects past the first 64 are not locked.
 */
bool
QdbLockIndexObjects(Relation index)
{
	Relation	depRel;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		ok = true;

	QdbUnlockIndexObjects();
	depRel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(RelationRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(RelationGetRelid(index)));
	scan = systable_beginscan(depRel, DependDependerIndexId, true, NULL, 2, key);
	while (ok && nlocked < MAX_LOCKED && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);
		LOCKTAG		tag;

		if (dep->refclassid == RelationRelationId)
			continue;			/* the table and its columns: the REINDEX holds it */
		locked_class[nlocked] = dep->refclassid;
		locked_obj[nlocked] = dep->refobjid;
		object_tag(&tag, nlocked);
		if (LockAcquire(&tag, AccessShareLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
			ok = false;
		else
			nlocked++;
	}
	if (ok && nlocked == MAX_LOCKED && HeapTupleIsValid(systable_getnext(scan)))
		ereport(LOG,
				(errmsg("index \"%s\" depends on more than %d objects: only the first %d are held while it is trained",
						RelationGetRelationName(index), MAX_LOCKED, MAX_LOCKED)));
	systable_endscan(scan);
	table_close(depRel, AccessShareLock);
	if (!ok)
		QdbUnlockIndexObjects();
	return ok;
}

/* Releases the locks QdbLockIndexObjects took that are still held (none after an abort). */
void
QdbUnlockIndexObjects(void)
{
	for (int i = 0; i < nlocked; i++)
	{
		LOCKTAG		tag;

		object_tag(&tag, i);
		if (LockHeldByMe(&tag, AccessShareLock))
			LockRelease(&tag, AccessShareLock, true);
	}
	nlocked = 0;
}

/* Whether a session waits for a lock on one of the held objects; neither allocates nor throws. */
bool
QdbIndexObjectLockHasWaiters(void)
{
	for (int i = 0; i < nlocked; i++)
	{
		LOCKTAG		tag;

		object_tag(&tag, i);
		if (LockHeldByMe(&tag, AccessShareLock) && LockHasWaiters(&tag, AccessShareLock, true))
			return true;
	}
	return false;
}

/* Whether tag (from the lock table) names one of the held objects. */
bool
QdbLockedIndexObjectTag(const LOCKTAG *tag)
{
	if (tag->locktag_type != LOCKTAG_OBJECT || tag->locktag_field1 != MyDatabaseId)
		return false;
	for (int i = 0; i < nlocked; i++)
		if (tag->locktag_field2 == locked_class[i] && tag->locktag_field3 == locked_obj[i])
			return true;
	return false;
}
