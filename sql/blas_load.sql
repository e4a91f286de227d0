-- OpenBLAS is opened by the first routine that needs it, not with
-- quantumdb.so (src/blas_load.c): a backend that only scans an opq index
-- never maps libopenblas and starts no thread of its pool.  (Linked as a
-- dependency, it was mapped in every backend that used the extension,
-- with a thread per CPU beyond the first.)
SET client_min_messages = warning;
CREATE TABLE blas_t (id int, emb real[]);
INSERT INTO blas_t
SELECT i, ARRAY[sin(i), cos(i * 0.7), sin(i * 0.31), cos(i * 1.3),
                sin(i * 2.1), cos(i * 0.11), sin(i * 0.53), cos(i * 1.7)]::real[]
FROM generate_series(1, 600) i;
SELECT compressor FROM quantumdb.train('blas_c', 'blas_t', 'emb', sample => 600,
                                       validation => 50, subvectors => 4, opq_iters => 2);
CREATE INDEX blas_t_emb ON blas_t USING quantumdb (emb) WITH (compressor = 'blas_c');

CREATE FUNCTION blas_state(OUT openblas_mapped bool, OUT threads int) LANGUAGE sql AS $$
  SELECT position('/libopenblas' in pg_read_file('/proc/' || pg_backend_pid() || '/maps')) > 0,
         (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'),
                       'Threads:\s+(\d+)'))[1]::int $$;
-- this backend trained: it has opened the library
SELECT openblas_mapped FROM blas_state();

\c
SET client_min_messages = warning;
SET enable_seqscan = off;
SELECT count(*) FROM (SELECT id FROM blas_t ORDER BY emb <~> ARRAY[0,1,0,1,0,1,0,1]::real[] LIMIT 5) s;
EXPLAIN (COSTS OFF) SELECT id FROM blas_t ORDER BY emb <~> ARRAY[0,1,0,1,0,1,0,1]::real[] LIMIT 5;
-- a new backend that scanned the index: no library, one thread
SELECT * FROM blas_state();
-- an insert encodes one row without BLAS too
INSERT INTO blas_t VALUES (601, ARRAY[1,1,1,1,1,1,1,1]::real[]);
SELECT * FROM blas_state();
-- training opens it
SELECT compressor FROM quantumdb.train('blas_c2', 'blas_t', 'emb', sample => 600,
                                       validation => 50, subvectors => 4, opq_iters => 2);
SELECT openblas_mapped FROM blas_state();

DROP TABLE blas_t;
DROP FUNCTION blas_state;
SELECT quantumdb.drop_compressor('blas_c');
SELECT quantumdb.drop_compressor('blas_c2');
