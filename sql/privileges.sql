-- Who may use a compressor: a model is derived data of its source table, so
-- using, exporting or seeing one follows who may read that table.  A pq
-- model with one sub-quantizer trained on 256 rows keeps every row as a
-- centroid: decoding the 256 codes gives the table back.
SET client_min_messages = warning;
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE ROLE qdb_priv_owner;
CREATE ROLE qdb_priv_user;
CREATE ROLE qdb_priv_member IN ROLE qdb_priv_owner;
CREATE ROLE qdb_priv_bypass BYPASSRLS;
CREATE SCHEMA qdb_priv_s AUTHORIZATION qdb_priv_owner;
CREATE SCHEMA qdb_priv_u AUTHORIZATION qdb_priv_user;
GRANT INSERT ON quantumdb.compressors TO qdb_priv_owner, qdb_priv_user;

SET ROLE qdb_priv_owner;
CREATE TABLE qdb_priv_s.secret (id int PRIMARY KEY, v real[], other int);
INSERT INTO qdb_priv_s.secret
SELECT i, ARRAY[i, (i * 7) % 256, (i * 13) % 256, 1000 + i]::real[], i FROM generate_series(0, 255) i;
SELECT compressor, kind, code_bytes, training_rows
FROM quantumdb.train('qdb_priv_leak', 'qdb_priv_s.secret', 'v', kind => 'pq',
                     subvectors => 1, sample => 256, validation => 0, kmeans_iters => 5);
-- the owner: the 256 one-byte codes give back the 256 rows exactly
CREATE TABLE qdb_priv_s.all_codes AS
SELECT b, decode(lpad(to_hex(b), 2, '0'), 'hex') AS code FROM generate_series(0, 255) b;
GRANT SELECT ON qdb_priv_s.all_codes TO PUBLIC;
GRANT USAGE ON SCHEMA qdb_priv_s TO qdb_priv_user;
SELECT count(*) AS rows_recovered
FROM qdb_priv_s.secret s
WHERE s.v IN (SELECT quantumdb.decode('qdb_priv_leak', code) FROM qdb_priv_s.all_codes);
SELECT name, kind, owner, source, source_column, settings->>'source' AS settings_source
FROM quantumdb.compressors WHERE name LIKE 'qdb_priv%';
-- its model bytes through export(), not SELECT
SELECT octet_length(quantumdb.export('qdb_priv_leak')) > 0 AS exported;
SELECT model FROM quantumdb.compressors;
RESET ROLE;

-- a role with no privilege on the table: every use is refused
SET ROLE qdb_priv_user;
SELECT count(*) FROM quantumdb.compressors WHERE name LIKE 'qdb_priv%';
SELECT quantumdb.decode('qdb_priv_leak', '\x00'::bytea);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT quantumdb.encode('qdb_priv_leak', ARRAY[1, 2, 3, 4]::real[]);
\echo :LAST_ERROR_SQLSTATE
SELECT quantumdb.adc_distance('qdb_priv_leak', ARRAY[1, 2, 3, 4]::real[], '\x00'::bytea);
\echo :LAST_ERROR_SQLSTATE
SELECT quantumdb.export('qdb_priv_leak');
\echo :LAST_ERROR_SQLSTATE
SELECT quantumdb.drop_compressor('qdb_priv_leak');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT quantumdb.drop_compressor('qdb_priv_leak', if_exists => true);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
CREATE TABLE qdb_priv_u.mine (id int, v real[]);
INSERT INTO qdb_priv_u.mine SELECT i, ARRAY[i, i, i, i]::real[] FROM generate_series(1, 10) i;
CREATE INDEX ON qdb_priv_u.mine USING quantumdb (v) WITH (compressor = 'qdb_priv_leak');
\echo :LAST_ERROR_SQLSTATE
-- nor can it import a copy of a blob it may not export, or plant a row
SELECT quantumdb.import('qdb_priv_copy', quantumdb.export('qdb_priv_leak'));
\echo :LAST_ERROR_SQLSTATE
INSERT INTO quantumdb.compressors (name, kind, dimensions, metric, settings, model, owner)
VALUES ('qdb_priv_forged', 'pq', 4, 'l2', '{}', '\x00', 'qdb_priv_owner');
\echo :LAST_ERROR_SQLSTATE
-- (the table itself it cannot read either)
SELECT count(*) FROM qdb_priv_s.secret;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET ROLE;

