-- quantumdb 0.8.2 -> 0.8.3: ALTER EXTENSION quantumdb UPDATE.
\echo Use "ALTER EXTENSION quantumdb UPDATE TO '0.8.3'" to load this file. \quit

-- New in 0.8.3:
-- When a compressor's source column is renamed, its row follows the new
-- name: the rule of use reads the column by name, so the old name would
-- deny the column's readers, and a column added later under the old name
-- would give its readers a model of the renamed column's rows.  A rename
-- on a parent renames its inheritors' and partitions' columns too (under
-- the same new name), reported once for the parent.  A row is changed only
-- when its column's name is gone, so only the renamed one's rows are.
CREATE FUNCTION quantumdb.follow_renamed_columns()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() d
				   WHERE d.classid = 'pg_class'::regclass AND d.objsubid > 0) THEN
		RETURN;
	END IF;
	UPDATE quantumdb.compressors c SET source_column = a.attname
	FROM pg_event_trigger_ddl_commands() d
	JOIN pg_attribute a ON a.attrelid = d.objid AND a.attnum = d.objsubid
	WHERE d.classid = 'pg_class'::regclass AND d.objsubid > 0
	  AND c.source_column IS NOT NULL
	  AND c.source::oid IN (WITH RECURSIVE tree(relid) AS (
								SELECT d.objid
								UNION
								SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.relid)
							SELECT relid FROM tree)
	  AND NOT EXISTS (SELECT 1 FROM pg_attribute x
					  WHERE x.attrelid = c.source::oid AND x.attname = c.source_column
						AND x.attnum > 0 AND NOT x.attisdropped);
END
$fn$;
CREATE EVENT TRIGGER quantumdb_follow_renamed_columns ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE', 'ALTER MATERIALIZED VIEW')
	EXECUTE FUNCTION quantumdb.follow_renamed_columns();
COMMENT ON FUNCTION quantumdb.follow_renamed_columns() IS
'event trigger on ddl_command_end: the compressors whose source column was renamed follow the new name';

-- A source column renamed before this update kept its old name; its row
-- cannot tell which column it was, so it forgets the source, as for a
-- dropped column (only the owner may use it).
UPDATE quantumdb.compressors c SET source = NULL, source_column = NULL
WHERE c.source IS NOT NULL AND c.source_column IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute x
				  WHERE x.attrelid OPERATOR(pg_catalog.=) c.source::pg_catalog.oid
				    AND x.attname OPERATOR(pg_catalog.=) c.source_column
				    AND x.attnum OPERATOR(pg_catalog.>) 0 AND NOT x.attisdropped);
