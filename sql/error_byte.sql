-- Kind opq's error byte under l2 (trainer/opq_error.c): rows about 20
-- centres, each with its own noise level, so that a noisy row's code looks
-- nearer than the row is.  The pilot takes the byte there (the catalog
-- says so), a target_dim turns it off, ADC adds a level that is never
-- negative, exhaustive ADC finds more of the exact top 10 with the byte
-- than without, export and import keep it, and an index on it returns at
-- rerank 0 what exhaustive ADC returns, after inserts, deletes and VACUUM
-- too.
SET client_min_messages = warning;
SELECT setseed(0.125);
CREATE TABLE eb_centres AS
  SELECT c, array(SELECT (3 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))::real
                  FROM generate_series(1, 96) WHERE c >= 0) AS v
  FROM generate_series(0, 19) c;
-- row i: centre i % 20 plus Gaussian noise of a log-uniform level in [0.1, 2]
CREATE FUNCTION pg_temp.eb_row(i int) RETURNS real[] LANGUAGE sql AS $$
  SELECT array_agg((v[j] + s * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))::real
                   ORDER BY j)
  FROM eb_centres, generate_series(1, 96) j,
       (SELECT exp(ln(0.1) + random() * (ln(2.0) - ln(0.1))) s WHERE i >= 0) n
  WHERE c = i % 20 $$;
CREATE TABLE eb_rows (id int PRIMARY KEY, embedding real[]);
INSERT INTO eb_rows SELECT i, pg_temp.eb_row(i) FROM generate_series(0, 2999) i;
CREATE TABLE eb_q (id int PRIMARY KEY, embedding real[]);
INSERT INTO eb_q SELECT i, pg_temp.eb_row(i) FROM generate_series(0, 39) i;

SELECT compressor, kind, metric, code_bytes
FROM quantumdb.train('eb', 'eb_rows', 'embedding', metric => 'l2', opq_iters => 8,
                     validation => 0);
SELECT settings->'error_byte' AS error_byte, settings->'dim_pq' AS dim_pq,
       settings->'subvectors' AS subvectors,
       settings->'opq_alternations' AS opq_alternations  -- all 8: too few to stall
FROM quantumdb.compressors WHERE name = 'eb';
-- a target_dim given: no pilot, no byte, every byte a sub-quantizer
SELECT compressor, code_bytes
FROM quantumdb.train('eb_off', 'eb_rows', 'embedding', metric => 'l2', opq_iters => 8,
                     target_dim => 96, validation => 0);
SELECT settings ? 'error_byte' AS has_error_byte, settings->'dim_pq' AS dim_pq
FROM quantumdb.compressors WHERE name = 'eb_off';
SELECT octet_length(quantumdb.encode('eb', embedding)) FROM eb_rows WHERE id = 0;

-- ADC is ||q - xhat||^2 plus the row's level: never below the decoded
-- vector's distance, and above it on average
SELECT min(a * a - d * d) > -1e-3 AS never_below, avg(a * a - d * d) > 0.01 AS adds_levels
FROM (SELECT quantumdb.adc_distance('eb', q.embedding, quantumdb.encode('eb', b.embedding)) a,
             quantumdb.l2_distance(q.embedding,
                                   quantumdb.decode('eb', quantumdb.encode('eb', b.embedding))) d
      FROM eb_q q, eb_rows b WHERE q.id < 5 AND b.id < 200) s;

-- exhaustive ADC against the exact top 10: more hits with the byte
CREATE TABLE eb_codes AS
  SELECT c AS compressor, id, quantumdb.encode(c, embedding) AS code
  FROM eb_rows, unnest(ARRAY['eb', 'eb_off']) c;
CREATE TABLE eb_gt AS
  SELECT q.id, array(SELECT b.id FROM eb_rows b
                     ORDER BY quantumdb.l2_distance(b.embedding, q.embedding), b.id
                     LIMIT 10) AS nn
  FROM eb_q q;
CREATE FUNCTION pg_temp.adc_recall(cname text) RETURNS float8 LANGUAGE sql AS $$
  SELECT avg(hits) / 10 FROM (
    SELECT (SELECT count(*) FROM (SELECT c.id FROM eb_codes c WHERE c.compressor = cname
                                  ORDER BY quantumdb.adc_distance(cname, q.embedding, c.code)
                                  LIMIT 10) top
            WHERE top.id = ANY (g.nn)) AS hits
    FROM eb_q q JOIN eb_gt g USING (id)) s $$;
SELECT pg_temp.adc_recall('eb') > pg_temp.adc_recall('eb_off') + 0.02 AS byte_finds_more;

-- export / import: the same codes
SELECT quantumdb.import('eb_copy', quantumdb.export('eb'));
SELECT position(convert_to('"opq.error_byte":"1"', 'UTF8') IN quantumdb.export('eb')) > 0
         AS file_has_key,
       bool_and(quantumdb.encode('eb_copy', embedding) = quantumdb.encode('eb', embedding))
         AS same_codes
FROM eb_rows;

-- the index: at rerank 0 with a walk over every node, the ADC top 10
CREATE INDEX eb_idx ON eb_rows USING quantumdb (embedding real_l2_ops)
  WITH (compressor = 'eb');
SET enable_seqscan = off;
SET quantumdb.rerank = 0;
SET quantumdb.ef_search = 4000;
-- queries whose index top 10 (ADC distances) is not exhaustive ADC's
CREATE FUNCTION pg_temp.index_vs_adc() RETURNS bigint LANGUAGE sql AS $$
SELECT count(*) FROM eb_q q,
  LATERAL (SELECT array_agg(round(d::numeric, 4) ORDER BY d) a FROM
           (SELECT quantumdb.adc_distance('eb', q.embedding,
                                          quantumdb.encode('eb', embedding)) d
            FROM eb_rows ORDER BY embedding <~> q.embedding LIMIT 10) s) i,
  LATERAL (SELECT array_agg(round(d::numeric, 4) ORDER BY d) a FROM
           (SELECT quantumdb.adc_distance('eb', q.embedding, quantumdb.encode('eb', embedding)) d
            FROM eb_rows ORDER BY 1 LIMIT 10) s) e
WHERE i.a IS DISTINCT FROM e.a $$;
SELECT pg_temp.index_vs_adc() AS mismatches;
-- rows inserted after CREATE INDEX, and deleted ones vacuumed away
INSERT INTO eb_rows SELECT i, pg_temp.eb_row(i) FROM generate_series(3000, 3399) i;
DELETE FROM eb_rows WHERE id % 7 = 3;
VACUUM eb_rows;
SELECT pg_temp.index_vs_adc() AS mismatches_after_changes;
-- at the default settings the index reaches the exact top 10 often
RESET quantumdb.rerank;
RESET quantumdb.ef_search;
SELECT avg(hits) / 10 >= 0.9 AS index_recall_above_floor FROM (
  SELECT (SELECT count(*) FROM (SELECT b.id FROM eb_rows b ORDER BY b.embedding <~> q.embedding
                                LIMIT 10) top
          WHERE top.id IN (SELECT b.id FROM eb_rows b
                           ORDER BY quantumdb.l2_distance(b.embedding, q.embedding) LIMIT 10))
           AS hits
  FROM eb_q q) s;
SELECT count(*) AS problems FROM quantumdb.verify('eb_idx');
RESET enable_seqscan;
