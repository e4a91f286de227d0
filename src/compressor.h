/*
 * compressor.h
 *	  The compressor side of the extension, grouped by file: real[] input,
 *	  the compressor catalog, the trainer glue (qdb_trainer.h seen from
 *	  Postgres), sampling, training and its log.  index.h, the index access
 *	  method's header, includes it.
 */
#ifndef QDB_COMPRESSOR_H
#define QDB_COMPRESSOR_H

#include "postgres.h"

#include <float.h>

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/array.h"
#include "storage/itemptr.h"
#include "utils/relcache.h"

#include <math.h>

#include "qdb_distance.h"
#include "qdb_trainer.h"

/* quantumdb.c */
extern void _PG_init(void);

/*
 * The vector types a quantumdb index, training and the codec functions
 * read: real[], and pgvector's vector and halfvec where pgvector is
 * installed (pgvector_types.c).
 */
typedef enum QdbVecType
{
	QDB_VEC_NONE = 0,			/* not a vector type */
	QDB_VEC_REAL_ARRAY,
	QDB_VEC_VECTOR,
	QDB_VEC_HALFVEC
} QdbVecType;

/* pgvector_types.c */
extern QdbVecType QdbVecTypeOf(Oid typid);
extern const char *QdbVecTypeName(QdbVecType t);
extern float *QdbPgvectorGetFloats(struct varlena *v, QdbVecType t, int *dim);
extern int	QdbPgvectorDims(struct varlena *v);

/* vector_input.c: vector values <-> float arrays, with every check on user input */
/*
 * Returns the elements of a one-dimensional real[] without NULLs, NaN or
 * infinity, and with at most QDB_MAX_DIM elements; *dim gets the length.
 * The pointer may point into the array itself.  Errors name the argument
 * as "what" (e.g. "query").
 */
extern float *QdbArrayGetFloats(ArrayType *a, int *dim, const char *what);
/* d detoasted, faster than PG_DETOAST_DATUM for values pglz compressed in the row */
extern struct varlena *QdbDetoastDatum(Datum d);
extern float *QdbArrayFloatsUnchecked(ArrayType *a, int *dim, const char *what);
extern void QdbCheckFinite(const float *x, int n, const char *what);
/* the same for a value of any vector type, or a function's argument argno */
extern float *QdbDatumGetFloats(Datum d, QdbVecType t, int *dim, const char *what);
extern int	QdbDatumDims(Datum d, QdbVecType t);
extern bool QdbDatumHoldsFloats(Datum d, QdbVecType t, int dim);
extern float *QdbArgGetFloats(FunctionCallInfo fcinfo, int argno, QdbVecType *type,
							  int *dim, const char *what);
extern void QdbCheckSameDims(int a, int b);
extern bool QdbVectorIsZero(const float *x, int dim);

/*
 * Scales x (not a zero vector) to unit length, for cosine as 1 - dot, in
 * place: never on floats QdbDatumGetFloats returned, which may point into
 * a tuple in a shared buffer.  In double (qdb_normalize): a row of floats
 * near 1e19, or 1e-30, has no float norm.
 */
static inline void
QdbNormalize(float *x, int n)
{
	(void) qdb_normalize(x, n, x);
}

/*
 * The distance an exact ranking of float vectors uses under metric, the
 * vectors scaled to unit length under cosine (QdbNormalize): L2, the
 * negative inner product, 1 - cosine.  The build's in-memory graph and
 * the calibration's exact pass both rank by it.
 */
static inline float
QdbVectorDistance(QdbMetric metric, const float *a, const float *b, int n)
{
	switch (metric)
	{
		case QDB_METRIC_L2:
			return sqrtf(qdb_kernels.l2sq(a, b, n));
		case QDB_METRIC_IP:
			return -qdb_kernels.dot(a, b, n);
		default:
			return 1.0f - qdb_kernels.dot(a, b, n);
	}
}
extern void QdbCheckNonZero(const float *x, int dim, const char *what);
/* a quarter of FLT_MAX: |x - y|^2 <= 2 (|x|^2 + |y|^2) stays finite */
#define QDB_MAX_SQUARED_LENGTH	(FLT_MAX / 4.0)
extern void QdbCheckLength(const float *x, int dim, const char *what);
extern void QdbCheckForMetric(const float *x, int dim, QdbMetric metric, const char *what);
extern ArrayType *QdbFloatsToArray(const float *x, int dim);

/* distance_ops.c: SQL-callable exact distances (functions and operators) */

