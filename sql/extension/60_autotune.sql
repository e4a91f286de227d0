
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
