-- The neural kind: training with its settings, the per-epoch training log,
-- encode/ADC/decode, export/import, an index over its codes, the device
-- setting and every bad input, on a real sample of glove-100-angular
-- (test/data/glove-2k).  Training NOTICEs carry timings, so they are hidden.
SET client_min_messages = warning;
\set VERBOSITY default
\set SHOW_CONTEXT errors

CREATE TABLE nn_glove (id int PRIMARY KEY, embedding real[]);
\copy nn_glove FROM 'glove_base.copy'
CREATE TABLE nn_q (id int PRIMARY KEY, embedding real[]);
\copy nn_q FROM 'glove_query.copy'

-- two epochs on the CPU: the summary row, settings and one log row per
-- epoch (epoch 0 is the opq starting point, always the first best)
SELECT compressor, kind, metric, dimensions, code_bytes, training_rows,
       validation_recall BETWEEN 0.3 AND 1 AS recall_in_range
FROM quantumdb.train('g_nn', 'nn_glove', 'embedding', kind => 'neural',
                     metric => 'cosine', device => 'cpu', epochs => 2,
                     batch_size => 128, k_neighbors => 5, seed => 7);
SELECT kind, settings->>'device' AS device, settings->>'hidden' AS hidden,
       settings->>'epochs' AS epochs, settings->>'batch_size' AS batch,
       settings->>'k_neighbors' AS k, settings->>'w_triplet' AS w_triplet,
       (settings->>'training_log_run')::bigint > 0 AS has_run
FROM quantumdb.compressors WHERE name = 'g_nn';
SELECT epoch, device, best IS NOT NULL AS has_best,
       validation_recall BETWEEN 0.3 AND 1 AS recall_ok,
       code_entropy BETWEEN 1 AND 8 AS entropy_ok,
       (epoch = 0) = (samples_per_second = 0) AS rate_ok,
       (epoch = 0) OR (reconstruction_loss > 0 AND triplet_loss >= 0 AND diversity_loss < 0) AS losses_ok
FROM quantumdb.training_log l
WHERE run = (SELECT (settings->>'training_log_run')::bigint FROM quantumdb.compressors WHERE name = 'g_nn')
ORDER BY epoch;
SELECT bool_and(best) FILTER (WHERE epoch = 0) AS first_is_best,
       count(*) FILTER (WHERE best) >= 1 AS some_best
FROM quantumdb.training_log
WHERE compressor = 'g_nn';

-- the compressor works like pq and opq: 16-byte codes, ADC, decode
SELECT octet_length(quantumdb.encode('g_nn', embedding)) FROM nn_glove WHERE id = 0;
SELECT array_length(quantumdb.decode('g_nn', quantumdb.encode('g_nn', embedding)), 1)
FROM nn_glove WHERE id = 0;
-- ADC ranks the row itself first for most rows
SELECT count(*) >= 15 AS self_first FROM (
  SELECT q.id, (SELECT g.id FROM nn_glove g
                ORDER BY quantumdb.adc_distance('g_nn', q.embedding, quantumdb.encode('g_nn', g.embedding))
                LIMIT 1) AS top
  FROM nn_glove q WHERE q.id < 20) s WHERE id = top;

-- export and import: the same codes
SELECT quantumdb.import('g_nn_copy', quantumdb.export('g_nn'));
SELECT kind, metric FROM quantumdb.compressors WHERE name = 'g_nn_copy';
SELECT count(*) AS differing FROM nn_glove
WHERE quantumdb.encode('g_nn', embedding) <> quantumdb.encode('g_nn_copy', embedding);

-- an index over neural codes: the exact top 10 with full rerank
CREATE INDEX nn_idx ON nn_glove USING quantumdb (embedding real_cosine_ops)
  WITH (compressor = 'g_nn');
SELECT nodes, unreachable_nodes, compressor FROM quantumdb.index_info('nn_idx');
SELECT * FROM quantumdb.verify('nn_idx');
SET enable_seqscan = off;
SET quantumdb.rerank = 2000;
SET quantumdb.ef_search = 400;
SELECT count(*) AS mismatches FROM nn_q q,
  LATERAL (SELECT array_agg(id ORDER BY d, id) a FROM
           (SELECT id, embedding <=> q.embedding d FROM nn_glove
            ORDER BY embedding <=> q.embedding LIMIT 10) s) i,
  LATERAL (SELECT array_agg(id ORDER BY d, id) a FROM
           (SELECT id, quantumdb.cosine_distance(embedding, q.embedding) d FROM nn_glove
            ORDER BY 2, 1 LIMIT 10) s) e
