/*
 * train_retry.c
 *	  How long an index whose training by the train worker failed waits
 *	  before a VACUUM starts the worker for it again.
 *
 * A REINDEX that fails once tends to fail again (maintenance_work_mem too
 * small for the build, a predicate that raises an error, a DBA who cancels
 * it), and each try builds the whole index and trains a compressor before
 * it fails: every autovacuum of a busy table would start one more.  So the
 * worker notes each failure, and VACUUM starts no worker for the index
 * until quantumdb.train_retry_delay has passed since the last one, twice
 * as long after each further failure, a day at most (0: no wait, as before
 * this file).  A REINDEX by hand is never held back.
 *
 * The notes are a small text file per database in pg_stat_tmp (one line
 * per index: OID, relfilenode, failures, time of the last), rewritten
 * whole and renamed into place by the worker, of which one runs at a time
 * in a database (train_worker.c), and read by VACUUM.  They are hints, not
 * data: not WAL-logged, not in base backups, lost to nothing worse than
 * one more try.  The relfilenode keys an index's build: a note does not
 * outlive the index it was taken for (any REINDEX gives a new one), and a
 * note older than two days is dropped when the file is next written.
 */
#include "postgres.h"

#include <math.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "index.h"
#include "worker_place.h"

#define RETRY_MAX_NOTES		1024
#define RETRY_MAX_DELAY		86400	/* seconds: a day */
#define RETRY_KEEP			(2 * 86400)
#define RETRY_MAX_FAILURES	1000000

typedef struct RetryNote
{
	Oid			index;
	Oid			filenode;
	int			failures;
	int64		last;			/* pg_time_t of the last failure */
} RetryNote;

static int	qdb_train_retry_delay = 600;

void
QdbTrainRetryInit(void)
{
	DefineCustomIntVariable("quantumdb.train_retry_delay",
							"After a background worker's training of an index failed, how long VACUUM waits before it starts another for that index.",
							"Twice as long after each further failure, a day at most; 0 tries again at the next VACUUM.",
							&qdb_train_retry_delay, 600, 0, RETRY_MAX_DELAY,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
}

static char *
notes_path(void)
{
	return QdbNotePath(QDB_NOTE_TRAIN_RETRY, MyDatabaseId);
}

/* The notes of this database; none when there is no file (or it is unreadable). */
static int
read_notes(RetryNote *notes)
{
	char	   *path = notes_path();
	FILE	   *f = AllocateFile(path, "r");
	int			n = 0;
	char		line[128];
	int64		now = (int64) time(NULL);

	if (f == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", path)));
		pfree(path);
		return 0;
	}
	while (n < RETRY_MAX_NOTES && fgets(line, sizeof(line), f) != NULL)
	{
		unsigned int index,
					filenode;
		int			failures;
		long long	last;

		/* a line that makes no sense (a clock set back: a time ahead) is skipped */
		if (sscanf(line, "%u %u %d %lld", &index, &filenode, &failures, &last) != 4 ||
			failures < 1 || failures > RETRY_MAX_FAILURES || last < 0 || last > now)
			continue;
		notes[n].index = index;
		notes[n].filenode = filenode;
		notes[n].failures = failures;
		notes[n].last = last;
		n++;
	}
	FreeFile(f);
	pfree(path);
	return n;
}

/* Replaces the file by these notes; false when it could not. */
static bool
write_notes(const RetryNote *notes, int n)
{
	char	   *path = notes_path();
	StringInfoData text;
	bool		ok;

	initStringInfo(&text);
	for (int i = 0; i < n; i++)
		appendStringInfo(&text, "%u %u %d %lld\n", notes[i].index, notes[i].filenode,
						 notes[i].failures, (long long) notes[i].last);
	ok = QdbReplaceFile(path, text.data);
	pfree(text.data);
	pfree(path);
	return ok;
}

/* Seconds to wait after the given number of failures in a row. */
static int64
wait_after(int failures)
{
	double		s = qdb_train_retry_delay * pow(2.0, Min(failures, 32) - 1);

	if (qdb_train_retry_delay <= 0 || failures <= 0)
		return 0;
	return (int64) Min(s, (double) Max(qdb_train_retry_delay, RETRY_MAX_DELAY));
}

/*
 * Whether a VACUUM may start the train worker for index now.  If not,
 * *until is when it may and *failures the failures in a row so far.
 */
bool
QdbTrainRetryNow(Relation index, TimestampTz *until, int *failures)
{
	RetryNote  *notes = palloc(RETRY_MAX_NOTES * sizeof(RetryNote));
	int			n = read_notes(notes);
	bool		now = true;

	for (int i = 0; i < n; i++)
	{
		if (notes[i].index != RelationGetRelid(index) ||
			notes[i].filenode != index->rd_node.relNode)
			continue;
		if ((int64) time(NULL) < notes[i].last + wait_after(notes[i].failures))
		{
			now = false;
			*failures = notes[i].failures;
			*until = time_t_to_timestamptz((pg_time_t) (notes[i].last +
														wait_after(notes[i].failures)));
		}
		break;
	}
	pfree(notes);
	return now;
}

/*
 * Notes a failed try of the worker's at training the index of that OID and
 * relfilenode (failed), or forgets its failures (a REINDEX that finished).
 * Returns the failures in a row, and in *next when the next try may start
 * (0 when the note could not be written).
 */
int
QdbTrainRetryNote(Oid indexoid, Oid filenode, bool failed, TimestampTz *next)
{
	RetryNote  *notes = palloc((RETRY_MAX_NOTES + 1) * sizeof(RetryNote));
	int			n = read_notes(notes);
	int			kept = 0;
	int			failures = 0;
	int64		now = (int64) time(NULL);
	bool		changed = false;

	for (int i = 0; i < n; i++)
	{
		if (notes[i].index == indexoid && notes[i].filenode == filenode)
		{
			failures = notes[i].failures;
			changed = true;
			continue;
		}
		if (notes[i].last + wait_after(notes[i].failures) + RETRY_KEEP < now)
		{
			changed = true;
			continue;
		}
		notes[kept++] = notes[i];
	}
	if (failed)
	{
		/* the oldest goes when the file is full */
		if (kept == RETRY_MAX_NOTES)
			memmove(notes, notes + 1, --kept * sizeof(RetryNote));
		notes[kept].index = indexoid;
		notes[kept].filenode = filenode;
		notes[kept].failures = Min(failures + 1, RETRY_MAX_FAILURES);
		failures = notes[kept].failures;
		notes[kept].last = now;
		kept++;
		changed = true;
		*next = time_t_to_timestamptz((pg_time_t) (now + wait_after(failures)));
	}
	if (changed && !write_notes(notes, kept) && failed)
		*next = 0;				/* not noted: the next VACUUM tries again */
	pfree(notes);
	return failed ? failures : 0;
}
