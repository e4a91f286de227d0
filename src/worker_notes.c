/*-------------------------------------------------------------------------
 *
 * worker_notes.c
 *	  The background workers' notes: a file per database and kind in
 *	  pg_stat_tmp, named by a prefix and the database's OID.
 *
 * Three kinds (worker_place.h): the train worker's retries (train_retry.c,
 * its own lines, replaced whole through a temporary file), and the indexes
 * waiting for a train or a calibration worker (worker_place.c): lines of
 * index OIDs appended to the file, which the worker that serves them
 * claims by renaming it to one of its own ("<note>.<pid>") before it reads
 * it, so that two workers never take one note and a line appended during
 * the read is not lost.  The notes live as long as the server's data
 * directory, not beyond a DROP DATABASE (QdbDropNotesOfGoneDatabases).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "utils/syscache.h"

#include "worker_place.h"

/* this process failed to claim its database's notes (QdbNotesTake) */
bool		QdbNotesClaimFailed = false;

char *
QdbNotePath(const char *prefix, Oid db)
{
	return psprintf("%s/%s%u", PG_STAT_TMP_DIR, prefix, db);
}

/*
 * Replaces the file at path by text, through a temporary file renamed over
 * it; false when it could not (a LOG line, never an ERROR).
 */
bool
QdbReplaceFile(const char *path, const char *text)
{
	char	   *tmp = psprintf("%s.%d.tmp", path, MyProcPid);	/* writers of one path apart */
	FILE	   *f = AllocateFile(tmp, "w");
	bool		ok = f != NULL && fputs(text, f) >= 0;

	if (f != NULL && FreeFile(f) != 0)
		ok = false;
	if (ok && rename(tmp, path) != 0)
		ok = false;
	if (!ok)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", path)));
		unlink(tmp);
	}
	pfree(tmp);
	return ok;
}

/* the most a note file holds (some 6,000 indexes): a VACUUM that finds no worker slot notes too */
#define NOTE_MAX_BYTES 65536

/*
 * Notes index (of this database) as waiting for a worker of the note's
 * kind (a LOG line if it cannot); nothing when the file holds
 * NOTE_MAX_BYTES already: while worker slots stay taken, each VACUUM
 * appended a line (session 66's review T4), and a worker takes each index
 * once.
 */
void
QdbNoteIndex(const char *prefix, Oid indexoid)
{
	char	   *path = QdbNotePath(prefix, MyDatabaseId);
	struct stat st;
	FILE	   *f;

	if (stat(path, &st) == 0 && st.st_size >= NOTE_MAX_BYTES)
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

/* Whether database db has an index noted (a look, not a claim). */
bool
QdbNotesWaiting(const char *prefix, Oid db)
{
	char	   *path = QdbNotePath(prefix, db);
	struct stat st;
	bool		waiting = stat(path, &st) == 0 && st.st_size > 0;

	pfree(path);
	return waiting;
}

/* The first index database db's note names, not claimed; InvalidOid when none or unreadable. */
Oid
QdbNoteFirst(const char *prefix, Oid db)
{
	char	   *path = QdbNotePath(prefix, db);
	FILE	   *f = AllocateFile(path, "r");
	unsigned int oid = 0;

	if (f != NULL)
	{
		if (fscanf(f, "%u", &oid) != 1)
			oid = 0;
		FreeFile(f);
	}
	pfree(path);
	return (Oid) oid;
}

/*
 * The indexes of this database noted since the last claim, each once, in
 * the order noted (NIL: none), allocated in the current memory context;
 * the note goes.
 */
List *
QdbNotesTake(const char *prefix)
{
	char	   *path = QdbNotePath(prefix, MyDatabaseId);
	char	   *mine = psprintf("%s.%d", path, MyProcPid);
	List	   *oids = NIL;
	FILE	   *f;
	unsigned int oid;

	if (rename(path, mine) != 0)
	{
		int			save_errno = errno;

		/*
		 * not there: nothing noted; else (permissions, an immutable file)
		 * said once, and this worker hands its place to no worker of its
		 * own database, which would find the same (session 67's second
		 * review, /work/runs/review-s67b.md S3: 587 workers started in
		 * 5 s, each for the next)
		 */
		if (save_errno != ENOENT && !QdbNotesClaimFailed)
		{
			errno = save_errno;
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not rename file \"%s\" to \"%s\": %m", path, mine),
					 errdetail("The indexes it notes wait for a background worker that can claim them.")));
		}
		if (save_errno != ENOENT)
			QdbNotesClaimFailed = true;
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

