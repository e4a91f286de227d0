/*-------------------------------------------------------------------------
 *
 * train_handoff.c
 *	  A train worker that leaves because quantumdb.max_train_workers others
 *	  train in other databases notes its index (QdbTrainHandOffNote), and a
 *	  worker that ends its round gives its place to one such index of
 *	  another database (QdbTrainHandOff).  Without it, such an index waited
 *	  for the next VACUUM that found its table large enough, which
 *	  autovacuum may never run on a table loaded once and left alone
 *	  (session 65's review, /work/runs/review-s65.md G3).
 *
 * The note is a file per database in pg_stat_tmp, as the retry notes are
 * (train_retry.c), holding the index's OID: the latest one wins (the
 * worker started for it also takes the database's other indexes without a
 * compressor whose tables reached their threshold).  It goes only once a
 * worker of that database has taken a place (QdbTrainHandOffTake), so a
 * worker started for it that never runs (a shutdown) or that leaves (the
 * database's lock still held) loses nothing: the next worker to end
 * starts another (session 65's third review, /work/runs/review-s65c.md
 * K2 to K4).  Two workers ending together may both start one: the second
 * finds the database's lock held and leaves.  A note of a database
 * dropped since is dropped, and so are the other notes such a database
 * left (QdbDropNotesOfGoneDatabases).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/catalog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "utils/syscache.h"

#include "index.h"

#define NOTE_PREFIX "quantumdb_train_waiting."

static char *
note_path(Oid db)
{
	return psprintf("%s/%s%u", PG_STAT_TMP_DIR, NOTE_PREFIX, db);
}

/* The index the note at path names; InvalidOid when there is none or it is unreadable. */
static Oid
read_note(const char *path)
{
	FILE	   *f = AllocateFile(path, "r");
	unsigned int indexoid = 0;

	if (f == NULL)
		return InvalidOid;
	if (fscanf(f, "%u", &indexoid) != 1)
		indexoid = 0;
	FreeFile(f);
	return (Oid) indexoid;
}

/* Notes index (of this database) as waiting for a train worker's place (a LOG line if it cannot). */
void
QdbTrainHandOffNote(Oid indexoid)
{
	char	   *path = note_path(MyDatabaseId);
	char	   *text = psprintf("%u\n", indexoid);

	QdbReplaceFile(path, text);
	pfree(text);
	pfree(path);
}

/*
 * This database's note, served by the worker that took a place here:
 * the index it names (InvalidOid: none), and the note goes.
 */
Oid
QdbTrainHandOffTake(void)
{
	char	   *path = note_path(MyDatabaseId);
	Oid			indexoid = read_note(path);

	if (OidIsValid(indexoid))
		unlink(path);
	pfree(path);
	return indexoid;
}

/* Whether database db still exists (a short transaction of its own). */
static bool
database_exists(Oid db)
{
	bool		exists;

	StartTransactionCommand();
	exists = SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(db));
	CommitTransactionCommand();
	return exists;
}

/*
 * Whether database db still has its directory, in its default tablespace
 * (base/<db>) or another (pg_tblspc/<tablespace>/<version>/<db>): what an
 * exit callback can ask, where no transaction may start to read
 * pg_database.  DROP DATABASE removes them.  Before, a worker terminated
 * handed its place to a note of a database dropped since, and the worker
 * it started there died at its connection ("database N does not exist"),
 * again at each such exit, while a database really waiting got none
 * (session 66's hunt, /work/runs/hunt-s66b.md F1).
 */
static bool
database_dir_exists(Oid db)
{
	char		path[MAXPGPATH];
	struct stat st;
	DIR		   *dir;
	struct dirent *de;
	bool		found;

	snprintf(path, sizeof(path), "base/%u", db);
	found = stat(path, &st) == 0;
	dir = found ? NULL : AllocateDir("pg_tblspc");
	while (!found && dir != NULL && (de = ReadDirExtended(dir, "pg_tblspc", LOG)) != NULL)
	{
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "pg_tblspc/%s/%s/%u", de->d_name,
				 TABLESPACE_VERSION_DIRECTORY, db);
		found = stat(path, &st) == 0;
	}
	if (dir != NULL)
		FreeDir(dir);
	return found;
}


