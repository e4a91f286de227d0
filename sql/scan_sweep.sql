-- The sweep (src/index_scan_sweep.c): once a scan's walks have seen the
-- whole reachable graph, it reads the node pages for the live nodes no walk
-- reached.  At the start of a scan on a table smaller than the walk's beam
-- the first walk is short and the scan sweeps at once: the walk's rows
-- must stay, even when quantumdb.max_scan_tuples is below the table's rows
-- (session 60's review F2: the sweep kept only the first 10 nodes in page
-- order, and the LIMIT 5 answer lost 4 of its 5 rows).
SET client_min_messages = warning;

CREATE TABLE sw_src (id int PRIMARY KEY, emb real[]);
\copy sw_src FROM 'glove_base.copy'
SELECT compressor FROM quantumdb.train('sw_c', 'sw_src', 'emb', metric => 'cosine',
	kind => 'pq', subvectors => 10, kmeans_iters => 5, validation => 0);
CREATE TABLE sw (id int PRIMARY KEY, emb real[]);
INSERT INTO sw SELECT id, emb FROM sw_src WHERE id % 40 = 0 AND id < 1000 ORDER BY id;
CREATE INDEX sw_idx ON sw USING quantumdb (emb real_cosine_ops)
	WITH (compressor = 'sw_c', m = 4, calibration_queries = 0);

-- per query row of sw_src (not in sw): the index's LIMIT 5 against the exact one
CREATE FUNCTION sw_same(limit_rows int) RETURNS TABLE (same bigint, queries bigint)
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format(
    'WITH q AS (SELECT id, emb FROM sw_src WHERE id %% 97 = 1 AND id < 1000)
     SELECT count(*) FILTER (WHERE i = e), count(*) FROM q,
       LATERAL (SELECT array_agg(id) AS i FROM (SELECT s.id FROM sw s
                ORDER BY s.emb <=> q.emb LIMIT %s) a) ia,
       LATERAL (SELECT array_agg(id ORDER BY d, id) AS e FROM (SELECT s.id, s.emb <=> q.emb AS d FROM sw s
                ORDER BY s.emb <=> q.emb, s.id LIMIT %s) b) ea', limit_rows, limit_rows);
END $$;

SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM sw ORDER BY emb <=> '{1}' LIMIT 5;
SELECT count(*) AS rows FROM sw;
SELECT * FROM sw_same(5);
SET quantumdb.max_scan_tuples = 10;
SELECT * FROM sw_same(5);
SET quantumdb.iterative_scan = relaxed_order;
SELECT * FROM sw_same(5);
SET quantumdb.iterative_scan = off;
SELECT * FROM sw_same(5);
RESET quantumdb.iterative_scan;
RESET quantumdb.max_scan_tuples;

-- a scan of every row returns each once, in every order
SET quantumdb.rerank = 0;
SELECT count(*) AS returned, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM sw ORDER BY emb <=> (SELECT emb FROM sw_src WHERE id = 1)) s;
SET quantumdb.iterative_scan = relaxed_order;
SELECT count(*) AS returned, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM sw ORDER BY emb <=> (SELECT emb FROM sw_src WHERE id = 1)) s;
RESET quantumdb.iterative_scan;
RESET quantumdb.rerank;
RESET enable_seqscan;

DROP FUNCTION sw_same(int);
DROP TABLE sw, sw_src;
SELECT quantumdb.drop_compressor('sw_c');