/* compressor_catalog.c: compressors in quantumdb.compressors, and their cache */
typedef struct QdbLoadedModel
{
	char		name[NAMEDATALEN];
	QdbModel	model;
	MemoryContext cxt;			/* holds model arrays */
	TransactionId row_xmin;		/* the catalog row version it was loaded from */
	ItemPointerData row_tid;
} QdbLoadedModel;

extern QdbLoadedModel *QdbLoadCompressor(const char *name, MemoryContext cxt,
											 const char *missing_hint);
extern bool QdbCompressorUnchanged(const QdbLoadedModel *lm);
extern QdbLoadedModel *QdbTryLoadCompressor(const char *name, MemoryContext cxt, char **why);
extern void QdbPinSearchPath(void);
extern void QdbStoreCompressor(const char *name, const QdbModel *m,
							   const char *extra_settings, double training_seconds,
							   double validation_recall, Oid source, const char *column);
extern void QdbCheckNewCompressorName(const char *name);
extern bool QdbMayUseCompressor(Oid roleid, Oid owner, Oid source, const char *column);

/* Saved identity while code runs as another role (QdbAsRoleBegin). */
typedef struct QdbAsRole
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} QdbAsRole;

extern void QdbAsRoleBegin(QdbAsRole *s, Oid role, int sec_flags);
extern void QdbAsRoleEnd(QdbAsRole *s);

/* Saved identity while SPI runs as the catalog's owner (QdbCatalogBegin). */
typedef struct QdbCatalogAccess
{
	QdbAsRole	as;
	bool		pushed_snapshot;	/* QdbCatalogBegin set one: none was */
} QdbCatalogAccess;

/* A catalog row to insert (QdbInsertCompressorRow). */
typedef struct QdbCompressorRow
{
	const char *name;
	const QdbModel *model;		/* parsed: kind, dimensions, metric */
	bytea	   *blob;			/* the model as stored */
	const char *settings;		/* jsonb text */
	double		training_seconds;	/* < 0: NULL */
	double		validation_recall;	/* < 0: NULL */
	Oid			owner;
	Oid			source;			/* InvalidOid: NULL */
	const char *column;			/* NULL: NULL */
	bool		has_created_at; /* else now() */
	TimestampTz created_at;
} QdbCompressorRow;

extern void QdbCatalogBegin(QdbCatalogAccess *a);
extern void QdbCatalogEnd(QdbCatalogAccess *a);
extern void QdbCheckCompressorName(const char *name);
extern void QdbCompressorNameTaken(const char *name);
extern void QdbParseModel(const bytea *blob, QdbModel *m, MemoryContext cxt, const char *what);
extern bool QdbInsertCompressorRow(const QdbCompressorRow *r);
extern bool QdbCompressorExists(const char *name);
extern void QdbCheckMayUseCompressor(const char *name);

/* citus.c: compressors on every node of a Citus cluster */
extern void QdbCitusReplicateCompressor(const char *name);
extern void QdbCitusDropCompressor(const char *name);
extern bool QdbCitusTable(Relation heap);
extern void QdbCitusBeforeShardIndexes(Relation heap, const char *compressor);
extern bool QdbCitusBuildEmpty(Relation heap, const char *compressor);

/*
 * training_log.c: a dynamic background worker of this library that runs
 * function, named type (the caller may rename it), never restarted.
 */
struct BackgroundWorker;
extern void QdbInitWorker(struct BackgroundWorker *w, const char *function, const char *type);

/* trainer_glue.c: allocation from a memory context, status -> ERROR */
extern const QdbAlloc *QdbContextAlloc(MemoryContext cxt);
/* Scratch memory of the trainer calls: palloc in CurrentMemoryContext. */
extern const QdbAlloc qdb_palloc_alloc;
/* The same, failing (NULL: QDB_ERR_NOMEM) past limit bytes in use */
extern const QdbAlloc *QdbLimitedAlloc(MemoryContext cxt, Size limit);
extern bool QdbAllocHitLimit(const QdbAlloc *a);
extern int	QdbStatusErrcode(int status);
extern void QdbReportStatus(int status, const char *context, const char *detail);

/* sample.c: a seeded sample of a real[] column, the same in any row order */
typedef struct QdbSample
{
	float	   *x;				/* (n, dim) row-major */
	int			n;
	int			dim;
	int64		rows_seen;		/* non-NULL rows scanned */
} QdbSample;

