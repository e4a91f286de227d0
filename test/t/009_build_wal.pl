# WAL of an index build that runs out of maintenance_work_mem: part of the
# graph is written out and the rest inserted page by page, and a
# reachability repair links nodes at the end, all before the build logs its
# pages (log_newpage_range).  With full_page_writes off, a record of a page
# the WAL has not seen yet breaks replay; so the build logs nothing page by
# page.  A standby (from a backup taken before the table existed) and crash
# recovery must both end with the primary's index.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "full_page_writes = off\n");
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION quantumdb');
$primary->backup('bkp');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bkp', has_streaming => 1);
$standby->start;

# 15,000 rows of 16 dimensions: the in-memory graph outgrows 1 MB
my ($ret, $out, $err) = $primary->psql('postgres', q{
	CREATE TABLE items (id int PRIMARY KEY, emb real[]);
	INSERT INTO items
	SELECT i, (SELECT array_agg(sin(i * 0.377 + j * 1.91 + (i % 11) * j)::real)
	           FROM generate_series(1, 16) j)
	FROM generate_series(1, 15000) i;
	SELECT compressor FROM quantumdb.train('c1', 'items', 'emb', kind => 'pq',
		subvectors => 4, kmeans_iters => 5, validation => 0);
	SET maintenance_work_mem = '1MB';
	CREATE INDEX items_idx ON items USING quantumdb (emb)
		WITH (compressor = 'c1', m = 8, ef_construction = 32);
	INSERT INTO items SELECT id + 10000, emb FROM items WHERE id <= 300;
});
is($ret, 0, 'the build with 1 MB of maintenance_work_mem succeeds') or diag($err);
like($err, qr/inserted page by page/, 'the build went on page by page');
like($primary->safe_psql('postgres', "SELECT built_from FROM quantumdb.index_info('items_idx')"),
	qr/page by page/, 'index_info says so');

$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));

my $settings = 'SET enable_seqscan = off; SET quantumdb.ef_search = 40; SET quantumdb.rerank = 40;';
my $answers = sub {
	my ($node) = @_;
	return $node->safe_psql('postgres', qq{$settings
		SELECT string_agg(r, ';' ORDER BY q) FROM
		  (SELECT q.id AS q, (SELECT string_agg(i.id::text, ',') FROM
		     (SELECT id FROM items ORDER BY emb <~> q.emb LIMIT 5) i) AS r
		   FROM items q WHERE q.id % 1000 = 1) s});
};
my $verify_sql = "SELECT string_agg(v, E'\\n') FROM quantumdb.verify('items_idx') v";
my $info_sql = "SELECT nodes, deleted_nodes, unreachable_nodes, pages FROM quantumdb.index_info('items_idx')";

my $on_primary = $answers->($primary);
is($answers->($standby), $on_primary, 'the standby answers as the primary');
is($standby->safe_psql('postgres', $info_sql), $primary->safe_psql('postgres', $info_sql),
	'index_info agrees on the standby');
is($standby->safe_psql('postgres', $verify_sql), '', 'verify is clean on the standby');

# crash recovery replays the build from the last checkpoint (the backup's)
$primary->stop('immediate');
$primary->start;
is($primary->safe_psql('postgres', $verify_sql), '', 'verify is clean after crash recovery');
is($answers->($primary), $on_primary, 'the same answers after crash recovery');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM items'), '15300', 'every row is there');

$standby->stop;
$primary->stop;
done_testing();
