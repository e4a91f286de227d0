-- An index built on a table with too few rows to train a compressor, and
-- not given one, starts without one: it stores nothing, its scans read the
-- heap and return every row in exact order, and REINDEX trains it once the
-- table has rows enough.  The cases are pgvector's small-table ones
-- (test/sql/hnsw_vector.sql: four rows and a NULL, an insert after CREATE
-- INDEX, a NULL query, TRUNCATE, a LATERAL join) on real[], with the
-- answers pgvector gives for its vector type.
SET enable_seqscan = off;

-- L2
CREATE TABLE st (val real[]);
INSERT INTO st (val) VALUES ('{0,0,0}'), ('{1,2,3}'), ('{1,1,1}'), (NULL);
CREATE INDEX st_idx ON st USING quantumdb (val real_l2_ops);
INSERT INTO st (val) VALUES ('{1,2,4}');
EXPLAIN (COSTS OFF) SELECT * FROM st ORDER BY val <~> '{3,3,3}';
SELECT * FROM st ORDER BY val <~> '{3,3,3}';
SELECT COUNT(*) FROM (SELECT * FROM st ORDER BY val <~> (SELECT NULL::real[])) t2;
SELECT COUNT(*) FROM st;
SELECT dimensions, metric, code_bytes, nodes, pages, compressor, built_from
FROM quantumdb.index_info('st_idx');
SELECT * FROM quantumdb.verify('st_idx');
-- user input is checked as for a trained index
INSERT INTO st (val) VALUES ('{1,NaN,1}');
SELECT * FROM st ORDER BY val <~> '{1,Infinity,1}';
SELECT * FROM st ORDER BY val <~> '{1,2}';
TRUNCATE st;
SELECT * FROM st ORDER BY val <~> '{3,3,3}';
DROP TABLE st;

