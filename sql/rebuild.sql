-- Every path that rebuilds a quantumdb index, for an index that trains its
-- own compressor in the build (no compressor option: ra_idx) and one built
-- from a catalog compressor (rn_idx): REINDEX INDEX and TABLE, both
-- CONCURRENTLY too, VACUUM FULL, CLUSTER by a btree index and a table
-- rewrite.  After each the index is clean, the planner uses it, and with
-- candidates and rerank covering the table it finds the exact top rows.
-- Training NOTICEs carry timings, so they are hidden.
SET client_min_messages = warning;

SELECT setseed(0.25);
CREATE TABLE ra (id int PRIMARY KEY, other int, emb real[]);
INSERT INTO ra SELECT i, i % 7, array(SELECT random()::real FROM generate_series(1, 16) WHERE i > 0)
FROM generate_series(1, 600) i;
INSERT INTO ra VALUES (601, 0, NULL);
CREATE TABLE rn AS SELECT * FROM ra;
ALTER TABLE rn ADD PRIMARY KEY (id);
CREATE INDEX ra_other ON ra (other);
CREATE INDEX rn_other ON rn (other);
CREATE TABLE rq (id int PRIMARY KEY, emb real[]);
INSERT INTO rq SELECT i, array(SELECT random()::real FROM generate_series(1, 16) WHERE i > 0)
FROM generate_series(1, 8) i;

SELECT compressor FROM quantumdb.train('rb_c', 'rn', 'emb', kind => 'opq', subvectors => 4,
                                 kmeans_iters => 3, opq_iters => 2);
CREATE INDEX ra_idx ON ra USING quantumdb (emb);
CREATE INDEX rn_idx ON rn USING quantumdb (emb) WITH (compressor = 'rb_c');

-- problems verify finds, whether the plan uses the index, the queries whose
-- index top 10 differs from the sequential scan's, and the index's nodes
CREATE FUNCTION rebuild_check(t text)
RETURNS TABLE (tbl text, problems bigint, uses_index bool, mismatches int, nodes bigint)
LANGUAGE plpgsql AS $$
DECLARE
  q record; line text; got float8[]; want float8[];
  sql text := format('SELECT array_agg(d) FROM (SELECT emb OPERATOR(public.<~>) $1 AS d FROM %I ORDER BY emb OPERATOR(public.<~>) $1 LIMIT 10) s', t);
BEGIN
  tbl := t;
  SELECT count(*) INTO problems FROM quantumdb.verify((t || '_idx')::regclass);
  SELECT i.nodes INTO nodes FROM quantumdb.index_info((t || '_idx')::regclass) i;
  PERFORM set_config('quantumdb.ef_search', '1000', true);
  PERFORM set_config('quantumdb.rerank', '1000', true);
  uses_index := false;
  mismatches := 0;
  FOR q IN SELECT emb FROM rq ORDER BY id LOOP
    PERFORM set_config('enable_seqscan', 'off', true);
    PERFORM set_config('enable_indexscan', 'on', true);
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || replace(sql, '$1', quote_literal(q.emb) || '::real[]') LOOP
      uses_index := uses_index OR line LIKE format('%%Index Scan using %s_idx on %s%%', t, t);
    END LOOP;
    EXECUTE sql INTO got USING q.emb;
    PERFORM set_config('enable_indexscan', 'off', true);
    PERFORM set_config('enable_seqscan', 'on', true);
    EXECUTE sql INTO want USING q.emb;
    IF got IS DISTINCT FROM want THEN mismatches := mismatches + 1; END IF;
  END LOOP;
  RETURN NEXT;
END $$;

SELECT * FROM rebuild_check('ra') UNION ALL SELECT * FROM rebuild_check('rn');

REINDEX INDEX ra_idx;
REINDEX INDEX rn_idx;
SELECT * FROM rebuild_check('ra') UNION ALL SELECT * FROM rebuild_check('rn');

