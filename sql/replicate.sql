-- quantumdb.replicate_compressor, what a Citus coordinator sends each
-- worker for a compressor row (src/citus.c), checked on one node as a
-- worker checks it: the same model of the same owner under the name is
-- nothing to do; otherwise the caller needs the owner's privileges and
-- INSERT on the catalog, and another row under the name is an ERROR.  A
-- source is kept only for a Citus table the caller may read (none here),
-- so a same-named local table never becomes a copy's source.  Without
-- Citus the two coordinator functions say so.
SET client_min_messages = warning;
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE ROLE qdb_rep_owner;
CREATE ROLE qdb_rep_other;
GRANT INSERT ON quantumdb.compressors TO qdb_rep_owner, qdb_rep_other;
CREATE TABLE qdb_rep_src (id int, v real[]);
INSERT INTO qdb_rep_src SELECT i, ARRAY[i % 17, (i * 7) % 29, (i * 13) % 31, i % 5]::real[]
FROM generate_series(0, 299) i;
GRANT SELECT ON qdb_rep_src TO qdb_rep_owner;
SET ROLE qdb_rep_owner;
SELECT compressor FROM quantumdb.train('qdb_rep_a', 'qdb_rep_src', 'v', kind => 'pq',
	subvectors => 2, validation => 0, kmeans_iters => 3);
SELECT compressor FROM quantumdb.train('qdb_rep_b', 'qdb_rep_src', 'v', kind => 'pq',
	subvectors => 2, validation => 0, kmeans_iters => 3, seed => 5);
RESET ROLE;
CREATE TEMP TABLE rep AS
SELECT name, model, settings, created_at, training_seconds, validation_recall, owner,
	'public.qdb_rep_src' AS source, source_column
FROM quantumdb.compressors WHERE name LIKE 'qdb_rep_%';
GRANT SELECT ON rep TO qdb_rep_owner, qdb_rep_other;
SET ROLE qdb_rep_owner;

-- the same model under the name: false, nothing written
SELECT quantumdb.replicate_compressor(name, model, settings, created_at, training_seconds,
	validation_recall, owner, source, source_column) AS made
FROM rep WHERE name = 'qdb_rep_a';
-- another model under a taken name
SELECT quantumdb.replicate_compressor('qdb_rep_a', model, settings, created_at,
	training_seconds, validation_recall, owner, source, source_column)
FROM rep WHERE name = 'qdb_rep_b';
-- a new name: the row as sent, but no source nor source column (qdb_rep_src is
-- not a Citus table)
SELECT quantumdb.replicate_compressor('qdb_rep_c', model, settings, created_at,
	training_seconds, validation_recall, owner, source, source_column) AS made
FROM rep WHERE name = 'qdb_rep_a';
SELECT c.kind, c.dimensions, c.metric, c.owner, c.source, c.source_column,
	c.created_at = r.created_at AS same_time, c.settings = r.settings AS same_settings,
	quantumdb.export('qdb_rep_c') = r.model AS same_model
FROM quantumdb.compressors c, rep r WHERE c.name = 'qdb_rep_c' AND r.name = 'qdb_rep_a';
-- a source that does not exist here: kept without one (its owner's only)
SELECT quantumdb.replicate_compressor('qdb_rep_d', model, settings, created_at, NULL, NULL,
	owner, 'public.no_such_table', NULL) AS made
FROM rep WHERE name = 'qdb_rep_a';
SELECT source IS NULL AS no_source, training_seconds IS NULL AS no_seconds
FROM quantumdb.compressors WHERE name = 'qdb_rep_d';
-- NULLs where a row needs values
SELECT quantumdb.replicate_compressor('qdb_rep_e', NULL, '{}', now(), NULL, NULL,
	'qdb_rep_owner', NULL, NULL);
SELECT quantumdb.replicate_compressor('qdb_rep_e', model, settings, created_at, NULL, NULL,
	NULL, NULL, NULL) FROM rep WHERE name = 'qdb_rep_a';
-- a blob that is not a model
SELECT quantumdb.replicate_compressor('qdb_rep_e', '\x00010203', '{}', now(), NULL, NULL,
	'qdb_rep_owner', NULL, NULL);
RESET ROLE;

-- another role may not make rows in the owner's name, nor take over one
-- by sending the same bytes as its own; its own row naming a table it may
-- not read gets no source
SET ROLE qdb_rep_other;
SELECT quantumdb.replicate_compressor('qdb_rep_f', model, settings, created_at, NULL, NULL,
	owner, NULL, NULL) FROM rep WHERE name = 'qdb_rep_a';
SELECT quantumdb.replicate_compressor('qdb_rep_a', model, settings, created_at, NULL, NULL,
	'qdb_rep_other', NULL, NULL) FROM rep WHERE name = 'qdb_rep_a';
SELECT quantumdb.replicate_compressor('qdb_rep_f', model, settings, created_at, NULL, NULL,
	'qdb_rep_other', source, source_column) AS made FROM rep WHERE name = 'qdb_rep_a';
RESET ROLE;
SELECT owner, source IS NULL AS no_source FROM quantumdb.compressors WHERE name = 'qdb_rep_f';
-- without INSERT on the catalog
REVOKE INSERT ON quantumdb.compressors FROM qdb_rep_other;
SET ROLE qdb_rep_other;
SELECT quantumdb.replicate_compressor('qdb_rep_g', model, settings, created_at, NULL, NULL,
	'qdb_rep_other', NULL, NULL) FROM rep WHERE name = 'qdb_rep_a';
RESET ROLE;
SELECT count(*) AS rows_made_without_insert FROM quantumdb.compressors WHERE name = 'qdb_rep_g';

-- the call a worker asks the coordinator for holds the model: for those
-- who may use the compressor only (as export)
SET ROLE qdb_rep_owner;
SELECT quantumdb.citus_replica_command('qdb_rep_a') LIKE 'SELECT quantumdb.replicate_compressor(%' AS command;
RESET ROLE;
SET ROLE qdb_rep_other;
SELECT quantumdb.citus_replica_command('qdb_rep_a');
RESET ROLE;
SELECT quantumdb.citus_replica_command('qdb_rep_none');

-- the coordinator's functions, where Citus is not installed
SELECT quantumdb.citus_sync_compressors();
CREATE INDEX qdb_rep_idx ON qdb_rep_src USING quantumdb (v) WITH (compressor = 'qdb_rep_a');
SELECT * FROM quantumdb.shard_index_info('qdb_rep_idx');

DROP INDEX qdb_rep_idx;
DROP TABLE rep;
SELECT quantumdb.drop_compressor(name) FROM quantumdb.compressors WHERE name LIKE 'qdb_rep_%'
ORDER BY name;
DROP TABLE qdb_rep_src;
REVOKE ALL ON quantumdb.compressors FROM qdb_rep_owner, qdb_rep_other;
DROP ROLE qdb_rep_owner;
DROP ROLE qdb_rep_other;
