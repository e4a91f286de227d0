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
