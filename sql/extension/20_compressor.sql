-- quantumdb install script, part 2: the compressor catalog and its functions.

-- One row per trained or imported compressor.  pg_dump keeps the rows.
-- owner and source are regrole and regclass so that a dump names them and a
-- restore finds them again by name (oids differ between clusters).
CREATE TABLE quantumdb.compressors (
    name              text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 63),
    kind              text NOT NULL CHECK (kind IN ('pq', 'opq', 'rq', 'neural')),
    dimensions        integer NOT NULL CHECK (dimensions > 0),
    metric            text NOT NULL CHECK (metric IN ('l2', 'ip', 'cosine')),
    settings          jsonb NOT NULL,
    model             bytea NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    training_seconds  double precision,
    validation_recall double precision,
    owner             regrole NOT NULL
                      DEFAULT pg_catalog.quote_ident(current_user)::regrole,
    source            regclass,
    source_column     name,
    owner_name        name
);
SELECT pg_catalog.pg_extension_config_dump('quantumdb.compressors', '');

-- owner_name: the owner's role name when the row was written (0.8.7).  A
-- dump writes owner as the role's name, or as a bare number when the role
-- was dropped (nothing stops DROP ROLE of a compressor's owner: a regrole
-- value records no dependency), and a restore takes the number as is:
-- the model would belong to whichever role has that OID in the new
-- cluster.  So a row inserted with an owner_name that is not the name of
-- the role its owner now is (a restore of such a row; or of a row whose
-- owner was renamed since, which is refused as well, on the safe side)
-- goes to the role inserting it (the restoring superuser), with a WARNING.
-- The trigger fires under session_replication_role = replica too (0.8.8),
-- where logical replication's workers write: their INSERTs are checked as
-- a restore's are (one without owner_name too), and a binary subscription
-- sends owner and source as the publisher's OIDs, which name other roles
-- and tables here.  So a replication worker's UPDATE keeps the row's owner
-- here, and its source while the model is unchanged, and any other row a
-- binary subscription writes takes no source.
COMMENT ON COLUMN quantumdb.compressors.owner_name IS
'the owner''s role name when the row was written; a restore gives a row whose owner_name is not its owner''s name to the restoring role';
CREATE FUNCTION quantumdb.compressors_owner_name() RETURNS trigger
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
CREATE TRIGGER compressors_owner_name BEFORE INSERT OR UPDATE ON quantumdb.compressors
    FOR EACH ROW EXECUTE FUNCTION quantumdb.compressors_owner_name();
ALTER TABLE quantumdb.compressors ENABLE ALWAYS TRIGGER compressors_owner_name;

-- Who may use a compressor (the rule of README "Security and privileges"):
-- a superuser, a role with the privileges of its owner, or, while the source
-- table exists, a role that may read the source column and is not subject to
-- row-level security on it.  The C functions check the same rule.
CREATE FUNCTION quantumdb.may_use_compressor(owner regrole, source regclass,
                                             source_column name)
RETURNS boolean
AS 'MODULE_PATHNAME', 'quantumdb_may_use_compressor' LANGUAGE C STABLE;

-- Everyone may query the catalog, and sees the rows of the compressors it
-- may use; rows are inserted by their owner and changed only by it.  The
-- model bytes come out through quantumdb.export() alone, which checks the
-- rule in C whatever the policies (a BYPASSRLS role sees every row).
GRANT SELECT (name, kind, dimensions, metric, settings, created_at, training_seconds,
              validation_recall, owner, source, source_column)
    ON quantumdb.compressors TO PUBLIC;
ALTER TABLE quantumdb.compressors ENABLE ROW LEVEL SECURITY;
CREATE POLICY compressors_use ON quantumdb.compressors FOR SELECT
    USING (quantumdb.may_use_compressor(owner, source, source_column));
