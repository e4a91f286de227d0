-- Training honours maintenance_work_mem: the sample shrinks (with a
-- NOTICE) so that it and the training's own memory fit, and when not even
-- the fewest rows a compressor needs fit, the ERROR says what to raise.
-- The trainer's own allocations are held to what is left (an ERROR, not
-- memory beyond the setting).
\set VERBOSITY default
CREATE TABLE mem (id int, emb real[]);
INSERT INTO mem
SELECT i, (SELECT array_agg(sin(i * 0.291 + j * 1.13 + (i % 5) * j)::real)
           FROM generate_series(1, 48) j)
FROM generate_series(1, 3000) i;
SET maintenance_work_mem = '14MB';
-- the NOTICEs carry timings; the sample's size says it shrank
SET client_min_messages = warning;
SELECT compressor, training_rows < 2900 AS shrunk, training_rows >= 256 AS enough
FROM quantumdb.train('mem_opq', 'mem', 'emb', kind => 'opq', subvectors => 8,
                     sample => 2900, validation => 100, opq_iters => 3);
SET maintenance_work_mem = '8MB';
SELECT compressor, training_rows < 2900 AS shrunk
FROM quantumdb.train('mem_pq', 'mem', 'emb', kind => 'pq', subvectors => 8,
                     sample => 2900, validation => 100);
-- an index that trains its own compressor builds too
SET maintenance_work_mem = '14MB';
CREATE INDEX mem_idx ON mem USING quantumdb (emb);
SELECT nodes, compressor_kind FROM quantumdb.index_info('mem_idx');
RESET client_min_messages;
-- wide rows: not even 256 fit
CREATE TABLE wide (emb real[]);
INSERT INTO wide SELECT (SELECT array_agg(sin(i + j)::real) FROM generate_series(1, 1000) j)
FROM generate_series(1, 300) i;
SELECT compressor FROM quantumdb.train('wide_opq', 'wide', 'emb', kind => 'opq');
CREATE INDEX wide_idx ON wide USING quantumdb (emb);
-- kind neural's estimate counts the batch it will run (batch_size rows, or
-- all there are) and no more sub-quantizers than dimensions: these needed
-- 12 GB and 774 MB by an estimate that took both as given
CREATE TABLE narrow AS SELECT i, ARRAY[sin(i), cos(i * 1.7), sin(i * 0.3)]::real[] AS emb
FROM generate_series(1, 300) i;
SET maintenance_work_mem = '64MB';
SET client_min_messages = warning;
SELECT compressor, training_rows
FROM quantumdb.train('mem_neural', 'narrow', 'emb', kind => 'neural', subvectors => 3,
                     batch_size => 65536, epochs => 1);
RESET client_min_messages;
-- the bad argument is the ERROR, not the memory
SELECT compressor FROM quantumdb.train('mem_neural2', 'narrow', 'emb', kind => 'neural',
                                       subvectors => 255);
RESET maintenance_work_mem;
DROP TABLE mem, wide, narrow;
SELECT quantumdb.drop_compressor(n) FROM unnest(ARRAY['mem_opq', 'mem_pq', 'mem_neural']) n;