-- a BYPASSRLS role sees every catalog row, but not the model bytes, and
-- the functions refuse it all the same
SET ROLE qdb_priv_bypass;
SELECT name, owner FROM quantumdb.compressors WHERE name LIKE 'qdb_priv%';
\set VERBOSITY terse
SELECT md5(model) FROM quantumdb.compressors WHERE name LIKE 'qdb_priv%';
\echo :LAST_ERROR_SQLSTATE
SELECT quantumdb.decode('qdb_priv_leak', '\x00'::bytea);
\echo :LAST_ERROR_SQLSTATE
SELECT quantumdb.export('qdb_priv_leak');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET ROLE;

-- a member of the owner's role may use it; SELECT on the table is not
-- needed for that
SET ROLE qdb_priv_member;
SELECT array_length(quantumdb.decode('qdb_priv_leak', '\x01'::bytea), 1) AS member_decodes;
RESET ROLE;

-- SELECT on the table: every use works, the row is visible; dropping stays
-- the owner's
SET ROLE qdb_priv_owner;
GRANT SELECT ON qdb_priv_s.secret TO qdb_priv_user;
RESET ROLE;
SET ROLE qdb_priv_user;
SELECT name, owner, source FROM quantumdb.compressors WHERE name LIKE 'qdb_priv%';
SELECT array_length(quantumdb.decode('qdb_priv_leak', '\x01'::bytea), 1) AS dims;
SELECT octet_length(quantumdb.encode('qdb_priv_leak', ARRAY[1, 2, 3, 4]::real[]));
SELECT abs(quantumdb.adc_distance('qdb_priv_leak', ARRAY[1, 7, 13, 1001]::real[], '\x01'::bytea)
           - quantumdb.l2_distance(ARRAY[1, 7, 13, 1001]::real[],
                                   quantumdb.decode('qdb_priv_leak', '\x01'::bytea))) < 1e-3
       AS adc_is_exact;
SELECT octet_length(quantumdb.export('qdb_priv_leak')) > 0 AS exported;
CREATE INDEX mine_v ON qdb_priv_u.mine USING quantumdb (v) WITH (compressor = 'qdb_priv_leak');
DROP INDEX qdb_priv_u.mine_v;
-- a temporary table ON COMMIT DELETE ROWS whose index names it: each
-- COMMIT rebuilds the index and loads the compressor again (below, once
-- the right to read its table is gone)
CREATE TEMP TABLE qdb_priv_oc (id int, v real[]) ON COMMIT DELETE ROWS;
CREATE INDEX qdb_priv_oc_v ON qdb_priv_oc USING quantumdb (v) WITH (compressor = 'qdb_priv_leak');
\set VERBOSITY terse
SELECT quantumdb.drop_compressor('qdb_priv_leak');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET ROLE;

-- SELECT on the vector column alone is enough; on another column it is not
SET ROLE qdb_priv_owner;
REVOKE SELECT ON qdb_priv_s.secret FROM qdb_priv_user;
GRANT SELECT (id, v) ON qdb_priv_s.secret TO qdb_priv_user;
RESET ROLE;
SET ROLE qdb_priv_user;
SELECT array_length(quantumdb.decode('qdb_priv_leak', '\x02'::bytea), 1) AS column_grant_decodes;
RESET ROLE;
SET ROLE qdb_priv_owner;
REVOKE SELECT (v) ON qdb_priv_s.secret FROM qdb_priv_user;
RESET ROLE;
SET ROLE qdb_priv_user;
\set VERBOSITY terse
SELECT quantumdb.decode('qdb_priv_leak', '\x02'::bytea);
\echo :LAST_ERROR_SQLSTATE
-- and COMMIT's rebuild of that index builds it without the compressor,
-- after a WARNING, where it failed at every COMMIT
BEGIN;
INSERT INTO qdb_priv_oc VALUES (1, ARRAY[1, 7, 13, 1001]);
COMMIT;
SELECT compressor, built_from FROM quantumdb.index_info('qdb_priv_oc_v');
DROP TABLE qdb_priv_oc;
\set VERBOSITY default
RESET ROLE;

