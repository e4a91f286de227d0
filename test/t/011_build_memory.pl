# A build whose graph outgrows maintenance_work_mem inserts the rest of the
# rows page by page; each of those inserts must give its memory back.  The
# backend's peak resident memory (VmHWM in /proc) grows by far less than the
# ~1 MB per row such an insert allocates (its walk's arena, lookup table and
# lists), which is what a build in one long-lived context kept until its end.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off\nmax_parallel_maintenance_workers = 0\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION quantumdb;
	CREATE TABLE t (id int, emb real[]);
	INSERT INTO t
	SELECT i, (SELECT array_agg(sin(i * 0.377 + j * 1.91 + (i % 13) * j)::real)
	           FROM generate_series(1, 32) j)
	FROM generate_series(1, 7000) i;
	SELECT compressor FROM quantumdb.train('c1', 't', 'emb', kind => 'pq',
		subvectors => 8, kmeans_iters => 5, validation => 0);
});

my $s = $node->background_psql('postgres', on_error_stop => 1);
my $pid = $s->query_safe('SELECT pg_backend_pid()');

sub peak_kb
{
	my $status = slurp_file("/proc/$pid/status");
	$status =~ /^VmHWM:\s+(\d+) kB/m or die "no VmHWM for $pid";
	return $1;
}

my $before = peak_kb();
$s->query_safe(q{SET maintenance_work_mem = '1MB'});
$s->query_safe(q{SET client_min_messages = notice});
# NOTICEs go to stderr, which query_safe takes for an error
$s->query(q{CREATE INDEX t_idx ON t USING quantumdb (emb)
	WITH (compressor = 'c1', m = 32, ef_construction = 64)});
like($s->{stderr}, qr/inserted page by page/, 'the build went on page by page');
my $on_disk = $node->safe_psql('postgres',
	q{SELECT built_from FROM quantumdb.index_info('t_idx')});
like($on_disk, qr/page by page/, "index_info says part of it was inserted page by page ($on_disk)");

# built_from names the phases that built rows, as the build's NOTICEs count
# them, and no phase that held none (it said "vectors, then codes, then page
# by page" when both NOTICEs said "after 0 rows": session 60's settings hunt)
sub phases_built
{
	my ($notices) = @_;
	my ($v) = $notices =~ /graph with vectors no longer fits in maintenance_work_mem after (\d+) rows/;
	my ($d) = $notices =~ /graph no longer fits in maintenance_work_mem after (\d+) rows/;
	my @p;
	push @p, 'vectors' if !defined $v || $v > 0;
	push @p, 'codes' if defined $v && (!defined $d || $d > $v);
	push @p, 'page by page' if defined $d;
	return join(', then ', @p);
}
is($on_disk, phases_built($s->{stderr}), 'built_from: the phases that built rows');
my $grew_mb = (peak_kb() - $before) / 1024;
diag(sprintf("peak resident memory grew by %.1f MB", $grew_mb));
cmp_ok($grew_mb, '<', 300, 'the build\'s page-by-page inserts gave their memory back');
is($node->safe_psql('postgres', q{SELECT count(*) FROM quantumdb.verify('t_idx')}), '0',
	'the index verifies clean');
is($node->safe_psql('postgres', q{SELECT nodes FROM quantumdb.index_info('t_idx')}), '7000',
	'every row is in it');
# at m 80 not one row of the first batch (1,024 rows) fits with its vector:
# the graph is built from codes alone
$s->{stderr} = '';
$s->query(q{CREATE TABLE t1100 AS SELECT * FROM t WHERE id <= 1100});
$s->query(q{CREATE INDEX t1100_idx ON t1100 USING quantumdb (emb)
	WITH (compressor = 'c1', m = 80, ef_construction = 160)});
like($s->{stderr}, qr/graph with vectors no longer fits in maintenance_work_mem after 0 rows/,
	'at m 80 not one row fits with its vector');
is($node->safe_psql('postgres', q{SELECT built_from FROM quantumdb.index_info('t1100_idx')}),
	phases_built($s->{stderr}), 'built_from then names the codes alone');
$s->quit;
# the NOTICE that the sample shrank to fit maintenance_work_mem comes only
# when the table had more rows than were kept (it told a 600-row table that
# it sampled thousands of rows, not the 2,900 asked)
my $shrink = sub {
	my ($rows) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', qq{
		SET maintenance_work_mem = '8MB';
		CREATE TABLE s$rows AS SELECT * FROM t WHERE id <= $rows;
		SELECT training_rows FROM quantumdb.train('s$rows', 's$rows', 'emb', kind => 'pq',
			subvectors => 8, kmeans_iters => 2, sample => 6900, validation => 0)});
	is($ret, 0, "training on $rows rows at 8MB succeeds");
	return ($out, $err);
};
my ($kept, $err) = $shrink->(7000);
like($err, qr/samples (\d+) rows, not 6900, to stay within maintenance_work_mem/,
	"a table of more rows than fit: the NOTICE ($kept kept)");
