-- test/bench/copies_crowd.sql: 300 random rows of 32 values in (0, 1) beside
-- 4,000 copies of their centre (0.5 in every dimension), the copies after
-- the rest; times the build, counts the 300 rows a query for their own
-- vector misses (LIMIT 1), times 1,000 more copies and 300 more rows
-- inserted, and counts what LIMIT 10 and LIMIT 3000 for the copies'
-- vector return.  psql -f test/bench/copies_crowd.sql in a database with
-- the extension (the table mc is made anew).
SET client_min_messages = warning;
SELECT setseed(0.2);
DROP TABLE IF EXISTS mc;
CREATE TABLE mc (id int, v real[]);
INSERT INTO mc SELECT g, (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE g > 0) FROM generate_series(1, 300) g;
INSERT INTO mc SELECT 1000 + g, array_fill(0.5::real, ARRAY[32]) FROM generate_series(1, 4000) g;
\timing on
CREATE INDEX mc_idx ON mc USING quantumdb (v);
\timing off
SET enable_seqscan = off;
-- rows found by their own vector
SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM (SELECT id FROM mc ORDER BY v <~> m.v LIMIT 1) s WHERE s.id = m.id)) AS missed FROM mc m WHERE id <= 300;
\timing on
INSERT INTO mc SELECT 10000 + g, array_fill(0.5::real, ARRAY[32]) FROM generate_series(1, 1000) g;
INSERT INTO mc SELECT 20000 + g, (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE g > 0) FROM generate_series(1, 300) g;
SELECT count(*) FROM (SELECT id FROM mc ORDER BY v <~> array_fill(0.5::real, ARRAY[32]) LIMIT 10) s;
SELECT count(*) FROM (SELECT id FROM mc ORDER BY v <~> array_fill(0.5::real, ARRAY[32]) LIMIT 3000) s;