-- row-level security that applies to the role: refused again (the model
-- holds the rows its policies hide), and the row is hidden
SET ROLE qdb_priv_owner;
GRANT SELECT ON qdb_priv_s.secret TO qdb_priv_user;
ALTER TABLE qdb_priv_s.secret ENABLE ROW LEVEL SECURITY;
CREATE POLICY few ON qdb_priv_s.secret USING (id < 10);
RESET ROLE;
SET ROLE qdb_priv_user;
SELECT count(*) AS rows_the_policy_shows FROM qdb_priv_s.secret;
SELECT count(*) FROM quantumdb.compressors WHERE name LIKE 'qdb_priv%';
SELECT quantumdb.decode('qdb_priv_leak', '\x00'::bytea);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT quantumdb.export('qdb_priv_leak');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET ROLE;
SET ROLE qdb_priv_owner;
ALTER TABLE qdb_priv_s.secret DISABLE ROW LEVEL SECURITY;
RESET ROLE;

-- an imported model is its owner's alone, whatever the blob's origin
SET ROLE qdb_priv_owner;
SELECT quantumdb.import('qdb_priv_copy', quantumdb.export('qdb_priv_leak'));
SELECT name, owner, source, source_column, settings->>'imported' AS imported
FROM quantumdb.compressors WHERE name = 'qdb_priv_copy';
RESET ROLE;
SET ROLE qdb_priv_user;
SELECT name FROM quantumdb.compressors WHERE name LIKE 'qdb_priv%' ORDER BY name;
SELECT quantumdb.decode('qdb_priv_copy', '\x00'::bytea);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- a dropped source table leaves the compressor to its owner
SET ROLE qdb_priv_owner;
DROP TABLE qdb_priv_s.secret;
SELECT name, source IS NOT NULL AS has_source FROM quantumdb.compressors
WHERE name LIKE 'qdb_priv%' ORDER BY name;
SELECT array_length(quantumdb.decode('qdb_priv_leak', '\x03'::bytea), 1) AS owner_still_decodes;
RESET ROLE;
SET ROLE qdb_priv_user;
SELECT count(*) FROM quantumdb.compressors WHERE name LIKE 'qdb_priv%';
SELECT quantumdb.decode('qdb_priv_leak', '\x03'::bytea);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- the row forgot the dropped table (an OID kept would name whatever
-- relation gets it later, and a dump wrote it as a bare number); a
-- dropped source column too, while another column's drop leaves it
CREATE TABLE qdb_priv_cols (id int, a real[], b real[]);
INSERT INTO qdb_priv_cols SELECT i, ARRAY[sin(i), cos(i)]::real[], ARRAY[cos(i), sin(i)]::real[]
FROM generate_series(1, 300) i;
SELECT compressor FROM quantumdb.train('qdb_priv_cola', 'qdb_priv_cols', 'a', kind => 'pq',
                                       subvectors => 2, sample => 300, validation => 0);
