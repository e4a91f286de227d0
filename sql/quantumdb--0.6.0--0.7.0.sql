-- quantumdb 0.6.0 -> 0.7.0: ALTER EXTENSION quantumdb UPDATE.
\echo Use "ALTER EXTENSION quantumdb UPDATE TO '0.7.0'" to load this file. \quit

-- New in 0.7.0: quantumdb.train's beam, eta and refits (kind rq: the beam
-- search's width, under cosine and ip the score-aware weight of the error
-- along each row, and the joint refits of the books).  The function is made
-- again with the three arguments at its end
-- (sql/extension/20_compressor.sql, copied here as released).  A site's
-- grants on it (a REVOKE from PUBLIC, a GRANT to a training role) carry
-- over: its ACL is kept in a setting of this transaction and applied to
-- the new function (until session 56 they were lost, PUBLIC could execute
-- it again: /work/runs/hunt-s56b.md F3).
SELECT set_config('qdb_update.train_acl', coalesce(proacl::text, ''), true)
FROM pg_proc
WHERE oid = 'quantumdb.train(text, regclass, name, text, text, integer, integer, integer,
	integer, bigint, integer, integer, text, integer, integer, double precision, integer,
	integer, double precision, double precision, double precision, double precision,
	double precision, integer)'::regprocedure;
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

DO $$
DECLARE
  acl text := current_setting('qdb_update.train_acl', true);
  f regprocedure := 'quantumdb.train(text, regclass, name, text, text, integer, integer,
	integer, integer, bigint, integer, integer, text, integer, integer, double precision,
	integer, integer, double precision, double precision, double precision,
	double precision, double precision, integer, integer, double precision,
	integer)'::regprocedure;
  g record;
BEGIN
  -- empty: the default ACL (PUBLIC may execute), as the new function has
  IF acl IS NULL OR acl = '' THEN
    RETURN;
  END IF;
  EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  FOR g IN SELECT grantee, is_grantable FROM aclexplode(acl::aclitem[])
           WHERE privilege_type = 'EXECUTE' LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s%s', f,
                   CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END,
                   CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
  END LOOP;
  -- Grants made by an extension's script count as its initial privileges,
  -- which pg_dump leaves out (a restore would give PUBLIC its EXECUTE
  -- again): the function's initial privileges are a fresh install's, none.
  DELETE FROM pg_catalog.pg_init_privs
  WHERE objoid = f AND classoid = 'pg_catalog.pg_proc'::regclass AND objsubid = 0;
END $$;
