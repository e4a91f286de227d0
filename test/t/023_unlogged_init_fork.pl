# An unlogged index's init fork holds its compressor (qdbbuildempty copies
# the main fork's header), and a crash or a promotion resets the index to
# it.  PostgreSQL writes the init fork only when there is none, so an index
# rebuilt in place (TRUNCATE of a table created in the same transaction)
# kept the init fork of its first build: after a crash it came back with
# the compressor its options no longer named, or without one.  qdbbuild
# writes the init fork again (init_fork_again), over the old one's pages.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init(allows_streaming => 1);
$node->start;
$node->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b', has_streaming => 1);
$standby->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION quantumdb;
	SET client_min_messages = warning;
	CREATE TABLE b16 AS SELECT i AS id, array(SELECT (random() + 0 * i)::real FROM generate_series(1, 16)) AS emb
	FROM generate_series(1, 400) i;
	CREATE TABLE b8 AS SELECT i AS id, array(SELECT (random() + 0 * i)::real FROM generate_series(1, 8)) AS emb
	FROM generate_series(1, 400) i;
	SELECT quantumdb.train('c16', 'b16', 'emb', kind => 'pq', subvectors => 4);
	SELECT quantumdb.train('c8', 'b8', 'emb', kind => 'pq', subvectors => 4)});

# each table: its index's first build, what the same transaction changes before its TRUNCATE
my %cases = (
	u_other => [q{WITH (compressor = 'c16')}, q{ALTER INDEX u_other_idx SET (compressor = 'c8')}, 'b8'],
	u_reset => [q{WITH (compressor = 'c16')}, q{ALTER INDEX u_reset_idx RESET (compressor)}, 'b16'],
	u_named => ['', q{ALTER INDEX u_named_idx SET (compressor = 'c16')}, 'b16']);
for my $t (sort keys %cases)
{
	my ($with, $alter, $rows) = @{ $cases{$t} };
	$node->safe_psql('postgres', qq{
		SET client_min_messages = warning;
		BEGIN;
		CREATE UNLOGGED TABLE $t (id int, emb real[]);
		CREATE INDEX ${t}_idx ON $t USING quantumdb (emb) $with;
		$alter;
		TRUNCATE $t;
		COMMIT;
		INSERT INTO $t SELECT id, emb FROM $rows WHERE id <= 50});
}
my $info = q{SELECT coalesce(compressor, 'none') || ' ' || coalesce(dimensions::text, '-')
	FROM quantumdb.index_info('%s')};
my $info_nodes = q{SELECT coalesce(compressor, 'none') || ' ' || coalesce(dimensions::text, '-')
	|| ' ' || nodes FROM quantumdb.index_info('%s')};
my %want = (u_other => 'c8 8', u_reset => 'none 16', u_named => 'c16 16');
for my $t (sort keys %cases)
{
	is($node->safe_psql('postgres', sprintf($info, "${t}_idx")), $want{$t},
		"$t: the rebuild in place took what the options name");
}

$node->wait_for_catchup($standby);

# the unlogged indexes of a server reset from their init forks: as the last
# build left them, empty; rows of their dimensions go in and are found
sub check_reset
{
	my ($n, $how) = @_;
	my %want = (u_other => 'c8 8 0', u_reset => 'none - 0', u_named => 'c16 16 0');
	for my $t (sort keys %cases)
	{
		is($n->safe_psql('postgres', sprintf($info_nodes, "${t}_idx")),
			$want{$t}, "$t: $how, the index is reset to the same, empty");
		my $rows = $cases{$t}[2];
		my ($ret, $out, $err) = $n->psql('postgres', qq{
			INSERT INTO $t SELECT id, emb FROM $rows WHERE id <= 300;
			SET enable_seqscan = off; SET quantumdb.rerank = 400;
			SELECT id FROM $t ORDER BY emb <~> (SELECT emb FROM $rows WHERE id = 7) LIMIT 1});
		is($err, '', "$t: $how, rows of its dimensions go in");
		is($out, '7', "$t: $how, and a scan finds the nearest");
		is($n->safe_psql('postgres', qq{SELECT count(*) FROM quantumdb.verify('${t}_idx')}), '0',
			"$t: $how, verify finds nothing wrong");
	}
}

# a standby has the init forks from the WAL (each page a full-page image)
$standby->promote;
check_reset($standby, 'on the promoted standby');
$standby->stop;
$node->stop('immediate');
$node->start;
check_reset($node, 'after a crash');
$node->stop;
done_testing();
