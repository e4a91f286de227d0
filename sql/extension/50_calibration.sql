-- quantumdb install script, part 5: calibration and quantumdb.target_recall.

-- Measures what recall the index gives at a grid of ef_search / rerank
-- pairs, on rows of its own table as queries (their exact k nearest other
-- rows), and keeps it on the index's meta page, where scans under
-- quantumdb.target_recall read it.  CREATE INDEX does the same with
-- calibration_queries rows (reloption, default 100).  The table's owner.
CREATE FUNCTION quantumdb.calibrate(
	index regclass,
	queries integer DEFAULT 100,
	k integer DEFAULT 10,
	seed integer DEFAULT 0)
RETURNS TABLE (ef_search integer, rerank integer, recall double precision,
			   ms_per_query double precision, k integer, queries integer,
			   rows double precision, taken_at timestamptz)
AS 'MODULE_PATHNAME', 'quantumdb_calibrate' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION quantumdb.calibrate(regclass, integer, integer, integer) IS
	'Measures the k-recall@k and time per query of a quantumdb index at a grid of ef_search / rerank pairs, on rows of its table as queries, and keeps it for quantumdb.target_recall';

CREATE FUNCTION quantumdb.calibration(index regclass)
RETURNS TABLE (ef_search integer, rerank integer, recall double precision,
			   ms_per_query double precision, k integer, queries integer,
			   rows double precision, taken_at timestamptz)
AS 'MODULE_PATHNAME', 'quantumdb_calibration' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION quantumdb.calibration(regclass) IS
	'The calibration a quantumdb index keeps (no rows: none)';

-- How well the index's compressor fits the rows its table has, as its last
-- calibration measured it (new in 0.8.9).  Anyone who may read the table.
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

CREATE FUNCTION quantumdb.scan_settings(
	index regclass,
	OUT ef_search integer,
	OUT rerank integer,
	OUT chosen_by text,
	OUT calibrated_recall double precision,
	OUT calibrated_ms_per_query double precision)
RETURNS record
AS 'MODULE_PATHNAME', 'quantumdb_scan_settings' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION quantumdb.scan_settings(regclass) IS
	'The ef_search and rerank a scan of a quantumdb index uses now, and why: the session''s settings or, under quantumdb.target_recall, the calibration''s choice';
