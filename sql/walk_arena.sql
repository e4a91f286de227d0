-- The backend's walk arena (src/index_graph.c) keeps the node chunks of an
-- ordinary walk for the next one: a chunk given back and allocated again
-- at every scan was mapped afresh each time, a page fault per page touched
-- (at ef_search 200 on glove-100-angular, half the QPS).  A wider walk
-- leaves no more than KEPT_CHUNK_BYTES (4 MB) of chunks behind, and a walk
-- of another index, whose node copies have another size, reuses them.
CREATE TABLE wa (id int, emb real[]);
INSERT INTO wa
SELECT i, (SELECT array_agg(sin(i * 0.37 + j * 1.91 + (i % 7) * j * 0.5)::real)
           FROM generate_series(1, 8) j)
FROM generate_series(1, 6000) i;
CREATE TABLE wb AS SELECT * FROM wa;
SET client_min_messages = warning;
SELECT compressor FROM quantumdb.train('wa_c', 'wa', 'emb', subvectors => 4);
CREATE INDEX wa_idx ON wa USING quantumdb (emb) WITH (compressor = 'wa_c', m = 16, ef_construction = 32);
CREATE INDEX wb_idx ON wb USING quantumdb (emb) WITH (compressor = 'wa_c', m = 100, ef_construction = 200);
RESET client_min_messages;
SET enable_seqscan = off;
SET quantumdb.rerank = 0;
SET quantumdb.ef_search = 5000;
EXPLAIN (COSTS OFF) SELECT id FROM wa ORDER BY emb <~> '{1,2,3,4,5,6,7,8}' LIMIT 10;
SELECT count(*) FROM (SELECT id FROM wa ORDER BY emb <~> (SELECT emb FROM wa WHERE id = 4500) LIMIT 10) s;
-- a node copy at m 16 with a 4-byte code takes 32 + 2 x 16 x 4 + 4 = 168
-- bytes; the walk read about 5,500 nodes: their chunks are kept (before,
-- those of 2,048 nodes were: 0.48 MB with the hash table)
SELECT total_bytes >= 5500 * 168 AS chunks_kept
FROM pg_backend_memory_contexts WHERE name = 'quantumdb walk arena';
SELECT total_bytes AS after_wa FROM pg_backend_memory_contexts
WHERE name = 'quantumdb walk arena' \gset
-- a short walk of the m 100 index (840-byte copies) takes chunks of those:
-- nothing freed, nothing new (they were freed and allocated afresh when
-- the node size changed)
SET quantumdb.ef_search = 10;
EXPLAIN (COSTS OFF) SELECT id FROM wb ORDER BY emb <~> '{1,2,3,4,5,6,7,8}' LIMIT 10;
SELECT count(*) FROM (SELECT id FROM wb ORDER BY emb <~> (SELECT emb FROM wb WHERE id = 4500) LIMIT 10) s;
SELECT total_bytes = :after_wa AS chunks_reused
FROM pg_backend_memory_contexts WHERE name = 'quantumdb walk arena';
-- a walk over all 6,000 nodes of the m 100 index (about 5 MB of copies)
-- leaves 4 MB of chunks (and the hash table, 128 kB)
SET quantumdb.ef_search = 10000;
SELECT count(*) FROM (SELECT id FROM wb ORDER BY emb <~> (SELECT emb FROM wb WHERE id = 4500) LIMIT 10) s;
SELECT total_bytes <= 4 * 1024 * 1024 + 256 * 1024 AS capped,
       total_bytes >= 3 * 1024 * 1024 AS still_kept
FROM pg_backend_memory_contexts WHERE name = 'quantumdb walk arena';
DROP TABLE wa, wb;
SELECT quantumdb.drop_compressor('wa_c');
