-- quantumdb 0.8.7 -> 0.8.8: ALTER EXTENSION quantumdb UPDATE.
\echo Use "ALTER EXTENSION quantumdb UPDATE TO '0.8.8'" to load this file. \quit

-- New in 0.8.8: the trigger that keeps quantumdb.compressors' owner_name
-- fires under session_replication_role = replica too, where logical
-- replication's workers write (as the two event triggers already did): a
-- row replicated with an owner whose OID is another role's here (a dropped
-- owner, or any owner in a binary subscription), or without owner_name,
-- goes to the applying role; a replication worker's UPDATE keeps the row's
-- owner here, and its source while its model is unchanged; and any other
-- row a binary subscription writes takes no source (it would be the
-- publisher's table OID, another table's here).  The WARNING's hint quotes
-- the compressor's name.
CREATE OR REPLACE FUNCTION quantumdb.compressors_owner_name() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    holder name := pg_catalog.pg_get_userbyid(NEW.owner::pg_catalog.oid);
    -- in a logical replication worker: whether its subscription is binary
    -- (NULL elsewhere; a DBA's write under session_replication_role =
    -- replica is an ordinary one)
    binary_sub boolean := (SELECT s.subbinary
                           FROM pg_catalog.pg_stat_subscription w
                           JOIN pg_catalog.pg_subscription s ON s.oid OPERATOR(pg_catalog.=) w.subid
                           WHERE w.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
                           LIMIT 1);
    applying boolean := binary_sub IS NOT NULL;
BEGIN
    -- replicated UPDATE: the row's owner here stays (a publisher's change
    -- of owner, a NULL owner_name or another role's OID do not move it), a
    -- model not trained again keeps its source here, and a binary
    -- subscription's other source, the publisher's table OID, which names
    -- another table (or none) here, is not taken
    IF applying AND TG_OP = 'UPDATE' THEN
        IF NEW.model = OLD.model THEN
            NEW.source := OLD.source;
            NEW.source_column := OLD.source_column;
        ELSIF binary_sub THEN
            NEW.source := NULL;
            NEW.source_column := NULL;
        END IF;
        NEW.owner := OLD.owner;
        NEW.owner_name := OLD.owner_name;
        RETURN NEW;
    END IF;
    IF binary_sub THEN
        NEW.source := NULL;
        NEW.source_column := NULL;
    END IF;
    -- the name the row was written with stays while its owner does
    IF TG_OP = 'UPDATE' AND NEW.owner = OLD.owner AND OLD.owner_name IS NOT NULL THEN
        NEW.owner_name := OLD.owner_name;
        RETURN NEW;
    END IF;
    -- an INSERT naming another owner than the role with its OID here (a
    -- restore's; a replication worker's also without a name)
    IF TG_OP = 'INSERT' AND NEW.owner_name IS DISTINCT FROM holder
       AND (NEW.owner_name IS NOT NULL OR applying) THEN
        RAISE WARNING 'compressor "%" belonged to role "%", not to role "%" that has its owner''s OID here: it now belongs to role "%"',
            NEW.name, coalesce(NEW.owner_name, '(not named)'), holder, current_user
            USING DETAIL = CASE WHEN applying
                           THEN 'A row written by logical replication names an owner that is not the role with its OID here.'
                           ELSE 'A restored compressor whose owner role was dropped (or renamed) before the dump.' END,
                  HINT = pg_catalog.format('Give it to the role it belongs to: UPDATE quantumdb.compressors SET owner = ''role'' WHERE name = %L;', NEW.name);
        NEW.owner := pg_catalog.quote_ident(current_user)::pg_catalog.regrole;
        holder := current_user;
    END IF;
    NEW.owner_name := holder;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION quantumdb.compressors_owner_name() IS
'trigger of quantumdb.compressors: keeps owner_name, and gives a restored or replicated row whose owner role is not the one it names to the role writing it';
ALTER TABLE quantumdb.compressors ENABLE ALWAYS TRIGGER compressors_owner_name;
