# VACUUM links every live node back where a walk from the entry can reach
# it, without cutting others off (session 57's concurrency hunt,
# /work/runs/hunt-s57b.md F1).  Its repair forced a link into a full list
# at the cost of a member that had another link in, though that link could
# come from a node reached only through the member (two copies of one
# vector listing each other) or from a deleted node: each VACUUM linked
# some such islands back and cut others off, and their rows were not
# found.  A churn of inserts (a sixth of them copies of one vector),
# deletes and VACUUMs cut short by a timeout, with two whole VACUUMs every
# 20 rounds: no live node may stay unreached.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use QdbIndexCheck;

my $copy = $ENV{QDB_GLOVE_COPY} or die "QDB_GLOVE_COPY is not set";

my $node = start_quiet_node('main');
$node->safe_psql('postgres', qq{
	CREATE EXTENSION quantumdb;
	CREATE TABLE src (id int PRIMARY KEY, emb real[]);
	COPY src FROM '$copy';
	CREATE TABLE g (id serial, emb real[]);
});
my $n = $node->safe_psql('postgres', 'SELECT count(*) FROM src');
my $next = 0;

# rows $next .. $next + $k - 1 of src (cyclically), a sixth of them copies of row 42
sub insert_rows
{
	my ($k, $seed) = @_;
	$node->safe_psql('postgres', qq{
		SELECT setseed($seed);
		INSERT INTO g (emb)
		SELECT CASE WHEN random() < 0.16 THEN (SELECT emb FROM src WHERE id = 42) ELSE s.emb END
		FROM generate_series($next, $next + $k - 1) i JOIN src s ON s.id = i % $n ORDER BY i;
	});
	$next += $k;
}

insert_rows(1800, 0.1);
$node->safe_psql('postgres', q{
	SELECT compressor FROM quantumdb.train('gc', 'g', 'emb', metric => 'cosine', validation => 0);
	CREATE INDEX gi ON g USING quantumdb (emb real_cosine_ops)
		WITH (compressor = 'gc', m = 16, ef_construction = 101, inline_codes = on);
});
# what the VACUUMs' repairs said (at DEBUG2, info->message_level): nodes linked back, walks again
my ($linked_back, $rewalks) = (0, 0);
sub vacuum_said
{
	my ($err) = @_;
	$linked_back += $1 while $err =~ /linked back (\d+) nodes/g;
	$rewalks += $1 while $err =~ /made again (\d+) times/g;
}

# before the VACUUMs: a scan that asks for every row gets every row, the
# nodes no walk reaches too (the sweep, src/index_scan_sweep.c); counted
# when some were unreached
my $swept_checks = 0;
sub check_full_scan
{
	my ($when) = @_;
	my $info = $node->safe_psql('postgres',
		q{SELECT unreachable_nodes FROM quantumdb.index_info('gi')});
	return if $info eq '0';
	$swept_checks++;
	my $got = $node->safe_psql('postgres', q{
		SET enable_seqscan = off;
		SET quantumdb.iterative_scan = relaxed_order;
		SET quantumdb.rerank = 0;
		SET quantumdb.max_scan_tuples = 1000000;
		SELECT (SELECT count(*) || ' ' || count(DISTINCT id) FROM (SELECT id FROM g
			ORDER BY emb <=> (SELECT emb FROM src WHERE id = 7) LIMIT 1000000) s)
			|| ' ' || (SELECT count(*) FROM g)});
	my ($scanned, $distinct, $rows) = split / /, $got;
	is("$scanned $distinct", "$rows $rows",
		"$when, with $info nodes unreached, a full index scan returns all $rows rows, each once");
}

# two whole VACUUMs; then no live node may be unreached
sub check_reach
{
	my ($when) = @_;
	check_full_scan($when);
	for (1 .. 2)
	{
		my ($ret, $out, $err) = $node->psql('postgres', 'SET client_min_messages = debug2; VACUUM g');
		die "VACUUM failed: $err" if $ret != 0;
		vacuum_said($err);
	}
	my $info = $node->safe_psql('postgres',
		q{SELECT nodes || ' ' || deleted_nodes || ' ' || unreachable_nodes FROM quantumdb.index_info('gi')});
	my (undef, undef, $unreached) = split / /, $info;
	is($unreached, '0',
		"$when, after two VACUUMs no live node is unreached (nodes, deleted, unreached: $info)");
	is($node->safe_psql('postgres', q{SELECT count(*) FROM quantumdb.verify('gi')}), '0',
		'and the index verifies clean');
}

srand(2);
for my $it (0 .. 59)
{
	insert_rows(50 + int(rand(100)), ($it + 1) / 100.0);
	my $d = 30 + int(rand(100));
	$node->safe_psql('postgres', qq{
		SELECT setseed(-($it + 1) / 100.0);
		DELETE FROM g WHERE id IN (SELECT id FROM g ORDER BY random() LIMIT $d);
	});
	if ($it % 4 == 3)
	{
		# cut short: some nodes are left unlinked, for the repair
		my $ms = 20 + int(rand(200));
		my (undef, undef, $err) = $node->psql('postgres', "SET statement_timeout = $ms; SET client_min_messages = debug2; VACUUM g");
		vacuum_said($err);
	}
	# checked three times: the old rule's cuts depend on the churn
	check_reach("after round $it") if $it % 20 == 19;
}
diag("the repairs linked back $linked_back nodes and walked again $rewalks times");
cmp_ok($swept_checks, '>', 0, "some full scans met unreached nodes ($swept_checks)");
cmp_ok($linked_back, '>', 0, "the churn gave the repair nodes to link back ($linked_back, walks again: $rewalks)");
done_testing();