WHERE q.id < 20 AND i.a <> e.a;
RESET enable_seqscan;
RESET quantumdb.rerank;
RESET quantumdb.ef_search;

-- device: cuda without a GPU (or without the CUDA build) is an ERROR with a hint
-- (the reason differs between builds with and without nvcc)
DO $$
DECLARE
  hint text;
BEGIN
  PERFORM quantumdb.train('g_cuda', 'nn_glove', 'embedding', kind => 'neural',
                          device => 'cuda', epochs => 1);
EXCEPTION WHEN feature_not_supported THEN
  GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
  RAISE WARNING 'cuda: %; hint names the cpu: %', split_part(SQLERRM, ':', 1),
    hint LIKE '%device => ''cpu''%';
END $$;
-- auto falls back to the CPU
SELECT kind FROM quantumdb.train('g_auto', 'nn_glove', 'embedding', kind => 'neural',
                                 device => 'auto', epochs => 0);
SELECT settings->>'device' AS device FROM quantumdb.compressors WHERE name = 'g_auto';
-- without an NVIDIA device node the CUDA libraries are not even loaded
-- (cuBLAS's loader crashed a backend under ulimit -v: session 61's memory
-- hunt); this backend's mappings name none of them
SELECT pg_read_file('/proc/self/maps') !~ '(cublas|cudart|quantumdb_cuda)' AS no_cuda_mapped;

-- bad settings
SELECT quantumdb.train('bad', 'nn_glove', 'embedding', kind => 'neural', device => 'gpu');
SELECT quantumdb.train('bad', 'nn_glove', 'embedding', kind => 'neural', metric => 'ip');
SELECT quantumdb.train('bad', 'nn_glove', 'embedding', kind => 'neural', lr => 0);
SELECT quantumdb.train('bad', 'nn_glove', 'embedding', kind => 'neural', epochs => -1);
SELECT quantumdb.train('bad', 'nn_glove', 'embedding', kind => 'neural', batch_size => 0);
SELECT quantumdb.train('bad', 'nn_glove', 'embedding', kind => 'neural', w_triplet => -1);
SELECT quantumdb.train('bad', 'nn_glove', 'embedding', kind => 'neural', target_dim => 32, hidden => 16);
-- hidden under the default target_dim (100 dims padded to 112 for 16 subvectors): refused before training
SELECT quantumdb.train('bad', 'nn_glove', 'embedding', kind => 'neural', hidden => 1);
SELECT quantumdb.train('bad', 'nn_glove', 'embedding', kind => 'neural', k_neighbors => 900);
-- the neural settings on another kind are refused, not ignored; their
-- defaults, and device (where any kind trains), are taken
SELECT quantumdb.train('bad', 'nn_glove', 'embedding', kind => 'pq', epochs => 5);
SELECT quantumdb.train('bad', 'nn_glove', 'embedding', hidden => 128);
SELECT quantumdb.train('bad', 'nn_glove', 'embedding', kind => 'rq', lr => 0.5, w_triplet => 0);
SELECT quantumdb.train('bad', 'nn_glove', 'embedding', kind => 'opq', patience => 1);
SELECT compressor FROM quantumdb.train('g_defaults', 'nn_glove', 'embedding', kind => 'pq',
                                             epochs => 10, batch_size => 256, w_triplet => 0.3,
                                             device => 'cpu', kmeans_iters => 2);
SELECT quantumdb.drop_compressor('g_defaults');

-- a cancel (statement timeout) stops training cleanly and stores nothing
SET statement_timeout = '2s';
SELECT quantumdb.train('g_cancel', 'nn_glove', 'embedding', kind => 'neural',
                       epochs => 10000, patience => 10000);
RESET statement_timeout;
SELECT count(*) FROM quantumdb.compressors WHERE name = 'g_cancel';
-- the session still works
SELECT octet_length(quantumdb.encode('g_nn', embedding)) FROM nn_glove WHERE id = 1;

DROP TABLE nn_glove, nn_q;
SELECT quantumdb.drop_compressor('g_nn'), quantumdb.drop_compressor('g_nn_copy'),
       quantumdb.drop_compressor('g_auto');
