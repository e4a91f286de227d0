-- Rows that differ little beside a large common part under L2 (every value
-- 100,000 +- 2).  The build's graph kept each row as 16-bit integers scaled
-- by its largest value, a step of about 12 here, so the rows all came out
-- alike and were linked blindly: 10-recall@10 0.13, 1.0 for the same rows
-- centred (session 62's hunt, /work/runs/hunt-s62c.md F1).  The build now
-- quantizes each row less the mean of its first batch (index_build.c,
-- vec16_row).
SET client_min_messages = warning;
SELECT setseed(0.42);
CREATE TABLE off (id int, emb real[]);
INSERT INTO off SELECT i, array(SELECT 100000 + (random() * 2 - 1) * 2 FROM generate_series(1, 32) WHERE i > 0)
FROM generate_series(1, 3000) i;
CREATE TABLE off_q AS SELECT i AS id, array(SELECT 100000 + (random() * 2 - 1) * 2 FROM generate_series(1, 32) WHERE i > 0)::real[] AS q
FROM generate_series(1, 20) i;
CREATE INDEX off_idx ON off USING quantumdb (emb);
SELECT built_from FROM quantumdb.index_info('off_idx');
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM off ORDER BY emb <~> (SELECT q FROM off_q WHERE id = 1) LIMIT 10;
-- the share of the exact 10 nearest the index returns, over 20 queries
SELECT sum((SELECT count(*) FROM (SELECT id FROM off ORDER BY emb <~> q.q LIMIT 10) a
            WHERE a.id IN (SELECT id FROM off ORDER BY (emb <~> q.q) + 0 LIMIT 10)))::float8 / 200 >= 0.9
       AS recall_ok
FROM off_q q;
RESET enable_seqscan;
DROP TABLE off, off_q;
