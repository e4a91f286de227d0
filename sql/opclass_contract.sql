-- What the access method tells core about itself, and what it does with
-- an operator class it is given (session 58's query-shapes hunt,
-- /work/runs/hunt-s58a.md).
SET client_min_messages = warning;
-- (a walk narrow enough that m sets its cost: at the defaults the 600 rows cap it)
SET quantumdb.ef_search = 10;
SET quantumdb.rerank = 10;
SELECT setseed(0.58);
CREATE TABLE oc_t AS
SELECT i AS id, ARRAY(SELECT (random() + 0 * i)::real FROM generate_series(1, 8)) AS emb
FROM generate_series(1, 600) i;
SELECT compressor FROM quantumdb.train('oc_c', 'oc_t', 'emb', kind => 'pq', subvectors => 4,
                                       validation => 0);
CREATE INDEX oc_i ON oc_t USING quantumdb (emb) WITH (compressor = 'oc_c');
ANALYZE oc_t;

-- O3: the column orders by distance (was NULL: no amproperty)
SELECT p, pg_index_column_has_property('oc_i', 1, p)
FROM unnest(ARRAY['distance_orderable', 'orderable', 'returnable', 'search_array']) p;

-- F2: the planner prices a scan with the m the index was built with;
-- ALTER INDEX SET (m = ...) takes effect at the next build (it changed
-- the cost up to 3 times before)
CREATE FUNCTION oc_cost() RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE j json;
BEGIN
  SET LOCAL enable_seqscan = off;
  EXECUTE 'EXPLAIN (FORMAT JSON) SELECT id FROM oc_t ORDER BY emb <~> ''{0,1,0,1,0,1,0,1}'' LIMIT 10'
    INTO j;
  RETURN (j->0->'Plan'->'Plans'->0->>'Startup Cost')::float8;
END $$;
SELECT oc_cost() AS built_cost \gset
ALTER INDEX oc_i SET (m = 100);
SELECT oc_cost() = :built_cost AS same_cost_after_set_m_100;
ALTER INDEX oc_i SET (m = 2);
SELECT oc_cost() = :built_cost AS same_cost_after_set_m_2;
REINDEX INDEX oc_i;
SELECT m FROM quantumdb.index_info('oc_i');
SELECT oc_cost() < :built_cost AS cheaper_once_rebuilt_with_m_2;
ALTER INDEX oc_i RESET (m);
REINDEX INDEX oc_i;

-- F1: an operator class whose distance function returns NULL: an ERROR
-- with an errcode naming the function (was XX000 "function N returned
-- NULL"), from the rerank and from the heap scan of an index without a
-- compressor alike
CREATE FUNCTION oc_l2(a real[], b real[]) RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
  IF a[1] > 0.95 THEN RETURN NULL; END IF;
  RETURN quantumdb.l2_distance(a, b);
END $$;
CREATE OPERATOR <~~> (leftarg = real[], rightarg = real[], function = oc_l2);
CREATE OPERATOR CLASS oc_ops FOR TYPE real[] USING quantumdb AS
  OPERATOR 1 <~~> (real[], real[]) FOR ORDER BY float_ops,
  FUNCTION 1 oc_l2(real[], real[]), FUNCTION 2 quantumdb.metric_l2(internal);
-- (the build's calibration measures exact distances too: it fails alike)
CREATE INDEX oc_null ON oc_t USING quantumdb (emb oc_ops) WITH (compressor = 'oc_c');
CREATE INDEX oc_null ON oc_t USING quantumdb (emb oc_ops)
  WITH (compressor = 'oc_c', calibration_queries = 0);
SET enable_seqscan = off;
\set VERBOSITY sqlstate
SELECT count(*) FROM (SELECT id FROM oc_t ORDER BY emb <~~> '{1,1,1,1,1,1,1,1}' LIMIT 50) s;
\set VERBOSITY default
DROP INDEX oc_null;
CREATE TABLE oc_small AS SELECT * FROM oc_t WHERE id <= 100;
CREATE INDEX oc_small_i ON oc_small USING quantumdb (emb oc_ops);
SELECT count(*) FROM (SELECT id FROM oc_small ORDER BY emb <~~> '{1,1,1,1,1,1,1,1}' LIMIT 5) s;
RESET enable_seqscan;
SET enable_indexscan = off;
-- without the index, a sequential scan sorts the NULL distances last
SELECT count(*) FROM (SELECT id FROM oc_small ORDER BY emb <~~> '{1,1,1,1,1,1,1,1}' LIMIT 5) s;

RESET enable_indexscan;
RESET quantumdb.ef_search;
RESET quantumdb.rerank;
DROP TABLE oc_t, oc_small;
DROP OPERATOR CLASS oc_ops USING quantumdb;
DROP OPERATOR <~~> (real[], real[]);
DROP FUNCTION oc_l2, oc_cost;
SELECT quantumdb.drop_compressor('oc_c');
