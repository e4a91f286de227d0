-- An index scan's rerank keeps the exact distances it computed for rows
-- stored compressed or out of line, and the executor's own evaluation of the
-- ORDER BY expression finds them instead of detoasting the row again
-- (distance_memo.c).  What it finds must be what the function computes, for
-- every row, query, cursor and rescan; and it must be found.
CREATE TABLE dm_items (id int, emb real[]);
-- pglz whatever default_toast_compression says (the NOTICE names lz4 then)
ALTER TABLE dm_items ALTER COLUMN emb SET COMPRESSION pglz;
-- 600 dims, mostly zeros: stored pglz-compressed in the row
INSERT INTO dm_items
SELECT i, array_fill(0::real, ARRAY[590]) ||
          (SELECT array_agg(sin(i * 0.7 + j)::real) FROM generate_series(1, 10) j)
FROM generate_series(1, 300) i;
-- rows 301..310: row 1 but for the last element, so their compressed bytes
-- share all but their end (and their length) with row 1's
INSERT INTO dm_items
SELECT 300 + k, (SELECT emb[1:599] FROM dm_items WHERE id = 1) || (k * 0.01)::real
FROM generate_series(1, 10) k;
SELECT count(*) FILTER (WHERE pg_column_compression(emb) IS NOT NULL) AS compressed,
       count(DISTINCT pg_column_size(emb)) FILTER (WHERE id = 1 OR id > 300) AS sizes
FROM dm_items;
SET client_min_messages = warning;
SELECT compressor FROM quantumdb.train('dm_c', 'dm_items', 'emb', kind => 'pq',
                                       subvectors => 8, kmeans_iters => 2, validation => 0);
RESET client_min_messages;
CREATE INDEX dm_idx ON dm_items USING quantumdb (emb) WITH (compressor = 'dm_c');
SET enable_seqscan = off;
SET quantumdb.ef_search = 40;
SET quantumdb.rerank = 40;
CREATE TEMP TABLE dm_query AS
SELECT (SELECT emb[1:599] FROM dm_items WHERE id = 1) || 0.033::real AS q;

-- the distances the scan's caller sees, kept, then checked once the scan is
-- closed (a check inside the same statement would find the memo too)
EXPLAIN (COSTS OFF)
SELECT id, emb <~> (SELECT q FROM dm_query) AS d FROM dm_items
ORDER BY emb <~> (SELECT q FROM dm_query) LIMIT 20;
CREATE TEMP TABLE dm_got AS
SELECT id, emb <~> (SELECT q FROM dm_query) AS d FROM dm_items
ORDER BY emb <~> (SELECT q FROM dm_query) LIMIT 20;
SELECT count(*) AS rows, count(*) FILTER (WHERE id > 300) AS near_twins,
       count(*) FILTER (WHERE g.d <> quantumdb.l2_distance(t.emb, q)) AS wrong
FROM dm_got g JOIN dm_items t USING (id), dm_query;

-- a rescan per outer row (a new query each time), and the cosine operator
SET client_min_messages = warning;
SELECT compressor FROM quantumdb.train('dm_cc', 'dm_items', 'emb', kind => 'pq', metric => 'cosine',
                                       subvectors => 8, kmeans_iters => 2, validation => 0);
RESET client_min_messages;
CREATE INDEX dm_cos ON dm_items USING quantumdb (emb real_cosine_ops) WITH (compressor = 'dm_cc');
CREATE TEMP TABLE dm_lateral AS
SELECT o.id AS qid, s.id, s.d2, s.dc
FROM dm_items o CROSS JOIN LATERAL
  (SELECT t.id, t.emb <~> o.emb AS d2, NULL::float8 AS dc FROM dm_items t
   ORDER BY t.emb <~> o.emb LIMIT 5) s
WHERE o.id IN (5, 50, 301, 305)
UNION ALL
SELECT o.id, s.id, NULL, s.dc
FROM dm_items o CROSS JOIN LATERAL
  (SELECT t.id, t.emb <=> o.emb AS dc FROM dm_items t
   ORDER BY t.emb <=> o.emb LIMIT 5) s
WHERE o.id IN (7, 302);
SELECT count(*) AS rows,
       count(*) FILTER (WHERE l.d2 <> quantumdb.l2_distance(t.emb, o.emb) OR
                              l.dc <> quantumdb.cosine_distance(t.emb, o.emb)) AS wrong
