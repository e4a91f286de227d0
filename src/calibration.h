/*
 * calibration.h
 *	  What recall an index gives at which search settings, measured on its
 *	  own rows (index_calibrate.c) and kept on its meta page (index_pages.c),
 *	  and the settings a scan uses (scan_settings.c): the session's
 *	  quantumdb.ef_search and quantumdb.rerank, or under
 *	  quantumdb.target_recall and quantumdb.max_latency a calibrated pair.
 */
#ifndef QDB_CALIBRATION_H
#define QDB_CALIBRATION_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/relcache.h"

#define QDB_CALIBRATION_MAGIC	0x51444244	/* "QDBD": the layout with nodes */
#define QDB_MAX_CALIBRATION_POINTS 64
#define QDB_DEFAULT_CALIBRATION_QUERIES 100
#define QDB_MAX_CALIBRATION_QUERIES 10000
#define QDB_MAX_CALIBRATION_K	1000

/* One measured setting: k-recall@k over the queries, and time per query */
typedef struct QdbCalibrationPoint
{
	int32		ef_search;
	int32		rerank;
	float4		recall;
	float4		ms;
} QdbCalibrationPoint;

/*
 * Whether a target or a latency bound may choose p (scan_settings.c), and
 * so whether p may dominate another point out of the grid
 * (calibration_grid.c): not a pair of rerank 0, whose scan returns rows in
 * compressed order rather than ORDER BY's.
 */
static inline bool
QdbPointChoosable(const QdbCalibrationPoint *p)
{
	return p->rerank > 0;
}

/*
 * Kept on the meta page after QdbMetaPageData (MAXALIGNed), inside the
 * page's pd_lower once written; an index that never had one reads as none
 * (those bytes were the page's zeroed hole).
 */
typedef struct QdbCalibration
{
	uint32		magic;
	int32		npoints;
	int32		k;
	int32		queries;		/* query rows measured */
	double		live_rows;		/* rows the exact pass saw */
	double		nodes;			/* the index's live nodes then (VACUUM compares) */
	TimestampTz taken_at;
	QdbCalibrationPoint points[QDB_MAX_CALIBRATION_POINTS];

	/*
	 * Since 2026-12-07, read only where the page's pd_lower covers them (a
	 * calibration written before reads them as 0; a library before ignores
	 * them).  fit: the mean coding error of rows of the table (fit_row in
	 * index_calibrate.c), 0 if not measured; fit_at_build: the same at the
	 * index's build, raised by the error expected of rows the compressor
	 * was not trained on (or the first calibration after that measured
	 * it), kept by every calibration after; removed: the index entries
	 * VACUUMs removed since the calibration (calibrate_worker.c).
	 */
	double		fit;
	double		fit_at_build;
	double		removed;
} QdbCalibration;

/* the bytes of a calibration without fit, fit_at_build and removed */
#define QDB_CALIBRATION_D_SIZE	offsetof(QdbCalibration, fit)

/* index_pages.c */
extern bool QdbReadCalibration(Relation index, QdbCalibration *cal);
extern bool QdbReadCalibrationQuiet(Relation index, QdbCalibration *cal);
extern void QdbWriteCalibration(Relation index, const QdbCalibration *cal);
extern void QdbAddCalibrationRemoved(Relation index, double removed);

/* calibration_grid.c: the reranks measured at each ef_search */
#define QDB_GRID_SLOTS	4		/* 0, ef_search / 4, ef_search / 2, ef_search */

typedef struct QdbGridSlots
{
	bool		dropped[QDB_GRID_SLOTS];	/* left out from now on */
	int			strikes[QDB_GRID_SLOTS];	/* dominated pairs in a row */
} QdbGridSlots;

extern int	QdbGridReranks(const QdbGridSlots *g, int ef, int k, int *out, int *slot);
extern void QdbGridAfterLevel(QdbGridSlots *g, const QdbCalibration *cal, int first,
							  int nr, const int *slot);

/* index_calibrate.c */
extern void QdbCalibrate(Relation heap, Relation index, int queries, int k, int seed,
						 QdbCalibration *cal);
extern void QdbCalibrateAtBuild(Relation heap, Relation index, int queries, double trained_rows);
extern bool QdbRecalibrate(Relation heap, Relation index, const QdbCalibration *old,
						   QdbCalibration *cal);

/* calibrate_worker.c */
extern bool QdbCalibrationStale(const QdbCalibration *cal, double live_nodes);
extern bool QdbFitStale(const QdbCalibration *cal);
extern void QdbCheckFit(Relation index, const QdbCalibration *cal, int elevel);
extern double QdbFitExpected(double fit, double trained_rows);
extern bool QdbLaunchCalibrationWorker(Relation index);
extern Relation QdbOpenCalibratedIndex(Oid relid, bool owner, Relation *heap);

/* scan_settings.c */
typedef enum QdbSettingsSource
{
	QDB_SETTINGS_SESSION,		/* quantumdb.ef_search and quantumdb.rerank */
	QDB_SETTINGS_EXPLICIT,		/* those, set where target_recall was or later */
	QDB_SETTINGS_UNCALIBRATED,	/* target_recall set, but no calibration */
	QDB_SETTINGS_TARGET,		/* the cheapest calibrated pair that reached it */
	QDB_SETTINGS_SHORT,			/* none reached it (within the bound): highest recall */
	QDB_SETTINGS_LATENCY,		/* no target: highest recall within max_latency */
	QDB_SETTINGS_FASTEST,		/* none within max_latency: the fastest pair */
	QDB_SETTINGS_OVERRIDE,		/* the calibration's own measurement */
	QDB_SETTINGS_NO_RERANK		/* a calibration without a pair that reranks */
} QdbSettingsSource;

typedef struct QdbScanSettings
{
	int			ef_search;
	int			rerank;
	int			iterative;		/* QdbIterativeScan: the session's, or strict */
	QdbSettingsSource source;
	const QdbCalibrationPoint *point;	/* in *cal, for TARGET and SHORT */
} QdbScanSettings;

extern double qdb_target_recall;
extern double qdb_max_latency;		/* ms */
extern void QdbScanSettingsInit(void);
extern void QdbResolveScanSettings(Relation index, QdbCalibration *cal, QdbScanSettings *s);
extern const QdbCalibrationPoint *QdbChoosePoint(const QdbCalibration *cal, double target,
												 double max_ms, QdbSettingsSource *choice);
extern void QdbOverrideScanSettings(int ef_search, int rerank);	/* 0, 0: none */
extern double QdbRecallLowerBound(double r, int k, int queries);
extern void QdbOverrideHiddenNode(Oid index, uint32 ref);
extern uint32 QdbScanHiddenNode(Relation index);
extern const char *QdbQuotedRelation(Relation rel);

#endif							/* QDB_CALIBRATION_H */