-- inner product
CREATE TABLE st (val real[]);
INSERT INTO st (val) VALUES ('{0,0,0}'), ('{1,2,3}'), ('{1,1,1}'), (NULL);
CREATE INDEX ON st USING quantumdb (val real_ip_ops);
INSERT INTO st (val) VALUES ('{1,2,4}');
SELECT * FROM st ORDER BY val <#> '{3,3,3}';
SELECT COUNT(*) FROM (SELECT * FROM st ORDER BY val <#> (SELECT NULL::real[])) t2;
DROP TABLE st;

-- cosine: zero vectors are not in the index, as in a trained one; a zero
-- query is an ERROR (pgvector returns the three rows, at NaN distances)
CREATE TABLE st (val real[]);
INSERT INTO st (val) VALUES ('{0,0,0}'), ('{1,2,3}'), ('{1,1,1}'), (NULL);
CREATE INDEX ON st USING quantumdb (val real_cosine_ops);
INSERT INTO st (val) VALUES ('{1,2,4}');
SELECT * FROM st ORDER BY val <=> '{3,3,3}';
SELECT COUNT(*) FROM (SELECT * FROM st ORDER BY val <=> '{0,0,0}') t2;
SELECT COUNT(*) FROM (SELECT * FROM st ORDER BY val <=> (SELECT NULL::real[])) t2;
SELECT * FROM st CROSS JOIN LATERAL (SELECT * FROM st t2 ORDER BY val <=> st.val LIMIT 1) t2
WHERE st.val != '{0,0,0}' ORDER BY st.val;
DROP TABLE st;

-- a row updated in place (HOT: the vector unchanged) is still found, under
-- its chain's first TID; the first row fixes the dimensions
CREATE TABLE st (id int, note text, val real[]);
CREATE INDEX st_idx ON st USING quantumdb (val);
INSERT INTO st VALUES (1, 'a', '{1,1}'), (2, 'b', '{2,2}');
INSERT INTO st VALUES (3, 'c', '{1,2,3}');
UPDATE st SET note = 'z' WHERE id = 1;
SELECT id, note FROM st ORDER BY val <~> '{0,0}';
SELECT dimensions FROM quantumdb.index_info('st_idx');
-- the planner prices it as a sequential scan and a full sort: never below
-- the sequential scan with a top-N sort (priced as a graph walk, it was)
RESET enable_seqscan;
INSERT INTO st SELECT i, 'n', ARRAY[i, i]::real[] FROM generate_series(3, 200) i;
ANALYZE st;
EXPLAIN (COSTS OFF) SELECT id FROM st ORDER BY val <~> '{0,0}' LIMIT 1;
CREATE FUNCTION pg_temp.limit_child_cost(q text, part text) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE p json;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO p;
  RETURN (p->0->'Plan'->'Plans'->0->>part)::float8;
END $$;
SET enable_seqscan = off;
SELECT pg_temp.limit_child_cost('SELECT id FROM st ORDER BY val <~> ''{0,0}'' LIMIT 1', 'Startup Cost')
       AS index_cost \gset
RESET enable_seqscan;
SET enable_indexscan = off;
SELECT :index_cost >= pg_temp.limit_child_cost(
         'SELECT id FROM st ORDER BY val <~> ''{0,0}'' LIMIT 1', 'Total Cost') AS priced_as_seq_scan;
RESET enable_indexscan;
SET enable_seqscan = off;
DROP TABLE st;

-- the dimensions a rolled-back insert gave do not stick: the next row's
-- are taken where no row of the index's dimensions is left in the table
-- (a failed or uncommitted insert, or rows deleted); while one is, a row of
-- others is refused
CREATE TABLE st (id int, val real[]);
CREATE INDEX st_idx ON st USING quantumdb (val);
BEGIN;
INSERT INTO st VALUES (1, '{1,2,3}');
ROLLBACK;
SELECT dimensions FROM quantumdb.index_info('st_idx');
INSERT INTO st VALUES (2, '{1,1}'), (3, '{2,2}');
SELECT dimensions FROM quantumdb.index_info('st_idx');
INSERT INTO st VALUES (4, '{1,2,3}');
SELECT id FROM st ORDER BY val <~> '{2,2}';
DELETE FROM st;
INSERT INTO st VALUES (5, '{1,2,3}');
SELECT dimensions FROM quantumdb.index_info('st_idx');
SELECT id FROM st ORDER BY val <~> '{1,2,3}';
-- a row whose statement failed after its insert (a constraint) is gone too
TRUNCATE st;
CREATE UNIQUE INDEX st_id ON st (id);
INSERT INTO st VALUES (6, '{1,2,3,4}'), (6, '{1,2,3,4}');
SELECT dimensions FROM quantumdb.index_info('st_idx');
INSERT INTO st VALUES (7, '{5,5}');
SELECT dimensions FROM quantumdb.index_info('st_idx');
DROP TABLE st;

-- a temporary table ON COMMIT DELETE ROWS: each COMMIT empties it and
-- rebuilds its index, without a compressor, silently (the NOTICE came at
-- every COMMIT); CREATE INDEX itself still says so
-- (terse: the HINT names the session's temporary schema)
\set VERBOSITY terse
CREATE TEMP TABLE sto (id int, val real[]) ON COMMIT DELETE ROWS;
CREATE INDEX sto_idx ON sto USING quantumdb (val);
BEGIN;
INSERT INTO sto VALUES (1, '{1,1}'), (2, '{2,2}');
SELECT id FROM sto ORDER BY val <~> '{2,2}';
COMMIT;
BEGIN;
INSERT INTO sto VALUES (3, '{1,2,3}');
COMMIT;
SELECT count(*) FROM sto;
DROP TABLE sto;
\set VERBOSITY default

-- a partial index covers the rows of its predicate only
CREATE TABLE st (id int, val real[]);
INSERT INTO st VALUES (1, '{1,1}'), (2, '{2,2}'), (3, '{3,3}'), (4, '{4,4}');
CREATE INDEX ON st USING quantumdb (val) WHERE id % 2 = 0;
SELECT id FROM st WHERE id % 2 = 0 ORDER BY val <~> '{0,0}';

-- rows enough: VACUUM says so, REINDEX trains the compressor
SET client_min_messages = warning;
INSERT INTO st SELECT i, ARRAY[sin(i), cos(i * 0.7)]::real[] FROM generate_series(5, 1200) i;
RESET client_min_messages;
VACUUM st;
SET client_min_messages = warning;
REINDEX TABLE st;
RESET client_min_messages;
SELECT dimensions, code_bytes, nodes > 500 AS has_nodes, built_from
FROM quantumdb.index_info('st_val_idx');
SELECT * FROM quantumdb.verify('st_val_idx');
SET quantumdb.rerank = 10;
SELECT id FROM st WHERE id % 2 = 0 ORDER BY val <~> '{2,2}' LIMIT 1;
RESET quantumdb.rerank;
DROP TABLE st;

-- an unlogged table's index without a compressor, and its init fork
CREATE UNLOGGED TABLE st (val real[]);
CREATE INDEX ON st USING quantumdb (val);
INSERT INTO st VALUES ('{1,2}'), ('{3,4}');
SELECT * FROM st ORDER BY val <~> '{3,3}';
DROP TABLE st;
RESET enable_seqscan;
