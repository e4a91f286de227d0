-- SQL that used to take the server down or answer by the plan: a scan that
-- keeps going while the same backend inserts into its index or the index's
-- relcache entry is rebuilt, an index over neural codes, ORDER BY ... NULL.
-- Every case here crashed the server or gave a plan-dependent answer before.
SET client_min_messages = warning;

CREATE TABLE tr (id int, emb real[]);
INSERT INTO tr
SELECT i, (SELECT array_agg(sin(i * 0.731 + j * 1.37 + (i % 7) * j)::real)
           FROM generate_series(1, 128) j)
FROM generate_series(1, 2000) i;
SELECT compressor FROM quantumdb.train('tr_pq', 'tr', 'emb', kind => 'pq',
                                       subvectors => 8, sample => 2000, validation => 100);
CREATE INDEX tr_idx ON tr USING quantumdb (emb) WITH (compressor = 'tr_pq');
SET enable_seqscan = off;
SET quantumdb.ef_search = 10;
SET quantumdb.rerank = 10;

-- 1. INSERT ... SELECT ordered through the index into the same index
EXPLAIN (COSTS OFF)
INSERT INTO tr (id, emb)
SELECT id + 1000000, emb FROM tr ORDER BY emb <~> (SELECT emb FROM tr WHERE id = 1) LIMIT 50;
INSERT INTO tr (id, emb)
SELECT id + 1000000, emb FROM tr ORDER BY emb <~> (SELECT emb FROM tr WHERE id = 1) LIMIT 50;
SELECT count(*) FROM tr WHERE id > 1000000;

-- 2. a cursor over an index scan with inserts between fetches
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM tr ORDER BY emb <~> (SELECT emb FROM tr WHERE id = 2);
MOVE 5 IN c;
INSERT INTO tr SELECT -id, emb FROM tr WHERE id = 3;
MOVE 40 IN c;
INSERT INTO tr SELECT -id, emb FROM tr WHERE id BETWEEN 4 AND 40;
MOVE 40 IN c;
COMMIT;

-- 3. the same cursor across relcache invalidations of the index
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM tr ORDER BY emb <~> (SELECT emb FROM tr WHERE id = 2);
MOVE 5 IN c;
ALTER INDEX tr_idx RENAME TO tr_idx_renamed;
MOVE 40 IN c;
ANALYZE tr;
MOVE 40 IN c;
ALTER INDEX tr_idx_renamed RENAME TO tr_idx;
INSERT INTO tr SELECT 5000, emb FROM tr WHERE id = 7;
MOVE 40 IN c;
COMMIT;
SELECT * FROM quantumdb.verify('tr_idx');

-- 7. ORDER BY ... NULL: the same rows whatever the plan
PREPARE by_null(real[]) AS SELECT id FROM tr ORDER BY emb <~> $1 LIMIT 5;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF) EXECUTE by_null(NULL);
CREATE TEMP TABLE null_index AS EXECUTE by_null(NULL);
RESET enable_seqscan;
SET enable_indexscan = off;
DEALLOCATE by_null;
PREPARE by_null(real[]) AS SELECT id FROM tr ORDER BY emb <~> $1 LIMIT 5;
EXPLAIN (COSTS OFF) EXECUTE by_null(NULL);
CREATE TEMP TABLE null_seq AS EXECUTE by_null(NULL);
SELECT (SELECT count(*) FROM null_index) AS through_index,
       (SELECT count(*) FROM null_seq) AS through_seqscan;
-- without a LIMIT: every row
RESET enable_indexscan;
SET enable_seqscan = off;
SELECT count(*) = (SELECT count(*) FROM tr) AS every_row
FROM (SELECT id FROM tr ORDER BY emb <~> (SELECT NULL::real[])) s;
RESET plan_cache_mode;

-- 4. for every kind, neural included: the index at rerank 0 with a walk
-- wide enough to see every node returns what exhaustive ADC with the same
-- model returns (as distances: equal codes may tie)
CREATE FUNCTION adc_mismatches(cname text) RETURNS bigint LANGUAGE sql AS $$
SELECT count(*) FROM tr q,
  LATERAL (SELECT array_agg(round(d::numeric, 4) ORDER BY d) a FROM
           (SELECT quantumdb.adc_distance(cname, q.emb, quantumdb.encode(cname, emb)) d
            FROM tr ORDER BY emb <~> q.emb LIMIT 10) s) i,
  LATERAL (SELECT array_agg(round(d::numeric, 4) ORDER BY d) a FROM
           (SELECT quantumdb.adc_distance(cname, q.emb, quantumdb.encode(cname, emb)) d
            FROM tr ORDER BY 1 LIMIT 10) s) e
