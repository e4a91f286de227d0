# Concurrent use of one quantumdb index for 15 seconds: three pgbench clients
# insert rows, two search the index (each answer must have 10 rows in
# distance order), one deletes rows and runs VACUUM in a loop and one runs
# verify(), which must report no damage while they change the index.  No
# client may fail; afterwards verify() is clean, a full index scan returns
# every row (but those of the few unreachable nodes, reported), searches
# for the rows themselves mostly find them and, after a last VACUUM, there
# is one live node per row, all reachable.
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
my $seconds = 15;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', qq{
max_connections = 30
deadlock_timeout = 100ms
log_lock_waits = on
});
$node->start;
create_indexed_items($node, $copy, 1000);

# Each row of glove goes into items at most once at a time (the primary key),
# so no two live rows share a vector.
my %scripts = (
	insert => q{
\set id random(0, 1999)
INSERT INTO items SELECT id, emb FROM glove WHERE id = :id ON CONFLICT (id) DO NOTHING;
},
	# a failed cast fails the client when an answer is short or unordered,
	# its error saying how many rows came back and how many out of order
	query => q{
\set id random(0, 1999)
SET enable_seqscan = off;
SET quantumdb.ef_search = 40;
SET quantumdb.rerank = 40;
SELECT CASE WHEN count(*) = 10 AND bool_and(d >= prev) THEN 1
            ELSE ('short or unordered: ' || count(*) || ' rows, ' ||
                  count(*) FILTER (WHERE d < prev) || ' out of order')::int END
FROM (SELECT d, lag(d, 1, 0.0::float8) OVER (ORDER BY n) AS prev
      FROM (SELECT emb <=> (SELECT emb FROM glove WHERE id = :id) AS d,
                   row_number() OVER () AS n
            FROM (SELECT emb FROM items
                  ORDER BY emb <=> (SELECT emb FROM glove WHERE id = :id) LIMIT 10) top) s) t;
},
	delete => q{
DELETE FROM items WHERE id IN (SELECT (random() * 1999)::int FROM generate_series(1, 20));
VACUUM items;
},
	# verify beside them reports no damage (the state a VACUUM under way
	# passes through is two summary rows): it read a map of all nodes first,
	# and the nodes inserts added or reused after it were reported as
	# missing or free (2,642 rows in 30 calls of the fourth sweep's run)
	verify => q{
SELECT CASE WHEN count(*) = 0 THEN 1 ELSE ('verify: ' || string_agg(v, '; '))::int END
FROM quantumdb.verify('items_idx') v
WHERE v !~ '^(\d+ links from \d+ live nodes lead to deleted nodes|the entry point is deleted while live nodes remain):';
},);
my %clients = (insert => 3, query => 2, delete => 1, verify => 1);

like($node->safe_psql('postgres', q{SET enable_seqscan = off;
		EXPLAIN (COSTS OFF) SELECT emb FROM items
		ORDER BY emb <=> (SELECT emb FROM glove WHERE id = 1) LIMIT 10}),
	qr/Index Scan using items_idx/, 'the query script uses the index');