REINDEX TABLE ra;
REINDEX TABLE rn;
SELECT * FROM rebuild_check('ra') UNION ALL SELECT * FROM rebuild_check('rn');

REINDEX INDEX CONCURRENTLY ra_idx;
REINDEX INDEX CONCURRENTLY rn_idx;
SELECT * FROM rebuild_check('ra') UNION ALL SELECT * FROM rebuild_check('rn');

REINDEX TABLE CONCURRENTLY ra;
REINDEX TABLE CONCURRENTLY rn;
SELECT * FROM rebuild_check('ra') UNION ALL SELECT * FROM rebuild_check('rn');

VACUUM FULL ra;
VACUUM FULL rn;
SELECT * FROM rebuild_check('ra') UNION ALL SELECT * FROM rebuild_check('rn');

CLUSTER ra USING ra_other;
CLUSTER rn USING rn_other;
SELECT * FROM rebuild_check('ra') UNION ALL SELECT * FROM rebuild_check('rn');

-- a rewrite rebuilds every index of the table
ALTER TABLE ra ALTER COLUMN other TYPE bigint;
ALTER TABLE rn ALTER COLUMN other TYPE bigint;
SELECT * FROM rebuild_check('ra') UNION ALL SELECT * FROM rebuild_check('rn');

-- the compressor-less index names no catalog compressor, the other its own
SELECT i.tbl, x.compressor, x.built_from
FROM (VALUES ('ra'), ('rn')) i(tbl), quantumdb.index_info((i.tbl || '_idx')::regclass) x;

