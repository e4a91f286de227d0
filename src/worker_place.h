/*-------------------------------------------------------------------------
 *
 * worker_place.h
 *	  The places of the background workers a VACUUM starts (train_worker.c,
 *	  calibrate_worker.c): one worker of a kind at a time in a database, at
 *	  most a setting's number of them in the cluster, and the notes a worker
 *	  leaves for the next one when it finds no place (worker_place.c,
 *	  worker_notes.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef QDB_WORKER_PLACE_H
#define QDB_WORKER_PLACE_H

#include "nodes/pg_list.h"

typedef enum QdbWorkerKind
{
	QDB_WORKER_TRAIN,
	QDB_WORKER_CALIBRATE
} QdbWorkerKind;

/* worker_place.c */
extern void QdbWorkerPlaceInit(void);
extern bool QdbWorkerBegin(QdbWorkerKind kind, Oid indexoid);
extern bool QdbWorkerAnotherRound(QdbWorkerKind kind);
extern void QdbWorkerEnd(QdbWorkerKind kind);
extern void QdbWorkerServeNotes(void);

/* worker_notes.c: files of pg_stat_tmp named by a prefix and a database's OID */
#define QDB_NOTE_TRAIN_RETRY		"quantumdb_train_retry."
#define QDB_NOTE_TRAIN_WAITING		"quantumdb_train_waiting."
#define QDB_NOTE_CALIBRATE_WAITING	"quantumdb_calibrate_waiting."

extern bool QdbNotesClaimFailed;
extern char *QdbNotePath(const char *prefix, Oid db);
extern bool QdbReplaceFile(const char *path, const char *text);
extern void QdbNoteIndex(const char *prefix, Oid indexoid);
extern bool QdbNotesWaiting(const char *prefix, Oid db);
extern Oid	QdbNoteFirst(const char *prefix, Oid db);
extern List *QdbNotesTake(const char *prefix);
extern Oid *QdbNoteDatabases(const char *prefix, bool with_own, int *n);
extern void QdbDropNotesOfGoneDatabases(void);

#endif							/* QDB_WORKER_PLACE_H */
