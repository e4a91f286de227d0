-- quantumdb 0.8.6 -> 0.8.7: ALTER EXTENSION quantumdb UPDATE.
\echo Use "ALTER EXTENSION quantumdb UPDATE TO '0.8.7'" to load this file. \quit

-- New in 0.8.7: quantumdb.compressors.owner_name and its trigger (below).
-- Rows already there take their owner's name; a row whose owner role was
-- dropped takes a name no role has, so that a restore of it gives it to
-- the restoring role instead of to whichever role has the dropped one's OID.
-- Also new in 0.8.7: a compressor trained from a table with a foreign
-- partition or inheritance child records no source (other readers read
-- that partition through their own user mapping, and a partition detached
-- later leaves its rows in the model).  Rows trained before whose source
-- has such a descendant now forget it; one whose foreign partition was
-- detached since cannot be told from the catalog and keeps its source.
WITH RECURSIVE tree (relid, root) AS (
    SELECT c.source::pg_catalog.oid, c.source::pg_catalog.oid
    FROM quantumdb.compressors c WHERE c.source IS NOT NULL
  UNION
    SELECT i.inhrelid, t.root
    FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent OPERATOR(pg_catalog.=) t.relid
)
UPDATE quantumdb.compressors
SET source = NULL, source_column = NULL
WHERE source::pg_catalog.oid IN (
    SELECT t.root FROM tree t JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) t.relid
    WHERE r.relkind NOT IN ('r', 'p', 'm'));

ALTER TABLE quantumdb.compressors ADD COLUMN owner_name name;
UPDATE quantumdb.compressors
SET owner_name = CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_authid a
                                   WHERE a.oid OPERATOR(pg_catalog.=) owner::pg_catalog.oid)
                      THEN pg_catalog.pg_get_userbyid(owner::pg_catalog.oid)
                      ELSE ('dropped role with OID ' OPERATOR(pg_catalog.||) owner::pg_catalog.oid::pg_catalog.text)::pg_catalog.name
                 END;

-- owner_name: the owner's role name when the row was written (0.8.7).  A
-- dump writes owner as the role's name, or as a bare number when the role
-- was dropped (nothing stops DROP ROLE of a compressor's owner: a regrole
-- value records no dependency), and a restore takes the number as is:
-- the model would belong to whichever role has that OID in the new
-- cluster.  So a row inserted with an owner_name that is not the name of
-- the role its owner now is (a restore of such a row; or of a row whose
-- owner was renamed since, which is refused as well, on the safe side)
-- goes to the role inserting it (the restoring superuser), with a WARNING.
COMMENT ON COLUMN quantumdb.compressors.owner_name IS
'the owner''s role name when the row was written; a restore gives a row whose owner_name is not its owner''s name to the restoring role';
CREATE FUNCTION quantumdb.compressors_owner_name() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    holder name := pg_catalog.pg_get_userbyid(NEW.owner::pg_catalog.oid);
BEGIN
    -- the name the row was written with stays while its owner does
    IF TG_OP = 'UPDATE' AND NEW.owner = OLD.owner AND OLD.owner_name IS NOT NULL THEN
        NEW.owner_name := OLD.owner_name;
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' AND NEW.owner_name IS NOT NULL AND NEW.owner_name <> holder THEN
        RAISE WARNING 'compressor "%" belonged to role "%", not to role "%" that has its owner''s OID here: it now belongs to role "%"',
            NEW.name, NEW.owner_name, holder, current_user
            USING DETAIL = 'A restored compressor whose owner role was dropped (or renamed) before the dump.',
                  HINT = 'Give it to the role it belongs to: UPDATE quantumdb.compressors SET owner = ''role'' WHERE name = ''' || NEW.name || ''';';
        NEW.owner := pg_catalog.quote_ident(current_user)::pg_catalog.regrole;
        holder := current_user;
    END IF;
    NEW.owner_name := holder;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION quantumdb.compressors_owner_name() IS
'trigger of quantumdb.compressors: keeps owner_name, and gives a restored row whose owner role is not the one it names to the restoring role';
CREATE TRIGGER compressors_owner_name BEFORE INSERT OR UPDATE ON quantumdb.compressors
    FOR EACH ROW EXECUTE FUNCTION quantumdb.compressors_owner_name();
