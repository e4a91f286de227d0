-- Calibration and quantumdb.target_recall: CREATE INDEX keeps a
-- calibration; quantumdb.calibrate with every row a query must report, at
-- the ef_search / rerank pairs below 40, about the recall of 100 held-out
-- queries (glove_query.copy, not in the table), which this test computes
-- on its own, where the recall of the rows as queries with their own node
-- in the walk (the index's first 10 rows other than the query row against
-- the exact 10 nearest other rows, with one more place for the query row
-- in the walk's candidates and the rerank: the calibration until 2026-12-05)
-- overstates it; under a target, scan_settings picks the pair of
-- least calibrated time that reached it, and scans really run with it
-- (their recall is that pair's, not the defaults'); ef_search or rerank
-- set in the session win; an index without a calibration warns; REINDEX
-- calibrates again, and so does a worker that VACUUM starts once the index
-- has changed by a quarter; errors.
SET client_min_messages = warning;
\set VERBOSITY default
\set SHOW_CONTEXT errors

CREATE TABLE tr (id int PRIMARY KEY, emb real[]);
\copy tr FROM 'glove_base.copy'
DELETE FROM tr WHERE id >= 600;
SELECT compressor FROM quantumdb.train('tr_c', 'tr', 'emb', metric => 'cosine',
	kind => 'pq', subvectors => 20, kmeans_iters => 10, validation => 0);
SELECT md5(string_agg(emb::text, ';' ORDER BY id)) AS data_before FROM tr \gset
SET max_parallel_maintenance_workers = 0;	-- one thread: the same graph every run
CREATE INDEX tr_idx ON tr USING quantumdb (emb real_cosine_ops)
	WITH (compressor = 'tr_c', m = 8, ef_construction = 32);
RESET max_parallel_maintenance_workers;
ANALYZE tr;

-- the build calibrated with 100 rows, k 10, ef_search from 10 up
SELECT count(*) > 3 AS points, min(k) AS k, min(queries) AS queries, min(rows) AS rows,
	min(ef_search) AS first_ef, bool_and(recall BETWEEN 0 AND 1) AS recalls,
	bool_and(ms_per_query > 0) AS timed, bool_and(rerank <= ef_search) AS rerank_within
FROM quantumdb.calibration('tr_idx');

-- the mean over every row of |index's first 10 other rows ∩ exact 10 other rows| / 10
CREATE FUNCTION tr_recall() RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
  q record; got int[]; want int[]; hits int; total float8 := 0; n int := 0;
BEGIN
  FOR q IN SELECT id, emb FROM tr LOOP
    PERFORM set_config('enable_seqscan', 'off', true);
    SELECT array_agg(id) INTO got FROM (SELECT id FROM tr ORDER BY emb <=> q.emb LIMIT 11) s
      WHERE id <> q.id;
    got := got[1:10];
    PERFORM set_config('enable_seqscan', 'on', true);
    PERFORM set_config('enable_indexscan', 'off', true);
    SELECT array_agg(id) INTO want FROM (SELECT id FROM tr WHERE id <> q.id
      ORDER BY emb <=> q.emb LIMIT 10) s;
    PERFORM set_config('enable_indexscan', 'on', true);
    SELECT count(*) INTO hits FROM unnest(got) i WHERE i = ANY (want);
    total := total + hits / 10.0;
    n := n + 1;
  END LOOP;
  RETURN total / n;
END $$;
CREATE FUNCTION tr_recall_at(ef int, rr int) RETURNS float8 LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('quantumdb.ef_search', ef::text, true);
  PERFORM set_config('quantumdb.rerank', rr::text, true);
  RETURN tr_recall();
END $$;
-- the calibration's pair (ef, rr) runs at (ef + 1, rr + 1): the query row takes a place
CREATE FUNCTION tr_recall_cal(ef int, rr int) RETURNS float8 LANGUAGE sql
  AS $$ SELECT tr_recall_at(ef + 1, CASE WHEN rr > 0 THEN rr + 1 ELSE 0 END) $$;

-- the held-out queries' recall at (ef, rr), against their exact 10 nearest rows
CREATE TABLE trq (id int, emb real[]);
\copy trq FROM 'glove_query.copy'
SET enable_indexscan = off;
CREATE TABLE trq_truth AS SELECT q.id, (SELECT array_agg(id) FROM
	(SELECT t.id FROM tr t ORDER BY t.emb <=> q.emb LIMIT 10) s) AS want FROM trq q;
RESET enable_indexscan;
CREATE FUNCTION trq_recall_at(ef int, rr int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
  q record; got int[]; total float8 := 0; n int := 0;
BEGIN
  PERFORM set_config('quantumdb.ef_search', ef::text, true);
  PERFORM set_config('quantumdb.rerank', rr::text, true);
  PERFORM set_config('enable_seqscan', 'off', true);
  FOR q IN SELECT trq.emb, t.want FROM trq JOIN trq_truth t USING (id) LOOP
    SELECT array_agg(id) INTO got FROM (SELECT id FROM tr ORDER BY emb <=> q.emb LIMIT 10) s;
    total := total + (SELECT count(*) FROM unnest(got) i WHERE i = ANY (q.want)) / 10.0;
    n := n + 1;
  END LOOP;
  PERFORM set_config('enable_seqscan', 'on', true);
  RETURN total / n;
END $$;

-- every row a query, its own node walked around as if it were a new
-- query: at each pair below ef_search 40 with a rerank, the calibration
-- is less than 0.02 above the held-out queries' recall (0.0015 at most
-- when written; 0.033 at 10 / 10 when a widened walk took the node back
-- in), where the rows with their own node in the walk were 0.04 and more
-- above it on average (0.076: 0.14 at 10 / 10)
-- a recall r over n places less one standard error: the lower end of
-- Wilson's interval at z = 1, which a target's choice and the grid's stop take
CREATE FUNCTION tr_lower(r float8, n float8) RETURNS float8 LANGUAGE sql AS $$
  SELECT (r + 1 / (2 * n) - sqrt(r * (1 - r) / n + 1 / (4 * n * n))) / (1 + 1 / n) $$;
CREATE TABLE cal AS SELECT * FROM quantumdb.calibrate('tr_idx', queries => 1000);
SELECT count(*) > 3 AS points, min(queries) AS queries, min(rows) AS rows,
	bool_or(recall < 0.9) AS some_miss,
	max(tr_lower(recall, k * queries)) >= 0.99 AS last_reaches
FROM cal;
-- the grid stops after the first ef_search whose full rerank reaches 0.99
SELECT count(*) AS ef_reaching_099, bool_and(ef_search = (SELECT max(ef_search) FROM cal)) AS is_last
FROM cal WHERE rerank = ef_search AND tr_lower(recall, k * queries) >= 0.99;
-- every ef_search has its full rerank; a partial rerank (0, a quarter, a
-- half: its slot) is measured until its pairs at two ef_search in a row
-- were dominated (by another pair measured at the same or a smaller
-- ef_search, no slower, with no less recall), and only then is left out
CREATE TABLE cal_slot AS SELECT c.*,
	CASE WHEN rerank = 0 THEN 0 WHEN rerank = ef_search / 4 THEN 1
		WHEN rerank = ef_search / 2 THEN 2 ELSE 3 END AS slot,
	EXISTS (SELECT 1 FROM cal o WHERE (o.ef_search, o.rerank) <> (c.ef_search, c.rerank)
		AND o.ef_search <= c.ef_search AND o.ms_per_query <= c.ms_per_query
		AND o.recall >= c.recall) AS dominated
FROM cal c;
CREATE TABLE cal_run AS SELECT *,
	dominated AND lag(dominated) OVER (PARTITION BY slot ORDER BY ef_search) AS drops
FROM cal_slot WHERE slot < 3;
SELECT (SELECT count(DISTINCT ef_search) FROM cal) =
		(SELECT count(*) FROM cal WHERE rerank = ef_search) AS full_each,
	(SELECT count(*) FROM cal_run d JOIN cal_run l ON l.slot = d.slot
		AND l.ef_search > d.ef_search WHERE d.drops) AS measured_after_drop,
	(SELECT count(*) FROM (SELECT DISTINCT ef_search, k FROM cal) e
		CROSS JOIN generate_series(0, 2) s(slot)
	 WHERE (s.slot = 0 OR e.ef_search / (2 * (3 - s.slot)) >= e.k)
		AND NOT EXISTS (SELECT 1 FROM cal_slot c WHERE c.ef_search = e.ef_search
			AND c.slot = s.slot)
		AND NOT EXISTS (SELECT 1 FROM cal_run d WHERE d.slot = s.slot
			AND d.ef_search < e.ef_search AND d.drops)) AS left_out_not_dropped;
CREATE TABLE cal_held AS SELECT ef_search, rerank, recall,
	trq_recall_at(ef_search, rerank) AS held, tr_recall_cal(ef_search, rerank) AS own_node
FROM cal WHERE ef_search < 40 AND rerank > 0;
SELECT count(*) >= 4 AS pairs, max(recall - held) < 0.02 AS tells_held_out,
	avg(own_node - held) > 0.04 AS own_node_overstates
FROM cal_held;
-- the build's and calibrate's passes over the heap left its vectors as they were
-- (cosine ranks unit vectors: they are scaled in a copy, never in the buffer)
SELECT md5(string_agg(emb::text, ';' ORDER BY id)) = :'data_before' AS data_unchanged FROM tr;
-- what the calibration function reads back is what calibrate returned
SELECT count(*) AS differ FROM (SELECT ef_search, rerank, recall, ms_per_query FROM cal
	EXCEPT SELECT ef_search, rerank, recall, ms_per_query FROM quantumdb.calibration('tr_idx')) d;

-- the choice: least time among those that reached the target by one
-- standard error (tr_lower, above); never a pair of rerank 0 (below)
CREATE FUNCTION tr_reached(c cal, target float8) RETURNS boolean LANGUAGE sql AS $$
  SELECT tr_lower(c.recall, c.k * c.queries) >= target $$;
CREATE FUNCTION tr_choice(target float8) RETURNS TABLE (ef int, rr int) LANGUAGE sql AS $$
  SELECT ef_search, rerank FROM cal c WHERE c.rerank > 0 AND tr_reached(c, target)
  ORDER BY ms_per_query, ef_search + rerank LIMIT 1 $$;
SET quantumdb.target_recall = 0.5;
SELECT s.chosen_by, (s.ef_search, s.rerank) = (c.ef, c.rr) AS least_time,
	s.calibrated_recall >= 0.5 AS reached
FROM quantumdb.scan_settings('tr_idx') s, tr_choice(0.5) c;
SELECT ef_search AS ef, rerank AS rr FROM quantumdb.scan_settings('tr_idx') \gset
-- scans use it: their recall is the chosen pair's set by hand (the defaults give more)
SELECT tr_recall() AS under_target \gset
SELECT abs(:under_target - tr_recall_at(:ef, :rr)) < 1e-9 AS scans_use_it,
	tr_recall_at(40, 100) > :under_target AS defaults_differ;
SET quantumdb.target_recall = 0.9;
SELECT s.chosen_by, (s.ef_search, s.rerank) = (c.ef, c.rr) AS least_time,
	s.calibrated_recall >= 0.9 AS reached
FROM quantumdb.scan_settings('tr_idx') s, tr_choice(0.9) c;
SELECT ef_search AS ef, rerank AS rr FROM quantumdb.scan_settings('tr_idx') \gset
SELECT tr_recall() AS under_target \gset
SELECT abs(:under_target - tr_recall_at(:ef, :rr)) < 1e-9 AS scans_use_it;
-- estimate_recall reports the settings its scans used
SELECT (e.ef_search, e.rerank) = (s.ef_search, s.rerank) AS reports_chosen
FROM quantumdb.estimate_recall('tr_idx', 20) e, quantumdb.scan_settings('tr_idx') s;

-- a target equal to the recall of the fastest pair below 1 (above 0.5):
-- that pair is a standard error short, so a pair of higher recall is chosen
SELECT recall AS t FROM cal WHERE rerank > 0 AND recall > 0.5 AND recall < 1
ORDER BY ms_per_query LIMIT 1 \gset
SET quantumdb.target_recall = :t;
SELECT s.calibrated_recall > :t AS above_by_a_margin, (s.ef_search, s.rerank) = (c.ef, c.rr) AS least_time
FROM quantumdb.scan_settings('tr_idx') s, tr_choice(:t) c;

-- a target no pair reached: the pair of highest recall
SET quantumdb.target_recall = 1;
SELECT s.chosen_by IN ('calibration', 'calibration (target not reached)') AS chosen,
	s.calibrated_recall = (SELECT max(recall) FROM cal WHERE rerank > 0) AS highest
FROM quantumdb.scan_settings('tr_idx') s;

-- a latency bound (the calibration's ms per query): of the pairs within
-- it, the target's choice or else the highest recall; none within it: the
-- fastest pair
CREATE FUNCTION tr_choice_within(target float8, bound float8) RETURNS TABLE (ef int, rr int)
LANGUAGE sql AS $$
  SELECT ef_search, rerank FROM cal WHERE rerank > 0 AND ms_per_query <= bound
  ORDER BY (target > 0 AND tr_reached(cal, target)) DESC,
    CASE WHEN target > 0 AND tr_reached(cal, target) THEN ms_per_query END,
    CASE WHEN target > 0 AND tr_reached(cal, target) THEN ef_search + rerank END,
    recall DESC, ms_per_query LIMIT 1 $$;
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY ms_per_query) AS mid FROM cal \gset
RESET quantumdb.target_recall;
SET quantumdb.max_latency = :mid;
SELECT s.chosen_by, (s.ef_search, s.rerank) = (c.ef, c.rr) AS highest_within,
	s.calibrated_ms_per_query <= :mid AS within
FROM quantumdb.scan_settings('tr_idx') s, tr_choice_within(0, :mid) c;
SET quantumdb.target_recall = 0.5;
SELECT s.chosen_by, (s.ef_search, s.rerank) = (c.ef, c.rr) AS target_within
FROM quantumdb.scan_settings('tr_idx') s, tr_choice_within(0.5, :mid) c;
SET quantumdb.target_recall = 1;
SELECT (s.ef_search, s.rerank) = (c.ef, c.rr) AS rule_within, s.calibrated_ms_per_query <= :mid AS within
FROM quantumdb.scan_settings('tr_idx') s, tr_choice_within(1, :mid) c;
SET quantumdb.max_latency = 0.000001;
SELECT s.chosen_by,
	s.calibrated_ms_per_query = (SELECT min(ms_per_query) FROM cal WHERE rerank > 0) AS fastest
FROM quantumdb.scan_settings('tr_idx') s;
RESET quantumdb.max_latency;
SET quantumdb.rerank = 5;	-- explicit: wins over a bound SET at the same level
SET quantumdb.max_latency = :mid;
SELECT chosen_by FROM quantumdb.scan_settings('tr_idx');
RESET quantumdb.rerank;
RESET quantumdb.max_latency;

-- ef_search or rerank set where the target was (here: both SET) win
SET quantumdb.target_recall = 0.9;
SET quantumdb.rerank = 5;
SELECT * FROM quantumdb.scan_settings('tr_idx');
RESET quantumdb.rerank;
BEGIN;
SET LOCAL quantumdb.ef_search = 12;
SELECT ef_search, chosen_by FROM quantumdb.scan_settings('tr_idx');
COMMIT;
SELECT chosen_by FROM quantumdb.scan_settings('tr_idx');
RESET quantumdb.target_recall;
SELECT * FROM quantumdb.scan_settings('tr_idx');

-- no calibration (calibration_queries 0): the session's pair, one WARNING
CREATE INDEX tr_idx0 ON tr USING quantumdb (emb real_cosine_ops)
	WITH (compressor = 'tr_c', m = 8, ef_construction = 32, calibration_queries = 0);
SELECT count(*) FROM quantumdb.calibration('tr_idx0');
SELECT * FROM quantumdb.calibration_fit('tr_idx0');
SET quantumdb.target_recall = 0.9;
SELECT * FROM quantumdb.scan_settings('tr_idx0');
SELECT * FROM quantumdb.scan_settings('tr_idx0');
DROP INDEX tr_idx0;
RESET quantumdb.target_recall;

-- three queries: a recall of 1 over their 30 places is evidence of 0.968
-- at best, so a target of 0.99 is not reached (one standard error of r (1
-- - r) alone would be 0 there); REINDEX below calibrates with 100 again
SELECT count(*) > 0 AS calibrated, max(recall) AS best FROM quantumdb.calibrate('tr_idx', queries => 3);
SET quantumdb.target_recall = 0.99;
SELECT chosen_by, calibrated_recall FROM quantumdb.scan_settings('tr_idx');
RESET quantumdb.target_recall;

-- REINDEX calibrates again, with the index's calibration_queries
REINDEX INDEX tr_idx;
SELECT min(queries) AS queries FROM quantumdb.calibration('tr_idx');
-- the compressor's coding error on the rows, measured by the calibration
SELECT coding_error > 0 AS measured, expected > coding_error AS fits, ratio < 1 AS ratio_below_1,
	fits_worse, removed, retrain_pending, taken_at = (SELECT min(taken_at) FROM quantumdb.calibration('tr_idx')) AS same_time
FROM quantumdb.calibration_fit('tr_idx');
ALTER INDEX tr_idx SET (calibration_queries = 30);	-- calibrate_after_vacuum: on by default
REINDEX INDEX tr_idx;
SELECT min(queries) AS queries FROM quantumdb.calibration('tr_idx');

-- after a VACUUM that finds a quarter more (or fewer) live nodes than at
-- the calibration, a background worker measures it again; not before
CREATE TEMP TABLE tr_t0 AS SELECT min(taken_at) AS t0 FROM quantumdb.calibration('tr_idx');
DELETE FROM tr WHERE id >= 580;
VACUUM tr;
SELECT pg_sleep(1);
SELECT min(rows) AS rows, min(taken_at) = (SELECT t0 FROM tr_t0) AS kept
FROM quantumdb.calibration('tr_idx');
CREATE TEMP TABLE tr_more (id int, emb real[]);
\copy tr_more FROM 'glove_base.copy'
INSERT INTO tr SELECT id, emb FROM tr_more WHERE id >= 600 AND id < 800;
VACUUM tr;
DO $$
BEGIN
  FOR i IN 1..1200 LOOP
    EXIT WHEN (SELECT min(taken_at) FROM quantumdb.calibration('tr_idx')) > (SELECT t0 FROM tr_t0);
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT min(rows) AS rows, min(queries) AS queries,
	min(taken_at) > (SELECT t0 FROM tr_t0) AS measured_again
FROM quantumdb.calibration('tr_idx');

-- errors
SELECT * FROM quantumdb.calibrate('tr_pkey');
SELECT * FROM quantumdb.calibrate('tr_idx', queries => 0);
SELECT * FROM quantumdb.calibrate('tr_idx', k => 0);
SELECT * FROM quantumdb.scan_settings('tr');
SELECT * FROM quantumdb.calibration_fit('tr_pkey');
CREATE INDEX tr_bad ON tr USING quantumdb (emb real_cosine_ops)
	WITH (compressor = 'tr_c', calibration_queries = -1);
CREATE ROLE qdb_tr_reader;
GRANT SELECT ON tr TO qdb_tr_reader;
SET ROLE qdb_tr_reader;
SELECT count(*) > 0 AS reads FROM quantumdb.calibration('tr_idx');
SELECT coding_error > 0 AS reads_fit FROM quantumdb.calibration_fit('tr_idx');
SELECT chosen_by FROM quantumdb.scan_settings('tr_idx');
SELECT * FROM quantumdb.calibrate('tr_idx');
RESET ROLE;
REVOKE SELECT ON tr FROM qdb_tr_reader;
SET ROLE qdb_tr_reader;
SELECT * FROM quantumdb.calibration('tr_idx');
SELECT * FROM quantumdb.calibration_fit('tr_idx');
RESET ROLE;
DROP ROLE qdb_tr_reader;
BEGIN READ ONLY;
SELECT * FROM quantumdb.calibrate('tr_idx');
ROLLBACK;
-- in a transaction block it warns that a ROLLBACK keeps what it writes
-- (measured on the rows the transaction sees: 40 more here), as it does
BEGIN;
INSERT INTO tr SELECT id + 100000, emb FROM tr WHERE id < 40;
SELECT count(*) > 0 AS calibrated FROM quantumdb.calibrate('tr_idx', queries => 5);
ROLLBACK;
SELECT min(rows) - (SELECT count(*) FROM tr) AS rows_rolled_back FROM quantumdb.calibration('tr_idx');
SELECT count(*) > 0 AS calibrated FROM quantumdb.calibrate('tr_idx', queries => 30);
SELECT min(rows) - (SELECT count(*) FROM tr) AS rows_rolled_back FROM quantumdb.calibration('tr_idx');

-- the heap passes evaluate the index's predicate as the table's owner, as
-- a build does, not as the (superuser) caller
CREATE ROLE qdb_tr_owner;
CREATE FUNCTION tr_owned(id int) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
  IF current_user <> 'qdb_tr_owner' THEN
    RAISE EXCEPTION 'the index predicate ran as %', current_user;
  END IF;
  RETURN id < 300;
END $$;
CREATE TABLE tr_o AS SELECT id, emb FROM tr;
ALTER TABLE tr_o OWNER TO qdb_tr_owner;
GRANT SELECT ON tr TO qdb_tr_owner;		-- the compressor's source table
CREATE INDEX tr_o_idx ON tr_o USING quantumdb (emb real_cosine_ops)
	WITH (compressor = 'tr_c', m = 8, ef_construction = 32) WHERE tr_owned(id);
SELECT count(*) > 0 AS built_calibration, min(rows) AS rows FROM quantumdb.calibration('tr_o_idx');
SELECT count(*) > 0 AS calibrated, min(queries) AS queries, min(rows) AS rows
FROM quantumdb.calibrate('tr_o_idx', queries => 40);
DROP TABLE tr_o;
REVOKE SELECT ON tr FROM qdb_tr_owner;
DROP FUNCTION tr_owned(int);
DROP ROLE qdb_tr_owner;

-- an index without a compressor (too few rows) has exact scans: nothing to calibrate
CREATE TABLE tr_small (emb real[]);
INSERT INTO tr_small SELECT emb FROM tr LIMIT 20;
CREATE INDEX tr_small_idx ON tr_small USING quantumdb (emb real_cosine_ops);
SELECT count(*) FROM quantumdb.calibration('tr_small_idx');
SELECT * FROM quantumdb.calibrate('tr_small_idx');
SET quantumdb.target_recall = 0.9;
SELECT * FROM quantumdb.scan_settings('tr_small_idx');
RESET quantumdb.target_recall;

-- A pair of rerank 0 (measured: the compressed order's recall) is never
-- chosen, even where it reached the target: its scans return rows in
-- compressed order, and ORDER BY asked for exact order.  Here 16 dims, so
-- 16 one-dimension sub-quantizers, whose compressed order reaches 0.9; a
-- latency bound under every pair's time takes the fastest pair, which was
-- the rerank-0 one too.
CREATE TABLE tr0 (id int, emb real[]);
SELECT setseed(0.25);
INSERT INTO tr0 SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, 16)
	WHERE i > 0) FROM generate_series(1, 1000) i;
