-- Kind rq (trainer/rq.h): residual quantization with beam search, on the
-- glove-2k sample.  Under ip every byte picks a codeword and ADC equals the
-- exact distance to the decoded vector; under cosine and l2 the last byte
-- is the reconstruction's quantized norm.  An index built on an rq
-- compressor returns at rerank 0 what exhaustive ADC returns.
SET client_min_messages = warning;
CREATE TABLE rq_rows (id int PRIMARY KEY, embedding real[]);
\copy rq_rows FROM 'glove_base.copy'
CREATE TABLE rq_q (id int PRIMARY KEY, embedding real[]);
\copy rq_q FROM 'glove_query.copy'
CREATE TABLE rq_gt (id int PRIMARY KEY, nn int[]);
\copy rq_gt FROM 'glove_gt.copy'

SELECT compressor, kind, metric, code_bytes
FROM quantumdb.train('r_cos', 'rq_rows', 'embedding', kind => 'rq', metric => 'cosine',
                     kmeans_iters => 10, validation => 0);
SELECT name, kind, metric FROM quantumdb.compressors WHERE name = 'r_cos';
SELECT octet_length(quantumdb.encode('r_cos', embedding)) FROM rq_rows WHERE id = 0;
SELECT avg(quantumdb.cosine_distance(embedding,
           quantumdb.decode('r_cos', quantumdb.encode('r_cos', embedding)))) < 0.2 AS close
FROM rq_rows;

-- exhaustive ADC: 10-recall@10 against the exact top 10 (0.942 measured
-- here, trained on these very rows; a broken table or encoder is near 0.005)
CREATE TABLE r_codes AS
  SELECT 'r_cos'::text AS compressor, id, quantumdb.encode('r_cos', embedding) AS code FROM rq_rows;
SELECT avg(hits) / 10 >= 0.6 AS adc_recall_above_floor FROM (
  SELECT (SELECT count(*) FROM (SELECT c.id FROM r_codes c
                                ORDER BY quantumdb.adc_distance('r_cos', q.embedding, c.code)
                                LIMIT 10) top
          WHERE top.id = ANY (g.nn[1:10])) AS hits
  FROM rq_q q JOIN rq_gt g USING (id)) s;

-- ip: no norm byte, ADC is -<q, decode(code)>
SELECT compressor, kind, metric
FROM quantumdb.train('r_ip', 'rq_rows', 'embedding', kind => 'rq', metric => 'ip',
                     subvectors => 8, kmeans_iters => 5, validation => 0);
SELECT max(abs(quantumdb.adc_distance('r_ip', q.embedding, quantumdb.encode('r_ip', b.embedding))
               + (SELECT sum(x * y) FROM unnest(q.embedding,
                      quantumdb.decode('r_ip', quantumdb.encode('r_ip', b.embedding))) u(x, y))))
       < 1e-3 AS adc_matches_decoded
FROM rq_q q, rq_rows b WHERE q.id < 5 AND b.id < 40;

-- export / import: same codes
SELECT quantumdb.import('r_copy', quantumdb.export('r_cos'));
SELECT bool_and(quantumdb.encode('r_copy', embedding) = quantumdb.encode('r_cos', embedding))
       AS same_codes
FROM rq_rows;

-- l2 spends a byte on the norm, so one subvector is too few
SELECT quantumdb.train('r_bad', 'rq_rows', 'embedding', kind => 'rq', subvectors => 1);

-- the index: at rerank 0 with a walk over every node, the ADC top 10
CREATE INDEX rq_idx ON rq_rows USING quantumdb (embedding real_cosine_ops)
  WITH (compressor = 'r_cos');
SET enable_seqscan = off;
SET quantumdb.rerank = 0;
SET quantumdb.ef_search = 4000;
-- queries whose index top 10 (ADC distances) is not exhaustive ADC's over r_codes
CREATE FUNCTION pg_temp.index_vs_adc(cname text) RETURNS bigint
LANGUAGE sql AS $$
SELECT count(*) FROM rq_q q,
  LATERAL (SELECT array_agg(round(d::numeric, 4) ORDER BY d) a FROM
           (SELECT quantumdb.adc_distance(cname, q.embedding,
                                          quantumdb.encode(cname, embedding)) d
            FROM rq_rows ORDER BY embedding <=> q.embedding LIMIT 10) s) i,
  LATERAL (SELECT array_agg(round(d::numeric, 4) ORDER BY d) a FROM
           (SELECT quantumdb.adc_distance(cname, q.embedding, code) d
            FROM r_codes WHERE compressor = cname ORDER BY 1 LIMIT 10) s) e