ALTER TABLE qdb_priv_cols DROP COLUMN b;
SELECT source::text, source_column FROM quantumdb.compressors WHERE name = 'qdb_priv_cola';
-- a renamed source column is followed: its readers keep the use, and a
-- column added under the old name gives its readers none
GRANT SELECT (a) ON qdb_priv_cols TO qdb_priv_user;
ALTER TABLE qdb_priv_cols RENAME COLUMN a TO a2;
SELECT source::text, source_column FROM quantumdb.compressors WHERE name = 'qdb_priv_cola';
SET ROLE qdb_priv_user;
SELECT array_length(quantumdb.decode('qdb_priv_cola', '\x0102'::bytea), 1) AS reader_decodes;
RESET ROLE;
REVOKE SELECT (a2) ON qdb_priv_cols FROM qdb_priv_user;
ALTER TABLE qdb_priv_cols ADD COLUMN a real[];
GRANT SELECT (a) ON qdb_priv_cols TO qdb_priv_user;
SET ROLE qdb_priv_user;
SELECT quantumdb.decode('qdb_priv_cola', '\x0102'::bytea);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
ALTER TABLE qdb_priv_cols DROP COLUMN a;
SELECT source::text, source_column FROM quantumdb.compressors WHERE name = 'qdb_priv_cola';
-- the rename is matched on the old name: a row naming a column that no
-- longer exists (written directly, say) stays where it was when another
-- column is renamed (a trigger seeing only the new name moved it there);
-- under session_replication_role = replica too
ALTER TABLE qdb_priv_cols ADD COLUMN c real[];
UPDATE quantumdb.compressors SET source_column = 'ghost' WHERE name = 'qdb_priv_cola';
ALTER TABLE qdb_priv_cols RENAME COLUMN c TO c2;
SELECT source_column FROM quantumdb.compressors WHERE name = 'qdb_priv_cola';
UPDATE quantumdb.compressors SET source_column = 'a2' WHERE name = 'qdb_priv_cola';
SET session_replication_role = replica;
ALTER TABLE qdb_priv_cols RENAME COLUMN a2 TO a3;
RESET session_replication_role;
SELECT source_column FROM quantumdb.compressors WHERE name = 'qdb_priv_cola';
ALTER TABLE qdb_priv_cols DROP COLUMN a3;
-- a typed table's column, renamed through its type
CREATE TYPE qdb_priv_rt AS (id int, emb real[]);
CREATE TABLE qdb_priv_typed OF qdb_priv_rt;
INSERT INTO qdb_priv_typed SELECT i, ARRAY[sin(i), cos(i)]::real[] FROM generate_series(1, 300) i;
SELECT compressor FROM quantumdb.train('qdb_priv_typedc', 'qdb_priv_typed', 'emb', kind => 'pq',
                                       subvectors => 2, sample => 300, validation => 0);
ALTER TYPE qdb_priv_rt RENAME ATTRIBUTE emb TO emb2 CASCADE;
SELECT source_column FROM quantumdb.compressors WHERE name = 'qdb_priv_typedc';
DROP TABLE qdb_priv_typed;
DROP TYPE qdb_priv_rt;
SELECT quantumdb.drop_compressor('qdb_priv_typedc');
-- ALTER VIEW renames a table's column too (its command tag is ALTER VIEW)
CREATE TABLE qdb_priv_av (id int, emb real[]);
INSERT INTO qdb_priv_av SELECT i, ARRAY[sin(i), cos(i)]::real[] FROM generate_series(1, 300) i;
SELECT compressor FROM quantumdb.train('qdb_priv_avc', 'qdb_priv_av', 'emb', kind => 'pq',
                                       subvectors => 2, sample => 300, validation => 0);
ALTER VIEW qdb_priv_av RENAME COLUMN emb TO emb2;
SELECT source_column FROM quantumdb.compressors WHERE name = 'qdb_priv_avc';
DROP TABLE qdb_priv_av;
SELECT quantumdb.drop_compressor('qdb_priv_avc');
SELECT source, source_column FROM quantumdb.compressors WHERE name = 'qdb_priv_cola';
DROP TABLE qdb_priv_cols;
SELECT quantumdb.drop_compressor('qdb_priv_cola');
-- a temporary table (dropped at the session's end, which no event trigger
-- sees) is not recorded as the source
CREATE TEMP TABLE qdb_priv_tmp AS
SELECT i AS id, ARRAY[sin(i), cos(i)]::real[] AS emb FROM generate_series(1, 300) i;
SELECT compressor FROM quantumdb.train('qdb_priv_tmpc', 'qdb_priv_tmp', 'emb', kind => 'pq',
                                       subvectors => 2, sample => 300, validation => 0);
