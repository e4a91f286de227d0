# ALTER EXTENSION quantumdb UPDATE from release 0.1.0: a database created
# at 0.1.0, with compressors, a training log, indexes built with and
# without a named compressor and an index on a small table, is updated to
# the current version and finds every index, compressor and query as
# before; its objects and their descriptions then equal a fresh install's.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $copy = $ENV{QDB_GLOVE_COPY} or die "QDB_GLOVE_COPY is not set";

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "maintenance_work_mem = 256MB\n");
$node->start;
my $sql = sub { $node->safe_psql('postgres', $_[0]) };
my $current = $sql->(q{SELECT default_version FROM pg_available_extensions WHERE name = 'quantumdb'});

$sql->(qq{
	CREATE EXTENSION quantumdb VERSION '0.1.0';
	CREATE TABLE glove (id int PRIMARY KEY, emb real[]);
	COPY glove FROM '$copy';
	CREATE TABLE items AS SELECT id, emb FROM glove WHERE id < 1500;
	CREATE TABLE small (id int, emb real[]);
	INSERT INTO small SELECT id, emb FROM glove WHERE id < 20;
	SET client_min_messages = warning;
	SELECT compressor FROM quantumdb.train('c1', 'items', 'emb', metric => 'cosine',
		kind => 'pq', subvectors => 20, kmeans_iters => 10, validation => 100);
	CREATE INDEX items_named ON items USING quantumdb (emb real_cosine_ops)
		WITH (compressor = 'c1', m = 8, ef_construction = 64);
	CREATE INDEX items_trained ON items USING quantumdb (emb) WITH (m = 8, ef_construction = 64);
	CREATE INDEX small_idx ON small USING quantumdb (emb);
	-- sources that are gone before the update (0.8.2 clears them)
	CREATE TABLE gone_t AS SELECT id, emb FROM glove WHERE id < 400;
	CREATE TABLE gone_c AS SELECT id, emb, emb AS emb2 FROM glove WHERE id < 400;
	SELECT compressor FROM quantumdb.train('c_gone_t', 'gone_t', 'emb', kind => 'pq',
		subvectors => 4, kmeans_iters => 2, validation => 0);
	SELECT compressor FROM quantumdb.train('c_gone_c', 'gone_c', 'emb', kind => 'pq',
		subvectors => 4, kmeans_iters => 2, validation => 0);
	SELECT compressor FROM quantumdb.train('c_kept_c', 'gone_c', 'emb2', kind => 'pq',
		subvectors => 4, kmeans_iters => 2, validation => 0);
	DROP TABLE gone_t;
	ALTER TABLE gone_c DROP COLUMN emb;
});
is($sql->(q{SELECT extversion FROM pg_extension WHERE extname = 'quantumdb'}), '0.1.0',
	'created at 0.1.0');
isnt($current, '0.1.0', "the current version ($current) is a newer one");

my $answers = q{
	SET enable_seqscan = off; SET quantumdb.rerank = 40;
	SELECT string_agg(s.ids, ' ') FROM (
		SELECT (SELECT string_agg(id::text, ',') FROM (SELECT id FROM items
			ORDER BY emb <=> (SELECT emb FROM glove WHERE id = q.id) LIMIT 5) a)
			|| '/' || (SELECT string_agg(id::text, ',') FROM (SELECT id FROM items
			ORDER BY emb <~> (SELECT emb FROM glove WHERE id = q.id) LIMIT 5) b)
			|| '/' || (SELECT string_agg(id::text, ',') FROM (SELECT id FROM small
			ORDER BY emb <~> (SELECT emb FROM glove WHERE id = q.id) LIMIT 3) c) AS ids
		FROM generate_series(1900, 1910) q(id)) s};
my $state = q{
	SELECT string_agg(name || ':' || kind || ':' || metric, ',' ORDER BY name) FROM quantumdb.compressors;
	SELECT count(*) FROM quantumdb.training_log;
	SELECT string_agg(i || ':' || coalesce(v, 'ok'), ',') FROM
		unnest(ARRAY['items_named', 'items_trained', 'small_idx']) i
		LEFT JOIN LATERAL quantumdb.verify(i::regclass) v ON true;
};
my $before = $sql->($answers);
my $state_before = $sql->($state);

