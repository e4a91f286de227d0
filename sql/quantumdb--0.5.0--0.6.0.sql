-- quantumdb 0.5.0 -> 0.6.0: ALTER EXTENSION quantumdb UPDATE.
\echo Use "ALTER EXTENSION quantumdb UPDATE TO '0.6.0'" to load this file. \quit

-- New in 0.6.0: compressors on every node of a Citus cluster
-- (sql/extension/70_citus.sql, copied here as released).

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

-- On a coordinator: every compressor the caller owns (a superuser: every
-- one) to every worker that lacks it; the number sent.
CREATE FUNCTION quantumdb.citus_sync_compressors()
RETURNS integer
AS 'MODULE_PATHNAME', 'quantumdb_citus_sync_compressors' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION quantumdb.citus_sync_compressors() IS
'on a Citus coordinator: copies the caller''s compressors to every worker that lacks them (after citus_add_node); returns how many were sent';

-- On a coordinator: quantumdb.index_info and quantumdb.verify of every
-- shard's index of a distributed table's quantumdb index, with the node
-- that holds it (the coordinator's own index of the shell table is empty).
-- Citus's run_command_on_shards does the work; the text has no '%' but
-- its placeholder %1$s, the shard table's name.
CREATE FUNCTION quantumdb.shard_index_info(index regclass)
RETURNS TABLE (shard bigint, node text, info jsonb, problems text[])
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tbl regclass;
	idx name;
	command text;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
		RAISE EXCEPTION 'the citus extension is not installed in this database'
			USING ERRCODE = 'feature_not_supported',
			      HINT = 'For an index that is not on a Citus table, use quantumdb.index_info and quantumdb.verify.';
	END IF;
	SELECT i.indrelid::regclass, c.relname INTO tbl, idx
	FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
	WHERE i.indexrelid = index;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = tbl) THEN
		RAISE EXCEPTION 'table % of index % is not a Citus table', tbl, index
			USING ERRCODE = 'wrong_object_type',
			      HINT = 'Use quantumdb.index_info and quantumdb.verify.';
	END IF;
	command := 'SELECT pg_catalog.json_build_object(''info'', '
		|| '(SELECT pg_catalog.row_to_json(i) FROM quantumdb.index_info(x.oid) i), '
		|| '''problems'', (SELECT COALESCE(pg_catalog.array_agg(v), ''{}'') '
		|| 'FROM quantumdb.verify(x.oid) v))::text '
		|| 'FROM (SELECT c.oid::pg_catalog.regclass AS oid FROM pg_catalog.pg_index ix '
		|| 'JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) ix.indexrelid '
		|| 'WHERE ix.indrelid OPERATOR(pg_catalog.=) ''%1$s''::pg_catalog.regclass '
		|| 'AND c.relname OPERATOR(pg_catalog.=) ('
		|| pg_catalog.replace(pg_catalog.quote_literal(idx), '%', '%%')
		|| ' OPERATOR(pg_catalog.||) ''_'' OPERATOR(pg_catalog.||) '
		|| 'pg_catalog.substring(''%1$s'', ''([0-9]+)$''))) x';
	RETURN QUERY EXECUTE
		'SELECT r.shardid, p.nodename || '':'' || p.nodeport, '
		|| 'CASE WHEN r.success THEN (r.result::jsonb) -> ''info'' END, '
		|| 'CASE WHEN r.success THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text('
		|| '(r.result::jsonb) -> ''problems'')) ELSE ARRAY[r.result] END '
		|| 'FROM pg_catalog.run_command_on_shards($1, $2) r '
		|| 'JOIN pg_catalog.pg_dist_shard_placement p ON p.shardid = r.shardid '
		|| 'ORDER BY r.shardid, p.nodename, p.nodeport'
		USING tbl, command;
END
$$;
COMMENT ON FUNCTION quantumdb.shard_index_info(regclass) IS
'on a Citus coordinator: index_info and verify''s problems of each shard''s index of a distributed table''s quantumdb index';
