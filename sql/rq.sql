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

-- exhaustive ADC: 10-recall@10 against the exact top 10 (0.856 measured
-- here, trained on these very rows; a broken table or encoder is near 0.005)
CREATE TABLE r_codes AS SELECT id, quantumdb.encode('r_cos', embedding) AS code FROM rq_rows;
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
SELECT count(*) AS mismatches FROM rq_q q,
  LATERAL (SELECT array_agg(round(d::numeric, 4) ORDER BY d) a FROM
           (SELECT quantumdb.adc_distance('r_cos', q.embedding,
                                          quantumdb.encode('r_cos', embedding)) d
            FROM rq_rows ORDER BY embedding <=> q.embedding LIMIT 10) s) i,
  LATERAL (SELECT array_agg(round(d::numeric, 4) ORDER BY d) a FROM
           (SELECT quantumdb.adc_distance('r_cos', q.embedding, code) d
            FROM r_codes ORDER BY 1 LIMIT 10) s) e
WHERE q.id < 20 AND i.a IS DISTINCT FROM e.a;
-- and at the default settings the index reaches the exact top 10 often
RESET quantumdb.rerank;
RESET quantumdb.ef_search;
SELECT avg(hits) / 10 >= 0.9 AS index_recall_above_floor FROM (
  SELECT (SELECT count(*) FROM (SELECT b.id FROM rq_rows b ORDER BY b.embedding <=> q.embedding
                                LIMIT 10) top
          WHERE top.id = ANY (g.nn[1:10])) AS hits
  FROM rq_q q JOIN rq_gt g USING (id)) s;
SELECT count(*) AS problems FROM quantumdb.verify('rq_idx');
DROP TABLE rq_rows, rq_q, rq_gt, r_codes;
SELECT quantumdb.drop_compressor(n) FROM unnest(ARRAY['r_cos', 'r_ip', 'r_copy']) n;
