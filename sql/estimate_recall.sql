-- quantumdb.estimate_recall: with at least as many queries as rows every
-- row is a query, so its estimate must equal the mean per-row recall this
-- test computes on its own (index scan against sequential scan, ties
-- counted as found), at a setting that misses (rerank 0) and at one that
-- cannot (rerank = rows).  Then: the interval and timings, the same answer
-- for a seed, the planner settings left as they were, a zero row under
-- cosine skipped, and the errors.
SET client_min_messages = warning;
\set VERBOSITY default
\set SHOW_CONTEXT errors

CREATE TABLE er (id int PRIMARY KEY, emb real[]);
\copy er FROM 'glove_base.copy'
DELETE FROM er WHERE id >= 400;
SELECT compressor FROM quantumdb.train('er_c', 'er', 'emb', metric => 'cosine',
	kind => 'pq', subvectors => 20, kmeans_iters => 10, validation => 0);
CREATE INDEX er_idx ON er USING quantumdb (emb real_cosine_ops)
	WITH (compressor = 'er_c', m = 8, ef_construction = 32);
ANALYZE er;

-- the mean over every row of |index's k ∩ exact k| / k, ties as found
CREATE FUNCTION er_recall(ef int, rr int, src regclass DEFAULT 'er') RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
  q record; got int[]; gotd float8[]; want int[]; kth float8; hits int;
  total float8 := 0; n int := 0;
BEGIN
  FOR q IN EXECUTE format('SELECT emb FROM %s', src) LOOP
    PERFORM set_config('quantumdb.ef_search', ef::text, true);
    PERFORM set_config('quantumdb.rerank', rr::text, true);
    PERFORM set_config('enable_seqscan', 'off', true);
    SELECT array_agg(id), array_agg(d) INTO got, gotd
      FROM (SELECT id, emb <=> q.emb AS d FROM er ORDER BY emb <=> q.emb LIMIT 10) s;
    PERFORM set_config('enable_seqscan', 'on', true);
    PERFORM set_config('enable_indexscan', 'off', true);
    SELECT array_agg(id), max(d) INTO want, kth
      FROM (SELECT id, emb <=> q.emb AS d FROM er ORDER BY 2 LIMIT 10) s;
    PERFORM set_config('enable_indexscan', 'on', true);
    SELECT count(*) INTO hits FROM unnest(got, gotd) u(i, d) WHERE i = ANY (want) OR d <= kth;
    total := total + hits / 10.0;
    n := n + 1;
  END LOOP;
  RETURN total / n;
END $$;

