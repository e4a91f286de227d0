/*-------------------------------------------------------------------------
 *
 * worker_place.c
 *	  Where the background workers a VACUUM starts may work: one of a kind
 *	  at a time in a database, and at most quantumdb.max_train_workers train
 *	  workers and quantumdb.max_calibration_workers calibration workers in
 *	  the whole cluster.
 *
 * Each REINDEX or calibration takes a background worker slot, which
 * parallel queries share, and a training takes up to maintenance_work_mem:
 * a partitioned table whose every partition crossed a threshold in one
 * autovacuum round must not start them all at once, nor must 30 databases
 * vacuumed together (session 65's hunts, /work/runs/hunt-s65a.md F2 and
 * hunt-s65c.md F3, for training; session 66's, hunt-s66e.md F1, for
 * calibration: 14 ran at once and a parallel query launched none of its
 * workers).
 *
 * A place is two session-level advisory locks, of keys SQL's functions
 * cannot name (their last field 3 or 4 for the database's, 16 and up for
 * the cluster's, in database 0), taken only if free.  A worker that finds
 * either taken notes its index (worker_notes.c) and looks again before it
 * leaves: the worker at work, or the first one to end, finds the note.
 * The worker of a database takes its database's notes (the caller's
 * QdbNotesTake); at the end of its round it gives up its database's lock
 * and looks once more (QdbWorkerAnotherRound); when it ends, by its round's
 * end or otherwise (a cancel, pg_terminate_backend, an ERROR), it gives its
 * cluster place to a database whose note waits and that has no worker of
 * the kind, starting one there (hand_off).  Without it such an index waited
 * for the next VACUUM that found its table due, which autovacuum may never
 * run on a table loaded once and left alone (session 65's review,
 * /work/runs/review-s65.md G3).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "utils/guc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "index.h"
#include "worker_place.h"

static int	qdb_max_train_workers = 2;
static int	qdb_max_calibration_workers = 2;

typedef struct WorkerKindInfo
{
	const char *function;		/* the worker's entry point */
	const char *type;			/* its bgw_type */
	const char *verb;			/* "train": what it does to an index */
	const char *note;			/* its notes' prefix */
	uint32		key1;			/* its advisory locks' first two fields */
	uint32		key2;
	uint16		database_field; /* the last field of its database's lock */
	const int  *max;			/* the setting that bounds it in the cluster */
	const char *max_name;
	int			busy_level;		/* of the line a worker that finds its database's worker logs */
	const char *busy;
	const char *no_place;		/* %d: the setting's value */
} WorkerKindInfo;

static const WorkerKindInfo kinds[] = {
	[QDB_WORKER_TRAIN] = {
		"quantumdb_train_worker_main", "quantumdb train", "train", QDB_NOTE_TRAIN_WAITING,
		0x51444254, 0x5241494e, 3, &qdb_max_train_workers, "quantumdb.max_train_workers",
		LOG,
		"another index's compressor is being trained in this database: that worker takes this one next if it still wants training then (if it is stopped first, the database's next worker does)",
		"%d background workers train compressors at a time (quantumdb.max_train_workers), none free: the first of them to end starts another for this index"
	},
	[QDB_WORKER_CALIBRATE] = {
		"quantumdb_calibrate_worker_main", "quantumdb calibrate", "calibrate", QDB_NOTE_CALIBRATE_WAITING,
		0x51444243, 0x414c4942, 4, &qdb_max_calibration_workers, "quantumdb.max_calibration_workers",
		DEBUG1,
		"another index is being calibrated in this database: that worker takes this one next (if it is stopped first, the database's next worker does)",
		"%d background workers calibrate indexes at a time (quantumdb.max_calibration_workers), none free: the first of them to end starts another for this index"
	},
};

