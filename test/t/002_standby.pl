# WAL of the quantumdb index: a streaming standby made from a backup taken
# before the data and the index exist replays the build, inserts, deletes and
# VACUUM, and then answers the same queries with the same rows as the
# primary.  Also: an unlogged index comes back empty but usable after a crash.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# COPY text of the 2,000 real GloVe vectors of test/data/glove-2k, written
# by run_tests.sh where the server can read it
my $copy = $ENV{QDB_GLOVE_COPY} or die "QDB_GLOVE_COPY is not set";

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->safe_psql('postgres', qq{
	CREATE EXTENSION quantumdb;
	CREATE TABLE glove (id int PRIMARY KEY, emb real[]);
	CREATE TABLE items (id int PRIMARY KEY, emb real[]);
});

# the standby starts before anything is loaded, so it replays the build too
$primary->backup('bkp');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bkp', has_streaming => 1);
$standby->start;

$primary->safe_psql('postgres', qq{
	COPY glove FROM '$copy';
	INSERT INTO items SELECT id, emb FROM glove WHERE id < 1500;
	SELECT compressor FROM quantumdb.train('c1', 'items', 'emb', metric => 'cosine',
		kind => 'pq', subvectors => 20, kmeans_iters => 10, validation => 100);
	CREATE INDEX items_idx ON items USING quantumdb (emb real_cosine_ops)
		WITH (compressor = 'c1', m = 8, ef_construction = 64);
	INSERT INTO items SELECT id, emb FROM glove WHERE id >= 1500;
	DELETE FROM items WHERE id >= 1500 AND id % 3 = 0;
	VACUUM items;
});
is($primary->safe_psql('postgres', 'SELECT count(*) FROM items'), '1833',
	'1500 + 500 - 167 rows');

$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));

# 20 queries: base rows spread over the table, deleted ones included
my @qids = map { $_ * 100 + 7 } 0 .. 19;
my %qvec = map { $_ => $primary->safe_psql('postgres', "SELECT emb FROM glove WHERE id = $_") } @qids;
my $settings = 'SET enable_seqscan = off; SET quantumdb.ef_search = 40; SET quantumdb.rerank = 40;';
my $query = sub {
	my ($node, $qid) = @_;
	return $node->safe_psql('postgres', qq{$settings
		SELECT string_agg(id::text, ',') FROM
			(SELECT id FROM items ORDER BY emb <=> '$qvec{$qid}'::real[] LIMIT 10) s});
};

for my $node ($primary, $standby)
{
	like($node->safe_psql('postgres', qq{$settings
			EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb <=> '$qvec{7}'::real[] LIMIT 10}),
		qr/Index Scan using items_idx/, $node->name . ' uses the index');
}

my ($same, $self_first) = (0, 0);
for my $qid (@qids)
{
	my $p = $query->($primary, $qid);
	my $s = $query->($standby, $qid);
	$same++ if $p eq $s;
	diag("query $qid: primary $p, standby $s") if $p ne $s;
	my @ids = split /,/, $p;
	diag("query $qid: " . scalar(@ids) . " rows") if @ids != 10;
	my $present = $qid < 1500 || $qid % 3 != 0;
	$self_first++ if ($present ? $ids[0] == $qid : !grep { $_ == $qid } @ids);
}
is($same, 20, 'primary and standby return the same ids for 20 queries');
# each query vector is a row: it comes first (or, deleted, not at all)
cmp_ok($self_first, '>=', 18, "the query row itself comes first ($self_first of 20)");

my $info_sql = "SELECT nodes, deleted_nodes, max_level, unreachable_nodes, pages FROM quantumdb.index_info('items_idx')";
my $info = $primary->safe_psql('postgres', $info_sql);
note("index_info (nodes|deleted|max_level|unreachable|pages): $info");
is($standby->safe_psql('postgres', $info_sql), $info, 'index_info agrees on the standby');

# The calibration (meta page, after the meta data): the build's, then one
# quantumdb.calibrate writes, reach the standby, whose scans under a target
# choose as the primary's do; calibrate itself is refused there.
my $cal_sql = "SELECT count(*) || ':' || string_agg(format('%s/%s=%s', ef_search, rerank, recall), ' ' "
	. "ORDER BY ef_search, rerank) FROM quantumdb.calibration('items_idx')";
my $built_cal = $primary->safe_psql('postgres', $cal_sql);
like($built_cal, qr/^[1-9]\d*:/, 'the build kept a calibration');
is($standby->safe_psql('postgres', $cal_sql), $built_cal, 'the build\'s calibration reached the standby');
$primary->safe_psql('postgres', "SELECT count(*) FROM quantumdb.calibrate('items_idx', queries => 50, seed => 3)");
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
my $cal = $primary->safe_psql('postgres', $cal_sql);
isnt($cal, $built_cal, 'calibrate replaced it');
is($standby->safe_psql('postgres', $cal_sql), $cal, 'calibrate\'s calibration reached the standby');
my $target_sql = "SET quantumdb.target_recall = 0.9; SELECT ef_search || '/' || rerank || ' ' || chosen_by "
	. "FROM quantumdb.scan_settings('items_idx')";
like($primary->safe_psql('postgres', $target_sql), qr/^\d+\/\d+ calibration/, 'a target chooses from it');
is($standby->safe_psql('postgres', $target_sql), $primary->safe_psql('postgres', $target_sql),
	'the standby chooses the same pair');
