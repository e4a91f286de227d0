-- quantumdb.index_cache_size (index_cache.c): a backend keeps the caches of
-- the indexes it has used (compressor, code cache, code-to-code table), and
-- when a statement pins one (and as a transaction that pinned one ends),
-- the caches of other indexes nobody holds go,
-- least recently used first, until all fit.  Counted by their memory
-- contexts, "quantumdb index cache" named by the index.
SET client_min_messages = warning;
SELECT setseed(0.25);
CREATE TABLE icm (id int PRIMARY KEY, emb real[]) WITH (autovacuum_enabled = off);
INSERT INTO icm SELECT i, array(SELECT (random() - 0.5)::real FROM generate_series(1, 16) WHERE i > 0)
FROM generate_series(1, 900) i;
SELECT compressor FROM quantumdb.train('icm_c', 'icm', 'emb', kind => 'pq', subvectors => 4,
                                       kmeans_iters => 3, validation => 0);
CREATE TABLE icm1 WITH (autovacuum_enabled = off) AS SELECT * FROM icm WHERE id <= 300;
CREATE TABLE icm2 WITH (autovacuum_enabled = off) AS SELECT * FROM icm WHERE id > 300 AND id <= 600;
CREATE TABLE icm3 WITH (autovacuum_enabled = off) AS SELECT * FROM icm WHERE id > 600;
CREATE INDEX icm1_idx ON icm1 USING quantumdb (emb) WITH (compressor = 'icm_c', calibration_queries = 0);
CREATE INDEX icm2_idx ON icm2 USING quantumdb (emb) WITH (compressor = 'icm_c', calibration_queries = 0);
CREATE INDEX icm3_idx ON icm3 USING quantumdb (emb) WITH (compressor = 'icm_c', calibration_queries = 0);
SET enable_seqscan = off;

-- the indexes whose caches this backend keeps
CREATE FUNCTION cached() RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(string_agg(ident, ',' ORDER BY ident), '-')
  FROM pg_backend_memory_contexts WHERE name = 'quantumdb index cache' $$;
-- a scan through table t's index
CREATE FUNCTION scan(t text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE n int;
BEGIN
  EXECUTE format('SELECT count(*) FROM (SELECT id FROM %I ORDER BY emb <~> %L::real[] LIMIT 5) s',
                 t, array_fill(0.1::real, ARRAY[16]))
    INTO n;
  RETURN n;
END $$;
EXPLAIN (COSTS OFF) SELECT id FROM icm1 ORDER BY emb <~> array_fill(0.1::real, ARRAY[16]) LIMIT 5;

-- the default keeps all three (each well under 1 MB)
SHOW quantumdb.index_cache_size;
SELECT scan('icm1'), scan('icm2'), scan('icm3');
SELECT cached();
-- an insert adds the code-to-code table to its index's cache (a context of
-- its own, shared by the caches of the same compressor: below)
INSERT INTO icm2 SELECT id + 1000, emb FROM icm2 WHERE id = 400;
SELECT cached();
SELECT total_bytes > 1000000 AS with_pair_table, ident ~ '^compressor crc [0-9a-f]{8}$' AS named
FROM pg_backend_memory_contexts WHERE name = 'quantumdb pair table';

-- 0: a transaction keeps only what it uses, and as it ends drops the
-- caches nobody holds, its own too
SET quantumdb.index_cache_size = 0;
SELECT scan('icm3');
SELECT cached();
SELECT scan('icm1');
SELECT cached();

-- a limit that a cache with the code-to-code table (1 MB at 4 sub-quantizers)
-- passes alone: the insert's transaction drops it as it ends; scans of
-- other indexes keep their small caches
SET quantumdb.index_cache_size = '1MB';
INSERT INTO icm3 SELECT id + 1000, emb FROM icm3 WHERE id = 700;
SELECT cached();
SELECT scan('icm2'), scan('icm1');
SELECT cached();

-- a cache in use is never dropped, nor one the transaction has used (an
-- insert holds its cache for one row: a COPY into many partitions would
-- reload each per row): a cursor on icm1 holds its cache while scans of the
-- other two come and go, and all three stay until the next transaction
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM icm1 ORDER BY emb <~> array_fill(0.1::real, ARRAY[16]);
FETCH 2 FROM c;
SET LOCAL quantumdb.index_cache_size = 0;
SELECT scan('icm2'), scan('icm3');
SELECT cached();
FETCH 3 FROM c;
COMMIT;
SET quantumdb.index_cache_size = 0;
SELECT scan('icm3');
SELECT cached();

-- the end of a transaction trims, its own caches no longer spared: a
-- backend that inserted into two indexes and then uses none keeps what the
-- limit lets it (trimmed only at a later pin, one that inserted a row into
-- each of 30 partitions and sat idle kept 131 MB at 4MB: session 62's hunt)
SET quantumdb.index_cache_size = '1MB';
BEGIN;
INSERT INTO icm1 SELECT id + 2000, emb FROM icm1 WHERE id = 5;
INSERT INTO icm2 SELECT id + 2000, emb FROM icm2 WHERE id = 305;
SELECT cached();
COMMIT;
SELECT cached();
SET quantumdb.index_cache_size = 0;
SELECT scan('icm3');
SELECT cached();

-- indexes of one compressor share its code-to-code table (4 sub-quantizers
-- here: 4 x 256 x 256 floats, 1 MB): an insert into each of the three
-- keeps one table, not three (session 68's hunt: a row into each of 100
-- partitions kept 100 tables of 4 MB until the transaction ended); the
-- table goes with the last cache that holds it
CREATE FUNCTION cache_mb() RETURNS text LANGUAGE sql AS $$
  SELECT count(*) FILTER (WHERE name = 'quantumdb pair table') || ' table(s), under 2 MB in all: ' ||
         (coalesce(sum(total_bytes), 0) < 2 * 1024 * 1024)
  FROM pg_backend_memory_contexts
  WHERE name IN ('quantumdb index cache', 'quantumdb pair table') $$;
SET quantumdb.index_cache_size = '64MB';
BEGIN;
INSERT INTO icm1 SELECT id + 3000, emb FROM icm1 WHERE id = 6;
INSERT INTO icm2 SELECT id + 3000, emb FROM icm2 WHERE id = 306;
INSERT INTO icm3 SELECT id + 3000, emb FROM icm3 WHERE id = 606;
SELECT cached(), cache_mb();
COMMIT;
SET quantumdb.index_cache_size = 0;
SELECT scan('icm3');
SELECT cached(), cache_mb();

RESET quantumdb.index_cache_size;
RESET enable_seqscan;
SELECT quantumdb.drop_compressor('icm_c');
DROP TABLE icm, icm1, icm2, icm3;
DROP FUNCTION cached(), scan(text), cache_mb();