SELECT source IS NULL AS no_source, source_column IS NULL AS no_column
FROM quantumdb.compressors WHERE name = 'qdb_priv_tmpc';
DROP TABLE qdb_priv_tmp;
SELECT quantumdb.drop_compressor('qdb_priv_tmpc');

-- the training log: a run's rows for the role that trained and for those
-- who may use the compressor it stored
INSERT INTO quantumdb.training_log (run, compressor, epoch, device, trained_by)
VALUES (-1, 'qdb_priv_leak', 0, 'cpu', 'qdb_priv_owner');
GRANT INSERT ON quantumdb.training_log TO qdb_priv_user;
SET ROLE qdb_priv_owner;
SELECT run, compressor, trained_by FROM quantumdb.training_log WHERE run = -1;
RESET ROLE;
SET ROLE qdb_priv_user;
SELECT count(*) FROM quantumdb.training_log WHERE run = -1;
-- it may log its own runs, not write rows in another role's name
\set VERBOSITY terse
INSERT INTO quantumdb.training_log (run, compressor, epoch, device, trained_by)
VALUES (-1, 'qdb_priv_leak', 1, 'cpu', 'qdb_priv_owner');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET ROLE;
REVOKE INSERT ON quantumdb.training_log FROM qdb_priv_user;
DELETE FROM quantumdb.training_log WHERE run = -1;

-- case 9: a user-defined = ahead of pg_catalog in search_path is never
-- called by the catalog's queries
CREATE SCHEMA evil;
CREATE FUNCTION evil.noisy_texteq(text, text) RETURNS boolean
AS $$ BEGIN RAISE NOTICE 'evil = called'; RETURN $1 OPERATOR(pg_catalog.=) $2; END $$
LANGUAGE plpgsql;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.noisy_texteq);
SET search_path = evil, pg_catalog, public;
SET client_min_messages = notice;
SELECT 'a'::text = 'a'::text AS evil_operator_works;
SELECT octet_length(quantumdb.export('qdb_priv_leak')) > 0 AS exported;
SELECT quantumdb.import('qdb_priv_evil', quantumdb.export('qdb_priv_leak'));
SELECT array_length(quantumdb.decode('qdb_priv_evil', '\x04'::bytea), 1) AS dims;
SELECT count(*) FROM quantumdb.compressors WHERE name OPERATOR(pg_catalog.=) 'qdb_priv_evil';
SELECT quantumdb.drop_compressor('qdb_priv_evil');
SET client_min_messages = warning;
RESET search_path;
DROP SCHEMA evil CASCADE;

-- a view as the source: who may read a view proves nothing about the rows
-- the model was trained on (a security_invoker view over a table with
-- policies, a view that filters on current_user), so only the owner may use it
SET ROLE qdb_priv_owner;
CREATE TABLE qdb_priv_s.vsrc (v real[], tenant name);
INSERT INTO qdb_priv_s.vsrc
SELECT ARRAY[i, (i * 7) % 256, (i * 13) % 256, 1000 + i]::real[],
       CASE WHEN i % 2 = 0 THEN 'qdb_priv_user' ELSE 'qdb_priv_owner' END
FROM generate_series(0, 255) i;
ALTER TABLE qdb_priv_s.vsrc ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON qdb_priv_s.vsrc USING (tenant = current_user);
GRANT SELECT ON qdb_priv_s.vsrc TO qdb_priv_user;
CREATE VIEW qdb_priv_s.secret_view WITH (security_invoker = true) AS SELECT * FROM qdb_priv_s.vsrc;
GRANT SELECT ON qdb_priv_s.secret_view TO qdb_priv_user;
SELECT compressor FROM quantumdb.train('qdb_priv_view', 'qdb_priv_s.secret_view', 'v', kind => 'pq',
                                       subvectors => 1, sample => 256, validation => 0, kmeans_iters => 5);