# a site's grants on quantumdb.train (0.7.0's update makes it again)
$sql->(q{
	CREATE ROLE trainer LOGIN;
	CREATE ROLE other LOGIN;
	REVOKE EXECUTE ON FUNCTION quantumdb.train FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION quantumdb.train TO trainer;
});
my $may_train = q{SELECT string_agg(r || ':' || has_function_privilege(r, p.oid, 'EXECUTE'), ',' ORDER BY r)
	FROM pg_proc p, unnest(ARRAY['trainer', 'other']) r
	WHERE p.proname = 'train' AND p.pronamespace = 'quantumdb'::regnamespace};
is($sql->($may_train), 'other:false,trainer:true', 'before the update: only trainer may train');

$sql->(q{ALTER EXTENSION quantumdb UPDATE});
is($sql->($may_train), 'other:false,trainer:true',
	'after it the grants on quantumdb.train are as they were (a REVOKE from PUBLIC kept)');
# and a dump keeps them: they are the site's, not the extension's initial ones
my ($dump) = run_command([ 'pg_dump', '-s', '-d', $node->connstr('postgres') ]);
like($dump, qr/REVOKE ALL ON FUNCTION quantumdb\.train\(.*FROM PUBLIC;/,
	'pg_dump writes the REVOKE from PUBLIC');
like($dump, qr/GRANT ALL ON FUNCTION quantumdb\.train\(.*TO trainer;/,
	'and the GRANT to trainer');
is($sql->(q{SELECT extversion FROM pg_extension WHERE extname = 'quantumdb'}), $current,
	"updated to $current");
is($sql->($answers), $before, 'every index answers as before the update');
is($sql->(q{SELECT string_agg(name || ':' || coalesce(source::text, '-') || ':'
		|| coalesce(source_column::text, '-'), ' ' ORDER BY name)
	FROM quantumdb.compressors WHERE name LIKE 'c\\_%\\_%'}),
	'c_gone_c:-:- c_gone_t:-:- c_kept_c:gone_c:emb2',
	'the update clears the sources dropped before it, and keeps the others');
is($sql->($state), $state_before, 'compressors, training log and verify as before');

# the updated indexes keep working: inserts, vacuum, a new index
$sql->(q{
	INSERT INTO items SELECT id, emb FROM glove WHERE id >= 1500 AND id < 1800;
	DELETE FROM items WHERE id % 7 = 0;
	VACUUM items;
	CREATE INDEX items_after ON items USING quantumdb (emb real_cosine_ops) WITH (compressor = 'c1');
});
is($sql->(q{SELECT count(*) FROM quantumdb.verify('items_named')}), '0', 'verify after inserts and VACUUM');
is($sql->(q{SET enable_seqscan = off; SET quantumdb.rerank = 40;
	SELECT id FROM items ORDER BY emb <=> (SELECT emb FROM glove WHERE id = 1700) LIMIT 1}),
	'1700', 'a row inserted after the update is found');

# the updated extension equals a fresh install of the current version
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION quantumdb');
my $objects = q{
	SELECT string_agg(pg_describe_object(classid, objid, 0) || ' = '
		|| coalesce(obj_description(objid, classid::regclass::text), '-'), E'\n'
		ORDER BY pg_describe_object(classid, objid, 0))
	FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
	  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'quantumdb')};
is($sql->($objects), $node->safe_psql('fresh', $objects),
	'the updated extension has the objects and descriptions of a fresh install');
# and its functions take the same arguments, with the same defaults
my $functions = q{
	SELECT string_agg(p.oid::regprocedure::text || ': ' || pg_get_function_arguments(p.oid)
		|| ' -> ' || pg_get_function_result(p.oid)
		|| ' ' || coalesce(array_to_string(p.proconfig, ','), '') || ' ' || md5(p.prosrc),
		E'\n' ORDER BY p.oid::regprocedure::text)
	FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
	WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
	  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'quantumdb')};
