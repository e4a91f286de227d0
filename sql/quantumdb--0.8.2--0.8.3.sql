-- quantumdb 0.8.2 -> 0.8.3: ALTER EXTENSION quantumdb UPDATE.
\echo Use "ALTER EXTENSION quantumdb UPDATE TO '0.8.3'" to load this file. \quit

-- New in 0.8.3:
-- When a compressor's source column is renamed, its row follows the new
-- name (rename_follow.c: the rows of the old name, in the relation and
-- every one the rename reaches): the rule of use reads the column by name,
-- so the old name would deny the column's readers, and a column added
-- later under it would give its readers a model of the renamed column's
-- rows.  In C, since only the statement knows the old name.
CREATE FUNCTION quantumdb.follow_renamed_columns()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'quantumdb_follow_renamed_columns' LANGUAGE C;
CREATE EVENT TRIGGER quantumdb_follow_renamed_columns ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW', 'ALTER FOREIGN TABLE',
	             'ALTER TYPE')
	EXECUTE FUNCTION quantumdb.follow_renamed_columns();
COMMENT ON FUNCTION quantumdb.follow_renamed_columns() IS
'event trigger on ddl_command_end: the compressors whose source column was renamed follow the new name';
-- Both event triggers fire under session_replication_role = replica too
-- (a drop or a rename made there would otherwise be missed).
ALTER EVENT TRIGGER quantumdb_follow_renamed_columns ENABLE ALWAYS;
ALTER EVENT TRIGGER quantumdb_forget_dropped_sources ENABLE ALWAYS;

-- A source column renamed before this update kept its old name; its row
-- cannot tell which column it was, so it forgets the source, as for a
-- dropped column (only the owner may use it).
UPDATE quantumdb.compressors c SET source = NULL, source_column = NULL
WHERE c.source IS NOT NULL AND c.source_column IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute x
				  WHERE x.attrelid OPERATOR(pg_catalog.=) c.source::pg_catalog.oid
				    AND x.attname OPERATOR(pg_catalog.=) c.source_column
				    AND x.attnum OPERATOR(pg_catalog.>) 0 AND NOT x.attisdropped);
