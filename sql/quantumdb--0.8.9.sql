-- quantumdb install script, part 0: guard and schema.
-- The install script is these parts concatenated (see Makefile).

\echo Use "CREATE EXTENSION quantumdb" to load this file. \quit

-- Functions, catalogs and settings live in schema quantumdb; the distance
-- operators go into the schema CREATE EXTENSION installs into, so that
-- "ORDER BY embedding <~> $1" works without qualification.
CREATE SCHEMA quantumdb;
GRANT USAGE ON SCHEMA quantumdb TO PUBLIC;
-- quantumdb install script, part 10: exact distances between real[] vectors.
-- Functions in schema quantumdb; operators in the extension's schema, each
-- its own commutator.  Vectors must be one-dimensional, non-empty, without
-- nulls, NaN or infinity, of equal length and at most 16000 elements.

CREATE FUNCTION quantumdb.l2_distance(real[], real[]) RETURNS float8
	AS 'MODULE_PATHNAME', 'quantumdb_l2_distance'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION quantumdb.cosine_distance(real[], real[]) RETURNS float8
	AS 'MODULE_PATHNAME', 'quantumdb_cosine_distance'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION quantumdb.negative_inner_product(real[], real[]) RETURNS float8
	AS 'MODULE_PATHNAME', 'quantumdb_negative_inner_product'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION quantumdb.inner_product(real[], real[]) RETURNS float8
	AS 'MODULE_PATHNAME', 'quantumdb_inner_product'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION quantumdb.l2_distance(real[], real[]) IS
	'Euclidean distance';
COMMENT ON FUNCTION quantumdb.cosine_distance(real[], real[]) IS
	'1 - cosine similarity, in [0, 2]; a zero vector is an error';
COMMENT ON FUNCTION quantumdb.negative_inner_product(real[], real[]) IS
	'minus the inner product, so that smaller means closer';
COMMENT ON FUNCTION quantumdb.inner_product(real[], real[]) IS
	'inner (dot) product';

CREATE OPERATOR <~> (
	LEFTARG = real[], RIGHTARG = real[],
	FUNCTION = quantumdb.l2_distance,
	COMMUTATOR = <~>
);

CREATE OPERATOR <=> (
	LEFTARG = real[], RIGHTARG = real[],
	FUNCTION = quantumdb.cosine_distance,
	COMMUTATOR = <=>
);

CREATE OPERATOR <#> (
	LEFTARG = real[], RIGHTARG = real[],
	FUNCTION = quantumdb.negative_inner_product,
	COMMUTATOR = <#>
);

COMMENT ON OPERATOR <~> (real[], real[]) IS 'Euclidean distance';
COMMENT ON OPERATOR <=> (real[], real[]) IS 'cosine distance';
COMMENT ON OPERATOR <#> (real[], real[]) IS 'negative inner product';
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
-- quantumdb install script, part 30: the index access method.
-- CREATE INDEX ... USING quantumdb (embedding real_cosine_ops) WITH (compressor = 'c');
-- answers ORDER BY embedding <=> $1 LIMIT k.  The operator classes go into
-- the extension's schema beside the operators they use.

CREATE FUNCTION quantumdb.index_handler(internal) RETURNS index_am_handler
	AS 'MODULE_PATHNAME', 'quantumdb_index_handler' LANGUAGE C;

CREATE ACCESS METHOD quantumdb TYPE INDEX HANDLER quantumdb.index_handler;
COMMENT ON ACCESS METHOD quantumdb IS
	'HNSW graph over compressed codes, with exact rerank from the heap (real[] columns; vector and halfvec with quantumdb_pgvector)';