is($sql->($functions), $node->safe_psql('fresh', $functions),
	'the updated functions have the arguments, defaults, results, settings (search_path) and bodies of a fresh install');
# and its tables the same constraints and indexes (the keys of 0.8.2)
my $tables = q{
	SELECT string_agg(x, E'\n' ORDER BY x) FROM (
		SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) AS x
		FROM pg_constraint WHERE connamespace = 'quantumdb'::regnamespace
		UNION ALL
		SELECT pg_get_indexdef(indexrelid) FROM pg_index
		WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'quantumdb'::regnamespace)
		UNION ALL
		SELECT tablename || ' ' || policyname || ' ' || cmd || ' ' || coalesce(qual, '-')
			|| ' ' || coalesce(with_check, '-')
		FROM pg_policies WHERE schemaname = 'quantumdb') s};
is($sql->($tables), $node->safe_psql('fresh', $tables),
	'the updated tables have the constraints, indexes and policies of a fresh install');
# and its event triggers fire for the same commands, in the same modes
my $event_triggers = q{
	SELECT string_agg(evtname || ' ' || evtevent || ' ' || evtenabled::text || ' '
		|| coalesce(array_to_string(evttags, ','), '-') || ' ' || evtfoid::regproc::text,
		E'\n' ORDER BY evtname) FROM pg_event_trigger};
is($sql->($event_triggers), $node->safe_psql('fresh', $event_triggers),
	'the updated event triggers are a fresh install\'s');
# and its table triggers, in the same modes (0.8.8: the owner trigger fires
# under session_replication_role = replica, tgenabled A)
my $triggers = q{
	SELECT string_agg(tgrelid::regclass || ' ' || tgname || ' ' || tgenabled::text || ' '
		|| pg_get_triggerdef(oid), E'\n' ORDER BY tgrelid::regclass::text, tgname)
	FROM pg_trigger WHERE NOT tgisinternal
	  AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'quantumdb'::regnamespace)};
is($sql->($triggers), $node->safe_psql('fresh', $triggers),
	'the updated table triggers are a fresh install\'s');
like($sql->($triggers), qr/compressors_owner_name A /, 'the owner trigger fires always');

# from 0.7.0: before the update, the function of 0.7.0 (refits DEFAULT 4)
# trains other kinds with the library of now; an rq compressor trained at
# 0.7.0's defaults (4 refits, which the catalog's settings left out) says
# so after the update
$node->safe_psql('postgres', 'CREATE DATABASE at070');
$node->safe_psql('at070', q{
	CREATE EXTENSION quantumdb VERSION '0.7.0';
	CREATE TABLE t AS SELECT i AS id, ARRAY(SELECT sin(i * 7 + j * 13)::real
		FROM generate_series(1, 8) j) AS emb FROM generate_series(1, 600) i;
	SET client_min_messages = warning;
	SELECT compressor FROM quantumdb.train('r070', 't', 'emb', kind => 'rq', subvectors => 2,
		kmeans_iters => 3, validation => 0);
	SELECT compressor FROM quantumdb.train('o070', 't', 'emb', subvectors => 2,
		kmeans_iters => 3, opq_iters => 2, validation => 0);
	-- the row as 0.7.0's library wrote it (this library writes refits 4)
	UPDATE quantumdb.compressors SET settings = settings - 'beam' - 'eta' - 'refits'
	WHERE name = 'r070';
	ALTER EXTENSION quantumdb UPDATE;
});
is($node->safe_psql('at070', q{SELECT extversion || ' ' || (settings->>'refits')
	FROM pg_extension, quantumdb.compressors WHERE extname = 'quantumdb' AND name = 'r070'}),
	"$current 4", 'an rq compressor of 0.7.0 shows its 4 refits after the update');

