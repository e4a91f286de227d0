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
DROP TABLE oc, od;

DROP TABLE ra, rn, rq;
DROP FUNCTION rebuild_check(text);
SELECT quantumdb.drop_compressor('rb_c');
