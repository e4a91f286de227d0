# Crash recovery of the quantumdb index.  Four clients insert rows one per
# transaction while the server crashes: first a backend killed with SIGKILL
# (the postmaster reinitializes), then an immediate shutdown.  After each
# crash: verify() is clean, every committed insert is in the table, a full
# index scan returns every row and searches for the rows themselves find
# them.  A final VACUUM must leave one live node per row, all reachable.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use QdbIndexCheck;
use IPC::Run;

my $copy = $ENV{QDB_GLOVE_COPY} or die "QDB_GLOVE_COPY is not set";
my $nclients = 4;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->start;
create_indexed_items($node, $copy, 500);


# Each row searched for with its own vector is among the 5 nearest (5
# leaves room for near-duplicates).  The graph is approximate: up to 1%
# may be missed at ef_search 200.
my $self_search = 'SET enable_seqscan = off; SET enable_bitmapscan = off; '
  . 'SET quantumdb.ef_search = 200; SET quantumdb.rerank = 200;';
sub check_self_search
{
	my ($what) = @_;
	my ($rows, $missed, $ids) = split /\|/, $node->safe_psql('postgres', qq{$self_search
		SELECT (SELECT count(*) FROM items), count(*), string_agg(t.id::text, ',' ORDER BY t.id)
		FROM items t
		WHERE t.id NOT IN (SELECT i.id FROM items i ORDER BY i.emb <=> t.emb LIMIT 5)});
	note("$what: $missed of $rows rows not found by searching for their own vector"
		  . ($missed ? " ($ids)" : ''));
	cmp_ok($missed, '<=', int($rows / 100), "$what: searches find the rows themselves");
}

like($node->safe_psql('postgres', "$self_search EXPLAIN (COSTS OFF) "
	  . "SELECT t.id FROM items t WHERE t.id NOT IN (SELECT i.id FROM items i ORDER BY i.emb <=> t.emb LIMIT 5)"),
	qr/Index Scan using items_idx/, 'the per-row search uses the index');
check_all_rows_indexed($node, 'before any crash', 0);
check_self_search('before any crash');