RESET ROLE;
SET ROLE qdb_priv_user;
SELECT count(*) AS view_rows_seen FROM qdb_priv_s.secret_view;  -- its own half
SELECT count(*) AS catalog_rows FROM quantumdb.compressors WHERE name = 'qdb_priv_view';
\set VERBOSITY terse
SELECT octet_length(quantumdb.export('qdb_priv_view'));
\echo :LAST_ERROR_SQLSTATE
-- not even its existence: dropping it is dropping nothing
SELECT quantumdb.drop_compressor('qdb_priv_view');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET ROLE;
SELECT quantumdb.drop_compressor('qdb_priv_view');

-- rows written into the catalog directly (by a role with INSERT on it)
-- are checked as train and import check theirs: the model parses and
-- matches the row, and the source is a table the writer may read (before,
-- a model of one byte was stored, and a row could claim a source its
-- writer could not read, shown to that table's readers as derived from it)
SET ROLE qdb_priv_owner;
CREATE TABLE qdb_priv_s.hidden (v real[]);
RESET ROLE;
SET ROLE qdb_priv_user;
CREATE TABLE qdb_priv_u.src AS
SELECT i AS id, ARRAY[sin(i), cos(i), sin(2 * i), cos(2 * i)]::real[] AS v
FROM generate_series(1, 300) i;
SELECT compressor FROM quantumdb.train('qdb_priv_mine', 'qdb_priv_u.src', 'v', kind => 'pq',
                                       subvectors => 2, sample => 300, validation => 0);
INSERT INTO quantumdb.compressors (name, kind, dimensions, metric, settings, model)
VALUES ('qdb_priv_direct', 'pq', 4, 'l2', '{}', '\x00');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO quantumdb.compressors (name, kind, dimensions, metric, settings, model)
SELECT 'qdb_priv_direct', 'rq', 3, 'cosine', '{}', quantumdb.export('qdb_priv_mine');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO quantumdb.compressors (name, kind, dimensions, metric, settings, model,
                                   source, source_column)
SELECT 'qdb_priv_direct', 'pq', 4, 'l2', '{}', quantumdb.export('qdb_priv_mine'),
       'qdb_priv_s.hidden', 'v';
\echo :LAST_ERROR_SQLSTATE
-- a NULL in a NOT NULL column: the constraint's ERROR, naming it
INSERT INTO quantumdb.compressors (name, kind, dimensions, metric, settings, model)
VALUES ('qdb_priv_direct', NULL, 4, 'l2', '{}', '\x00');
\echo :LAST_ERROR_SQLSTATE
-- a row that says what its model is, from a table its writer reads
INSERT INTO quantumdb.compressors (name, kind, dimensions, metric, settings, model,
                                   source, source_column)
SELECT 'qdb_priv_direct', 'pq', 4, 'l2', '{}', quantumdb.export('qdb_priv_mine'),
       'qdb_priv_u.src', 'v';
SELECT array_length(quantumdb.decode('qdb_priv_direct', '\x0000'::bytea), 1) AS direct_decodes;
SELECT quantumdb.drop_compressor(n) FROM unnest(ARRAY['qdb_priv_direct', 'qdb_priv_mine']) n;
RESET ROLE;

-- 0.8.7: a row keeps its owner's name (owner_name), and a row restored
-- with an owner whose name is not that one goes to the restoring role: a
-- dump writes a dropped owner as a bare number, which a restore would give
-- to whichever role has that OID there
SELECT quantumdb.export('qdb_priv_leak') AS leak_model \gset
CREATE ROLE qdb_priv_gone;
GRANT INSERT ON quantumdb.compressors TO qdb_priv_gone;
SET ROLE qdb_priv_gone;
SELECT quantumdb.import('qdb_priv_orphan', :'leak_model');
RESET ROLE;
SELECT owner, owner_name FROM quantumdb.compressors WHERE name = 'qdb_priv_orphan';
REVOKE INSERT ON quantumdb.compressors FROM qdb_priv_gone;
DROP ROLE qdb_priv_gone;
SELECT owner::text ~ '^[0-9]+$' AS owner_is_a_number, owner_name
FROM quantumdb.compressors WHERE name = 'qdb_priv_orphan';
-- the row as a restore inserts it where qdb_priv_user has the dropped OID
INSERT INTO quantumdb.compressors (name, kind, dimensions, metric, settings, model, owner, owner_name)
SELECT 'qdb_priv_restored', kind, dimensions, metric, settings, model, 'qdb_priv_user', owner_name
FROM quantumdb.compressors WHERE name = 'qdb_priv_orphan';
SELECT owner = current_user::regrole AS restorer_owns_it, owner_name = current_user AS named
FROM quantumdb.compressors WHERE name = 'qdb_priv_restored';
-- one restored with its own owner's name stays its owner's
INSERT INTO quantumdb.compressors (name, kind, dimensions, metric, settings, model, owner, owner_name)
SELECT 'qdb_priv_restored2', kind, dimensions, metric, settings, model, 'qdb_priv_user', 'qdb_priv_user'
FROM quantumdb.compressors WHERE name = 'qdb_priv_orphan';
SELECT owner, owner_name FROM quantumdb.compressors WHERE name = 'qdb_priv_restored2';
-- an UPDATE keeps the name while the owner stays, and takes the new owner's
UPDATE quantumdb.compressors SET owner_name = 'someone' WHERE name = 'qdb_priv_restored2';
SELECT owner_name FROM quantumdb.compressors WHERE name = 'qdb_priv_restored2';
UPDATE quantumdb.compressors SET owner = 'qdb_priv_owner' WHERE name = 'qdb_priv_restored2';
SELECT owner, owner_name FROM quantumdb.compressors WHERE name = 'qdb_priv_restored2';
SELECT quantumdb.drop_compressor(n) FROM unnest(ARRAY['qdb_priv_orphan', 'qdb_priv_restored', 'qdb_priv_restored2']) n;

-- a superuser's imported compressor in an index of a table handed to
-- another role: REINDEX checks the table's owner, and the hint names it
-- (it named only the compressor's owner, the superuser running it)
SELECT quantumdb.import('qdb_priv_imported', quantumdb.export('qdb_priv_leak')) IS NOT NULL AS imported;
CREATE TABLE qdb_priv_u.handed AS
    SELECT g AS id, ARRAY[random(), random(), random(), random()]::real[] AS v FROM generate_series(1, 300) g;
CREATE INDEX qdb_priv_handed_idx ON qdb_priv_u.handed USING quantumdb (v)
    WITH (compressor = 'qdb_priv_imported');
ALTER TABLE qdb_priv_u.handed OWNER TO qdb_priv_user;
DO $$
DECLARE h text;
BEGIN
    REINDEX INDEX qdb_priv_u.qdb_priv_handed_idx;
    RAISE WARNING 'reindexed';
EXCEPTION WHEN insufficient_privilege THEN
    GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
    RAISE WARNING 'refused, the hint names the table''s owner: %', h LIKE '%as role qdb_priv_user, the table''s owner%';
END $$;
DROP TABLE qdb_priv_u.handed;
SELECT quantumdb.drop_compressor('qdb_priv_imported');

-- the owner drops its compressors
SET ROLE qdb_priv_owner;
SELECT quantumdb.drop_compressor('qdb_priv_leak');
SELECT quantumdb.drop_compressor('qdb_priv_copy');
RESET ROLE;

REVOKE ALL ON quantumdb.compressors FROM qdb_priv_owner, qdb_priv_user;
DROP SCHEMA qdb_priv_s CASCADE;
DROP SCHEMA qdb_priv_u CASCADE;
DROP ROLE qdb_priv_member;
DROP ROLE qdb_priv_bypass;
DROP ROLE qdb_priv_owner;
DROP ROLE qdb_priv_user;
