-- quantumdb_pgvector: pgvector's vector and halfvec columns in quantumdb
-- indexes, with pgvector's own operators and distance functions.
--
-- A separate extension so that quantumdb itself never depends on pgvector:
-- CREATE EXTENSION quantumdb_pgvector needs both (requires = 'quantumdb,
-- vector').  While this script runs, the search path is the target schema
-- followed by the schemas of quantumdb and vector, so pgvector's types,
-- operators and functions are found wherever pgvector was created.  The
-- operator classes go into the target schema, under pgvector's names for
-- its hnsw and ivfflat classes: CREATE INDEX ... USING quantumdb
-- (embedding vector_cosine_ops).  Support function 1 is the operator's own
-- function, so the rerank orders rows as pgvector's exact scan does.

\echo Use "CREATE EXTENSION quantumdb_pgvector" to load this file. \quit

-- The names below are found on that search path, the target schema first:
-- a function, operator or type of the same name there (put in a writable
-- schema by another role) would be bound into the operator classes and
-- run in every scan and build, with the rights of whoever runs them.  So
-- every one must be pgvector's own, in the schema of extension vector.
DO $guard$
DECLARE
	vs oid := (SELECT extnamespace FROM pg_extension WHERE extname = 'vector');
	found text;
BEGIN
	-- halfvec came with pgvector 0.7.0; without it the checks below fail
	-- with "type halfvec does not exist" (session 65's hunt,
	-- /work/runs/hunt-s65b.md F2)
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_type WHERE typname OPERATOR(pg_catalog.=) 'halfvec'
				   AND typnamespace OPERATOR(pg_catalog.=) vs) THEN
		RAISE EXCEPTION 'quantumdb_pgvector needs pgvector 0.7.0 or later: extension vector %, has no type halfvec',
			(SELECT extversion FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'vector')
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'ALTER EXTENSION vector UPDATE (after installing pgvector 0.7.0 or later), then CREATE EXTENSION quantumdb_pgvector.';
	END IF;
	SELECT pg_catalog.string_agg(n, ', ') INTO found FROM (
		SELECT n FROM pg_catalog.unnest(ARRAY['l2_distance(vector,vector)', 'cosine_distance(vector,vector)',
				'vector_negative_inner_product(vector,vector)', 'l2_distance(halfvec,halfvec)',
				'cosine_distance(halfvec,halfvec)', 'halfvec_negative_inner_product(halfvec,halfvec)']) n
		WHERE (SELECT pronamespace FROM pg_proc WHERE oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure(n)) IS DISTINCT FROM vs
		UNION ALL
		SELECT n FROM pg_catalog.unnest(ARRAY['<->(vector,vector)', '<=>(vector,vector)', '<#>(vector,vector)',
				'<->(halfvec,halfvec)', '<=>(halfvec,halfvec)', '<#>(halfvec,halfvec)']) n
		WHERE (SELECT oprnamespace FROM pg_operator WHERE oid OPERATOR(pg_catalog.=) pg_catalog.to_regoperator(n)) IS DISTINCT FROM vs
		UNION ALL
		SELECT n FROM pg_catalog.unnest(ARRAY['vector', 'halfvec']) n
		WHERE (SELECT typnamespace FROM pg_type WHERE oid OPERATOR(pg_catalog.=) pg_catalog.to_regtype(n)) IS DISTINCT FROM vs) f;
	IF found IS NOT NULL THEN
		RAISE EXCEPTION 'these names do not find pgvector''s own objects: %', found
			USING ERRCODE = 'insufficient_privilege',
			DETAIL = 'An object of the same name in the target schema, ahead of the schema of extension vector, would be bound into the operator classes.',
			HINT = 'Drop those objects, or create quantumdb_pgvector in the schema of extension vector.';
	END IF;
END
$guard$;

CREATE OPERATOR CLASS vector_l2_ops
	DEFAULT FOR TYPE vector USING quantumdb AS
	OPERATOR 1 <-> (vector, vector) FOR ORDER BY float_ops,
	FUNCTION 1 l2_distance(vector, vector),
	FUNCTION 2 quantumdb.metric_l2(internal);

CREATE OPERATOR CLASS vector_cosine_ops
	FOR TYPE vector USING quantumdb AS
	OPERATOR 1 <=> (vector, vector) FOR ORDER BY float_ops,
	FUNCTION 1 cosine_distance(vector, vector),
	FUNCTION 2 quantumdb.metric_cosine(internal);