void
QdbWorkerPlaceInit(void)
{
	DefineCustomIntVariable("quantumdb.max_train_workers",
							"Background workers that train indexes' compressors at a time in the whole cluster.",
							"One at a time in each database in any case; a worker that finds them all busy notes its index and leaves, and the first of them to end starts a worker for it.",
							&qdb_max_train_workers, 2, 1, 64,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("quantumdb.max_calibration_workers",
							"Background workers that calibrate indexes again after VACUUM at a time in the whole cluster.",
							"One at a time in each database in any case; a worker that finds them all busy notes its index and leaves, and the first of them to end starts a worker for it.",
							&qdb_max_calibration_workers, 2, 1, 64,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
}

static void
database_tag(LOCKTAG *tag, QdbWorkerKind kind, Oid db)
{
	const WorkerKindInfo *k = &kinds[kind];

	SET_LOCKTAG_ADVISORY(*tag, db, k->key1, k->key2, k->database_field);
}

/* this database's lock of a kind is held (by take_database) */
static bool held_database = false;

/* Whether this worker is now database's worker of kind (the lock taken only if free). */
static bool
take_database(QdbWorkerKind kind)
{
	LOCKTAG		tag;

	database_tag(&tag, kind, MyDatabaseId);
	held_database = LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
	return held_database;
}

static void
leave_database(QdbWorkerKind kind)
{
	LOCKTAG		tag;

	if (!held_database)
		return;
	database_tag(&tag, kind, MyDatabaseId);
	LockRelease(&tag, ExclusiveLock, true);
	held_database = false;
}

/*
 * Whether no process holds the session lock of tag: taken and let go at
 * once; a lock table full counts as held, without the ERROR (an exit
 * callback asks: session 67's review, /work/runs/review-s67.md R4).
 */
static bool
tag_free(const LOCKTAG *tag)
{
	if (LockAcquireExtended(tag, ExclusiveLock, true, true, false, NULL) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	LockRelease(tag, ExclusiveLock, true);
	return true;
}

/*
 * Whether database db has a worker of kind now: its lock, tried and let go
 * at once; only with this worker's own let go (give_place), or
 * LockAcquire would answer that it holds it.  A worker of db that tries it
 * in that instant notes its index and looks again (QdbWorkerBegin), and
 * one that gives up for it, at the end of its round, hands its place to
 * its own database too.
 */
static bool
database_busy(QdbWorkerKind kind, Oid db)
{
	LOCKTAG		tag;

	database_tag(&tag, kind, db);
	return !tag_free(&tag);
}

/* the kind and cluster place this worker holds; held_slot -1: none */
static QdbWorkerKind held_kind;
static int	held_slot = -1;

static void
slot_tag(LOCKTAG *tag, QdbWorkerKind kind, int slot)
{
	const WorkerKindInfo *k = &kinds[kind];

	SET_LOCKTAG_ADVISORY(*tag, InvalidOid, k->key1, k->key2, 16 + slot);
}

static bool
take_place(QdbWorkerKind kind)
{
	for (int slot = 0; slot < *kinds[kind].max; slot++)
	{
		LOCKTAG		tag;

		slot_tag(&tag, kind, slot);
		if (LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL)
		{
			held_kind = kind;
			held_slot = slot;
			return true;
		}
	}
	return false;
}

/*
 * Whether database db still exists and is valid (a short transaction of
 * its own): one an interrupted DROP DATABASE left invalid takes no
 * connection, and the worker started there died at its start, the
 * waiting database's turn lost (session 67's hunt,
 * /work/runs/hunt-s67c.md F3).
 */
static bool
database_exists(Oid db)
{
	HeapTuple	tup;
	bool		exists = false;

	StartTransactionCommand();
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(db));
	if (HeapTupleIsValid(tup))
	{
		/* PostgreSQL 15.4 and later mark such a database (datconnlimit -2) */
#ifdef DATCONNLIMIT_INVALID_DB
		exists = ((Form_pg_database) GETSTRUCT(tup))->datconnlimit != DATCONNLIMIT_INVALID_DB;
#else
		exists = true;
#endif
		ReleaseSysCache(tup);
	}
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
 * How many of the cluster's places of kind are free now: each tried and
 * let go at once (a lock table full counts as taken).  A worker that tries
 * one in that instant tries the next, then notes its index and looks again.
 */
static int
free_places(QdbWorkerKind kind)
{
	int			n = 0;

	for (int slot = 0; slot < *kinds[kind].max; slot++)
	{
		LOCKTAG		tag;

		slot_tag(&tag, kind, slot);
		if (tag_free(&tag))
			n++;
	}
	return n;
}

/*
 * Starts a worker of kind in database db for index indexoid, the first
 * noted there; false when no background worker slot was free (a line at
 * fail_level: the note stays).  why: what the LOG line says of the index.
 */
static bool
start_for_note(QdbWorkerKind kind, Oid db, Oid indexoid, const char *why, int fail_level)
{
	const WorkerKindInfo *k = &kinds[kind];

	if (QdbLaunchIndexWorkerIn(db, indexoid, k->function, k->type))
	{
		ereport(LOG,
				(errmsg("started a background worker to %s the index with OID %u of the database with OID %u, %s (%s)",
						k->verb, indexoid, db, why, k->max_name)));
		return true;
	}
	ereport(fail_level,
			(errmsg("no background worker could start to %s the index with OID %u of the database with OID %u: the next such worker to end, or the next VACUUM of a quantumdb index there, tries again",
					k->verb, indexoid, db)));
	return false;
}

/*
 * With no transaction open, once this worker's places are free: starts
 * workers of kind, as many as places are free, in the databases whose note
 * waits and that have no worker of the kind now (their worker takes their
 * notes), each for the first index noted there; this worker's own
 * database too at the end of its round, a cancel's included (a worker of
 * it that noted its index while this one ended, or what a cancelled
 * worker noted again: session 67's review, /work/runs/review-s67.md R1,
 * and hunt, hunt-s67c.md F1), not from the exit callback (a worker
 * terminated, by pg_terminate_backend, a DROP DATABASE, a shutdown: a
 * worker started there again held up the DROP, or died at its start:
 * review-s67b.md S4; its notes wait for the database's next VACUUM of a
 * quantumdb index); none at all when this worker could not claim its
 * database's notes (each worker would start the next for them: S3); as many as are
 * free: a raised max_*_workers served a backlog one database per ending
 * worker (hunt F6).  The note goes only when a worker of its own
 * database takes it, so a worker started for it that never runs (a
 * shutdown, a database that takes no connection now) or leaves loses
 * nothing: the next worker to end, or the next VACUUM of a quantumdb
 * index of that database (QdbWorkerServeNotes), starts another.  The
 * notes of a database dropped since go on the way: asked of pg_database,
 * or, from the exit callback (at_exit), where no transaction may start, of
 * the data directory.
 */
static void
hand_off(QdbWorkerKind kind, bool at_exit)
{
	const WorkerKindInfo *k = &kinds[kind];
	int			places;
	int			n;
	Oid		   *dbs;
	int			started = 0;

	/*
	 * none by a worker that could not claim its own database's notes: a
	 * pg_stat_tmp it cannot rename in holds others' notes the same way, and
	 * two databases' workers started each other, 665 in 6 s (session 67's
	 * hunt, /work/runs/hunt-s67e.md F1); their next VACUUM serves them
	 */
	if (QdbNotesClaimFailed)
		return;
	places = free_places(kind);
	dbs = QdbNoteDatabases(k->note, !at_exit, &n);

	for (int i = 0; i < n && started < places; i++)
	{
		Oid			indexoid = QdbNoteFirst(k->note, dbs[i]);

		if (!(at_exit ? database_dir_exists(dbs[i]) : database_exists(dbs[i])))
		{
			char	   *path = QdbNotePath(k->note, dbs[i]);

			unlink(path);
			pfree(path);
			continue;
		}
		/* claimed meanwhile, or served by the database's own worker */
		if (!OidIsValid(indexoid) || database_busy(kind, dbs[i]))
			continue;
		if (!start_for_note(kind, dbs[i], indexoid, "which waited for a place", LOG))
			break;				/* no background worker slot: none for the others either */
		started++;
	}
	pfree(dbs);
}

#define SERVE_INTERVAL_MS	10000

/*
 * From a VACUUM of a quantumdb index: a worker of each kind for the
 * indexes noted in this database, when no worker of the kind is at work
 * here and a place is free.  Notes wait so after a server restart (no
 * worker runs to hand its place on: session 67's hunt,
 * /work/runs/hunt-s67c.md F2) or a hand-off that found no background
 * worker slot (F4) or whose worker could not connect (F3).  Two stat()
 * calls when nothing is noted.
 */
void
QdbWorkerServeNotes(void)
{
	/*
	 * this backend's last start of a worker of each kind: not another
	 * within SERVE_INTERVAL_MS, since a worker started is not seen (its
	 * locks not taken) until it has connected, and every index of one
	 * VACUUM started one meanwhile, five for a table of 40 partitions
	 * (session 67's second review, /work/runs/review-s67b.md S2)
	 */
	static TimestampTz served_at[lengthof(kinds)];

	for (int kind = 0; kind < lengthof(kinds); kind++)
	{
		const WorkerKindInfo *k = &kinds[kind];
		Oid			indexoid;

		if (!QdbNotesWaiting(k->note, MyDatabaseId) ||
			!TimestampDifferenceExceeds(served_at[kind], GetCurrentTimestamp(), SERVE_INTERVAL_MS) ||
			database_busy(kind, MyDatabaseId) || free_places(kind) == 0)
			continue;
		indexoid = QdbNoteFirst(k->note, MyDatabaseId);
		if (OidIsValid(indexoid) &&
			start_for_note(kind, MyDatabaseId, indexoid, "noted earlier", DEBUG1))
			served_at[kind] = GetCurrentTimestamp();
	}
}

/*
 * Gives up this worker's places, its database's first, then its cluster
 * place, if it holds one, and hands it on.  In that order, a worker of
 * this database that noted its index and left meanwhile did so before the
 * hand-off reads the notes, and one that comes later finds both places
 * free.
 */
static void
give_place(bool at_exit)
{
	LOCKTAG		tag;

	if (held_slot < 0)
		return;
	leave_database(held_kind);
	slot_tag(&tag, held_kind, held_slot);
	LockRelease(&tag, ExclusiveLock, true);
	held_slot = -1;
	hand_off(held_kind, at_exit);
}

/*
 * A worker that ends otherwise than at the end of its round (cancelled,
 * terminated, an ERROR) hands its place on too (session 65's second
 * review, /work/runs/review-s65b.md H1).
 */
static void
give_place_at_exit(int code, Datum arg)
{
	give_place(true);
}

/*
 * With no transaction open: whether this worker, started for index
 * indexoid, may work, holding its database's place and one of the
 * cluster's for kind; else it has noted the index for the worker that
 * serves it, with a line in the log, and is to exit.  Each note is written
 * before the worker looks a second time, with no place held, so that a
 * worker ending in between finds it (session 65's second review H1).
 */
bool
QdbWorkerBegin(QdbWorkerKind kind, Oid indexoid)
{
	const WorkerKindInfo *k = &kinds[kind];
	static bool exit_callback = false;

	if (!take_database(kind))
	{
		QdbNoteIndex(k->note, indexoid);
		if (!take_database(kind))
		{
			ereport(k->busy_level, (errmsg("%s", k->busy)));
			return false;
		}
	}
	if (!exit_callback)
	{
		before_shmem_exit(give_place_at_exit, (Datum) 0);
		exit_callback = true;
	}
	if (take_place(kind))
		return true;
	QdbNoteIndex(k->note, indexoid);
	leave_database(kind);
	if (!take_place(kind))
	{
		ereport(LOG, (errmsg(k->no_place, *k->max)));
		return false;
	}
	if (take_database(kind))
		return true;
	/* another worker of this database came meanwhile: it takes the note */
	give_place(false);
	ereport(k->busy_level, (errmsg("%s", k->busy)));
	return false;
}

/*
 * At the end of its round, with nothing left: whether the worker works
 * on.  It gives up its database's place first, then looks for notes:
 * another worker notes its index before it tries that place, so a note the
 * last look missed is either seen here or written before that other
 * worker's try, which then finds the place free and stays.
 */
bool
QdbWorkerAnotherRound(QdbWorkerKind kind)
{
	leave_database(kind);
	return QdbNotesWaiting(kinds[kind].note, MyDatabaseId) && take_database(kind);
}

/*
 * With no transaction open, at the end of the worker's round: its cluster
 * place goes to another database's noted index, and the notes of dropped
 * databases go.
 */
void
QdbWorkerEnd(QdbWorkerKind kind)
{
	give_place(false);
	QdbDropNotesOfGoneDatabases();
}