WHERE q.id BETWEEN 1 AND 20 AND i.a IS DISTINCT FROM e.a $$;
SET quantumdb.rerank = 0;
SET quantumdb.ef_search = 10000;
SELECT adc_mismatches('tr_pq') AS pq_mismatches;
DROP INDEX tr_idx;
SELECT compressor FROM quantumdb.train('tr_opq', 'tr', 'emb', kind => 'opq', subvectors => 8,
                                       sample => 2000, validation => 100, opq_iters => 5);
CREATE INDEX tr_opq_idx ON tr USING quantumdb (emb) WITH (compressor = 'tr_opq');
SELECT adc_mismatches('tr_opq') AS opq_mismatches;
DROP INDEX tr_opq_idx;
SELECT compressor FROM quantumdb.train('tr_nn', 'tr', 'emb', kind => 'neural', subvectors => 8,
                                       sample => 2000, validation => 100, opq_iters => 5,
                                       epochs => 1, device => 'cpu');
CREATE INDEX tr_nn_idx ON tr USING quantumdb (emb) WITH (compressor = 'tr_nn');
SELECT adc_mismatches('tr_nn') AS neural_mismatches;
-- and the index over neural codes takes inserts and stays sound
INSERT INTO tr SELECT id + 2000000, emb FROM tr WHERE id BETWEEN 1 AND 100;
SELECT adc_mismatches('tr_nn') AS neural_mismatches_after_inserts;
SELECT * FROM quantumdb.verify('tr_nn_idx');
RESET quantumdb.rerank;
RESET quantumdb.ef_search;
RESET enable_seqscan;

DROP TABLE tr;
DROP FUNCTION adc_mismatches(text);
SELECT quantumdb.drop_compressor(n) FROM unnest(ARRAY['tr_pq', 'tr_opq', 'tr_nn']) n;

-- Options whose node cannot fit on a page: with inline_codes each of a
-- node's 2 m level-0 neighbours carries its code.  CREATE INDEX used to
-- fail with an internal error (XX000) on a full table and, on an empty
-- one, to succeed and then refuse every INSERT.
CREATE TABLE tw (id int, emb real[]);
INSERT INTO tw
SELECT i, (SELECT array_agg(sin(i * 0.731 + j * 1.37 + (i % 7) * j)::real)
           FROM generate_series(1, 128) j)
FROM generate_series(1, 600) i;
SELECT compressor, code_bytes FROM quantumdb.train('tw_wide', 'tw', 'emb', kind => 'pq',
                                       subvectors => 128, kmeans_iters => 2,
                                       sample => 600, validation => 50);
CREATE INDEX tw_bad ON tw USING quantumdb (emb)
  WITH (compressor = 'tw_wide', m = 32, inline_codes = on);
CREATE TABLE tw_empty (id int, emb real[]);
CREATE INDEX tw_empty_bad ON tw_empty USING quantumdb (emb)
  WITH (compressor = 'tw_wide', m = 32, inline_codes = on);
INSERT INTO tw_empty SELECT * FROM tw WHERE id <= 3;
-- what fits still builds, and takes rows
CREATE INDEX tw_ok ON tw_empty USING quantumdb (emb)
  WITH (compressor = 'tw_wide', m = 16, inline_codes = on);
INSERT INTO tw_empty SELECT * FROM tw WHERE id > 3;
SELECT count(*) FROM tw_empty;
SELECT * FROM quantumdb.verify('tw_ok');
DROP TABLE tw_empty;

-- Cosine rows of floats far from 1: a norm summed in float overflows at
-- elements near 1e19 and vanishes at 1e-30, which made such a query, an
-- INSERT of such a row into a built index, CREATE INDEX and training fail
-- with "unusable training data".  Each row here points as row 7 does.
CREATE TABLE tc AS SELECT id, emb FROM tw WHERE id <= 300;
INSERT INTO tc SELECT -1, (SELECT array_agg(x * 1e19::real) FROM unnest(emb) x) FROM tw WHERE id = 7;
SELECT compressor FROM quantumdb.train('tc_pq', 'tc', 'emb', kind => 'pq', metric => 'cosine',
                                       subvectors => 8, sample => 300, validation => 30);