/*
 * The per-database files of pg_stat_tmp that outlive nothing but their
 * database: the train worker's retry notes (train_retry.c), the hand-off
 * notes and the calibration queue (calibrate_queue.c).
 */
static const char *const note_prefixes[] = {
	"quantumdb_train_retry.", NOTE_PREFIX, "quantumdb_calibrate_waiting."
};

/*
 * With no transaction open: removes the notes of databases dropped since
 * they were written, every one of them, in one transaction of its own
 * (the catalog read for each note).  Before, a dropped database's retry notes stayed
 * in pg_stat_tmp for good (session 65's hunt, /work/runs/hunt-s65a.md F6),
 * and its OID, once taken by a new database, gave that one its retry
 * waits.  A claimed queue ("<note>.<pid>") or a temporary file
 * ("<note>.<pid>.tmp") does not match.
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

/*
 * With no transaction open, once this worker's place is free: claims the
 * first note of another database and starts a train worker there for its
 * index; true if one was started.  Notes of databases dropped since are
 * removed on the way: asked of pg_database when check_db, else (from an
 * exit callback, where no transaction may start) of the data directory.  A note goes only when a worker of its own
 * database takes it (QdbTrainHandOffTake).  The directory is read first
 * and closed: a transaction's end closes what is left open.  A launch
 * that finds no worker slot leaves the note, with a LOG line.
 */
bool
QdbTrainHandOff(bool check_db)
{
	DIR		   *dir = AllocateDir(PG_STAT_TMP_DIR);
	struct dirent *de;
	int			cap = 32;
	Oid		   *dbs = palloc(sizeof(Oid) * cap);
	int			n = 0;
	bool		started = false;

	/*
	 * every note, not the first 32: 32 of dropped databases ahead of a live
	 * one left it without a worker (session 66's hunt,
	 * /work/runs/hunt-s66e.md F2)
	 */
	while (dir != NULL && (de = ReadDirExtended(dir, PG_STAT_TMP_DIR, LOG)) != NULL)
	{
		unsigned int db;
		int			used = 0;

		if (sscanf(de->d_name, NOTE_PREFIX "%u%n", &db, &used) == 1 &&
			de->d_name[used] == '\0' && db != MyDatabaseId)
		{
			if (n == cap)
			{
				cap *= 2;
				dbs = repalloc(dbs, sizeof(Oid) * cap);
			}
			dbs[n++] = db;
		}
	}
	if (dir != NULL)
		FreeDir(dir);
	for (int i = 0; i < n && !started; i++)
	{
		char	   *path = note_path(dbs[i]);
		Oid			indexoid = read_note(path);

		if (!OidIsValid(indexoid) ||
			!(check_db ? database_exists(dbs[i]) : database_dir_exists(dbs[i])))
		{
			unlink(path);		/* gone, unreadable, or its database is gone */
			pfree(path);
			continue;
		}
		pfree(path);
		started = QdbLaunchIndexWorkerIn(dbs[i], indexoid, "quantumdb_train_worker_main",
										 "quantumdb train");
		if (started)
			ereport(LOG,
					(errmsg("started a background worker to train the index with OID %u of the database with OID %u, which waited for a place (quantumdb.max_train_workers)",
							indexoid, dbs[i])));
		else
		{
			/* no worker slot: the note stays, for the next worker to end */
			ereport(LOG,
					(errmsg("no background worker could start to train the index with OID %u of the database with OID %u: the next train worker to end tries again",
							indexoid, dbs[i])));
		}
	}
	pfree(dbs);
	return started;
}
