-- quantumdb install script, part 7: compressors on every node of a Citus
-- cluster (src/citus.c; README "Citus").  Nothing here needs Citus: on a
-- Citus coordinator the C code sends each change of quantumdb.compressors
-- to the workers as calls of these functions; elsewhere they are unused.

-- What a coordinator sends a worker for one catalog row: makes the row
-- there (true), or finds the same model under that name (false).
CREATE FUNCTION quantumdb.replicate_compressor(
	name text, model bytea, settings jsonb, created_at timestamptz,
	training_seconds double precision, validation_recall double precision,
	owner regrole, source text, source_column name)
RETURNS boolean
AS 'MODULE_PATHNAME', 'quantumdb_replicate_compressor' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION quantumdb.replicate_compressor(text, bytea, jsonb, timestamptz,
	double precision, double precision, regrole, text, name) IS
'copies a Citus coordinator''s compressor row to this node (sent by the coordinator; needs INSERT on quantumdb.compressors and the owner''s privileges)';

-- On a coordinator: the replicate_compressor call for one compressor, which
-- a worker that lacks it runs to copy it (the model inside: it needs the
-- right to use the compressor, as quantumdb.export does).
CREATE FUNCTION quantumdb.citus_replica_command(name text)
RETURNS text
AS 'MODULE_PATHNAME', 'quantumdb_citus_replica_command' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION quantumdb.citus_replica_command(text) IS
'on a Citus coordinator: the quantumdb.replicate_compressor call that copies a compressor to a worker (which asks for it when it lacks it)';

-- On a coordinator: every compressor the caller owns (a superuser: every
-- one) to every worker that lacks it; the number sent.
CREATE FUNCTION quantumdb.citus_sync_compressors()
RETURNS integer
AS 'MODULE_PATHNAME', 'quantumdb_citus_sync_compressors' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION quantumdb.citus_sync_compressors() IS
'on a Citus coordinator: copies the caller''s compressors to every worker that lacks them (after citus_add_node); returns how many were sent';

-- On a coordinator: quantumdb.index_info and quantumdb.verify of every
-- shard's index of a distributed (or reference) table's quantumdb index,
-- one row per active placement, with the node that holds it (the
-- coordinator's own index of the shell table is empty).  Each shard index
-- is named by Citus's shard_name and read on its node through
-- master_run_on_worker; Citus is reached only through EXECUTE, so this
-- function exists without Citus and says so when called.
CREATE FUNCTION quantumdb.shard_index_info(index regclass)
RETURNS TABLE (shard bigint, node text, info jsonb, problems text[])
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tbl regclass;
	p record;
	r record;
	shard_index text;
	command text;
	seen boolean := false;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
		RAISE EXCEPTION 'the citus extension is not installed in this database'
			USING ERRCODE = 'feature_not_supported',
			      HINT = 'For an index that is not on a Citus table, use quantumdb.index_info and quantumdb.verify.';
	END IF;
	SELECT i.indrelid::regclass INTO tbl FROM pg_catalog.pg_index i WHERE i.indexrelid = index;
	IF tbl IS NULL THEN
		RAISE EXCEPTION '% is not an index', index USING ERRCODE = 'wrong_object_type';
	END IF;
	FOR p IN EXECUTE
		'SELECT s.shardid, n.nodename, n.nodeport FROM pg_catalog.pg_dist_shard s '
		'JOIN pg_catalog.pg_dist_placement pl ON pl.shardid = s.shardid '
		'JOIN pg_catalog.pg_dist_node n ON n.groupid = pl.groupid '
		'WHERE s.logicalrelid = $1 AND pl.shardstate = 1 AND n.isactive '
		'AND n.noderole = ''primary'' ORDER BY s.shardid, n.nodename, n.nodeport'
		USING tbl
	LOOP
		seen := true;
		EXECUTE 'SELECT pg_catalog.shard_name($1, $2)' INTO shard_index USING index, p.shardid;
		command := 'SELECT pg_catalog.json_build_object(''info'', '
			|| '(SELECT pg_catalog.row_to_json(i) FROM quantumdb.index_info('
			|| pg_catalog.quote_literal(shard_index) || '::pg_catalog.regclass) i), '
			|| '''problems'', (SELECT COALESCE(pg_catalog.array_agg(v), ''{}'') '
			|| 'FROM quantumdb.verify(' || pg_catalog.quote_literal(shard_index)
			|| '::pg_catalog.regclass) v))::text';
		EXECUTE 'SELECT success, result FROM pg_catalog.master_run_on_worker('
			'ARRAY[$1], ARRAY[$2], ARRAY[$3], false)'
			INTO r USING p.nodename::text, p.nodeport::integer, command;
		shard := p.shardid;
		node := p.nodename || ':' || p.nodeport;
		IF r.success THEN
			info := (r.result::jsonb) -> 'info';
			problems := ARRAY(SELECT pg_catalog.jsonb_array_elements_text((r.result::jsonb) -> 'problems'));
		ELSE
			info := NULL;
			problems := ARRAY[r.result];
		END IF;
		RETURN NEXT;
	END LOOP;
	IF NOT seen THEN
		RAISE EXCEPTION 'table % of index % is not a Citus table', tbl, index
			USING ERRCODE = 'wrong_object_type',
			      HINT = 'Use quantumdb.index_info and quantumdb.verify.';
	END IF;
END
$$;
COMMENT ON FUNCTION quantumdb.shard_index_info(regclass) IS
'on a Citus coordinator: index_info and verify''s problems of each shard''s index of a distributed or reference table''s quantumdb index';
