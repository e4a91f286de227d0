-- quantumdb_pgvector 0.1.0 -> 0.1.1: ALTER EXTENSION quantumdb_pgvector UPDATE.
\echo Use "ALTER EXTENSION quantumdb_pgvector UPDATE TO '0.1.1'" to load this file. \quit

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
