/*-------------------------------------------------------------------------
 *
 * calibration_fit.c
 *	  quantumdb.calibration_fit(index regclass): how well the index's
 *	  compressor fits the rows its table has, as its last calibration
 *	  measured it (fit_row in index_calibrate.c), against what the build
 *	  expected (QdbFitExpected), and whether the train worker is to train
 *	  the index again for it (QDB_BUILT_FIT_STALE, calibrate_worker.c).
 *	  The calibration's grid of recalls is quantumdb.calibration's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "calibration.h"
#include "index.h"

PG_FUNCTION_INFO_V1(quantumdb_calibration_fit);

enum
{
	COL_CODING_ERROR,
	COL_EXPECTED,
	COL_RATIO,
	COL_FITS_WORSE,
	COL_REMOVED,
	COL_RETRAIN_PENDING,
	COL_TAKEN_AT,
	NCOLS
};

/*
 * One row: coding_error (NULL where not measured: no calibration, kind
 * rq, a calibration by a library before 0.8.9, or an error of exactly 0,
 * which the meta page cannot tell from none), expected (the
 * build's, raised for rows the compressor was not trained on; NULL where
 * not measured), their ratio, fits_worse (the ratio above the factor at
 * which the worker logs it), removed (index entries VACUUMs removed since
 * the calibration), retrain_pending (the index is marked for the train
 * worker, its build having trained its compressor that fits worse or on a
 * sample smaller than train_after_rows, and its option
 * train_after_rows is not 0: a VACUUM that finds that many rows starts
 * the worker) and taken_at.
 */
Datum
quantumdb_calibration_fit(PG_FUNCTION_ARGS)
{
	Relation	index = QdbOpenCalibratedIndex(PG_GETARG_OID(0), false, NULL);
	QdbCalibration cal;
	QdbMetaPageData meta;
	TupleDesc	tupdesc;
	Datum		values[NCOLS] = {0};
	bool		nulls[NCOLS] = {0};
	bool		have;
	bool		pending;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	QdbReadMeta(index, &meta);
	have = QdbReadCalibration(index, &cal);
	/* marked, and the worker is not turned off since (retrain_cleanup in index_vacuum.c) */
	pending = (meta.build_flags & QDB_BUILT_RETRAIN) != 0 && QdbTrainAfterRows(index) > 0;
	index_close(index, AccessShareLock);

	if (have && cal.fit > 0)
		values[COL_CODING_ERROR] = Float8GetDatum(cal.fit);
	else
		nulls[COL_CODING_ERROR] = true;
	if (have && cal.fit_at_build > 0)
		values[COL_EXPECTED] = Float8GetDatum(cal.fit_at_build);
	else
		nulls[COL_EXPECTED] = true;
	if (!nulls[COL_CODING_ERROR] && !nulls[COL_EXPECTED])
	{
		values[COL_RATIO] = Float8GetDatum(cal.fit / cal.fit_at_build);
		values[COL_FITS_WORSE] = BoolGetDatum(QdbFitStale(&cal));
	}
	else
		nulls[COL_RATIO] = nulls[COL_FITS_WORSE] = true;
	if (have)
	{
		values[COL_REMOVED] = Float8GetDatum(cal.removed);
		values[COL_TAKEN_AT] = TimestampTzGetDatum(cal.taken_at);
	}
	else
		nulls[COL_REMOVED] = nulls[COL_TAKEN_AT] = true;
	values[COL_RETRAIN_PENDING] = BoolGetDatum(pending);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