FROM dm_lateral l JOIN dm_items t ON t.id = l.id JOIN dm_items o ON o.id = l.qid;
DROP INDEX dm_cos;

-- a cursor with inserts and another query's distances between its fetches
BEGIN;
DECLARE dm_cur CURSOR FOR
  SELECT id, round((emb <~> (SELECT q FROM dm_query))::numeric, 6) AS d FROM dm_items
  ORDER BY emb <~> (SELECT q FROM dm_query);
FETCH 5 FROM dm_cur;
-- copies of rows 301..310: the same stored bytes as rows the scan re-scored
INSERT INTO dm_items SELECT 400 + id, emb FROM dm_items WHERE id > 300;
-- the same query, another function, and another query (row 2: as a new
-- value, and as stored)
CREATE TEMP TABLE dm_between AS
SELECT id, emb <~> q AS d2, emb <=> q AS dc, emb <~> o AS dother, emb <~> ostored AS dstored
FROM dm_items, dm_query,
     (SELECT emb AS ostored, emb[:] AS o FROM dm_items WHERE id = 2) r WHERE id > 300;
FETCH 5 FROM dm_cur;
COMMIT;
SELECT id, round(quantumdb.l2_distance(emb, q)::numeric, 6) AS exact
FROM dm_items, dm_query WHERE id <= 400 ORDER BY 2, 1 LIMIT 10;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE b.d2 <> quantumdb.l2_distance(t.emb, q) OR
                              b.dc <> quantumdb.cosine_distance(t.emb, q) OR
                              b.dother <> quantumdb.l2_distance(t.emb, r.emb) OR
                              b.dstored <> quantumdb.l2_distance(t.emb, r.emb)) AS wrong
FROM dm_between b JOIN dm_items t USING (id), dm_query, dm_items r WHERE r.id = 2;

-- found: stored out of line, the rows the executor projects are read from
-- TOAST once (by the rerank), not twice; the rerank at 0 shows what one
-- reading of the same 10 rows costs, quantumdb.rerank_memo = off two
CREATE TABLE dm_ext (id int, emb real[]);
ALTER TABLE dm_ext ALTER COLUMN emb SET STORAGE EXTERNAL;
-- emb[:] is a new, uncompressed value: stored out of line
INSERT INTO dm_ext SELECT id, emb[:] FROM dm_items WHERE id <= 300;
SELECT count(*) FILTER (WHERE pg_column_compression(emb) IS NULL) AS uncompressed,
       pg_relation_size(reltoastrelid) > 0 AS toasted
FROM dm_ext, pg_class WHERE oid = 'dm_ext'::regclass GROUP BY reltoastrelid;
CREATE INDEX dm_ext_idx ON dm_ext USING quantumdb (emb) WITH (compressor = 'dm_c');
SELECT reltoastrelid AS toast FROM pg_class WHERE oid = 'dm_ext'::regclass \gset
SET quantumdb.ef_search = 10;
BEGIN;
SELECT pg_stat_get_xact_blocks_fetched(:toast) AS b0 \gset
SET LOCAL quantumdb.rerank = 0;
SELECT count(d) FROM (SELECT emb <~> (SELECT q FROM dm_query) AS d FROM dm_ext
                      ORDER BY emb <~> (SELECT q FROM dm_query) LIMIT 10) s;
SELECT pg_stat_get_xact_blocks_fetched(:toast) AS b1 \gset
SET LOCAL quantumdb.rerank = 10;
SELECT count(d) FROM (SELECT emb <~> (SELECT q FROM dm_query) AS d FROM dm_ext
                      ORDER BY emb <~> (SELECT q FROM dm_query) LIMIT 10) s;
SELECT pg_stat_get_xact_blocks_fetched(:toast) AS b2 \gset
SET LOCAL quantumdb.rerank_memo = off;
SELECT count(d) FROM (SELECT emb <~> (SELECT q FROM dm_query) AS d FROM dm_ext
                      ORDER BY emb <~> (SELECT q FROM dm_query) LIMIT 10) s;
