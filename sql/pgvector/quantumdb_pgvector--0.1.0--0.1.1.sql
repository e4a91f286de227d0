-- quantumdb_pgvector 0.1.0 -> 0.1.1: ALTER EXTENSION quantumdb_pgvector UPDATE.
\echo Use "ALTER EXTENSION quantumdb_pgvector UPDATE TO '0.1.1'" to load this file. \quit

-- Installs of 0.1.0 made before its script checked the names it binds (a
-- function or operator of pgvector's name in the target schema, ahead of
-- pgvector's own on the script's search path, went into the operator
-- classes and runs in every scan and build of their indexes) are refused
-- here, naming what is bound.  Such a member of an operator class cannot
-- be swapped (it belongs to the class); the class, and so the extension,
-- must be created again.
DO $check$
DECLARE
	vs oid := (SELECT e.extnamespace FROM pg_catalog.pg_extension e
			   WHERE e.extname OPERATOR(pg_catalog.=) 'vector');
	bad text;
BEGIN
	-- the extension's classes, and what each binds with its schema
	WITH cls AS (
		SELECT c.opcname, c.opcfamily FROM pg_catalog.pg_opclass c
		JOIN pg_catalog.pg_depend d ON d.objid OPERATOR(pg_catalog.=) c.oid
			AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_opclass'::pg_catalog.regclass
			AND d.deptype OPERATOR(pg_catalog.=) 'e'
		JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
			AND e.extname OPERATOR(pg_catalog.=) 'quantumdb_pgvector'),
	bound AS (
		SELECT cls.opcname, 'operator' AS what, x.oprnamespace AS nsp, x.oprname::pg_catalog.text AS name
		FROM cls JOIN pg_catalog.pg_amop o ON o.amopfamily OPERATOR(pg_catalog.=) cls.opcfamily
		JOIN pg_catalog.pg_operator x ON x.oid OPERATOR(pg_catalog.=) o.amopopr
		UNION ALL
		SELECT cls.opcname, 'function', f.pronamespace, pg_catalog.quote_ident(f.proname)
		FROM cls JOIN pg_catalog.pg_amproc p ON p.amprocfamily OPERATOR(pg_catalog.=) cls.opcfamily
			AND p.amprocnum OPERATOR(pg_catalog.=) 1
		JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) p.amproc)
	SELECT pg_catalog.string_agg(pg_catalog.format('%s: %s %I.%s', b.opcname, b.what, n.nspname, b.name),
								 '; ' ORDER BY b.opcname, b.what)
		INTO bad
	FROM bound b JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) b.nsp
	WHERE b.nsp OPERATOR(pg_catalog.<>) vs;
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'operator classes of quantumdb_pgvector use objects that are not pgvector''s'
			USING ERRCODE = 'insufficient_privilege',
			DETAIL = pg_catalog.format('%s (pgvector is in schema %I). They run in every scan and build of the classes'' indexes, with the rights of whoever runs them.',
									   bad, (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid OPERATOR(pg_catalog.=) vs)),
			HINT = 'Find out who created those objects; then DROP EXTENSION quantumdb_pgvector CASCADE (its indexes go too), drop the objects, CREATE EXTENSION quantumdb_pgvector and build the indexes again.';
	END IF;
END
$check$;

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
