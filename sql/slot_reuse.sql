-- An index whose every row is replaced again and again, VACUUM between:
-- inserts take the free slots VACUUM leaves, of their own size or, when a
-- page has none, another level's resized (index_write.c, reuse_slot).
-- Taking only slots of their own size, the upper levels' few inserts
-- seldom found theirs, their freed slots piled up and the index grew by a
-- page every round or two (session 63's hunt, /work/runs/hunt-s63a.md F3:
-- here 42 pages after the first round, 48 after ten; now 43).
SET client_min_messages = warning;
SELECT setseed(0.6);
CREATE TABLE sr (id int PRIMARY KEY, v real[]) WITH (autovacuum_enabled = false);
INSERT INTO sr SELECT g, (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE g > 0)
FROM generate_series(1, 1500) g;
-- no calibration worker after each VACUUM: its snapshot, held while it
-- measures (about a second here), kept the next VACUUM from freeing the
-- rows the UPDATE between replaced, and the index grew (a CI run of
-- session 67)
CREATE INDEX sr_idx ON sr USING quantumdb (v) WITH (m = 8, calibrate_after_vacuum = off);
UPDATE sr SET v = (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE id > 0);
VACUUM sr;
CREATE TEMP TABLE sr_p AS SELECT pg_relation_size('sr_idx') / 8192 AS p1;
UPDATE sr SET v = (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE id > 0);
VACUUM sr;
UPDATE sr SET v = (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE id > 0);
VACUUM sr;
UPDATE sr SET v = (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE id > 0);
VACUUM sr;
UPDATE sr SET v = (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE id > 0);
VACUUM sr;
UPDATE sr SET v = (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE id > 0);
VACUUM sr;
UPDATE sr SET v = (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE id > 0);
VACUUM sr;
UPDATE sr SET v = (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE id > 0);
VACUUM sr;
UPDATE sr SET v = (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE id > 0);
VACUUM sr;
UPDATE sr SET v = (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE id > 0);
VACUUM sr;
SELECT pg_relation_size('sr_idx') / 8192 <= p1 + 3 AS no_growth FROM sr_p;
SELECT count(*) FROM quantumdb.verify('sr_idx');
-- every row is found by its own vector
SET enable_seqscan = off;
SELECT count(*) FILTER (WHERE (SELECT t.id FROM sr t ORDER BY t.v <~> s.v LIMIT 1) = s.id) AS found
FROM sr s;
RESET enable_seqscan;
DROP TABLE sr;