-- a temporary table ON COMMIT DELETE ROWS: each COMMIT empties it and
-- rebuilds its indexes with no snapshot set, where an index that names a
-- compressor reads the catalog (it failed there: "cannot execute SQL
-- without an outer snapshot", and the index was left without pages)
CREATE TEMP TABLE oc (id int, emb real[]) ON COMMIT DELETE ROWS;
CREATE INDEX oc_idx ON oc USING quantumdb (emb) WITH (compressor = 'rb_c');
BEGIN;
INSERT INTO oc SELECT id, emb FROM rn WHERE id <= 50;
SET LOCAL enable_seqscan = off;
SELECT id FROM oc ORDER BY emb <~> (SELECT emb FROM rn WHERE id = 7) LIMIT 1;
COMMIT;
SELECT count(*) FROM oc;
SELECT compressor, built_from FROM quantumdb.index_info('oc_idx');
-- the compressor named by ALTER INDEX: the ALTER's own COMMIT rebuilds it
CREATE TEMP TABLE od (id int, emb real[]) ON COMMIT DELETE ROWS;
CREATE INDEX od_idx ON od USING quantumdb (emb);
ALTER INDEX od_idx SET (compressor = 'rb_c');
BEGIN;
INSERT INTO od SELECT id, emb FROM rn WHERE id <= 50;
SET LOCAL enable_seqscan = off;
SELECT id FROM od ORDER BY emb <~> (SELECT emb FROM rn WHERE id = 7) LIMIT 1;
COMMIT;
SELECT compressor, built_from FROM quantumdb.index_info('od_idx');
-- its compressor dropped (drop_compressor WARNs that indexes name it) or
-- replaced by one for another metric: the rebuild at COMMIT failed and, as
-- that truncation is not transactional, left the index without pages, at
-- every COMMIT.  It builds without one instead, with a WARNING (terse: the
-- HINT names the session's temporary schema), and takes the compressor
-- again at the first COMMIT that finds it usable.
SELECT quantumdb.export('rb_c') AS rb_blob \gset
-- one transaction's work on oc: 50 rows in, the 3 nearest to row 7
-- through the index, what the index is and the problems verify finds
CREATE FUNCTION oc_round(OUT nearest text, OUT compressor text, OUT code_bytes int,
						 OUT nodes bigint, OUT problems bigint) LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO oc SELECT id, emb FROM rn WHERE id <= 50;
	SET LOCAL enable_seqscan = off;
	SELECT string_agg(id::text, ' ') INTO nearest FROM
		(SELECT id FROM oc ORDER BY emb <~> (SELECT emb FROM rn WHERE id = 7) LIMIT 3) t;
	SELECT i.compressor, i.code_bytes, i.nodes INTO compressor, code_bytes, nodes
	FROM quantumdb.index_info('oc_idx') i;
	SELECT count(*) INTO problems FROM quantumdb.verify('oc_idx');
END $$;
SELECT quantumdb.drop_compressor('rb_c');
\set VERBOSITY terse
BEGIN;
SELECT * FROM oc_round();
COMMIT;
BEGIN;
SELECT * FROM oc_round();
COMMIT;
SELECT compressor FROM quantumdb.train('rb_c', 'rn', 'emb', metric => 'cosine');
BEGIN;
SELECT * FROM oc_round();
COMMIT;
BEGIN;
SELECT * FROM oc_round();
COMMIT;
-- usable again, with 8-byte codes, then the first model again (4 bytes):
-- the next COMMIT's rebuild takes it, for the transactions after.  That
-- build, the index's OID unchanged, no longer pins the cache of the pages
-- before: it failed with "could not start encoding the rows" from the
-- cache of the index without a compressor, and a cache of another model
-- would have encoded the rows with it
SELECT quantumdb.drop_compressor('rb_c');
SELECT compressor FROM quantumdb.train('rb_c', 'rn', 'emb', kind => 'pq', subvectors => 8);
BEGIN;
SELECT * FROM oc_round();
COMMIT;
BEGIN;
SELECT * FROM oc_round();
COMMIT;
SELECT quantumdb.drop_compressor('rb_c');
SELECT quantumdb.import('rb_c', :'rb_blob');
BEGIN;
SELECT * FROM oc_round();
COMMIT;
BEGIN;
SELECT * FROM oc_round();
COMMIT;
\set VERBOSITY default
DROP TABLE oc, od;

-- a CREATE INDEX CONCURRENTLY that failed leaves an index that is not
-- valid, here without pages: verify says so (it said nothing of an invalid
-- index with sound pages, and failed to read one without)
CREATE INDEX CONCURRENTLY rq_bad ON rq USING quantumdb (emb) WITH (compressor = 'no_such_c');
SELECT * FROM quantumdb.verify('rq_bad');
ALTER INDEX rq_bad SET (compressor = 'rb_c');
REINDEX INDEX rq_bad;
SELECT count(*) FROM quantumdb.verify('rq_bad');
DROP INDEX rq_bad;

-- a partitioned index naming a compressor that is dropped: its option
-- cannot be changed, so the hint says to bring the compressor back, and a
-- new partition's build names the partitioned index (hunt s65c F4)
SELECT count(*) FROM quantumdb.import('rb_p', quantumdb.export('rb_c'));
CREATE TABLE rp (id int, emb real[]) PARTITION BY RANGE (id);
CREATE TABLE rp1 PARTITION OF rp FOR VALUES FROM (0) TO (1000000);
INSERT INTO rp SELECT id, emb FROM rq;
CREATE INDEX rp_v ON rp USING quantumdb (emb) WITH (compressor = 'rb_p');
SELECT quantumdb.drop_compressor('rb_p');
CREATE TABLE rp2 PARTITION OF rp FOR VALUES FROM (1000000) TO (2000000);
-- the way out the hint gives: the partition's own index, then ATTACH
CREATE TABLE rp3 (id int, emb real[]);
CREATE INDEX rp3_v ON rp3 USING quantumdb (emb);
ALTER TABLE rp ATTACH PARTITION rp3 FOR VALUES FROM (2000000) TO (3000000);
SELECT count(*) AS attached FROM pg_inherits WHERE inhparent = 'rp_v'::regclass;
DROP TABLE rp;

DROP TABLE ra, rn, rq;
DROP FUNCTION rebuild_check(text);
DROP FUNCTION oc_round();
SELECT quantumdb.drop_compressor('rb_c');