-- A row written directly (train, import and autotune write as the
-- catalog's owner, after their own checks) must hold a model that parses
-- and matches its kind, dimensions and metric, and name as its source only
-- a table its writer may read (else that table's readers would be shown,
-- and could use, a compressor claiming to come from it).
CREATE FUNCTION quantumdb.check_compressor_row(model bytea, kind text, dimensions integer,
                                               metric text, source regclass,
                                               source_column name)
RETURNS boolean
AS 'MODULE_PATHNAME', 'quantumdb_check_compressor_row' LANGUAGE C STABLE;
COMMENT ON FUNCTION quantumdb.check_compressor_row(bytea, text, integer, text, regclass, name) IS
'for the catalog''s INSERT and UPDATE policies: true when the model parses and matches the row and its writer may read its source, else an ERROR';
CREATE POLICY compressors_insert ON quantumdb.compressors FOR INSERT
    WITH CHECK (pg_catalog.pg_has_role(owner, 'USAGE')
                AND quantumdb.check_compressor_row(model, kind, dimensions, metric,
                                                   source, source_column));
CREATE POLICY compressors_update ON quantumdb.compressors FOR UPDATE
    USING (pg_catalog.pg_has_role(owner, 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role(owner, 'USAGE')
                AND quantumdb.check_compressor_row(model, kind, dimensions, metric,
                                                   source, source_column));
CREATE POLICY compressors_delete ON quantumdb.compressors FOR DELETE
    USING (pg_catalog.pg_has_role(owner, 'USAGE'));

-- When a compressor's source table (or its column) is dropped, its row
-- forgets the source: a kept OID would name whatever relation gets that
-- OID later (a restore binds the number pg_dump writes for it), whose
-- readers would then use a model of the dropped rows.  Without a source
-- only the owner may use it, as before.  SECURITY DEFINER: any role's DROP
-- fires it, and the catalog's rows are changed only by their owners; it
-- cannot be called but as an event trigger.  Its UPDATE can fail only as
-- any statement's can (a lock timeout, a serialization failure), and then
-- the DROP fails with it, rather than leave the OID behind.
CREATE FUNCTION quantumdb.forget_dropped_sources()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() d
				   WHERE d.classid = 'pg_class'::regclass) THEN
		RETURN;
	END IF;
	UPDATE quantumdb.compressors c SET source = NULL, source_column = NULL
	FROM pg_event_trigger_dropped_objects() d
	WHERE d.classid = 'pg_class'::regclass AND d.objid = c.source::oid
	  AND (d.objsubid = 0 OR d.address_names[3] = c.source_column::text);
END
$fn$;
CREATE EVENT TRIGGER quantumdb_forget_dropped_sources ON sql_drop
	EXECUTE FUNCTION quantumdb.forget_dropped_sources();
COMMENT ON FUNCTION quantumdb.forget_dropped_sources() IS
'event trigger on sql_drop: the compressors whose source table or column was dropped forget it';

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

COMMENT ON TABLE quantumdb.compressors IS
    'Trained and imported compressors: safetensors model, settings and measured quality';
COMMENT ON COLUMN quantumdb.compressors.validation_recall IS
    '10-recall@10 of exhaustive ADC for held-out vectors searching the training sample';

CREATE TYPE quantumdb.train_result AS (
    compressor        text,
    kind              text,
    metric            text,
    dimensions        integer,
    code_bytes        integer,
    training_rows     integer,
    validation_rows   integer,
    rows_scanned      bigint,
    training_seconds  double precision,
    validation_recall double precision
);

CREATE FUNCTION quantumdb.train(
    name         text,
    source       regclass,
    "column"     name,
    kind         text    DEFAULT 'opq',
    metric       text    DEFAULT 'l2',
    subvectors   integer DEFAULT NULL,
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
    refits       integer DEFAULT 16)
RETURNS quantumdb.train_result
AS 'MODULE_PATHNAME', 'quantumdb_train' LANGUAGE C VOLATILE;

-- One row per epoch of kind neural, written as each epoch ends (by a
-- background worker, so that other sessions see rows while training runs).
CREATE SEQUENCE quantumdb.training_run_seq;
CREATE TABLE quantumdb.training_log (
    run                 bigint  NOT NULL,
    compressor          text    NOT NULL,
    epoch               integer NOT NULL,
    device              text    NOT NULL,
    loss                double precision,
    reconstruction_loss double precision,
    cluster_loss        double precision,
    diversity_loss      double precision,
    commitment_loss     double precision,
    triplet_loss        double precision,
    code_entropy        double precision,
    validation_recall   double precision,
    samples_per_second  double precision,
    temperature         double precision,
    best                boolean,
    logged_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    trained_by          regrole NOT NULL
                        DEFAULT pg_catalog.quote_ident(current_user)::regrole,
    -- the role in the key: another trainer's rows cannot take a run's keys
    PRIMARY KEY (run, epoch, trained_by)
);
-- A run's rows are visible to the role that trained (and its members), and
-- to those who may use the compressor the run stored.
GRANT SELECT ON quantumdb.training_log TO PUBLIC;
ALTER TABLE quantumdb.training_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY training_log_read ON quantumdb.training_log FOR SELECT
    USING (pg_catalog.pg_has_role(trained_by, 'USAGE')
           OR EXISTS (SELECT 1 FROM quantumdb.compressors c
                      WHERE c.name OPERATOR(pg_catalog.=) training_log.compressor
                        AND c.owner OPERATOR(pg_catalog.=) training_log.trained_by
                        AND (c.settings OPERATOR(pg_catalog.->>) 'training_log_run')
                            OPERATOR(pg_catalog.=) training_log.run::pg_catalog.text));
CREATE POLICY training_log_insert ON quantumdb.training_log FOR INSERT
    WITH CHECK (pg_catalog.pg_has_role(trained_by, 'USAGE'));
COMMENT ON TABLE quantumdb.training_log IS
    'Neural training, one row per epoch (epoch 0: the opq starting point); run is in the compressor''s settings';
COMMENT ON COLUMN quantumdb.training_log.validation_recall IS
    '10-recall@10 of ADC for the trainer''s held-out rows against its training rows';
COMMENT ON COLUMN quantumdb.training_log.code_entropy IS
    'Mean over sub-quantizers of the entropy of code usage, in bits (8 at most)';

CREATE FUNCTION quantumdb.encode(name text, vector real[]) RETURNS bytea
AS 'MODULE_PATHNAME', 'quantumdb_encode' LANGUAGE C STABLE STRICT;

CREATE FUNCTION quantumdb.decode(name text, code bytea) RETURNS real[]
AS 'MODULE_PATHNAME', 'quantumdb_decode' LANGUAGE C STABLE STRICT;

CREATE FUNCTION quantumdb.adc_distance(name text, query real[], code bytea)
RETURNS double precision
AS 'MODULE_PATHNAME', 'quantumdb_adc_distance' LANGUAGE C STABLE STRICT;

CREATE FUNCTION quantumdb.export(name text) RETURNS bytea
AS 'MODULE_PATHNAME', 'quantumdb_export' LANGUAGE C STABLE STRICT;

CREATE FUNCTION quantumdb.import(name text, model bytea) RETURNS void
AS 'MODULE_PATHNAME', 'quantumdb_import' LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION quantumdb.drop_compressor(name text, if_exists boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'quantumdb_drop_compressor' LANGUAGE C VOLATILE STRICT;

-- The SIMD kernel set chosen when the module loaded: avx512, avx2 or scalar.
CREATE FUNCTION quantumdb.simd() RETURNS text
AS 'MODULE_PATHNAME', 'quantumdb_simd' LANGUAGE C STABLE;