# Starts the clients: client k inserts the glove rows lo..hi with id % 4 = k,
# each in its own transaction, and prints the ids whose commit returned.
# Between inserts it searches the index and sleeps a little, so that the
# crash finds the clients still at work.
sub start_clients
{
	my ($lo, $hi, $tag) = @_;
	my @clients;
	for my $k (0 .. $nclients - 1)
	{
		my $base = "$PostgreSQL::Test::Utils::tmp_check/$tag-client$k";
		my $sql = "SET enable_seqscan = off;\n" . join('',
			map {
				"INSERT INTO items SELECT id, emb FROM glove WHERE id = $_ RETURNING id;\n"
				  . "SELECT count(*) FROM (SELECT i.id FROM items i ORDER BY i.emb <=> "
				  . "(SELECT emb FROM glove WHERE id = $_ - 1) LIMIT 10) s \\g /dev/null\n"
				  . "SELECT pg_sleep(0.005) \\g /dev/null\n"
			} grep { $_ % $nclients == $k } $lo .. $hi);
		PostgreSQL::Test::Utils::append_to_file("$base.sql", $sql);
		my $h = IPC::Run::start(
			[
				'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d',
				$node->connstr('postgres') . " application_name=inserter$k",
				'-f', "$base.sql"
			],
			'<', \undef, '>', "$base.out", '2>', "$base.err",
			IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
		push @clients, { h => $h, out => "$base.out", err => "$base.err" };
	}
	return \@clients;
}

# Waits for the clients to exit; returns the ids they saw committed.
sub finish_clients
{
	my ($clients) = @_;
	my @ids;
	for my $c (@$clients)
	{
		$c->{h}->finish;
		push @ids, grep { /^\d+$/ } split /\n/, slurp_file($c->{out});
		my $err = slurp_file($c->{err});
		note("client stderr: $err") if $err ne '';
	}
	return @ids;
}

# Waits until the clients have added $n rows, so the crash hits them mid-run.
sub wait_for_rows
{
	my ($n) = @_;
	$node->poll_query_until('postgres', "SELECT count(*) >= $n FROM items")
	  or die "the clients did not insert $n rows";
}

# Checks after a crash; the clients inserted ids lo..hi.
sub check_after_crash
{
	my ($what, $lo, $hi, @committed) = @_;
	my %present = map { $_ => 1 } split /,/,
	  $node->safe_psql('postgres', "SELECT string_agg(id::text, ',') FROM items WHERE id BETWEEN $lo AND $hi");
	my $expected = $hi - $lo + 1;
	note("$what: " . scalar(@committed) . " inserts seen committed, "
		  . scalar(keys %present) . " of $expected rows present");
	cmp_ok(scalar(@committed), '>', 0, "$what: some inserts committed before the crash");
	cmp_ok(scalar(keys %present), '<', $expected, "$what: the crash interrupted the clients");
	is(join(',', grep { !$present{$_} } @committed), '', "$what: every committed insert survived");
	is($node->safe_psql('postgres', "SELECT string_agg(v, E'\\n') FROM quantumdb.verify('items_idx') v"),
		'', "$what: verify finds no problem");
	my ($live, $deleted, $unreachable) = split /\|/, $node->safe_psql('postgres',
		"SELECT nodes, deleted_nodes, unreachable_nodes FROM quantumdb.index_info('items_idx')");
	my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM items');
	note("$what: $rows rows; index nodes: $live live, $deleted deleted, $unreachable unreachable");
	cmp_ok($live, '>=', $rows, "$what: a live node for every row");
	# An insert adds its node, then links it, in separate WAL records; so a
	# crash may leave the node of an insert it rolled back, unlinked (until
	# VACUUM).  Each client had at most one insert in flight.
	cmp_ok($live - $rows, '<=', $nclients, "$what: extra live nodes only for the inserts in flight");
	check_all_rows_indexed($node, $what, $unreachable);
	check_self_search($what);
}

# 1. SIGKILL of one inserting backend: the postmaster kills the others and
#    runs crash recovery without a restart of the cluster
my $log_offset = -s $node->logfile;
my $clients = start_clients(500, 1249, 'kill');
$node->poll_query_until('postgres',
	"SELECT count(*) = $nclients FROM pg_stat_activity WHERE application_name LIKE 'inserter%'")
  or die 'the clients did not connect';
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE application_name = 'inserter0'");
wait_for_rows(500 + 100);
ok(kill('KILL', $pid), "SIGKILL to the backend of client 0 ($pid)")
  or BAIL_OUT('client 0 was gone before the crash: the clients were too fast');
my @committed = finish_clients($clients);
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
$node->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'the server did not come back after SIGKILL';
check_after_crash('after SIGKILL', 500, 1249, @committed);

# 2. immediate shutdown (no checkpoint, no clean exit) and a restart
$clients = start_clients(1250, 1999, 'immediate');
wait_for_rows($node->safe_psql('postgres', 'SELECT count(*) FROM items') + 100);
$node->stop('immediate');
@committed = finish_clients($clients);
$node->start;
check_after_crash('after immediate stop', 1250, 1999, @committed);

# 3. VACUUM removes the nodes of the inserts the crashes rolled back and the
#    rows deleted now, and the graph stays whole
$node->safe_psql('postgres', 'DELETE FROM items WHERE id % 7 = 0; VACUUM items');
my ($live, $unreachable) = split /\|/, $node->safe_psql('postgres',
	"SELECT nodes, unreachable_nodes FROM quantumdb.index_info('items_idx')");
is($live, $node->safe_psql('postgres', 'SELECT count(*) FROM items'),
	'after VACUUM: one live node per row');
is($unreachable, '0', 'after VACUUM: no unreachable node');
is($node->safe_psql('postgres', "SELECT string_agg(v, E'\\n') FROM quantumdb.verify('items_idx') v"),
	'', 'after VACUUM: verify finds no problem');
check_all_rows_indexed($node, 'after VACUUM', 0);
check_self_search('after VACUUM');

$node->stop;
done_testing();