WHERE q.id < 20 AND i.a IS DISTINCT FROM e.a $$;
SELECT pg_temp.index_vs_adc('r_cos') AS mismatches;
-- and at the default settings the index reaches the exact top 10 often
RESET quantumdb.rerank;
RESET quantumdb.ef_search;
SELECT avg(hits) / 10 >= 0.9 AS index_recall_above_floor FROM (
  SELECT (SELECT count(*) FROM (SELECT b.id FROM rq_rows b ORDER BY b.embedding <=> q.embedding
                                LIMIT 10) top
          WHERE top.id = ANY (g.nn[1:10])) AS hits
  FROM rq_q q JOIN rq_gt g USING (id)) s;
SELECT count(*) AS problems FROM quantumdb.verify('rq_idx');
DROP INDEX rq_idx;

-- beam, eta and refits: a wider beam, under cosine the error along each row
-- weighed eta times (score-aware).  The catalog and the model file keep
-- them (a default model shows neither), an import encodes the same, eta 4
-- cuts the error along the rows, and an index on such a compressor
-- returns at rerank 0 what exhaustive ADC returns.
SELECT compressor, kind FROM quantumdb.train('r_eta', 'rq_rows', 'embedding', kind => 'rq',
       metric => 'cosine', subvectors => 4, kmeans_iters => 10, validation => 0, beam => 16, eta => 4,
       refits => 6);
SELECT name, settings->'beam' AS beam, settings->'eta' AS eta, settings->'refits' AS refits,
       settings ? 'beam' AS has_beam
FROM quantumdb.compressors WHERE name IN ('r_cos', 'r_eta') ORDER BY name;
SELECT quantumdb.import('r_eta_copy', quantumdb.export('r_eta'));
SELECT settings->'beam' AS beam, settings->'eta' AS eta, settings->'refits' AS refits,
       (SELECT bool_and(quantumdb.encode('r_eta_copy', embedding) =
                        quantumdb.encode('r_eta', embedding)) FROM rq_rows) AS same_codes
FROM quantumdb.compressors WHERE name = 'r_eta_copy';
-- the mean squared error along each row's direction, (1 - <u, decoded>)^2,
-- against the same training with eta 1 (measured here: 0.054 against 0.140)
SELECT compressor FROM quantumdb.train('r_iso', 'rq_rows', 'embedding', kind => 'rq',
       metric => 'cosine', subvectors => 4, kmeans_iters => 10, validation => 0, beam => 16,
       refits => 6);
CREATE FUNCTION pg_temp.parallel_error(c text) RETURNS double precision
LANGUAGE sql AS $$
  SELECT avg((1 - (SELECT sum(x * y) / sqrt((SELECT sum(z * z) FROM unnest(r.embedding) z))
                   FROM unnest(r.embedding, quantumdb.decode(c, quantumdb.encode(c, r.embedding))) u(x, y)))^2)
  FROM rq_rows r $$;
SELECT pg_temp.parallel_error('r_eta') < 0.5 * pg_temp.parallel_error('r_iso') AS eta_cuts_parallel_error;
INSERT INTO r_codes SELECT 'r_eta', id, quantumdb.encode('r_eta', embedding) FROM rq_rows;
CREATE INDEX rq_eta_idx ON rq_rows USING quantumdb (embedding real_cosine_ops)
  WITH (compressor = 'r_eta');
SET quantumdb.rerank = 0;
SET quantumdb.ef_search = 4000;
SELECT pg_temp.index_vs_adc('r_eta') AS mismatches;
RESET quantumdb.rerank;
RESET quantumdb.ef_search;
SELECT count(*) AS problems FROM quantumdb.verify('rq_eta_idx');
-- errors: eta under l2, beam or eta for another kind, out of range
SELECT quantumdb.train('r_bad', 'rq_rows', 'embedding', kind => 'rq', eta => 2);
\echo :LAST_ERROR_SQLSTATE
SELECT quantumdb.train('r_bad', 'rq_rows', 'embedding', kind => 'opq', beam => 16);
SELECT quantumdb.train('r_bad', 'rq_rows', 'embedding', kind => 'rq', beam => 33);
SELECT quantumdb.train('r_bad', 'rq_rows', 'embedding', kind => 'pq', refits => 8);
SELECT quantumdb.train('r_bad', 'rq_rows', 'embedding', kind => 'rq', refits => -1);
SELECT quantumdb.train('r_bad', 'rq_rows', 'embedding', kind => 'rq', metric => 'cosine', eta => 0.5);
-- a kind rq model of format 1 (quantumdb 0.1.0's, whose books were laid out
-- otherwise) is refused: the hint says to train again (exporting it again
-- gives the same bytes)
SELECT quantumdb.import('r_old', overlay(m placing convert_to('"format_version":"1"', 'UTF8')
         from 8 + position('"format_version":"2"' in convert_from(substring(m from 9 for 400), 'UTF8'))
         for 20))
FROM (SELECT quantumdb.export('r_cos') AS m) e;
DROP TABLE rq_rows, rq_q, rq_gt, r_codes;
SELECT quantumdb.drop_compressor(n)
FROM unnest(ARRAY['r_cos', 'r_ip', 'r_copy', 'r_eta', 'r_eta_copy', 'r_iso']) n;
