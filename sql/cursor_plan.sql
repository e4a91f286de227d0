-- A plan for every row in order (no LIMIT, a cursor, a LIMIT of half the
-- table or more) is what a walk of the graph cannot promise (under
-- strict_order a row found after a farther one was returned is passed
-- over): the planner sorts the rows instead (index_cost.c,
-- wants_every_row).  Before, a cursor, planned for a tenth of its rows, got
-- the index and MOVE ALL left rows out (session 68's hunt F1).
SET client_min_messages = warning;
SELECT setseed(0.5);
CREATE TABLE cp (id int PRIMARY KEY, emb real[]) WITH (autovacuum_enabled = off);
INSERT INTO cp SELECT i, array(SELECT (random() - 0.5)::real FROM generate_series(1, 16) WHERE i > 0)
FROM generate_series(1, 6000) i;
SELECT compressor FROM quantumdb.train('cp_c', 'cp', 'emb', kind => 'pq', subvectors => 4,
                                       kmeans_iters => 3, validation => 0);
CREATE INDEX cp_idx ON cp USING quantumdb (emb) WITH (compressor = 'cp_c', calibration_queries = 0);
ANALYZE cp;
SET quantumdb.ef_search = 10;
SET quantumdb.rerank = 10;
CREATE TABLE cq (v real[]);
INSERT INTO cq VALUES (array_fill(0.05::real, ARRAY[16]));
-- the rows a PL/pgSQL cursor, planned as a cursor is, fetches one by one
CREATE FUNCTION cursor_rows() RETURNS int LANGUAGE plpgsql AS $$
DECLARE c refcursor; r record; n int := 0;
BEGIN
  OPEN c FOR SELECT id FROM cp ORDER BY emb <~> (SELECT v FROM cq);
  LOOP
    FETCH c INTO r;
    EXIT WHEN NOT FOUND;
    n := n + 1;
  END LOOP;
  CLOSE c;
  RETURN n;
END $$;
SELECT cursor_rows() AS fetched, (SELECT count(*) FROM cp) AS rows;

BEGIN;
-- a cursor without a LIMIT: every row, sorted
EXPLAIN (COSTS OFF) DECLARE c CURSOR FOR SELECT id FROM cp ORDER BY emb <~> (SELECT v FROM cq);
-- LIMIT ALL and LIMIT NULL limit nothing; an OFFSET alone neither
EXPLAIN (COSTS OFF) DECLARE c CURSOR FOR SELECT id FROM cp ORDER BY emb <~> (SELECT v FROM cq) LIMIT ALL;
EXPLAIN (COSTS OFF) DECLARE c CURSOR FOR SELECT id FROM cp ORDER BY emb <~> (SELECT v FROM cq) LIMIT NULL;
EXPLAIN (COSTS OFF) DECLARE c CURSOR FOR SELECT id FROM cp ORDER BY emb <~> (SELECT v FROM cq) OFFSET 5;
-- with a LIMIT: the index
EXPLAIN (COSTS OFF) DECLARE c CURSOR FOR SELECT id FROM cp ORDER BY emb <~> (SELECT v FROM cq) LIMIT 100;
COMMIT;
-- a LIMIT of half the table or more asks for every row (LIMIT 1000000 gave
-- 12,135 rows of 20,000 in session 68's review)
EXPLAIN (COSTS OFF) SELECT id FROM cp ORDER BY emb <~> (SELECT v FROM cq) LIMIT 1000000;
EXPLAIN (COSTS OFF) SELECT id FROM cp ORDER BY emb <~> (SELECT v FROM cq) LIMIT 3000;
EXPLAIN (COSTS OFF) SELECT id FROM cp ORDER BY emb <~> (SELECT v FROM cq) LIMIT 2000;
-- an ORDER BY in a view or an inlined SQL function, the LIMIT outside: the index
CREATE VIEW cpv AS SELECT id FROM cp ORDER BY emb <~> array_fill(0.05::real, ARRAY[16]);
EXPLAIN (COSTS OFF) SELECT id FROM cpv LIMIT 5;
CREATE FUNCTION near(q real[]) RETURNS SETOF int LANGUAGE sql STABLE AS
  $$ SELECT id FROM cp ORDER BY emb <~> q $$;
EXPLAIN (COSTS OFF) SELECT * FROM near(array_fill(0.05::real, ARRAY[16])) LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM cp ORDER BY emb <~> (SELECT v FROM cq) LIMIT 5;
-- a LIMIT of a parameter, in a generic plan: the index
PREPARE lim(int) AS SELECT id FROM cp ORDER BY emb <~> (SELECT v FROM cq) LIMIT $1;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF) EXECUTE lim(5);
RESET plan_cache_mode;
-- a LATERAL subquery with its own LIMIT: the index, for each outer row
EXPLAIN (COSTS OFF) SELECT s.id FROM cq CROSS JOIN LATERAL
  (SELECT id FROM cp ORDER BY emb <~> cq.v LIMIT 3) s;
-- enable_seqscan off: the index without a LIMIT too, an approximate order
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM cp ORDER BY emb <~> (SELECT v FROM cq);
RESET enable_seqscan;
DROP FUNCTION cursor_rows(), near(real[]);
DROP VIEW cpv;
DROP TABLE cp, cq;
SELECT quantumdb.drop_compressor('cp_c');