/*
 * The databases with a note of this kind, this one too if with_own, every
 * one of them (*n of them, palloc'd): 32 of dropped databases ahead of a live
 * one left it without a worker when only the first 32 were read (session
 * 66's hunt, /work/runs/hunt-s66e.md F2).  The directory is read and
 * closed here: a transaction's end closes what is left open.  A failure
 * to read it is a LOG line, for an exit callback calls this.
 */
Oid *
QdbNoteDatabases(const char *prefix, bool with_own, int *n)
{
	DIR		   *dir = AllocateDir(PG_STAT_TMP_DIR);
	struct dirent *de;
	size_t		len = strlen(prefix);
	int			cap = 32;
	Oid		   *dbs = palloc(sizeof(Oid) * cap);

	*n = 0;
	while (dir != NULL && (de = ReadDirExtended(dir, PG_STAT_TMP_DIR, LOG)) != NULL)
	{
		unsigned int db;
		int			used = 0;

		if (strncmp(de->d_name, prefix, len) == 0 &&
			sscanf(de->d_name + len, "%u%n", &db, &used) == 1 &&
			de->d_name[len + used] == '\0' && (with_own || db != MyDatabaseId))
		{
			if (*n == cap)
			{
				cap *= 2;
				dbs = repalloc(dbs, sizeof(Oid) * cap);
			}
			dbs[(*n)++] = db;
		}
	}
	if (dir != NULL)
		FreeDir(dir);
	return dbs;
}

/* every kind of note */
static const char *const note_prefixes[] = {
	QDB_NOTE_TRAIN_RETRY, QDB_NOTE_TRAIN_WAITING, QDB_NOTE_CALIBRATE_WAITING
};

/*
 * With no transaction open: removes the notes of databases dropped since
 * they were written, every one of them, in one transaction of its own
 * (the catalog read for each note).  Before, a dropped database's retry
 * notes stayed in pg_stat_tmp for good (session 65's hunt,
 * /work/runs/hunt-s65a.md F6), and its OID, once taken by a new database,
 * gave that one its retry waits.  A claimed note ("<note>.<pid>") or a
 * temporary file ("<note>.<pid>.tmp") does not match.
 */
void
QdbDropNotesOfGoneDatabases(void)
{
	DIR		   *dir;
	struct dirent *de;

	StartTransactionCommand();
	dir = AllocateDir(PG_STAT_TMP_DIR);
	while (dir != NULL && (de = ReadDir(dir, PG_STAT_TMP_DIR)) != NULL)
	{
		for (int k = 0; k < lengthof(note_prefixes); k++)
		{
			size_t		len = strlen(note_prefixes[k]);
			unsigned int db;
			int			used = 0;

			if (strncmp(de->d_name, note_prefixes[k], len) == 0 &&
				sscanf(de->d_name + len, "%u%n", &db, &used) == 1 &&
				de->d_name[len + used] == '\0' && db != MyDatabaseId &&
				!SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(db)))
			{
				char	   *path = psprintf("%s/%s", PG_STAT_TMP_DIR, de->d_name);

				unlink(path);
				pfree(path);
				break;
			}
		}
	}
	if (dir != NULL)
		FreeDir(dir);
	CommitTransactionCommand();
}