-- Support function 2: which metric the operator class means.
CREATE FUNCTION quantumdb.metric_l2(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'quantumdb_metric_l2' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION quantumdb.metric_ip(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'quantumdb_metric_ip' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION quantumdb.metric_cosine(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'quantumdb_metric_cosine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR CLASS real_l2_ops
	DEFAULT FOR TYPE real[] USING quantumdb AS
	OPERATOR 1 <~> (real[], real[]) FOR ORDER BY float_ops,
	FUNCTION 1 quantumdb.l2_distance(real[], real[]),
	FUNCTION 2 quantumdb.metric_l2(internal);

CREATE OPERATOR CLASS real_cosine_ops
	FOR TYPE real[] USING quantumdb AS
	OPERATOR 1 <=> (real[], real[]) FOR ORDER BY float_ops,
	FUNCTION 1 quantumdb.cosine_distance(real[], real[]),
	FUNCTION 2 quantumdb.metric_cosine(internal);

CREATE OPERATOR CLASS real_ip_ops
	FOR TYPE real[] USING quantumdb AS
	OPERATOR 1 <#> (real[], real[]) FOR ORDER BY float_ops,
	FUNCTION 1 quantumdb.negative_inner_product(real[], real[]),
	FUNCTION 2 quantumdb.metric_ip(internal);

CREATE FUNCTION quantumdb.index_info(
	index regclass,
	OUT dimensions integer,
	OUT metric text,
	OUT code_bytes integer,
	OUT m integer,
	OUT ef_construction integer,
	OUT nodes bigint,
	OUT deleted_nodes bigint,
	OUT max_level integer,
	OUT unreachable_nodes bigint,
	OUT pages bigint,
	OUT compressor_pages integer,
	OUT bytes_per_vector double precision,
	OUT compressor text,
	OUT compressor_kind text,
	OUT compressor_checksum text,
	OUT built_from text,
	OUT reusable_nodes bigint,
	OUT inline_codes boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'quantumdb_index_info' LANGUAGE C STRICT;
COMMENT ON FUNCTION quantumdb.index_info(regclass) IS
	'Settings, node and page counts and the embedded compressor of a quantumdb index';

CREATE FUNCTION quantumdb.verify(index regclass) RETURNS SETOF text
AS 'MODULE_PATHNAME', 'quantumdb_verify' LANGUAGE C STRICT;
COMMENT ON FUNCTION quantumdb.verify(regclass) IS
	'Checks every page and graph invariant of a quantumdb index; returns the problems found (none when healthy)';
-- quantumdb install script, part 4: estimate_recall.

-- What recall does this index give?  Rows of the index's table (or of
-- query_table's query_column) serve as queries: each runs through the
-- index at the session's settings (quantumdb.ef_search, quantumdb.rerank,
-- or what quantumdb.target_recall chose: quantumdb.scan_settings)
-- and through an exact scan of the table, both as `ORDER BY column <op>
-- query LIMIT k` with the planner held to one kind of scan.  A row of the
-- index's answer counts when it is one of the exact k or no farther than
-- the exact k-th (ties).  A query row of the table itself is in both
-- answers, as it would be for a user's own stored vector.
CREATE FUNCTION quantumdb.estimate_recall(
	index regclass,
	queries integer DEFAULT 100,
	k integer DEFAULT 10,
	seed integer DEFAULT 0,
	query_table regclass DEFAULT NULL,
	query_column name DEFAULT NULL,
	OUT measured_queries integer,
	OUT skipped_queries integer,
	OUT recall double precision,
	OUT recall_low double precision,
	OUT recall_high double precision,
	OUT index_ms_per_query double precision,
	OUT exact_ms_per_query double precision,
	OUT ef_search integer,
	OUT rerank integer)
RETURNS record
LANGUAGE plpgsql
-- the caller's search_path must not choose its operators (a `/` of float8
-- by int4 in a schema on the path would run as the caller)
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	tbl regclass;
	col text;
	qtbl regclass;
	qcol text;
	qtype text;
	qbase oid;
	optype oid;
	qcast text := '';
	qnext oid;
	op text;
	am name;
	kind "char";
	attnum int2;
	partial boolean;
	ntuples real;
	pct double precision;
	qs tid[];
	q tid;
	sql text;
	plan jsonb;
	idx_tids tid[];
	idx_d double precision[];
	ex_tids tid[];
	ex_d double precision[];
	ex_max double precision;
	hits integer;
	r double precision;
	recalls double precision[] := '{}';
	t0 timestamptz;
	idx_s double precision;
	ex_s double precision;
	idx_total double precision := 0;
	ex_total double precision := 0;
	-- the planner settings each run sets, all of them (a caller's
	-- enable_seqscan = off alone would let the index answer the exact run)
	knobs text[] := ARRAY['enable_seqscan', 'enable_indexscan', 'enable_indexonlyscan',
						  'enable_bitmapscan', 'enable_sort'];
	saved text[];
	index_run text[] := ARRAY['off', 'on', 'off', 'off', 'on'];
	exact_run text[] := ARRAY['on', 'off', 'off', 'off', 'on'];
	i integer := 0;
BEGIN
	skipped_queries := 0;
	IF queries < 1 OR queries > 100000 THEN
		RAISE EXCEPTION 'queries must be between 1 and 100000, not %', queries
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF k < 1 OR k > 10000 THEN
		RAISE EXCEPTION 'k must be between 1 and 10000, not %', k
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	SELECT x.indrelid::regclass, x.indkey[0], x.indpred IS NOT NULL, a.amname, ci.relkind, c.reltuples
		INTO tbl, attnum, partial, am, kind, ntuples
		FROM pg_index x JOIN pg_class ci ON ci.oid = x.indexrelid
		JOIN pg_am a ON a.oid = ci.relam JOIN pg_class c ON c.oid = x.indrelid
		WHERE x.indexrelid = index;
	IF NOT FOUND THEN
		RAISE EXCEPTION '"%" is not an index', index USING ERRCODE = 'wrong_object_type';
	END IF;
	-- before the plan's check, which would blame another index
	IF NOT (SELECT x.indisvalid AND x.indisready FROM pg_index x WHERE x.indexrelid = index) THEN
		RAISE EXCEPTION 'index "%" is not valid', index
			USING ERRCODE = 'object_not_in_prerequisite_state',
			HINT = 'Wait for its build to finish, or REINDEX it.';
	END IF;
	IF am <> 'quantumdb' THEN
		RAISE EXCEPTION 'index "%" is not a quantumdb index', index
			USING ERRCODE = 'wrong_object_type',
			DETAIL = format('Its access method is %s.', am);
	END IF;
	IF kind <> 'i' THEN
		RAISE EXCEPTION 'index "%" is a partitioned index', index
			USING ERRCODE = 'feature_not_supported',
			HINT = 'Measure the index of each partition.';
	END IF;
	IF attnum = 0 THEN
		RAISE EXCEPTION 'index "%" is on an expression', index
			USING ERRCODE = 'feature_not_supported',
			HINT = 'estimate_recall takes indexes on a plain column.';
	END IF;
	IF partial THEN
		RAISE EXCEPTION 'index "%" is a partial index', index
			USING ERRCODE = 'feature_not_supported',
			HINT = 'estimate_recall runs its queries without the WHERE clause the planner needs to use a partial index.';
	END IF;

	-- the column and the ordering operator of the index's operator class
	-- (its input type: the column's may be a domain over it)
	SELECT quote_ident(at.attname), format('OPERATOR(%I.%s)', n.nspname, o.oprname), o.oprright
		INTO col, op, optype
		FROM pg_index x
		JOIN pg_attribute at ON at.attrelid = x.indrelid AND at.attnum = x.indkey[0]
		JOIN pg_opclass oc ON oc.oid = x.indclass[0]
		JOIN pg_amop ao ON ao.amopfamily = oc.opcfamily AND ao.amoppurpose = 'o'
			AND ao.amoplefttype = oc.opcintype
		JOIN pg_operator o ON o.oid = ao.amopopr
		JOIN pg_namespace n ON n.oid = o.oprnamespace
		WHERE x.indexrelid = index
		ORDER BY (ao.amoprighttype = oc.opcintype) DESC, ao.amopstrategy
		LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'the operator class of index "%" has no ordering operator', index
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;

	-- the query vectors: the table's own rows, or another table's column
	IF (query_table IS NULL) <> (query_column IS NULL) THEN
		RAISE EXCEPTION 'query_table and query_column go together'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF query_table IS NULL THEN
		qtbl := tbl;
		qcol := col;
	ELSE
		qtbl := query_table;
		qcol := quote_ident(query_column);
		-- its rows are sampled and read back by ctid: a table's or a
		-- materialized view's own rows (a partitioned table's are its
		-- partitions', which FROM ONLY does not read)
		SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = query_table;
		IF kind NOT IN ('r', 'm') THEN
			RAISE EXCEPTION 'query_table % is a %', query_table,
				CASE kind WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view'
						  WHEN 'f' THEN 'foreign table' ELSE 'relation of another kind' END
				USING ERRCODE = 'wrong_object_type',
					  HINT = CASE WHEN kind = 'p' THEN 'Name one of its partitions, or copy' ELSE 'Copy' END
						  || format(' the queries into a table first: CREATE TEMP TABLE q AS SELECT %s FROM %s;',
									qcol, query_table);
		END IF;
		SELECT format_type(a.atttypid, a.atttypmod), a.atttypid INTO qtype, qbase FROM pg_attribute a
			WHERE a.attrelid = query_table AND a.attname = query_column AND a.attnum > 0
				AND NOT a.attisdropped;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'column "%" of relation % does not exist', query_column, query_table
				USING ERRCODE = 'undefined_column';
		END IF;
		-- a domain's base type (domains over domains too)
		LOOP
			SELECT t.typbasetype INTO STRICT qnext FROM pg_type t WHERE t.oid = qbase;
			EXIT WHEN qnext = 0;
			qbase := qnext;
		END LOOP;
		-- another type is cast to the one the index's operator takes when
		-- the catalog has an implicit or assignment cast for it (with
		-- pgvector, halfvec or real[] queries for a vector index: left to
		-- the parser, its implicit casts would pick another operator, on the
		-- column cast, which no index answers); an array type is cast to
		-- another when its elements' type (a domain's base type) has such a
		-- cast (float8[] for real[], since 0.8.5: no pg_cast row names array
		-- types); any other
		-- type is left to the parser, as before 0.8.4
		IF qbase <> optype AND (EXISTS (SELECT FROM pg_cast c WHERE c.castsource = qbase
										AND c.casttarget = optype AND c.castcontext IN ('i', 'a'))
			OR EXISTS (SELECT FROM pg_type qt JOIN pg_type ot ON ot.oid = optype
					   JOIN pg_type et ON et.oid = qt.typelem
					   JOIN pg_cast c ON c.castsource = CASE WHEN et.typbasetype <> 0
															 THEN et.typbasetype ELSE et.oid END
						 AND c.casttarget = ot.typelem
					   WHERE qt.oid = qbase AND qt.typcategory = 'A' AND ot.typcategory = 'A'
						 AND c.castcontext IN ('i', 'a'))) THEN
			qcast := '::' || optype::regtype::text;
		END IF;
		-- a column the ordering operator cannot take (planned, never run)
		BEGIN
			EXECUTE format('SELECT %1$s %2$s (SELECT %3$s FROM ONLY %4$s LIMIT 0) FROM ONLY %5$s LIMIT 0',
						   col, op, qcol || qcast, qtbl, tbl);
		EXCEPTION WHEN undefined_function OR ambiguous_function THEN
			RAISE EXCEPTION 'column "%" of relation % has type %, which index "%" cannot take as a query',
				query_column, query_table, qtype, index
				USING ERRCODE = 'datatype_mismatch',
					  HINT = format('Name a column of type %s.',
									optype::regtype);
		END;
		SELECT CASE WHEN c.reltuples < 0 THEN -1 ELSE c.reltuples END INTO ntuples
			FROM pg_class c WHERE c.oid = query_table;
	END IF;

	-- the query rows: a seeded sample, about twice what is needed, of which
	-- a seeded hash picks the first ones (not those early in the table);
	-- when reltuples misled (stale, or NULL rows), the whole table
	pct := CASE WHEN ntuples <= 0 THEN 100
				ELSE least(100, 100.0 * 2 * queries / ntuples + 0.001) END;
	LOOP
		EXECUTE format('SELECT array_agg(ctid) FROM (SELECT ctid FROM ONLY %s TABLESAMPLE BERNOULLI (%s) '
					   'REPEATABLE (%s) WHERE %s IS NOT NULL ORDER BY md5(ctid::text || %L) LIMIT %s) s',
					   qtbl, pct, seed, qcol, seed, queries)
			INTO qs;
		EXIT WHEN pct >= 100 OR coalesce(array_length(qs, 1), 0) >= queries;
		pct := 100;
	END LOOP;

	-- the query vector is the query row's, read by a sub-select (a
	-- parameter to the planner, so the index can order by it) whatever the
	-- column's type
	sql := format('SELECT array_agg(ctid) FILTER (WHERE d IS NOT NULL), '
				  'array_agg(d) FILTER (WHERE d IS NOT NULL), max(d) FROM (SELECT ctid, '
				  '%1$s %2$s (SELECT %5$s FROM ONLY %6$s WHERE ctid = $1) AS d '
				  'FROM ONLY %3$s ORDER BY 2 LIMIT %4$s) s',
				  col, op, tbl, k, qcol || qcast, qtbl);
	SELECT array_agg(current_setting(g)) INTO saved FROM unnest(knobs) g;

	FOREACH q IN ARRAY coalesce(qs, '{}')
	LOOP
		i := i + 1;
		BEGIN
			-- the index alone: the planner must pick it, not another index
			PERFORM set_config(g, v, true) FROM unnest(knobs, index_run) u(g, v);
			IF i = 1 THEN
				EXECUTE 'EXPLAIN (FORMAT JSON) ' || sql INTO plan USING q;
				IF NOT jsonb_path_exists(plan, '$.** ? (@."Index Name" == $n)',
										 jsonb_build_object('n', (SELECT relname FROM pg_class WHERE oid = index))) THEN
					RAISE EXCEPTION 'the planner does not scan index "%" for %', index, tbl
						USING ERRCODE = 'object_not_in_prerequisite_state',
						DETAIL = 'Another index on the same column may be preferred.',
						HINT = 'Mark the other index invalid for the test, or drop it.';
				END IF;
			END IF;
			t0 := clock_timestamp();
			EXECUTE sql INTO idx_tids, idx_d USING q;
			idx_s := extract(epoch FROM clock_timestamp() - t0);

			-- the exact answer: a sequential scan, never an index
			PERFORM set_config(g, v, true) FROM unnest(knobs, exact_run) u(g, v);
			IF i = 1 THEN
				EXECUTE 'EXPLAIN (FORMAT JSON) ' || sql INTO plan USING q;
				IF jsonb_path_exists(plan, '$.** ? (exists (@."Index Name"))') THEN
					RAISE EXCEPTION 'the planner scans an index for the exact answer on %', tbl
						USING ERRCODE = 'object_not_in_prerequisite_state';
				END IF;
			END IF;
			t0 := clock_timestamp();
			EXECUTE sql INTO ex_tids, ex_d, ex_max USING q;
			ex_s := extract(epoch FROM clock_timestamp() - t0);
			PERFORM set_config(g, v, true) FROM unnest(knobs, saved) u(g, v);
		EXCEPTION
			-- a query of another dimension, an empty one, or under cosine a
			-- zero vector in the query or the table
			WHEN data_exception THEN
				IF skipped_queries = 0 THEN
					RAISE WARNING 'estimate_recall "%": a query failed and is skipped, as are any others that fail: %',
						index, SQLERRM
						USING HINT = 'A query that is not a vector of the column''s dimensions fails (another length, an empty or a multidimensional array), and under cosine so does every exact scan when the table holds a zero vector.';
				END IF;
				skipped_queries := skipped_queries + 1;
				CONTINUE;
		END;
		-- a row gone since the sample: a NULL query
		IF ex_max IS NULL THEN
			skipped_queries := skipped_queries + 1;
			CONTINUE;
		END IF;
		SELECT count(*) INTO hits
			FROM unnest(coalesce(idx_tids, '{}'), coalesce(idx_d, '{}')) u(t, d)
			WHERE u.t = ANY (ex_tids) OR u.d <= ex_max;
		r := hits::double precision / array_length(ex_tids, 1);
		recalls := recalls || r;
		idx_total := idx_total + idx_s;
		ex_total := ex_total + ex_s;
		IF queries >= 20 AND i % (queries / 10) = 0 THEN
			RAISE NOTICE 'estimate_recall "%": % of % queries, recall so far %',
				index, i, array_length(qs, 1),
				round((SELECT avg(x) FROM unnest(recalls) x)::numeric, 4);
		END IF;
	END LOOP;

	measured_queries := coalesce(array_length(recalls, 1), 0);
	-- the settings the scans used: the session's, or target_recall's choice
	SELECT s.ef_search, s.rerank INTO ef_search, rerank FROM quantumdb.scan_settings(index) s;
	IF measured_queries = 0 THEN
		RETURN;
	END IF;
	SELECT avg(x), stddev_samp(x) INTO recall, r FROM unnest(recalls) x;
	-- a normal 95% interval on the mean of the per-query recalls
	IF measured_queries > 1 THEN
		recall_low := greatest(0, recall - 1.96 * r / sqrt(measured_queries));
		recall_high := least(1, recall + 1.96 * r / sqrt(measured_queries));
	END IF;
	index_ms_per_query := 1000 * idx_total / measured_queries;
	exact_ms_per_query := 1000 * ex_total / measured_queries;
END
$fn$;
COMMENT ON FUNCTION quantumdb.estimate_recall(regclass, integer, integer, integer, regclass, name) IS
	'Measures the 10-recall@10 (k-recall@k) a quantumdb index gives at the session''s settings: rows of its table (or of query_table) as queries, the index against an exact scan, with a 95% interval and the time per query of each';
-- quantumdb install script, part 5: calibration and quantumdb.target_recall.

-- Measures what recall the index gives at a grid of ef_search / rerank
-- pairs, on rows of its own table as queries (their exact k nearest other
-- rows), and keeps it on the index's meta page, where scans under
-- quantumdb.target_recall read it.  CREATE INDEX does the same with
-- calibration_queries rows (reloption, default 100).  The table's owner.
CREATE FUNCTION quantumdb.calibrate(
	index regclass,
	queries integer DEFAULT 100,
	k integer DEFAULT 10,
	seed integer DEFAULT 0)
RETURNS TABLE (ef_search integer, rerank integer, recall double precision,
			   ms_per_query double precision, k integer, queries integer,
			   rows double precision, taken_at timestamptz)
AS 'MODULE_PATHNAME', 'quantumdb_calibrate' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION quantumdb.calibrate(regclass, integer, integer, integer) IS
	'Measures the k-recall@k and time per query of a quantumdb index at a grid of ef_search / rerank pairs, on rows of its table as queries, and keeps it for quantumdb.target_recall';

CREATE FUNCTION quantumdb.calibration(index regclass)
RETURNS TABLE (ef_search integer, rerank integer, recall double precision,
			   ms_per_query double precision, k integer, queries integer,
			   rows double precision, taken_at timestamptz)
AS 'MODULE_PATHNAME', 'quantumdb_calibration' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION quantumdb.calibration(regclass) IS
	'The calibration a quantumdb index keeps (no rows: none)';

-- How well the index's compressor fits the rows its table has, as its last
-- calibration measured it (new in 0.8.9).  Anyone who may read the table.
CREATE FUNCTION quantumdb.calibration_fit(
	index regclass,
	OUT coding_error double precision,
	OUT expected double precision,
	OUT ratio double precision,
	OUT fits_worse boolean,
	OUT removed double precision,
	OUT retrain_pending boolean,
	OUT taken_at timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'quantumdb_calibration_fit' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION quantumdb.calibration_fit(regclass) IS
	'The coding error of a quantumdb index''s compressor on rows of its table at its last calibration, the error its build expected, whether the train worker is to train it again, and the entries VACUUMs removed since';

CREATE FUNCTION quantumdb.scan_settings(
	index regclass,
	OUT ef_search integer,
	OUT rerank integer,
	OUT chosen_by text,
	OUT calibrated_recall double precision,
	OUT calibrated_ms_per_query double precision)
RETURNS record
AS 'MODULE_PATHNAME', 'quantumdb_scan_settings' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION quantumdb.scan_settings(regclass) IS
	'The ef_search and rerank a scan of a quantumdb index uses now, and why: the session''s settings or, under quantumdb.target_recall, the calibration''s choice';

-- The auto-tuner (src/autotune.c): a search over compressor and index
-- settings within a time budget.  One row per trial in
-- quantumdb.autotune_trials, written as each trial ends (by a background
-- worker, so that other sessions see rows while the search runs).
CREATE SEQUENCE quantumdb.autotune_run_seq;
CREATE TABLE quantumdb.autotune_trials (
    run               bigint  NOT NULL,
    compressor        text    NOT NULL,
    trial             integer NOT NULL,
    stage             integer NOT NULL,
    kind              text    NOT NULL,
    settings          jsonb   NOT NULL,
    training_rows     integer NOT NULL,
    quality           double precision,
    compression       double precision,
    speed             double precision,
    memory            double precision,
    score             double precision,
    seconds           double precision,
    walk_distances    double precision,
    walk_microseconds double precision,
    status            text    NOT NULL,
    logged_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    trained_by        regrole NOT NULL
                      DEFAULT pg_catalog.quote_ident(current_user)::regrole,
    -- the role in the key: another trainer's rows cannot take a run's keys
    PRIMARY KEY (run, trial, trained_by)
);
-- A run's rows are visible to the role that ran it (and its members).
GRANT SELECT ON quantumdb.autotune_trials TO PUBLIC;
ALTER TABLE quantumdb.autotune_trials ENABLE ROW LEVEL SECURITY;
CREATE POLICY autotune_trials_read ON quantumdb.autotune_trials FOR SELECT
    USING (pg_catalog.pg_has_role(trained_by, 'USAGE'));
CREATE POLICY autotune_trials_insert ON quantumdb.autotune_trials FOR INSERT
    WITH CHECK (pg_catalog.pg_has_role(trained_by, 'USAGE'));
COMMENT ON TABLE quantumdb.autotune_trials IS
    'quantumdb.autotune, one row per trial: stage, settings, the score and its terms';
COMMENT ON COLUMN quantumdb.autotune_trials.quality IS
    '10-recall@10 of exhaustive ADC for the held-out rows searching the training rows';
COMMENT ON COLUMN quantumdb.autotune_trials.compression IS
    '1 - index bytes per row (code and level-0 neighbour list) / bytes of a float4 vector';
COMMENT ON COLUMN quantumdb.autotune_trials.speed IS
    'walk recall x log(rows / walk cost) / log(rows), the cost counted in exact-distance equivalents';
COMMENT ON COLUMN quantumdb.autotune_trials.memory IS
    'model bytes / (model bytes + index bytes for the table''s rows)';
COMMENT ON COLUMN quantumdb.autotune_trials.status IS
    'done, pruned (stage 2 median rule), skipped (would pass its stage''s end), over budget or failed (an ERROR, reported as a WARNING)';

CREATE TYPE quantumdb.autotune_result AS (
    compressor        text,
    run               bigint,
    kind              text,
    settings          jsonb,
    validation_recall double precision,
    score             double precision,
    trials            integer,
    pruned            integer,
    skipped           integer,
    seconds           double precision,
    index_options     text
);

CREATE FUNCTION quantumdb.autotune(
    name          text,
    source        regclass,
    "column"      name,
    metric        text     DEFAULT 'l2',
    budget        interval DEFAULT '10 minutes',
    w_quality     double precision DEFAULT 0.4,
    w_compression double precision DEFAULT 0.1,
    w_speed       double precision DEFAULT 0.4,
    w_memory      double precision DEFAULT 0.1,
    seed          bigint   DEFAULT 42,
    sample        integer  DEFAULT 50000,
    validation    integer  DEFAULT 500,
    kinds         text[]   DEFAULT NULL,
    stage_trials  integer[] DEFAULT NULL)
RETURNS quantumdb.autotune_result
AS 'MODULE_PATHNAME', 'quantumdb_autotune' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION quantumdb.autotune(text, regclass, name, text, interval,
    double precision, double precision, double precision, double precision,
    bigint, integer, integer, text[], integer[]) IS
    'Trains and keeps the best compressor for a column within a time budget (random search, TPE, full training of the best)';
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