SET max_parallel_maintenance_workers = 0;
CREATE INDEX tr0_idx ON tr0 USING quantumdb (emb);
RESET max_parallel_maintenance_workers;
SELECT bool_or(rerank = 0 AND recall >= 0.95) AS compressed_order_reached
FROM quantumdb.calibration('tr0_idx');
CREATE FUNCTION tr0_out_of_order() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM generate_series(1, 50) q,
    LATERAL (SELECT array_agg(d) AS ds FROM (SELECT emb <~> (SELECT emb FROM tr0 WHERE id = q) AS d
             FROM tr0 ORDER BY emb <~> (SELECT emb FROM tr0 WHERE id = q) LIMIT 10) s) x
  WHERE EXISTS (SELECT 1 FROM generate_series(1, 9) j WHERE x.ds[j] > x.ds[j + 1]) $$;
SET enable_seqscan = off;
SET quantumdb.target_recall = 0.9;
SELECT rerank > 0 AS reranks, chosen_by FROM quantumdb.scan_settings('tr0_idx');
SELECT tr0_out_of_order() AS out_of_order;
SET quantumdb.max_latency = '1us';
SELECT rerank > 0 AS reranks, chosen_by FROM quantumdb.scan_settings('tr0_idx');
SELECT tr0_out_of_order() AS out_of_order;
RESET quantumdb.target_recall;
SELECT rerank > 0 AS reranks, chosen_by FROM quantumdb.scan_settings('tr0_idx');
SELECT tr0_out_of_order() AS out_of_order;
RESET quantumdb.max_latency;
RESET enable_seqscan;
DROP FUNCTION tr0_out_of_order();
DROP TABLE tr0;

DROP FUNCTION tr_reached(cal, float8);	-- takes the table's row type
DROP TABLE tr, tr_small, cal, cal_held, trq, trq_truth;
SELECT quantumdb.drop_compressor('tr_c');