my ($cret, $cout, $cerr) = $standby->psql('postgres', "SELECT * FROM quantumdb.calibrate('items_idx')");
like($cerr, qr/cannot execute quantumdb.calibrate\(\) (during recovery|in a read-only transaction)/,
	'calibrate is refused on the standby');
# training too, before it samples and trains (it used to train in full and
# then fail on the catalog's INSERT)
($cret, $cout, $cerr) = $standby->psql('postgres',
	"SET client_min_messages = notice; SELECT quantumdb.train('sb_c', 'items', 'emb', kind => 'pq')");
like($cerr, qr/cannot execute quantumdb.train\(\) (during recovery|in a read-only transaction)/,
	'training is refused on the standby');
unlike($cerr, qr/validation vectors of/, 'before it samples the table');

my $verify_sql = "SELECT string_agg(v, E'\\n') FROM quantumdb.verify('items_idx') v";
is($standby->safe_psql('postgres', $verify_sql), '', 'verify finds no problem on the standby');
is($primary->safe_psql('postgres', $verify_sql), '', 'verify finds no problem on the primary');

# An index without a compressor (built on an empty table): its first row
# fixes its dimensions in the meta page, replayed on the standby, whose
# scans read the heap as the primary's do.
$primary->safe_psql('postgres', q{
	CREATE TABLE few (id int, note text, emb real[]);
	CREATE INDEX few_idx ON few USING quantumdb (emb real_cosine_ops);
	INSERT INTO few SELECT id, 'x', emb FROM glove WHERE id < 30;
	UPDATE few SET note = 'y' WHERE id % 2 = 0;
});
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
my $few = qq{$settings SELECT string_agg(id::text, ',') FROM
	(SELECT id FROM few ORDER BY emb <=> '$qvec{107}'::real[] LIMIT 5) s};
is($standby->safe_psql('postgres', $few), $primary->safe_psql('postgres', $few),
	'an index without a compressor answers on the standby as on the primary');
is($standby->safe_psql('postgres', $few),
	$primary->safe_psql('postgres', qq{SET enable_indexscan = off; SELECT string_agg(id::text, ',') FROM
		(SELECT id FROM few ORDER BY emb <=> '$qvec{107}'::real[] LIMIT 5) s}),
	'and gives the exact order');
is($standby->safe_psql('postgres', "SELECT dimensions FROM quantumdb.index_info('few_idx')"),
	'100', 'the dimensions its first row fixed reached the standby');

# Unlogged: the init fork holds an empty graph with the compressor.  The
# build trains its own compressor here (no WITH (compressor)).
my ($ret, $out, $err) = $primary->psql('postgres', qq{
	CREATE UNLOGGED TABLE u_items (id int PRIMARY KEY, emb real[]);
	INSERT INTO u_items SELECT id, emb FROM glove WHERE id < 400;
	CREATE INDEX u_idx ON u_items USING quantumdb (emb real_cosine_ops) WITH (m = 8, ef_construction = 32);
});
is($ret, 0, 'index on an unlogged table builds');
like($err, qr/has no compressor: training/, 'the build trains a compressor');
is($primary->safe_psql('postgres', qq{$settings
		SELECT id FROM u_items ORDER BY emb <=> '$qvec{107}'::real[] LIMIT 1}),
	'107', 'unlogged index answers before the crash');

$primary->stop('immediate');
$primary->start;

is($primary->safe_psql('postgres', 'SELECT count(*) FROM u_items'), '0', 'unlogged table empty after the crash');
is($primary->safe_psql('postgres', "SELECT nodes FROM quantumdb.index_info('u_idx')"),
	'0', 'unlogged index empty after the crash');
is($primary->safe_psql('postgres', "SELECT string_agg(v, E'\\n') FROM quantumdb.verify('u_idx') v"),
	'', 'verify: empty unlogged index is healthy');
$primary->safe_psql('postgres', 'INSERT INTO u_items SELECT id, emb FROM glove WHERE id IN (5, 6)');
is($primary->safe_psql('postgres', qq{$settings
		SELECT string_agg(id::text, ',') FROM
			(SELECT id FROM u_items ORDER BY emb <=> '$qvec{7}'::real[] LIMIT 5) s}),
	$primary->safe_psql('postgres', qq{SET enable_indexscan = off;
		SELECT string_agg(id::text, ',') FROM
			(SELECT id FROM u_items ORDER BY emb <=> '$qvec{7}'::real[] LIMIT 5) s}),
	'rows inserted after the crash are found through the unlogged index');
like($primary->safe_psql('postgres', qq{$settings
		EXPLAIN (COSTS OFF) SELECT id FROM u_items ORDER BY emb <=> '$qvec{7}'::real[] LIMIT 5}),
	qr/Index Scan using u_idx/, 'that query uses the unlogged index');
# on the standby the unlogged index has no pages: its functions say what a
# query on its table says, not that a file is missing (session 60's hunt)
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
for my $f ('index_info', 'verify', 'scan_settings', 'calibration')
{
	my ($uret, $uout, $uerr) = $standby->psql('postgres', "SELECT * FROM quantumdb.$f('u_idx')");
	like($uerr, qr/cannot access temporary or unlogged relations during recovery/,
		"$f of an unlogged index on the standby: the recovery ERROR");
}

# the logged index survived crash recovery on the primary, calibration included
is($primary->safe_psql('postgres', $verify_sql), '', 'verify after crash recovery');
is($primary->safe_psql('postgres', $cal_sql), $cal, 'the calibration survived crash recovery');
is($query->($primary, 107), $query->($standby, 107), 'same answer after crash recovery');

$standby->stop;
$primary->stop;
done_testing();
