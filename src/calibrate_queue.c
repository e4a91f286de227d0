/*-------------------------------------------------------------------------
 *
 * calibrate_queue.c
 *	  One calibration worker at a time in a database (calibrate_worker.c):
 *	  a worker that finds another at work notes its index here and leaves,
 *	  and the one at work takes the noted indexes after its own.  Without
 *	  it one VACUUM of a partitioned table started a worker per partition
 *	  at once, every free worker slot, so that a parallel query elsewhere
 *	  launched none of its workers (session 65's hunt,
 *	  /work/runs/hunt-s65c.md F3).
 *
 * The notes are lines of index OIDs appended to a file per database in
 * pg_stat_tmp, as the train worker's retry notes are; the worker at work
 * claims them by renaming the file to one of its own.  At the end of its
 * round the worker gives up its lock and looks once more, so that a note
 * appended after its last look is not left waiting for the next VACUUM
 * (calibrate_worker.c, another_round); one that exits before its queue's
 * end notes the rest again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/lock.h"

#include "calibration.h"

static char *
queue_path(void)
{
	return psprintf("%s/quantumdb_calibrate_waiting.%u", PG_STAT_TMP_DIR, MyDatabaseId);
}

/* the lock of the database's calibration worker */
static void
alone_tag(LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, 0x51444243, 0x414c4942, 4);
}

/*
 * Whether this worker is the database's calibration worker: a
 * session-level advisory lock of a key SQL's functions cannot name (its
 * last field 4), taken only if free, held until the worker exits or
 * gives it up at the end of its round (QdbCalibrationWorkerLeave).
 */
bool
QdbCalibrationWorkerAlone(void)
{
	LOCKTAG		tag;

	alone_tag(&tag);
	return LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
}

/* Gives up what QdbCalibrationWorkerAlone took; only a worker that holds it calls this. */
void
QdbCalibrationWorkerLeave(void)
{
	LOCKTAG		tag;

	alone_tag(&tag);
	LockRelease(&tag, ExclusiveLock, true);
}

/* Whether an index is noted as waiting (a look, not a claim). */
bool
QdbCalibrationQueueWaiting(void)
{
	char	   *path = queue_path();
	struct stat st;
	bool		waiting = stat(path, &st) == 0 && st.st_size > 0;

	pfree(path);
	return waiting;
}

/* the most the queue file holds (some 6,000 notes): a VACUUM that finds no worker slot notes too */
#define QUEUE_MAX_BYTES 65536

/*
 * Notes index as waiting for the database's calibration worker (a LOG line
 * if it cannot); nothing when the file holds QUEUE_MAX_BYTES already:
 * while worker slots stay taken, each VACUUM appended a line (session 66's
 * review T4), and the worker takes each index once.
 */
void
QdbCalibrationQueueAdd(Oid indexoid)
{
	char	   *path = queue_path();
	struct stat st;
	FILE	   *f;

	if (stat(path, &st) == 0 && st.st_size >= QUEUE_MAX_BYTES)
	{
		pfree(path);
		return;
	}
	f = AllocateFile(path, "a");

	if (f == NULL || fprintf(f, "%u\n", indexoid) < 0 || FreeFile(f) != 0)
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", path)));
	pfree(path);
}

/*
 * The indexes noted since the last call, each once, in the order noted
 * (NIL: none); allocated in the current memory context.
 */
List *
QdbCalibrationQueueTake(void)
{
	char	   *path = queue_path();
	char	   *mine = psprintf("%s.%d", path, MyProcPid);
	List	   *oids = NIL;
	FILE	   *f;
	unsigned int oid;

	if (rename(path, mine) != 0)
	{
		pfree(mine);
		pfree(path);
		return NIL;
	}
	f = AllocateFile(mine, "r");
	while (f != NULL && fscanf(f, "%u", &oid) == 1)
		if (OidIsValid(oid))
			oids = list_append_unique_oid(oids, oid);
	if (f != NULL)
		FreeFile(f);
	unlink(mine);
	pfree(mine);
	pfree(path);
	return oids;
}
