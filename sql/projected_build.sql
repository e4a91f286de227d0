-- CREATE INDEX on a compressor that projects the rows on fewer orthonormal
-- directions (target_dim below the input's dimensions) builds its graph
-- from the projections, not from the full rows (index_build.c,
-- projected_build): index_info says so, and the walk at rerank 0 still
-- finds what exhaustive ADC finds; under ip it keeps the full rows.
SET client_min_messages = warning;
CREATE TABLE pb_rows (id int PRIMARY KEY, embedding real[]);
\copy pb_rows FROM 'glove_base.copy'
CREATE TABLE pb_q (id int PRIMARY KEY, embedding real[]);
\copy pb_q FROM 'glove_query.copy'

SELECT compressor, kind, metric
FROM quantumdb.train('pb_cos', 'pb_rows', 'embedding', metric => 'cosine', target_dim => 48,
                     kmeans_iters => 10, opq_iters => 5, validation => 0);
CREATE INDEX pb_idx ON pb_rows USING quantumdb (embedding real_cosine_ops)
  WITH (compressor = 'pb_cos');
SELECT built_from FROM quantumdb.index_info('pb_idx');

-- 10-recall@10 of the index at rerank 0 against exhaustive ADC's top 10
-- (0.994 measured; a graph built from the wrong 48 floats of each row
-- gave 0.523)
CREATE TABLE pb_codes AS SELECT id, quantumdb.encode('pb_cos', embedding) AS code FROM pb_rows;
SET enable_seqscan = off;
SET quantumdb.rerank = 0;
SET quantumdb.ef_search = 40;
SELECT avg(hits) / 10 >= 0.9 AS walk_finds_adc_top10 FROM (
  SELECT (SELECT count(*) FROM (SELECT b.id FROM pb_rows b ORDER BY b.embedding <=> q.embedding
                                LIMIT 10) i
          WHERE i.id IN (SELECT c.id FROM pb_codes c
                         ORDER BY quantumdb.adc_distance('pb_cos', q.embedding, c.code)
                         LIMIT 10)) AS hits
  FROM pb_q q) s;
RESET quantumdb.rerank;
RESET quantumdb.ef_search;
SELECT count(*) AS problems FROM quantumdb.verify('pb_idx');

-- ip: centring changes inner products, so the graph keeps the full rows
SELECT compressor FROM quantumdb.train('pb_ip', 'pb_rows', 'embedding', metric => 'ip',
                                       target_dim => 48, kmeans_iters => 5, opq_iters => 2,
                                       validation => 0);
CREATE INDEX pb_ip_idx ON pb_rows USING quantumdb (embedding real_ip_ops)
  WITH (compressor = 'pb_ip');
SELECT built_from FROM quantumdb.index_info('pb_ip_idx');
DROP TABLE pb_rows, pb_q, pb_codes;
SELECT quantumdb.drop_compressor(n) FROM unnest(ARRAY['pb_cos', 'pb_ip']) n;