CREATE OPERATOR CLASS vector_ip_ops
	FOR TYPE vector USING quantumdb AS
	OPERATOR 1 <#> (vector, vector) FOR ORDER BY float_ops,
	FUNCTION 1 vector_negative_inner_product(vector, vector),
	FUNCTION 2 quantumdb.metric_ip(internal);

CREATE OPERATOR CLASS halfvec_l2_ops
	DEFAULT FOR TYPE halfvec USING quantumdb AS
	OPERATOR 1 <-> (halfvec, halfvec) FOR ORDER BY float_ops,
	FUNCTION 1 l2_distance(halfvec, halfvec),
	FUNCTION 2 quantumdb.metric_l2(internal);

CREATE OPERATOR CLASS halfvec_cosine_ops
	FOR TYPE halfvec USING quantumdb AS
	OPERATOR 1 <=> (halfvec, halfvec) FOR ORDER BY float_ops,
	FUNCTION 1 cosine_distance(halfvec, halfvec),
	FUNCTION 2 quantumdb.metric_cosine(internal);

CREATE OPERATOR CLASS halfvec_ip_ops
	FOR TYPE halfvec USING quantumdb AS
	OPERATOR 1 <#> (halfvec, halfvec) FOR ORDER BY float_ops,
	FUNCTION 1 halfvec_negative_inner_product(halfvec, halfvec),
	FUNCTION 2 quantumdb.metric_ip(internal);

-- The codec functions for vector and halfvec values: the same C functions
-- as for real[], which read whichever type they are called with.
CREATE FUNCTION quantumdb.encode(name text, vector vector) RETURNS bytea
AS 'MODULE_PATHNAME', 'quantumdb_encode' LANGUAGE C STABLE STRICT;
CREATE FUNCTION quantumdb.encode(name text, vector halfvec) RETURNS bytea
AS 'MODULE_PATHNAME', 'quantumdb_encode' LANGUAGE C STABLE STRICT;

CREATE FUNCTION quantumdb.adc_distance(name text, query vector, code bytea)
RETURNS double precision
AS 'MODULE_PATHNAME', 'quantumdb_adc_distance' LANGUAGE C STABLE STRICT;
CREATE FUNCTION quantumdb.adc_distance(name text, query halfvec, code bytea)
RETURNS double precision
AS 'MODULE_PATHNAME', 'quantumdb_adc_distance' LANGUAGE C STABLE STRICT;

-- New in 0.1.1: a real[] query for a vector column.  pgvector's implicit
-- cast of vector to real[] made `embedding <=> '{...}'::real[]` (or an
-- ARRAY[...] of numerics) resolve to quantumdb's real[] operator on the
-- column cast: right answers, by a sequential scan, never the vector index
-- (with pgvector alone it is an ERROR).  These operators take the real[]
-- as it is; each is an SQL function the planner inlines into pgvector's
-- own operator on the query cast to vector, which the vector index
-- answers.  The bodies are SQL-standard (RETURN ...): parsed here, bound
-- to pgvector's operator and cast themselves, not to names, so they
-- follow pgvector to another schema and no object of the same name can
-- stand in for them.  Every function this block calls is pg_catalog's by
-- name: the target schema comes first on the script's search path.
DO $ops$
DECLARE
	vs text := (SELECT n.nspname FROM pg_catalog.pg_extension e
				JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
				WHERE e.extname = 'vector');
	op text;
	fn text;
	what text;
BEGIN
	FOR op, fn, what IN VALUES ('<->', 'l2_distance', 'L2 distance'),
			('<=>', 'cosine_distance', 'cosine distance'),
			('<#>', 'negative_inner_product', 'negative inner product')
	LOOP
		EXECUTE pg_catalog.format('CREATE FUNCTION quantumdb.vector_real_%1$s(%2$I.vector, real[]) '
								  'RETURNS double precision LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE '
								  'RETURN $1 OPERATOR(%2$I.%3$s) $2::%2$I.vector', fn, vs, op);
		EXECUTE pg_catalog.format('COMMENT ON FUNCTION quantumdb.vector_real_%1$s(%2$I.vector, real[]) IS %3$L',
								  fn, vs, pg_catalog.format('pgvector''s %s of a vector and a real[] cast to vector (operator %s)',
															what, op));
		EXECUTE pg_catalog.format('CREATE OPERATOR %1$s (LEFTARG = %2$I.vector, RIGHTARG = real[], '
								  'FUNCTION = quantumdb.vector_real_%3$s)', op, vs, fn);
	END LOOP;
END
$ops$;