cmp_ok($kept, '<', 6900, 'and the sample is smaller');
# asked for more rows than the table holds: the NOTICE and its hint name
# the table's rows, not the sample asked (it told a 30,000-row table to
# make room for 51,000)
my ($ret0, $out0, $err0) = $node->psql('postgres', q{
	SET maintenance_work_mem = '8MB';
	SELECT training_rows FROM quantumdb.train('s7000b', 's7000', 'emb', kind => 'pq',
		subvectors => 8, kmeans_iters => 2, sample => 50000, validation => 0)});
is($ret0, 0, 'training with a sample larger than the table succeeds');
like($err0, qr/samples $out0 rows, not 7000, to stay within maintenance_work_mem/,
	"the NOTICE names the table's 7,000 rows, not the 50,000 asked ($out0 kept)");
like($err0, qr/HINT:  SET maintenance_work_mem = '(\d+)MB' to sample all 7000 rows\./,
	'and so does its hint');
my ($mb_table) = $err0 =~ /'(\d+)MB' to sample all 7000/;
# the hint's setting is enough: every row sampled, no NOTICE
my ($ret1, $out1, $err1) = $node->psql('postgres', qq{
	SET maintenance_work_mem = '${\($mb_table // 1)}MB';
	SELECT training_rows FROM quantumdb.train('s7000c', 's7000', 'emb', kind => 'pq',
		subvectors => 8, kmeans_iters => 2, sample => 50000, validation => 0)});
is($out1, '7000', "at the hint's setting (" . ($mb_table // 'none') . " MB) every row is sampled");
unlike($err1, qr/samples \d+ rows, not/, 'and no NOTICE');
# validation => 0: the last NOTICE says there was no split (it printed the
# missing recall as "-1.000"; session 58's hunt, O2)
like($err1, qr/NOTICE:  trained "s7000c" in [\d.]+ s, without a validation split/,
	'a training without a validation split says so');
unlike($err1, qr/-1\.000/, 'and prints no recall of -1');
my ($all, $err2) = $shrink->(600);
unlike($err2, qr/samples \d+ rows, not/, 'a table of fewer rows than fit: no NOTICE');
is($all, '600', 'and every row is sampled');
# nor for a table of more rows than fit, but fewer distinct vectors
my ($ret, $out, $err3) = $node->psql('postgres', q{
	SET maintenance_work_mem = '8MB';
	CREATE TABLE dup AS SELECT s.id, s.emb FROM t s, generate_series(1, 10) WHERE s.id <= 600;
	SELECT training_rows FROM quantumdb.train('dup', 'dup', 'emb', kind => 'pq',
		subvectors => 8, kmeans_iters => 2, sample => 6900, validation => 0)});
is($out, '600', 'a table of 6,000 rows, 600 distinct: every distinct vector sampled');
unlike($err3, qr/samples \d+ rows, not/, 'and no NOTICE');

# at shared_buffers 16, PostgreSQL's least, a build of more than 16 pages
# WAL-logs its pages in runs the buffers hold (log_newpage_range pins 32 at
# once: every such build failed at its very end, "no unpinned buffers
# available"; session 60's settings hunt).  At wal_level replica: under
# minimal, PostgreSQL itself logs a relation made in the transaction at its
# commit (smgrDoPendingSyncs), with the same 32 pins, for any index.
my $small = PostgreSQL::Test::Cluster->new('sb16');
$small->init(allows_streaming => 1);
$small->append_conf('postgresql.conf', "shared_buffers = 16\nautovacuum = off\n");
$small->start;
my ($sb_ret, $sb_out, $sb_err) = $small->psql('postgres', q{
	CREATE EXTENSION quantumdb;
	CREATE TABLE t (id int, emb real[]);
	INSERT INTO t SELECT i, (SELECT array_agg(sin(i * 0.377 + j * 1.91)::real)
	                         FROM generate_series(1, 32) j)
	FROM generate_series(1, 2000) i;
	SELECT compressor FROM quantumdb.train('c1', 't', 'emb', kind => 'pq',
		subvectors => 8, kmeans_iters => 2, validation => 0);
	CREATE INDEX t_idx ON t USING quantumdb (emb) WITH (compressor = 'c1', m = 16);
	SELECT pages FROM quantumdb.index_info('t_idx')});
is($sb_ret, 0, 'at shared_buffers 16 the build succeeds') or diag($sb_err);
my ($sb_pages) = ($sb_out // '') =~ /^(\d+)\s*\z/m;
cmp_ok($sb_pages // 0, '>', 32, "with more pages than the buffers (" . ($sb_pages // 'none') . ")");
is($small->safe_psql('postgres', q{SELECT count(*) FROM quantumdb.verify('t_idx')}), '0',
	'and the index verifies clean');
$small->stop;

done_testing();
