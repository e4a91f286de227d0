-- quantumdb 0.6.0 -> 0.7.0: ALTER EXTENSION quantumdb UPDATE.
\echo Use "ALTER EXTENSION quantumdb UPDATE TO '0.7.0'" to load this file. \quit

-- New in 0.7.0: quantumdb.train's beam, eta and refits (kind rq: the beam
-- search's width, under cosine and ip the score-aware weight of the error
-- along each row, and the joint refits of the books).  The function is made
-- again with the three arguments at its end
-- (sql/extension/20_compressor.sql, copied here as released).
DROP FUNCTION quantumdb.train(text, regclass, name, text, text, integer, integer, integer,
	integer, bigint, integer, integer, text, integer, integer, double precision, integer,
	integer, double precision, double precision, double precision, double precision,
	double precision, integer);

CREATE FUNCTION quantumdb.train(
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
    refits       integer DEFAULT 4)
RETURNS quantumdb.train_result
AS 'MODULE_PATHNAME', 'quantumdb_train' LANGUAGE C VOLATILE;