SELECT pg_stat_get_xact_blocks_fetched(:toast) AS b3 \gset
COMMIT;
SELECT :b1 - :b0 > 0 AS projection_reads_toast,
       :b2 - :b1 < 1.5 * (:b1 - :b0) AS rerank_read_is_reused,
       :b3 - :b2 >= 1.5 * (:b1 - :b0) AS memo_off_reads_twice;

-- a rerank reads a batch's rows stored out of line through one open TOAST
-- relation (toast_fetch.c): the distances and order the scan returns are
-- the functions', uncompressed (dm_ext) and compressed before being moved
-- out of line (dm_extc: half zeros, compressed to about 1,200 bytes, which
-- toast_tuple_target moves out)
CREATE TABLE dm_extc (id int, emb real[]) WITH (toast_tuple_target = 128);
ALTER TABLE dm_extc ALTER COLUMN emb SET COMPRESSION pglz;
INSERT INTO dm_extc
SELECT i, array_fill(0::real, ARRAY[300]) ||
          (SELECT array_agg(sin(i * 0.37 + j * 1.3)::real) FROM generate_series(1, 300) j)
FROM generate_series(1, 310) i;
SELECT reltoastrelid::regclass AS toastc FROM pg_class WHERE oid = 'dm_extc'::regclass \gset
SELECT count(*) FILTER (WHERE pg_column_compression(emb) = 'pglz') AS compressed,
       (SELECT count(DISTINCT chunk_id) FROM :toastc) AS out_of_line
FROM dm_extc;
CREATE INDEX dm_extc_idx ON dm_extc USING quantumdb (emb) WITH (compressor = 'dm_c');
SET quantumdb.ef_search = 40;
SET quantumdb.rerank = 40;
CREATE TEMP TABLE dm_ext_got AS
SELECT 'ext' AS t, o.id AS qid, s.id, s.d, s.r FROM dm_ext o CROSS JOIN LATERAL
  (SELECT t.id, t.emb <~> o.emb AS d, row_number() OVER () AS r FROM dm_ext t
   ORDER BY t.emb <~> o.emb LIMIT 12) s
WHERE o.id IN (3, 30, 150, 299)
UNION ALL
SELECT 'extc', o.id, s.id, s.d, s.r FROM dm_extc o CROSS JOIN LATERAL
  (SELECT t.id, t.emb <~> o.emb AS d, row_number() OVER () AS r FROM dm_extc t
   ORDER BY t.emb <~> o.emb LIMIT 12) s
WHERE o.id IN (3, 30, 150, 305);
SELECT g.t, count(*) AS rows,
       count(*) FILTER (WHERE g.d <> quantumdb.l2_distance(x.emb[:], q.emb[:])) AS wrong,
       count(*) FILTER (WHERE g.d < (SELECT max(p.d) FROM dm_ext_got p
                                     WHERE p.t = g.t AND p.qid = g.qid AND p.r < g.r)) AS out_of_order,
       count(*) FILTER (WHERE g.id = g.qid) AS found_itself
FROM dm_ext_got g
  JOIN (SELECT 'ext' AS t, id, emb FROM dm_ext UNION ALL SELECT 'extc', id, emb FROM dm_extc) x
    ON x.t = g.t AND x.id = g.id
  JOIN (SELECT 'ext' AS t, id, emb FROM dm_ext UNION ALL SELECT 'extc', id, emb FROM dm_extc) q
    ON q.t = g.t AND q.id = g.qid
GROUP BY g.t ORDER BY g.t;
-- a cursor over rows out of line, with rows inserted between its fetches
-- (batches of 4 rows: the fetches re-score between them)
BEGIN;
SET LOCAL quantumdb.rerank = 4;
DECLARE dm_ext_cur CURSOR FOR
  SELECT id, round((emb <~> (SELECT emb FROM dm_extc WHERE id = 8))::numeric, 6) AS d
  FROM dm_extc ORDER BY emb <~> (SELECT emb FROM dm_extc WHERE id = 8);
FETCH 5 FROM dm_ext_cur;
INSERT INTO dm_extc SELECT 500 + id, emb[:] FROM dm_extc WHERE id > 300;
FETCH 5 FROM dm_ext_cur;
COMMIT;

RESET enable_seqscan;
RESET quantumdb.ef_search;
RESET quantumdb.rerank;
DROP TABLE dm_items, dm_ext, dm_extc;
SELECT quantumdb.drop_compressor('dm_c'), quantumdb.drop_compressor('dm_cc');