SET quantumdb.ef_search = 10;
SET quantumdb.rerank = 0;
SELECT er_recall(10, 0) AS own \gset
-- (the recall itself varies with the build's threads: not printed)
SELECT measured_queries, skipped_queries, recall > 0.5 AS plausible,
	abs(recall - :own) < 1e-9 AS equals_own, recall < 0.95 AS misses,
	recall_low <= recall AND recall <= recall_high AS in_interval,
	recall_high - recall_low < 0.1 AS narrow,
	index_ms_per_query > 0 AND exact_ms_per_query > 0 AS timed, ef_search, rerank
FROM quantumdb.estimate_recall('er_idx', 1000, 10);

SET quantumdb.ef_search = 40;
SET quantumdb.rerank = 400;
SELECT measured_queries, recall, recall_low, recall_high, recall = er_recall(40, 400) AS equals_own
FROM quantumdb.estimate_recall('er_idx', 1000, 10);

-- other queries: the 100 glove queries from a table of their own
CREATE TABLE erq (id int PRIMARY KEY, emb real[]);
\copy erq FROM 'glove_query.copy'
SELECT er_recall(40, 0, 'erq') AS ownq \gset
SET quantumdb.ef_search = 40;
SET quantumdb.rerank = 0;
SELECT measured_queries, abs(recall - :ownq) < 1e-9 AS equals_own
FROM quantumdb.estimate_recall('er_idx', 1000, query_table => 'erq', query_column => 'emb');
SELECT * FROM quantumdb.estimate_recall('er_idx', query_table => 'erq');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM quantumdb.estimate_recall('er_idx', query_table => 'erq', query_column => 'nope');
\echo :LAST_ERROR_SQLSTATE
-- a column of another type: 42804 before any query runs (42883 from a query inside before)
SELECT * FROM quantumdb.estimate_recall('er_idx', query_table => 'erq', query_column => 'id');
\echo :LAST_ERROR_SQLSTATE
-- an array the parser converts element by element (int[] for real[]; no
-- pg_cast row) is taken, as before 0.8.4
ALTER TABLE erq ADD COLUMN ei int[];
UPDATE erq SET ei = ARRAY(SELECT (x * 100)::int FROM unnest(emb) x);
SELECT measured_queries, skipped_queries FROM quantumdb.estimate_recall('er_idx', 1000, query_table => 'erq', query_column => 'ei');
-- float8[] for real[]: cast, its elements' type having an assignment
-- cast (refused with 42804 before 0.8.5), the same recall as the real[]
-- column's
ALTER TABLE erq ADD COLUMN e8 float8[];
UPDATE erq SET e8 = emb::float8[];
SELECT measured_queries, abs(recall - :ownq) < 1e-9 AS equals_own
FROM quantumdb.estimate_recall('er_idx', 1000, query_table => 'erq', query_column => 'e8');
-- an array of a domain over float8: its base type's cast
CREATE DOMAIN er_d8 AS float8;
ALTER TABLE erq ADD COLUMN ed er_d8[];
UPDATE erq SET ed = e8::er_d8[];
SELECT measured_queries, abs(recall - :ownq) < 1e-9 AS equals_own
FROM quantumdb.estimate_recall('er_idx', 1000, query_table => 'erq', query_column => 'ed');
-- a view or a partitioned table as query_table: 42809 with a hint (a view
-- gave 0A000 from TABLESAMPLE, a partitioned table no recall at all)
CREATE VIEW erq_v AS SELECT id, emb FROM erq;
SELECT * FROM quantumdb.estimate_recall('er_idx', query_table => 'erq_v', query_column => 'emb');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE erq_p (id int, emb real[]) PARTITION BY RANGE (id);
CREATE TABLE erq_p1 PARTITION OF erq_p FOR VALUES FROM (MINVALUE) TO (MAXVALUE);
INSERT INTO erq_p SELECT id, emb FROM erq;
SELECT * FROM quantumdb.estimate_recall('er_idx', query_table => 'erq_p', query_column => 'emb');
\echo :LAST_ERROR_SQLSTATE
SELECT measured_queries FROM quantumdb.estimate_recall('er_idx', 1000, query_table => 'erq_p1', query_column => 'emb');
DROP VIEW erq_v;
DROP TABLE erq_p;
-- a query table without a row to measure: recall NULL, and a NOTICE says
-- why (0.8.10; before, nothing did)
CREATE TABLE erq_empty (emb real[]);
SET client_min_messages = notice;
SELECT measured_queries, recall FROM quantumdb.estimate_recall('er_idx', query_table => 'erq_empty', query_column => 'emb');
INSERT INTO erq_empty VALUES (NULL);
SELECT measured_queries, recall FROM quantumdb.estimate_recall('er_idx', query_table => 'erq_empty', query_column => 'emb');
-- queries, but an index's table without a row to find
CREATE TABLE er_none (emb real[]);
CREATE INDEX er_none_idx ON er_none USING quantumdb (emb);
SELECT measured_queries, skipped_queries, recall FROM quantumdb.estimate_recall('er_none_idx', 3, query_table => 'erq', query_column => 'emb');
DROP TABLE er_none;
SET client_min_messages = warning;
DROP TABLE erq_empty;

-- 50 of the rows, chosen by the seed: the same answer twice
SET quantumdb.rerank = 0;
SELECT a.measured_queries, a.recall = b.recall AS same_for_a_seed
FROM quantumdb.estimate_recall('er_idx', 50, 10, 7) a, quantumdb.estimate_recall('er_idx', 50, 10, 7) b;

-- k of 1: the nearest row of a row is itself, found at any setting
SELECT measured_queries, recall FROM quantumdb.estimate_recall('er_idx', 20, 1);

-- the planner settings it changes come back as they were; a caller's
-- enable_seqscan = off does not turn the exact run into an index scan
SET quantumdb.ef_search = 10;
SELECT er_recall(10, 0) AS own \gset
BEGIN;
SET LOCAL enable_seqscan = off;
SELECT measured_queries, abs(recall - :own) < 1e-9 AS equals_own
FROM quantumdb.estimate_recall('er_idx', 1000);
SHOW enable_seqscan;
SHOW enable_indexscan;
SHOW enable_bitmapscan;
COMMIT;
SHOW enable_seqscan;

-- a zero vector under cosine makes every exact scan fail: each query is
-- skipped, with one WARNING
INSERT INTO er VALUES (9999, array_fill(0::real, ARRAY[100]));
SELECT measured_queries, skipped_queries FROM quantumdb.estimate_recall('er_idx', 1000, 10);
DELETE FROM er WHERE id = 9999;

-- quoted names in another schema; rows with a NULL vector are never
-- queries and never in an answer, even where fewer than k rows have one
CREATE SCHEMA "Odd S";
CREATE TABLE "Odd S"."T t" ("E m" real[]);
INSERT INTO "Odd S"."T t" SELECT emb FROM er WHERE id < 300;
INSERT INTO "Odd S"."T t" SELECT NULL FROM generate_series(1, 50);
CREATE INDEX "I x" ON "Odd S"."T t" USING quantumdb ("E m" real_cosine_ops) WITH (compressor = 'er_c');
CREATE TABLE "Odd S".few ("E m" real[]);
INSERT INTO "Odd S".few SELECT emb FROM er WHERE id < 5;
INSERT INTO "Odd S".few SELECT NULL FROM generate_series(1, 5);
CREATE INDEX few_idx ON "Odd S".few USING quantumdb ("E m" real_cosine_ops) WITH (compressor = 'er_c');
ANALYZE "Odd S"."T t", "Odd S".few;
-- mostly NULL rows: a sample sized by reltuples comes up short, and the
-- whole table is sampled instead
CREATE TABLE "Odd S".sparse ("E m" real[]);
INSERT INTO "Odd S".sparse SELECT emb FROM er;
INSERT INTO "Odd S".sparse SELECT NULL FROM generate_series(1, 19600);
CREATE INDEX sparse_idx ON "Odd S".sparse USING quantumdb ("E m" real_cosine_ops) WITH (compressor = 'er_c');
ANALYZE "Odd S".sparse;
SELECT measured_queries FROM quantumdb.estimate_recall('"Odd S".sparse_idx', 100, 10);
SET quantumdb.rerank = 1000;
SELECT measured_queries, skipped_queries, recall FROM quantumdb.estimate_recall('"Odd S"."I x"', 1000, 10);
SELECT measured_queries, skipped_queries, recall FROM quantumdb.estimate_recall('"Odd S".few_idx', 1000, 10);
DROP SCHEMA "Odd S" CASCADE;

-- errors
SELECT * FROM quantumdb.estimate_recall('er_pkey');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM quantumdb.estimate_recall('er');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM quantumdb.estimate_recall('er_idx', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM quantumdb.estimate_recall('er_idx', 10, 0);
\echo :LAST_ERROR_SQLSTATE
CREATE INDEX er_part ON er USING quantumdb (emb real_cosine_ops) WITH (compressor = 'er_c') WHERE id < 300;
SELECT * FROM quantumdb.estimate_recall('er_part');
\echo :LAST_ERROR_SQLSTATE
DROP INDEX er_part;

-- two indexes on the column: the planner scans one of them, and the other
-- is refused rather than measured through the wrong index
CREATE INDEX er_idx2 ON er USING quantumdb (emb real_cosine_ops)
	WITH (compressor = 'er_c', m = 8, ef_construction = 32);
DO $$
DECLARE i text; measured int := 0; refused int := 0;
BEGIN
  FOREACH i IN ARRAY ARRAY['er_idx', 'er_idx2'] LOOP
    BEGIN
      PERFORM quantumdb.estimate_recall(i::regclass, 5);
      measured := measured + 1;
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
      refused := refused + 1;
    END;
  END LOOP;
  RAISE WARNING 'measured %, refused %', measured, refused;
END $$;

DROP INDEX er_idx2;

-- the caller's search_path chooses none of its operators: an operator that
-- pg_catalog has only by coercion (float8 / int4), put in a schema on the
-- path, ran inside estimate_recall with the caller's rights (release 0.8.1)
CREATE SCHEMA er_evil;
CREATE FUNCTION er_evil.div(float8, int4) RETURNS float8 LANGUAGE plpgsql
  AS $$BEGIN RAISE EXCEPTION 'an operator of the caller''s search_path ran'; END$$;
CREATE OPERATOR er_evil./ (LEFTARG = float8, RIGHTARG = int4, FUNCTION = er_evil.div);
SET search_path = public, er_evil;
SELECT measured_queries FROM quantumdb.estimate_recall('er_idx', 3);
RESET search_path;
DROP SCHEMA er_evil CASCADE;

-- an index that is not valid (a CREATE INDEX CONCURRENTLY that failed):
-- refused as such (release 0.8.6), not as one the planner does not pick
-- for want of another index on the column
CREATE INDEX CONCURRENTLY er_bad ON er USING quantumdb (emb) WITH (compressor = 'no_such_c');
SELECT measured_queries FROM quantumdb.estimate_recall('er_bad', 3);
\echo :LAST_ERROR_SQLSTATE
DROP INDEX er_bad;

DROP FUNCTION er_recall(int, int, regclass);
DROP TABLE er, erq;
SELECT quantumdb.drop_compressor('er_c');