/*
 * How n rows drawn for sample training rows and validation held out split
 * (quantumdb.train and autotune alike, sample.c): sample caps the training
 * rows; the rows past it validate, up to validation, and where fewer than
 * a tenth of n are past it, a tenth of n (at most validation) is held out.
 */
extern void QdbSplitSample(int n, int sample, int validation, int *n_train, int *n_val);

/*
 * fit (may be NULL: no bound) is the training the sample is for: the
 * sample shrinks so that the sample and that training stay within
 * maintenance_work_mem (train_backend.c), saying so in a NOTICE when the
 * table had more rows than it kept.
 */
extern void QdbSampleColumn(Oid relid, const char *column, int want, uint64 seed,
							bool cosine, const QdbTrainConfig *fit, QdbSample *out);

/*
 * The same for the auto-tuner: fits holds one training per kind searched;
 * a kind that cannot take min_rows rows is left out (left_out[i], with a
 * NOTICE) while another remains.
 */
extern void QdbSampleColumnKinds(Oid relid, const char *column, int want, uint64 seed,
								 bool cosine, const QdbTrainConfig *fits, int nfits,
								 int min_rows, bool *left_out, QdbSample *out);

/* train.c: quantumdb.train() */
extern void QdbCheckTableInsert(const char *table, const char *detail);
extern int	QdbIntArg(FunctionCallInfo fcinfo, int n, const char *what, int lo, int hi,
					  int dflt);

/* train_backend.c: one training on the chosen device */
typedef enum QdbDevice
{
	QDB_DEVICE_AUTO,
	QDB_DEVICE_CPU,
	QDB_DEVICE_CUDA
} QdbDevice;

/*
 * What a caller of QdbTrainModel may add: stop is asked at every progress
 * report (epochs, stages, heartbeats) and true stops the training (the
 * auto-tuner's pruning and deadline); then stopped is set, the model is
 * left empty and no ERROR is raised.  quiet: no NOTICE per stage or epoch.
 */
typedef struct QdbTrainHook
{
	bool		(*stop) (const QdbEpochStats *s, void *arg);
	void	   *arg;
	bool		quiet;
	bool		stopped;		/* set by QdbTrainModel */
	bool		progress_view;	/* each stage's steps as CREATE INDEX's tuples */
} QdbTrainHook;

extern int	QdbSampleRowsThatFit(const QdbTrainConfig *cfg, int dim, int want,
								 const char *what, const QdbTrainConfig **short_cfg);
extern int	QdbSampleRowsForKinds(const QdbTrainConfig *cfgs, int ncfgs, int dim, int want,
								  int min_rows, bool *left_out, const char *what,
								  const QdbTrainConfig **short_cfg);
extern void QdbSampleShortNotice(const char *what, int kept, int want,
								 const QdbTrainConfig *cfg, int dim);
extern double QdbTrainModel(const char *name, const float *x, int n, QdbTrainConfig *cfg,
							QdbDevice device, int64 log_run, MemoryContext tcxt,
							QdbModel *model, const char **device_used,
							QdbTrainHook *hook);

/* training_log.c: quantumdb.training_log rows, written as epochs end */
extern int64 QdbTrainingLogRun(void);
extern void QdbTrainingLogCheck(void);
typedef struct QdbTrainingLog
{
	int64		run;			/* 0: no training log */
	const char *compressor;
	int			written;
	int			lost;			/* rows that could not be written */
	bool		warned_in_transaction;
} QdbTrainingLog;

extern bool QdbTrainingLogWrite(QdbTrainingLog *log, const QdbEpochStats *s);
extern void QdbTrainingLogLost(QdbTrainingLog *log, const char *what, const char *reason);

/* A row of quantumdb.autotune_trials (autotune.c), written the same way */
typedef struct QdbTrialRow
{
	int64		run;
	int32		trial;
	int32		stage;
	int32		training_rows;
	double		v[8];			/* quality, compression, speed, memory, score,
								 * seconds, walk distances, walk microseconds;
								 * NaN: NULL */
	char		kind[16];
	char		status[32];
	char		compressor[NAMEDATALEN];
	char		settings[1024];	/* a JSON object */
} QdbTrialRow;

extern bool QdbAutotuneTrialWrite(QdbTrainingLog *log, const QdbTrialRow *row);
extern void QdbTrainingLogEnd(QdbTrainingLog *log);

/* codec_funcs.c: encode, decode, adc_distance with per-statement caches */

#endif							/* QDB_COMPRESSOR_H */