CREATE INDEX tc_idx ON tc USING quantumdb (emb real_cosine_ops) WITH (compressor = 'tc_pq');
INSERT INTO tc SELECT -2, (SELECT array_agg(x * 1e-30::real) FROM unnest(emb) x) FROM tw WHERE id = 7;
INSERT INTO tc SELECT -3, (SELECT array_agg(x * 1e-40::real) FROM unnest(emb) x) FROM tw WHERE id = 7;
SET enable_seqscan = off;
SET quantumdb.rerank = 10;
SELECT array_agg(id ORDER BY id) AS same_direction
FROM (SELECT id FROM tc ORDER BY emb <=> (SELECT array_agg(x * 1e20::real)
                                         FROM tw, unnest(emb) x WHERE id = 7) LIMIT 4) s;
SELECT array_agg(id ORDER BY id) AS same_direction_small
FROM (SELECT id FROM tc ORDER BY emb <=> (SELECT array_agg(x * 1e-35::real)
                                         FROM tw, unnest(emb) x WHERE id = 7) LIMIT 4) s;
RESET quantumdb.rerank;
RESET enable_seqscan;
DROP TABLE tc, tw;
SELECT quantumdb.drop_compressor(n) FROM unnest(ARRAY['tw_wide', 'tc_pq']) n;

-- The functions that open an index by OID, given one no relation has (an
-- index dropped since the caller read pg_index): 42P01, not XX000.
\set VERBOSITY terse
SELECT * FROM quantumdb.index_info(987654);
SELECT * FROM quantumdb.verify(987654);
SELECT * FROM quantumdb.scan_settings(987654);
SELECT * FROM quantumdb.calibration(987654);
SELECT * FROM quantumdb.calibrate(987654);
\set VERBOSITY default
-- given a partitioned quantumdb index: 0A000 saying so, with a hint (it was
-- 42809 "is not a quantumdb index")
CREATE TABLE tpi (id int, emb real[]) PARTITION BY RANGE (id);
CREATE TABLE tpi1 PARTITION OF tpi FOR VALUES FROM (0) TO (1000);
CREATE INDEX tpi_emb ON tpi USING quantumdb (emb);
SELECT * FROM quantumdb.verify('tpi_emb');
\set VERBOSITY terse
SELECT * FROM quantumdb.index_info('tpi_emb');
SELECT * FROM quantumdb.scan_settings('tpi_emb');
SELECT * FROM quantumdb.calibration('tpi_emb');
SELECT * FROM quantumdb.calibrate('tpi_emb');
\set VERBOSITY default
DROP TABLE tpi;

-- Hints name what they name as SQL would: a compressor name as a literal
-- (one with a quote and a statement in it used to be printed bare, so that
-- copying the hint ran the statement), an index schema-qualified and
-- quoted (REINDEX INDEX "Mixed" failed as Mixed, and missed an index
-- outside the search_path).
CREATE TABLE th (id int, emb real[]);
INSERT INTO th SELECT i, ARRAY[sin(i), cos(i), sin(2 * i), cos(3 * i)]::real[]
FROM generate_series(1, 300) i;
SELECT compressor FROM quantumdb.train($$th'); DROP TABLE th; --$$, 'th', 'emb',
                                       kind => 'pq', subvectors => 2, sample => 300,
                                       validation => 20);
SELECT compressor FROM quantumdb.train($$th'); DROP TABLE th; --$$, 'th', 'emb',
                                       kind => 'pq', subvectors => 2, sample => 300,
                                       validation => 20);
SELECT quantumdb.drop_compressor($$th'); DROP TABLE th; --$$);
CREATE SCHEMA "Trust S";
CREATE TABLE "Trust S".small (id int, emb real[]);
INSERT INTO "Trust S".small VALUES (1, '{1,2,3}');
SET client_min_messages = notice;
CREATE INDEX "Small Idx" ON "Trust S".small USING quantumdb (emb);
SET client_min_messages = warning;
DROP SCHEMA "Trust S" CASCADE;
DROP TABLE th;