# from 0.8.2, whose rows kept a renamed source column's old name: the
# update forgets such a source (which column it was is not known), keeps
# the others, and from then on a rename is followed
$node->safe_psql('postgres', 'CREATE DATABASE at082');
$node->safe_psql('at082', q{
	CREATE EXTENSION quantumdb VERSION '0.8.2';
	CREATE TABLE t AS SELECT i AS id, ARRAY(SELECT sin(i * 7 + j * 13)::real
		FROM generate_series(1, 8) j) AS emb, ARRAY(SELECT cos(i * 5 + j)::real
		FROM generate_series(1, 8) j) AS emb2 FROM generate_series(1, 600) i;
	SET client_min_messages = warning;
	SELECT compressor FROM quantumdb.train('c_ren', 't', 'emb', kind => 'pq', subvectors => 2,
		kmeans_iters => 3, validation => 0);
	SELECT compressor FROM quantumdb.train('c_kept', 't', 'emb2', kind => 'pq', subvectors => 2,
		kmeans_iters => 3, validation => 0);
	ALTER TABLE t RENAME COLUMN emb TO renamed;
	ALTER EXTENSION quantumdb UPDATE;
	ALTER TABLE t RENAME COLUMN emb2 TO emb3;
});
is($node->safe_psql('at082', q{SELECT string_agg(name || ':' || coalesce(source::text, '-')
		|| ':' || coalesce(source_column::text, '-'), ' ' ORDER BY name)
	FROM quantumdb.compressors}),
	'c_kept:t:emb3 c_ren:-:-',
	'from 0.8.2: a source renamed before the update is forgotten, one renamed after it followed');

# from 0.8.3, whose train took 16 subvectors unless told: on an 8-dim
# column that was an ERROR; after the update, one per dimension
$node->safe_psql('postgres', 'CREATE DATABASE at083');
$node->safe_psql('at083', q{
	CREATE EXTENSION quantumdb VERSION '0.8.3';
	CREATE TABLE t AS SELECT i AS id, ARRAY(SELECT sin(i * 7 + j * 13)::real
		FROM generate_series(1, 8) j) AS emb FROM generate_series(1, 600) i;
});
my ($rc083, $out083, $err083) = $node->psql('at083',
	q{SELECT compressor FROM quantumdb.train('c083', 't', 'emb', kmeans_iters => 3, opq_iters => 2)});
like($err083, qr/subvectors 16 is more than the 8 dimensions/,
	'at 0.8.3, train on an 8-dim column without subvectors is refused');
$node->safe_psql('at083', 'ALTER EXTENSION quantumdb UPDATE');
is($node->safe_psql('at083', q{SET client_min_messages = warning;
	SELECT code_bytes FROM quantumdb.train('c084', 't', 'emb', kmeans_iters => 3, opq_iters => 2)}),
	'8', 'after the update to 0.8.4, train takes one subvector per dimension');

# from 0.8.4, whose estimate_recall refused a float8[] query column for a
# real[] index (no pg_cast row names array types): after the update it
# casts it, and measures
$node->safe_psql('postgres', 'CREATE DATABASE at084');
$node->safe_psql('at084', q{
	CREATE EXTENSION quantumdb VERSION '0.8.4';
	SET client_min_messages = warning;
	CREATE TABLE t AS SELECT i AS id, ARRAY(SELECT sin(i * 7 + j * 13)::real
		FROM generate_series(1, 8) j) AS emb FROM generate_series(1, 600) i;
	CREATE INDEX t_idx ON t USING quantumdb (emb);
	CREATE TABLE q AS SELECT id, emb::float8[] AS e8 FROM t WHERE id <= 20;
});
my ($rc084, $out084, $err084) = $node->psql('at084',
	q{SELECT measured_queries FROM quantumdb.estimate_recall('t_idx', 20, query_table => 'q', query_column => 'e8')});
like($err084, qr/has type double precision\[\], which index "(public\.)?t_idx" cannot take/,
	'at 0.8.4, a float8[] query column is refused');
$node->safe_psql('at084', 'ALTER EXTENSION quantumdb UPDATE');
is($node->safe_psql('at084', q{SET client_min_messages = warning;
	SELECT measured_queries FROM quantumdb.estimate_recall('t_idx', 20, query_table => 'q', query_column => 'e8')}),
	'20', 'after the update to 0.8.5, it is cast and measured');

$node->stop;
done_testing();
