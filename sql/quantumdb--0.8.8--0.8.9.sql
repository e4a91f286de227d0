-- quantumdb 0.8.8 -> 0.8.9: ALTER EXTENSION quantumdb UPDATE.
\echo Use "ALTER EXTENSION quantumdb UPDATE TO '0.8.9'" to load this file. \quit

-- New in 0.8.9: quantumdb.calibration_fit(index), the coding error of the
-- index's compressor on rows of its table as its last calibration measured
-- it, against what its build expected, and whether the train worker is to
-- train it again (a library before 0.8.9 kept neither).
CREATE FUNCTION quantumdb.calibration_fit(
	index regclass,
	OUT coding_error double precision,
	OUT expected double precision,
	OUT ratio double precision,
	OUT fits_worse boolean,
	OUT removed double precision,
	OUT retrain_pending boolean,
	OUT taken_at timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'quantumdb_calibration_fit' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION quantumdb.calibration_fit(regclass) IS
	'The coding error of a quantumdb index''s compressor on rows of its table at its last calibration, the error its build expected, whether the train worker is to train it again, and the entries VACUUMs removed since';
