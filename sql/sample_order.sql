-- The training sample depends on the rows and the seed, not on the order
-- the rows arrive in (sample.c: the vectors of smallest seeded hash, in
-- hash order): a table and a copy in reverse physical order train the same
-- compressor, by quantumdb.train (a sample of 600 of 2,000 rows, and all of
-- them) and by an index build; another seed trains another.
CREATE TABLE so_a (id int, emb real[]);
INSERT INTO so_a
SELECT i, ARRAY[sin(i), cos(i * 1.3), sin(i * 0.7), cos(i * 2.1),
                sin(i * 0.11), cos(i * 0.37), sin(i * 1.7), cos(i * 0.53)]::real[]
FROM generate_series(1, 2000) i;
CREATE TABLE so_b AS SELECT * FROM so_a ORDER BY id DESC;
SELECT (SELECT id FROM so_a LIMIT 1) AS a_first, (SELECT id FROM so_b LIMIT 1) AS b_first;
SET client_min_messages = warning;
SELECT count(*) FROM (
  SELECT quantumdb.train('so_a600', 'so_a', 'emb', kind => 'pq', subvectors => 2,
                         sample => 600, validation => 0, seed => 7),
         quantumdb.train('so_b600', 'so_b', 'emb', kind => 'pq', subvectors => 2,
                         sample => 600, validation => 0, seed => 7),
         quantumdb.train('so_b600s8', 'so_b', 'emb', kind => 'pq', subvectors => 2,
                         sample => 600, validation => 0, seed => 8),
         quantumdb.train('so_aall', 'so_a', 'emb', kind => 'pq', subvectors => 2,
                         sample => 5000, validation => 100, seed => 7),
         quantumdb.train('so_ball', 'so_b', 'emb', kind => 'pq', subvectors => 2,
                         sample => 5000, validation => 100, seed => 7)) t;
RESET client_min_messages;
SELECT count(*) FILTER (WHERE quantumdb.encode('so_a600', emb) <> quantumdb.encode('so_b600', emb))
         AS differ_600,
       count(*) FILTER (WHERE quantumdb.encode('so_aall', emb) <> quantumdb.encode('so_ball', emb))
         AS differ_all,
       count(*) FILTER (WHERE quantumdb.encode('so_b600', emb) <> quantumdb.encode('so_b600s8', emb)) > 0
         AS other_seed_differs
FROM so_a;
SELECT a.validation_recall = b.validation_recall AS same_validation
FROM quantumdb.compressors a, quantumdb.compressors b
WHERE a.name = 'so_aall' AND b.name = 'so_ball';
-- an index build trains from its own heap scan
SET client_min_messages = warning;
CREATE INDEX so_a_idx ON so_a USING quantumdb (emb);
CREATE INDEX so_b_idx ON so_b USING quantumdb (emb);
RESET client_min_messages;
SELECT a.compressor_checksum = b.compressor_checksum AS same_build_compressor
FROM quantumdb.index_info('so_a_idx') a, quantumdb.index_info('so_b_idx') b;
-- a vector stored in half the rows counts once: 1,001 distinct vectors of
-- 2,000 rows give 901 training and 100 validation vectors; with a sample of
-- 600 (keys evicted and their set entries removed) the two orders still agree
CREATE TABLE so_dup (id int, emb real[]);
INSERT INTO so_dup SELECT id, CASE WHEN id % 2 = 0 THEN '{1,1,1,1,1,1,1,1}'::real[] ELSE emb END
FROM so_a;
CREATE TABLE so_dup_rev AS SELECT * FROM so_dup ORDER BY id DESC;
SET client_min_messages = warning;
SELECT compressor FROM quantumdb.train('so_dall', 'so_dup', 'emb', kind => 'pq', subvectors => 2,
                                       sample => 5000, validation => 100, seed => 7);
SELECT settings->>'training_rows' AS training_rows FROM quantumdb.compressors WHERE name = 'so_dall';
SELECT count(*) FROM (
  SELECT quantumdb.train('so_d600', 'so_dup', 'emb', kind => 'pq', subvectors => 2,
                         sample => 600, validation => 0, seed => 7),
         quantumdb.train('so_d600r', 'so_dup_rev', 'emb', kind => 'pq', subvectors => 2,
                         sample => 600, validation => 0, seed => 7)) t;
RESET client_min_messages;
SELECT count(*) FILTER (WHERE quantumdb.encode('so_d600', emb) <> quantumdb.encode('so_d600r', emb))
         AS differ_dup
FROM so_dup;
-- 20,000 rows into a sample of 300: about 1,300 evictions, each giving its
-- key back to the set of kept keys
CREATE TABLE so_big AS
SELECT i AS id, ARRAY[sin(i), cos(i * 1.3), sin(i * 0.7), cos(i * 2.1)]::real[] AS emb
FROM generate_series(1, 20000) i;
CREATE TABLE so_big_rev AS SELECT * FROM so_big ORDER BY id DESC;
SET statement_timeout = '120s';
SET client_min_messages = warning;
SELECT count(*) FROM (
  SELECT quantumdb.train('so_big1', 'so_big', 'emb', kind => 'pq', subvectors => 2,
                         sample => 300, validation => 0, seed => 3),
         quantumdb.train('so_big2', 'so_big_rev', 'emb', kind => 'pq', subvectors => 2,
                         sample => 300, validation => 0, seed => 3)) t;
RESET client_min_messages;
RESET statement_timeout;
SELECT count(*) FILTER (WHERE quantumdb.encode('so_big1', emb) <> quantumdb.encode('so_big2', emb))
         AS differ_big
FROM so_big;
DROP TABLE so_a, so_b, so_dup, so_dup_rev, so_big, so_big_rev;
SELECT count(*) FROM (SELECT quantumdb.drop_compressor(n)
                      FROM unnest(ARRAY['so_a600', 'so_b600', 'so_b600s8', 'so_aall', 'so_ball',
                                         'so_dall', 'so_d600', 'so_d600r', 'so_big1', 'so_big2']) n) t;
