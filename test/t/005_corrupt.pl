# An index whose pages no longer hold what the code expects is an ERROR that
# says to REINDEX, verify() names the damage, and REINDEX repairs it: a
# flipped byte in the index's copy of its compressor, and a meta page from
# another format version (a compressor format of an older library is read).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use QdbIndexCheck;

my $copy = $ENV{QDB_GLOVE_COPY} or die "QDB_GLOVE_COPY is not set";

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;
create_indexed_items($node, $copy, 600);

my $query = q{SET enable_seqscan = off;
	SELECT id FROM items ORDER BY emb <=> (SELECT emb FROM glove WHERE id = 3) LIMIT 1};
is($node->safe_psql('postgres', $query), '3', 'healthy index finds the row');

my $path = $node->data_dir . '/'
  . $node->safe_psql('postgres', q{SELECT pg_relation_filepath('items_idx')});
my $blcksz = $node->safe_psql('postgres', 'SHOW block_size');

# Overwrites len bytes at offset within block blkno of the index file.
sub poke
{
	my ($blkno, $offset, $bytes) = @_;
	open(my $fh, '+<', $path) or die "open $path: $!";
	binmode $fh;
	seek($fh, $blkno * $blcksz + $offset, 0) or die "seek: $!";
	print $fh $bytes;
	close($fh);
}

# Reads len bytes at offset within block blkno.
sub peek
{
	my ($blkno, $offset, $len) = @_;
	open(my $fh, '<', $path) or die "open $path: $!";
	binmode $fh;
	seek($fh, $blkno * $blcksz + $offset, 0) or die "seek: $!";
	read($fh, my $bytes, $len) == $len or die "read: $!";
	close($fh);
	return $bytes;
}

# 1. one byte of the compressor (block 1, past the page header) flipped
$node->stop;
my $byte = peek(1, 200, 1);
poke(1, 200, chr(ord($byte) ^ 0xFF));
$node->start;
my ($rc, $out, $err) = $node->psql('postgres', $query);
isnt($rc, 0, 'a damaged compressor is an error');
like($err, qr/fails its checksum/, 'the error says the checksum fails');
like($err, qr/REINDEX INDEX public\.items_idx;/, 'the hint says to REINDEX');
like($node->safe_psql('postgres', q{SELECT string_agg(v, '; ') FROM quantumdb.verify('items_idx') v}),
	qr/fails its checksum/, 'verify names the damage');
$node->safe_psql('postgres', 'REINDEX INDEX items_idx');
is($node->safe_psql('postgres', $query), '3', 'after REINDEX the row is found again');
is($node->safe_psql('postgres', q{SELECT count(*) FROM quantumdb.verify('items_idx')}), '0',
	'after REINDEX verify is clean');

# 2. the meta page says another format version (the 4-byte word after the
# magic, which follows the 24-byte page header)
$path = $node->data_dir . '/'
  . $node->safe_psql('postgres', q{SELECT pg_relation_filepath('items_idx')});
$node->stop;
poke(0, 28, pack('V', 99));
$node->start;
($rc, $out, $err) = $node->psql('postgres', $query);
isnt($rc, 0, 'an index of another format is an error');
like($err, qr/has format 99/, 'the error names the format');
like($err, qr/REINDEX INDEX public\.items_idx;/, 'the hint says to REINDEX');
like($node->safe_psql('postgres', q{SELECT string_agg(v, '; ') FROM quantumdb.verify('items_idx') v}),
	qr/format 99/, 'verify names the format');
$node->safe_psql('postgres', 'REINDEX INDEX items_idx');
is($node->safe_psql('postgres', $query), '3', 'after REINDEX the row is found again');

# 2b. the compressor format the meta page records: the library's that wrote
# it (offset 56 of the meta data).  An index written by 0.1.0 says 1, and its
# model (format 1 unless kind rq) is read: it must stay usable after an
# upgrade (it could not even be vacuumed); one from a newer library is not
$path = $node->data_dir . '/'
  . $node->safe_psql('postgres', q{SELECT pg_relation_filepath('items_idx')});
$node->stop;
is(unpack('V', peek(0, 80, 4)), 2, 'this library writes compressor format 2');
poke(0, 80, pack('V', 1));
$node->start;
is($node->safe_psql('postgres', $query), '3', 'an index of compressor format 1 is read');
is($node->safe_psql('postgres', q{SELECT count(*) FROM quantumdb.verify('items_idx')}), '0',
	'verify passes it');
$node->safe_psql('postgres', q{INSERT INTO items SELECT 100000 + id, emb FROM glove WHERE id < 20;
	DELETE FROM items WHERE id >= 100000; VACUUM items});
is($node->safe_psql('postgres', q{SELECT count(*) FROM quantumdb.verify('items_idx')}), '0',
	'inserts and VACUUM work on it');
$node->stop;
poke(0, 80, pack('V', 3));
$node->start;
($rc, $out, $err) = $node->psql('postgres', $query);
like($err, qr/compressor of format 3.*formats 1 to 2/, 'compressor format 3 is refused');
$node->safe_psql('postgres', 'REINDEX INDEX items_idx');
is($node->safe_psql('postgres', $query), '3', 'after REINDEX the row is found again');

# 3. block 0 all zeros, as a build a crash cut short leaves it (the file is
# extended before the pages are logged)
$path = $node->data_dir . '/'
  . $node->safe_psql('postgres', q{SELECT pg_relation_filepath('items_idx')});
$node->stop;
poke(0, 0, "\0" x $blcksz);
$node->start;
is($node->safe_psql('postgres', q{SELECT string_agg(v, '; ') FROM quantumdb.verify('items_idx') v}),
	"block 0 is all zeros: the index's last build did not finish",
	'verify says a zeroed meta page is a build that did not finish');
$node->safe_psql('postgres', 'REINDEX INDEX items_idx');
is($node->safe_psql('postgres', $query), '3', 'after REINDEX the row is found again');

$node->stop;
done_testing();
