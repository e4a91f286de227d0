-- Rows with one vector (many empty documents embedded alike, a default
-- vector): more of them than a scan's candidates (100 at the defaults:
-- the larger of ef_search and rerank).  Each copy's lists held nothing but
-- other copies, so a walk that reached them never left them: for 97 of
-- these 200 queries the index's nearest row was farther than the exact
-- 10th (session 62's hunt, /work/runs/hunt-s62a.md F1).  A list now keeps
-- one copy of a vector beyond the first (graph_search.c,
-- QdbDropExcessCopies).  Built with the copies in the table, then with
-- copies made by UPDATE after the build, then after VACUUM.  And a walk's
-- beam counts the copies of one vector once (graph_search.c, "The beam"):
-- counted each, they filled it, the ways out of them lay farther and were
-- turned away, and 4 of these 200 queries (cp, cp2) and 5 of cp3's, 7 at
-- rerank 0, were still wrong.
SET client_min_messages = warning;
SELECT setseed(0.5);
CREATE TABLE cp (id int PRIMARY KEY, v real[]);
INSERT INTO cp SELECT g, (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE g > 0)
FROM generate_series(1, 2000) g;
CREATE TABLE cp_q AS SELECT g AS id, (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE g > 0) AS v
FROM generate_series(1, 200) g;
CREATE TABLE cp2 AS SELECT * FROM cp;
UPDATE cp SET v = array_fill(0.3::real, ARRAY[32]) WHERE id % 7 = 0;
CREATE INDEX cp_idx ON cp USING quantumdb (v);
CREATE INDEX cp2_idx ON cp2 USING quantumdb (v);
UPDATE cp2 SET v = array_fill(0.3::real, ARRAY[32]) WHERE id % 7 = 0;
SET enable_seqscan = off;
-- queries whose nearest row by the index is farther than the exact 10th
CREATE FUNCTION cp_wrong(t regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format($q$
    SELECT count(*) FILTER (WHERE i.d > e.d + 1e-4) FROM cp_q q,
      LATERAL (SELECT min(x) AS d FROM (SELECT t.v <~> q.v AS x FROM %1$s t
               ORDER BY t.v <~> q.v LIMIT 10) s) i,
      LATERAL (SELECT max(x) AS d FROM (SELECT t.v <~> q.v AS x FROM %1$s t
               ORDER BY (t.v <~> q.v) + 0 LIMIT 10) s) e$q$, t) INTO n;
  RETURN n;
END $$;
EXPLAIN (COSTS OFF) SELECT id FROM cp ORDER BY v <~> (SELECT v FROM cp_q WHERE id = 1) LIMIT 10;
SELECT cp_wrong('cp') <= 2 AS built_with_copies_ok, cp_wrong('cp2') <= 2 AS copies_by_update_ok;
VACUUM cp2;
SELECT cp_wrong('cp2') <= 2 AS after_vacuum_ok;
-- a third of the rows copies of the rows' mean, where walks pass
CREATE TABLE cp3 AS SELECT id, CASE WHEN id % 3 = 0 THEN array_fill(0.5::real, ARRAY[32]) ELSE v END AS v
FROM cp2 ORDER BY id % 3 = 0, id;
CREATE INDEX cp3_idx ON cp3 USING quantumdb (v);
SELECT cp_wrong('cp3') <= 2 AS mean_copies_ok;
SET quantumdb.rerank = 0;
SELECT cp_wrong('cp3') <= 2 AS mean_copies_rerank_0_ok;
RESET quantumdb.rerank;
-- the copies' own vector still finds them all, and every node is reached
SELECT count(*) FILTER (WHERE id % 7 = 0) AS copies
FROM (SELECT id FROM cp ORDER BY v <~> array_fill(0.3::real, ARRAY[32]) LIMIT 300) s;
SELECT unreachable_nodes FROM quantumdb.index_info('cp_idx');
SELECT unreachable_nodes FROM quantumdb.index_info('cp2_idx');
SELECT count(*) FROM quantumdb.verify('cp_idx');
SELECT count(*) FROM quantumdb.verify('cp2_idx');
SELECT unreachable_nodes FROM quantumdb.index_info('cp3_idx');
RESET enable_seqscan;
DROP TABLE cp, cp2, cp3, cp_q;
DROP FUNCTION cp_wrong(regclass);
