# A VACUUM that frees nodes and is then cancelled, while it waits to
# truncate the heap, aborts, and the relcache invalidation that made every
# backend drop the codes it keeps of the index (index_code_cache.c) is lost
# with it; the freed slots are offered for reuse all the same.  The meta
# page's free_generation, moved on before they are, makes a backend's next
# walk forget its codes anyway.  Seen in a backend whose walks cached the
# code of every node: its first scan after the VACUUM reads the pages of
# the nodes it visits again (more shared buffers than the same scan right
# after it: 162, then 117); without the generation both read the same
# (117 and 117, with QdbDiskDescend's QdbCodeCacheSync taken out).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::RealBin;
use QdbIndexCheck;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION quantumdb;' . synthetic_indexed_sql('t', 3000));

# the shared buffers of one scan (rerank 0: the heap is read only for the
# ten rows returned, the same each time)
my $reader = $node->background_psql('postgres', on_error_stop => 1);
$reader->query_safe(q{
	SET enable_seqscan = off; SET quantumdb.rerank = 0;
	SET quantumdb.max_scan_tuples = 100000});
sub scan_buffers
{
	my $plan = $reader->query_safe(q{
		EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF)
		SELECT id FROM t ORDER BY emb <~> (SELECT emb FROM t WHERE id = 7) LIMIT 10});
	return $plan =~ /Index Scan.*?Buffers: shared hit=(\d+)/s ? $1 : undef;
}

# walks that visit every node: each code cached
$reader->query_safe('SET quantumdb.ef_search = 3000');
scan_buffers() for 1 .. 2;
$reader->query_safe('SET quantumdb.ef_search = 40');
my $warm = scan_buffers();
is(scan_buffers(), $warm, "a warm cache: the same buffers scan after scan ($warm)");

# A VACUUM sends an invalidation of its own, at once and aborted or not,
# when it changes the index's statistics in pg_class (before it truncates
# the heap).  So: the heap's last third deleted and a first VACUUM (2,000
# live nodes, 1,000 slots freed); then 500 rows inserted, into freed slots,
# and deleted, and a second VACUUM, cancelled while a reader's lock holds
# back its truncation of the heap, frees their slots with the statistics
# unchanged: nothing but the generation tells the reader.
$node->safe_psql('postgres', 'DELETE FROM t WHERE id > 2000');
$node->safe_psql('postgres', 'VACUUM t');
$node->safe_psql('postgres', q{
	INSERT INTO t SELECT 5000 + i, (SELECT array_agg(cos(i * 0.91 + j * 1.37)::real)
	                                FROM generate_series(1, 32) j)
	FROM generate_series(1, 500) i;
	DELETE FROM t WHERE id > 5000});
my $reusable1 = $node->safe_psql('postgres',
	q{SELECT reusable_nodes FROM quantumdb.index_info('t_idx')});
$reader->query_safe('SET quantumdb.ef_search = 3000');
scan_buffers() for 1 .. 2;
$reader->query_safe('SET quantumdb.ef_search = 40');
my $warm2 = scan_buffers();
is(scan_buffers(), $warm2, "warm again before the second VACUUM ($warm2)");
my $locker = $node->background_psql('postgres', on_error_stop => 1);
$locker->query_safe('BEGIN; SELECT count(*) FROM (SELECT 1 FROM t LIMIT 1) s');
my $vacuum = $node->background_psql('postgres', on_error_stop => 0);
$vacuum->query_until(qr/started/, "\\echo started\nVACUUM t;\n");
my $cancelled = 0;
for (my $i = 0; $i < 300 && !$cancelled; $i++)
{
	my $pid = $node->safe_psql('postgres', q{
		SELECT pid FROM pg_stat_activity WHERE wait_event = 'VacuumTruncate'});
	if ($pid ne '')
	{
		$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
		$cancelled = 1;
	}
	else
	{
		usleep(20_000);
	}
}
$vacuum->query('SELECT 1');
like($vacuum->{stderr}, qr/canceling statement due to user request/,
	'the second VACUUM was cancelled while it waited to truncate the heap');
$vacuum->quit;
$locker->query_safe('COMMIT');
$locker->quit;
my $reusable = $node->safe_psql('postgres',
	q{SELECT reusable_nodes FROM quantumdb.index_info('t_idx')});
cmp_ok($reusable, '>', $reusable1,
	"the cancelled VACUUM freed nodes ($reusable1 before it, $reusable after)");

# the reader's first scan after it reads the pages again; the next, not
my $first = scan_buffers();
my $again = scan_buffers();
cmp_ok($first, '>', $again,
	"the first scan after the VACUUM forgot the cached codes ($first buffers, then $again)");
$reader->quit;

# and the index is whole
is($node->safe_psql('postgres', q{SELECT count(*) FROM quantumdb.verify('t_idx')}), '0',
	'verify finds no problem');
$node->stop;
done_testing();
