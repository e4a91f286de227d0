# pg_upgrade of a cluster with quantumdb indexes: an index naming a
# compressor, one that trained its own, and one on an unlogged table.
# pg_upgrade's restore of the schema builds every index before
# quantumdb.compressors has its rows, and stopped at the first index
# naming a compressor (42704: session 63's hunt, /work/runs/hunt-s63b.md
# F1).  After the upgrade every index answers as before, takes inserts,
# and the unlogged table's index, whose init fork pg_upgrade does not
# move, keeps its compressor across a crash once VACUUM has run (F4).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $old = PostgreSQL::Test::Cluster->new('old');
$old->init;
$old->append_conf('postgresql.conf', "maintenance_work_mem = 256MB\n");
$old->start;
$old->safe_psql('postgres', q{
	CREATE EXTENSION quantumdb;
	SET client_min_messages = warning;
	SELECT setseed(0.4);
	CREATE TABLE t (id int PRIMARY KEY, v real[]);
	INSERT INTO t SELECT i, ARRAY(SELECT random()::real FROM generate_series(1, 32) WHERE i > 0)
		FROM generate_series(1, 2000) i;
	SELECT compressor FROM quantumdb.train('c', 't', 'v', kind => 'pq', subvectors => 8);
	CREATE INDEX t_named ON t USING quantumdb (v) WITH (compressor = 'c');
	CREATE UNLOGGED TABLE u AS SELECT * FROM t;
	CREATE INDEX u_own ON u USING quantumdb (v);
	CREATE TABLE q AS SELECT i AS id, ARRAY(SELECT random()::real FROM generate_series(1, 32) WHERE i > 0) AS v
		FROM generate_series(1, 10) i;
});
my $answers = q{
	SET enable_seqscan = off;
	SELECT string_agg((SELECT string_agg(id::text, ',') FROM (SELECT id FROM t ORDER BY v <~> q.v LIMIT 5) a)
		|| '/' || (SELECT string_agg(id::text, ',') FROM (SELECT id FROM u ORDER BY v <~> q.v LIMIT 5) b), ' ')
	FROM q};
my $before = $old->safe_psql('postgres', $answers);
my $kinds = q{SELECT string_agg(coalesce(compressor_kind, 'none'), ',' ORDER BY i) FROM
	unnest(ARRAY['t_named', 'u_own']) WITH ORDINALITY x(n, i), quantumdb.index_info(n::regclass)};
is($old->safe_psql('postgres', $kinds), 'pq,opq', 'before: the indexes have their compressors');
$old->stop;

my $new = PostgreSQL::Test::Cluster->new('new');
$new->init;
my $bindir = $old->config_data('--bindir');
chdir $new->basedir or die "no basedir";
command_ok(
	[
		'pg_upgrade', '--no-sync', '-d', $old->data_dir, '-D', $new->data_dir,
		'-b', $bindir, '-B', $bindir, '-s', $new->host, '-p', $old->port, '-P', $new->port
	],
	'pg_upgrade of a cluster with quantumdb indexes naming a compressor');
$new->start;
is($new->safe_psql('postgres', $answers), $before, 'after: every index answers as before');
is($new->safe_psql('postgres', $kinds), 'pq,opq', 'after: with the same compressors');
is($new->safe_psql('postgres', q{SELECT count(*) FROM quantumdb.verify('t_named')}), '0',
	'verify finds nothing wrong');
$new->safe_psql('postgres', q{
	INSERT INTO t SELECT 2000 + id, v FROM q;
	INSERT INTO u SELECT 2000 + id, v FROM q;
});
is($new->safe_psql('postgres', q{SET enable_seqscan = off;
	SELECT count(*) FROM q WHERE (SELECT id FROM t ORDER BY v <~> q.v LIMIT 1) = 2000 + q.id
		AND (SELECT id FROM u ORDER BY v <~> q.v LIMIT 1) = 2000 + q.id}), '10',
	'rows inserted after it are found by their own vector');

# the unlogged index's init fork is the new cluster's, without a compressor
$new->safe_psql('postgres', 'VACUUM u');
$new->stop('immediate');
$new->start;
is($new->safe_psql('postgres', q{SELECT count(*) FROM u}), '0', 'a crash empties the unlogged table');
is($new->safe_psql('postgres', $kinds), 'pq,opq',
	'and its index keeps its compressor (VACUUM wrote the init fork again)');
$new->stop;
done_testing();