my %runs;
for my $kind (sort keys %scripts)
{
	my $file = "$PostgreSQL::Test::Utils::tmp_check/$kind.sql";
	PostgreSQL::Test::Utils::append_to_file($file, $scripts{$kind});
	my $r = { out => '', err => '' };
	$r->{h} = IPC::Run::start(
		[
			'pgbench', '-n', '-c', $clients{$kind}, '-j', $clients{$kind},
			'-T', $seconds, '-f', $file, '-h', $node->host, '-p', $node->port,
			'postgres'
		],
		'<', \undef, '>', \$r->{out}, '2>', \$r->{err},
		IPC::Run::timeout($seconds + $PostgreSQL::Test::Utils::timeout_default));
	$runs{$kind} = $r;
}
for my $kind (sort keys %runs)
{
	my $r = $runs{$kind};
	my $ok = $r->{h}->finish;
	my ($done) = $r->{out} =~ /number of transactions actually processed: (\d+)/;
	my ($failed) = $r->{out} =~ /number of failed transactions: (\d+)/;
	note("$kind: " . ($done // '?') . " transactions");
	ok($ok, "$kind clients: pgbench exits with status 0") or diag($r->{out}, $r->{err});
	cmp_ok($done // 0, '>', 0, "$kind clients: transactions done");
	is($failed // 0, 0, "$kind clients: no failed transaction");
	unlike($r->{err}, qr/error|deadlock/i, "$kind clients: no error");
}
ok(!$node->log_contains(qr/deadlock detected|PANIC|TRAP/), 'no deadlock or crash in the server log');

my $verify_sql = "SELECT string_agg(v, E'\\n') FROM quantumdb.verify('items_idx') v";
my $info_sql = q{SELECT nodes, deleted_nodes, unreachable_nodes, (SELECT count(*) FROM items)
	FROM quantumdb.index_info('items_idx')};


# Each row searched for with its own vector should be among the 5 nearest
# (5 leaves room for near-duplicates).  Reported at ef_search 40; only a
# collapse of the graph fails the test (the graph is approximate, and
# churn degrades it: see the rebuilt index's number at the end).
sub check_self_search
{
	my ($what) = @_;
	my ($rows, $missed) = split /\|/, $node->safe_psql('postgres', q{
		SET enable_seqscan = off; SET enable_bitmapscan = off;
		SET quantumdb.ef_search = 40; SET quantumdb.rerank = 40;
		SELECT (SELECT count(*) FROM items), count(*) FROM items t
		WHERE t.id NOT IN (SELECT i.id FROM items i ORDER BY i.emb <=> t.emb LIMIT 5)});
	note("$what: $missed of $rows rows not among the 5 nearest to their own vector at ef_search 40");
	cmp_ok($missed, '<=', int($rows / 10), "$what: searches find the rows themselves");
}

my ($live, $deleted, $unreachable, $rows) = split /\|/, $node->safe_psql('postgres', $info_sql);
note("after the run: $rows rows; index nodes: $live live, $deleted deleted, $unreachable unreachable");
is($node->safe_psql('postgres', $verify_sql), '', 'verify finds no problem');
cmp_ok($live, '>=', $rows, 'a live node for every row');
# the deleter's last VACUUM linked back what was unreachable then; the
# inserts after it may have left a few (reported; the bound is loose)
cmp_ok($unreachable, '<=', int($rows / 100), 'few unreachable nodes');
check_all_rows_indexed($node, 'after the run', $unreachable);
check_self_search('after the run');

# a calibration the deleter's last VACUUM started (calibrate_after_vacuum)
# holds a snapshot while it runs, as a query would, and this VACUUM could
# not remove what was deleted after it: wait for it to end
$node->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'quantumdb calibrate'})
	or die 'a calibration worker did not end';
$node->safe_psql('postgres', 'VACUUM items');
($live, $deleted, $unreachable, $rows) = split /\|/, $node->safe_psql('postgres', $info_sql);
note("after VACUUM: $rows rows; index nodes: $live live, $deleted deleted, $unreachable unreachable");
is($live, $rows, 'after VACUUM: one live node per row');
is($unreachable, '0', 'after VACUUM: no unreachable node');
is($node->safe_psql('postgres', $verify_sql), '', 'after VACUUM: verify finds no problem');
check_all_rows_indexed($node, 'after VACUUM', 0);

# the same rows in a freshly built index, for comparison
$node->safe_psql('postgres', q{DROP INDEX items_idx;
	CREATE INDEX items_idx ON items USING quantumdb (emb real_cosine_ops)
		WITH (compressor = 'c1', m = 8, ef_construction = 64)});
check_self_search('rebuilt index');

$node->stop;
done_testing();
