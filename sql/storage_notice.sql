-- CREATE INDEX says when the heap stores the indexed vectors compressed
-- (real[] values past about 2 kB are pglz-compressed by default), since
-- every reranked row is then decompressed; with pglz the hint offers lz4
-- as well, with lz4 only PLAIN; the hint's commands store them plain, and
-- the next build says nothing.  (The server must have lz4, as Debian's
-- has: SET COMPRESSION lz4 below.)
CREATE TABLE sn_items (id int, emb real[]);
-- pglz whatever default_toast_compression says
ALTER TABLE sn_items ALTER COLUMN emb SET COMPRESSION pglz;
-- 600 dims, mostly zeros: compressible, as fashion-mnist's pixels are
INSERT INTO sn_items
SELECT i, array_fill(0::real, ARRAY[590]) ||
          (SELECT array_agg(sin(i * 0.7 + j)::real) FROM generate_series(1, 10) j)
FROM generate_series(1, 300) i;
SELECT count(*) FILTER (WHERE pg_column_compression(emb) IS NOT NULL) AS compressed
FROM sn_items;
SET client_min_messages = warning;
SELECT compressor FROM quantumdb.train('sn_c', 'sn_items', 'emb', kind => 'pq',
                                       subvectors => 8, kmeans_iters => 2, validation => 0);
RESET client_min_messages;
CREATE INDEX sn_idx ON sn_items USING quantumdb (emb) WITH (compressor = 'sn_c');
-- Each UPDATE and REINDEX share a transaction, so the build indexes the
-- 300 dead versions the UPDATE left, as it does whenever another snapshot
-- (autovacuum's) may still see them: the NOTICE counts live rows only.
ALTER TABLE sn_items ALTER COLUMN emb SET COMPRESSION lz4;
BEGIN;
UPDATE sn_items SET emb = emb[:];
SELECT pg_column_compression(emb), count(*) FROM sn_items GROUP BY 1;
REINDEX INDEX sn_idx;
COMMIT;
ALTER TABLE sn_items ALTER COLUMN emb SET STORAGE PLAIN;
BEGIN;
UPDATE sn_items SET emb = emb[:];
SELECT count(*) FILTER (WHERE pg_column_compression(emb) IS NOT NULL) AS compressed
FROM sn_items;
REINDEX INDEX sn_idx;
COMMIT;
DROP TABLE sn_items;
SELECT quantumdb.drop_compressor('sn_c');
