# Damaged node and meta pages are an ERROR, never a crash: scans, inserts,
# VACUUM, index_info and verify read every node through checks of its line
# pointer, size and level, and the meta page's settings are checked when it
# is read.  Twenty indexes, each damaged in its own way (ten chosen kinds of
# damage, then seeded random bytes), each put through every reader.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;
my $n = 20;
$node->safe_psql('postgres', q{
	CREATE EXTENSION quantumdb;
	CREATE TABLE src (id int, emb real[]);
	INSERT INTO src
	SELECT i, (SELECT array_agg(sin(i * 0.377 + j * 1.91 + (i % 11) * j)::real)
	           FROM generate_series(1, 32) j)
	FROM generate_series(1, 800) i;
	SELECT compressor FROM quantumdb.train('c1', 'src', 'emb', kind => 'pq',
		subvectors => 8, kmeans_iters => 5, validation => 0);
});
for my $k (0 .. $n - 1)
{
	$node->safe_psql('postgres', qq{
		CREATE TABLE t$k AS SELECT * FROM src;
		DELETE FROM t$k WHERE id % 10 = 0;
		CREATE INDEX t${k}_idx ON t$k USING quantumdb (emb) WITH (compressor = 'c1', m = 8);
	});
}

my $blcksz = $node->safe_psql('postgres', 'SHOW block_size');
my %path = map { $_ => $node->data_dir . '/' . $node->safe_psql('postgres',
	"SELECT pg_relation_filepath('t${_}_idx')") } 0 .. $n - 1;

sub poke
{
	my ($k, $blkno, $offset, $bytes) = @_;
	open(my $fh, '+<', $path{$k}) or die "open: $!";
	binmode $fh;
	seek($fh, $blkno * $blcksz + $offset, 0) or die "seek: $!";
	print $fh $bytes;
	close($fh);
}

sub peek
{
	my ($k, $blkno, $offset, $len) = @_;
	open(my $fh, '<', $path{$k}) or die "open: $!";
	binmode $fh;
	seek($fh, $blkno * $blcksz + $offset, 0) or die "seek: $!";
	read($fh, my $bytes, $len) == $len or die "read: $!";
	close($fh);
	return $bytes;
}

$node->stop;
# meta page: magic at 24, then int32 dim, metric, code_size, m,
# ef_construction, entry, entry_level, insert_page, first_node_page
my $first = unpack('L', peek(0, 0, 64, 4));
my $nblocks = (-s $path{0}) / $blcksz;
note("first node page $first, $nblocks blocks");
# line pointer of node off: 4 bytes at 24 + 4 (off - 1); lp_off 15 bits,
# flags 2 bits, lp_len 15 bits
my $lp = sub { my ($off) = @_; return 24 + 4 * ($off - 1); };
my $tuple_at = sub {
	my ($k, $blkno, $off) = @_;
	return unpack('L', peek($k, $blkno, $lp->($off), 4)) & 0x7FFF;
};
my @damage = (
	[ 'node level 255', sub { poke($_[0], $first, $tuple_at->($_[0], $first, 1) + 1, chr(255)) } ],
	[ 'line pointer past the page', sub { poke($_[0], $first, $lp->(1), pack('L', 8000 | (1 << 15) | (600 << 17))) } ],
	[ 'line pointer of 3 bytes', sub {
		my $o = $tuple_at->($_[0], $first, 2);
		poke($_[0], $first, $lp->(2), pack('L', $o | (1 << 15) | (3 << 17))) } ],
	[ 'unused line pointer', sub { poke($_[0], $first, $lp->(3), pack('L', 0)) } ],
	[ 'neighbour list garbage', sub { poke($_[0], $first, $tuple_at->($_[0], $first, 1) + 16, pack('L*', 0x00ABCDEF, 0xFFFFFF01, 0x00000102, 0x7FFFFF05)) } ],
	[ 'pd_lower beyond the page', sub { poke($_[0], $first, 12, pack('S', 9000)) } ],
	[ 'meta entry level 200', sub { poke($_[0], 0, 56, pack('l', 200)) } ],
	[ 'meta m 0', sub { poke($_[0], 0, 44, pack('l', 0)) } ],
	[ 'special space garbage', sub { poke($_[0], $first, $blcksz - 4, pack('L', 0xDEADBEEF)) } ],
	[ 'level 1 on a level-0 node', sub {
		for my $off (1 .. 40)
		{
			my $o = $tuple_at->($_[0], $first, $off);
			if (ord(peek($_[0], $first, $o + 1, 1)) == 0) { poke($_[0], $first, $o + 1, chr(1)); last; }
		}
	} ],
);
srand(20261201);
for my $k (0 .. $n - 1)
{
	if ($k < @damage)
	{
		note("t$k: $damage[$k][0]");
		$damage[$k][1]->($k);
	}
	else
	{
		my $blk = $first + int(rand($nblocks - $first));
		my $what = '';
		for (1 .. 16)
		{
			my $off = int(rand($blcksz));
			poke($k, $blk, $off, chr(int(rand(256))));
			$what .= " $off";
		}
		note("t$k: 16 random bytes in block $blk at$what");
	}
}
$node->start;

my ($errors, $alive) = (0, 0);
for my $k (0 .. $n - 1)
{
	my $q = "(SELECT emb FROM src WHERE id = 7)";
	my @sql = (
		"SET enable_seqscan = off; SET quantumdb.ef_search = 1000; SELECT id FROM t$k ORDER BY emb <~> $q LIMIT 5",
		"SET enable_seqscan = off; SELECT id FROM t$k WHERE id % 3 = 0 ORDER BY emb <~> $q LIMIT 50",
		"INSERT INTO t$k SELECT id + 5000, emb FROM src WHERE id <= 20",
		"DELETE FROM t$k WHERE id % 7 = 0; VACUUM t$k",
		"SELECT * FROM quantumdb.index_info('t${k}_idx')",
		"SELECT * FROM quantumdb.verify('t${k}_idx')",
	);
	my $failed = 0;
	for my $sql (@sql)
	{
		my ($rc, $out, $err) = $node->psql('postgres', $sql);
		if ($rc != 0)
		{
			$failed++;
			note("t$k: $sql\n  => $err");
		}
	}
	$errors++ if $failed;
	$alive++ if $node->safe_psql('postgres', 'SELECT 1') eq '1';
	if ($k < @damage)
	{
		my ($rc, $out, $err) = $node->psql('postgres',
			"SET enable_seqscan = off; SELECT id FROM t$k ORDER BY emb <~> (SELECT emb FROM src WHERE id = 7) LIMIT 5");
		my $verify = $node->safe_psql('postgres', "SELECT count(*) FROM quantumdb.verify('t${k}_idx')");
		ok($rc != 0 || $verify > 0 || $failed > 0,
			"t$k ($damage[$k][0]): noticed, by an ERROR or by verify");
		like($err, qr/REINDEX/, "t$k: the scan's ERROR says to REINDEX") if $rc != 0;
	}
}
is($alive, $n, 'the server answered after every damaged index');
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no server process crashed');

# REINDEX repairs every one
for my $k (0 .. $n - 1)
{
	$node->safe_psql('postgres', "REINDEX INDEX t${k}_idx");
}
is($node->safe_psql('postgres', join(' UNION ALL ', map { "SELECT * FROM quantumdb.verify('t${_}_idx')" } 0 .. $n - 1)),
	'', 'after REINDEX every index verifies clean');
$node->stop;
done_testing();
