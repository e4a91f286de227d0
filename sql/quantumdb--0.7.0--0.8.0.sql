-- quantumdb 0.7.0 -> 0.8.0: ALTER EXTENSION quantumdb UPDATE.
\echo Use "ALTER EXTENSION quantumdb UPDATE TO '0.8.0'" to load this file. \quit

-- New in 0.8.0: kind rq refits its books 16 times by default (4 before).
-- The same function with refits' new default (sql/extension/20_compressor.sql,
-- copied here as released); CREATE OR REPLACE keeps its grants.  Models
-- trained before keep what they were trained with: a model file without
-- rq.refits reads as 4 refits.
CREATE OR REPLACE FUNCTION quantumdb.train(
    name         text,
    source       regclass,
    "column"     name,
    kind         text    DEFAULT 'opq',
    metric       text    DEFAULT 'l2',
    subvectors   integer DEFAULT 16,
    target_dim   integer DEFAULT NULL,
    sample       integer DEFAULT 50000,
    validation   integer DEFAULT 1000,
    seed         bigint  DEFAULT 42,
    kmeans_iters integer DEFAULT 25,
    opq_iters    integer DEFAULT 50,
    device       text    DEFAULT 'auto',
    epochs       integer DEFAULT 10,
    batch_size   integer DEFAULT 256,
    lr           double precision DEFAULT 1e-4,
    hidden       integer DEFAULT NULL,
    k_neighbors  integer DEFAULT 10,
    w_reconstruction double precision DEFAULT 0.3,
    w_cluster    double precision DEFAULT 0.2,
    w_diversity  double precision DEFAULT 0.1,
    w_commitment double precision DEFAULT 0.1,
    w_triplet    double precision DEFAULT 0.3,
    patience     integer DEFAULT 3,
    beam         integer DEFAULT 8,
    eta          double precision DEFAULT 1,
    refits       integer DEFAULT 16)
RETURNS quantumdb.train_result
AS 'MODULE_PATHNAME', 'quantumdb_train' LANGUAGE C VOLATILE;

-- The catalog's settings leave out beam, eta and refits at the current
-- defaults: rq compressors stored at 0.7.0's defaults were trained with 4
-- refits, which is no longer the default, so they now say so.
UPDATE quantumdb.compressors
SET settings = settings || '{"beam": 8, "eta": 1, "refits": 4}'::jsonb
WHERE kind = 'rq' AND NOT settings ? 'refits';
