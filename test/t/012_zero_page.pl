# An all-zero page in the index: what a crash leaves when it falls between
# extending the index (not WAL-logged) and logging the new page's first
# node.  003_crash.pl meets it by chance; here one is made on purpose by
# appending a zero block to the index's file while the server is down.
# verify() finds no problem, scans and inserts work, VACUUM offers the page
# for reuse and the next insert puts its node there instead of extending.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use QdbIndexCheck;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION quantumdb;' . synthetic_indexed_sql('items', 400));

my $blcksz = $node->safe_psql('postgres', 'SHOW block_size');
my $path = $node->data_dir . '/'
  . $node->safe_psql('postgres', "SELECT pg_relation_filepath('items_idx')");
my $blocks = sub { $node->safe_psql('postgres', "SELECT pg_relation_size('items_idx') / $blcksz") };
my $verify = "SELECT coalesce(string_agg(v, E'\\n'), '') FROM quantumdb.verify('items_idx') v";
my $search = q{SET enable_seqscan = off; SET quantumdb.ef_search = 100; SET quantumdb.rerank = 20;
	SELECT i.id FROM items i ORDER BY i.emb <~> (SELECT emb FROM items WHERE id = %d) LIMIT 1};

$node->stop;
my $zero_blkno = (-s $path) / $blcksz;
open(my $fh, '>>', $path) or die "open: $!";
binmode $fh;
print $fh "\0" x $blcksz;
close($fh);
$node->start;

is($blocks->(), $zero_blkno + 1, 'the index has a zero page at its end');
is($node->safe_psql('postgres', $verify), '', 'verify finds no problem with the zero page');
is($node->safe_psql('postgres', sprintf($search, 17)), '17', 'a search finds a row');

# New rows fill the insert page, then extend past the zero page.
$node->safe_psql('postgres', q{
	INSERT INTO items
	SELECT i, (SELECT array_agg(cos(i * 0.291 + j * 1.37 + (i % 7) * j)::real)
	           FROM generate_series(1, 32) j)
	FROM generate_series(401, 700) i;
});
my $after_inserts = $blocks->();
note("zero page $zero_blkno, blocks after the inserts $after_inserts");
cmp_ok($after_inserts, '>', $zero_blkno + 1, 'inserts extended the index past the zero page');
is($node->safe_psql('postgres', $verify), '', 'verify is clean after the inserts');

# VACUUM offers the zero page; the next insert takes it.
$node->safe_psql('postgres', 'VACUUM items');
$node->safe_psql('postgres', q{
	INSERT INTO items
	SELECT 701, (SELECT array_agg(sin(j * 0.5)::real) FROM generate_series(1, 32) j);
});
is($blocks->(), $after_inserts, 'the insert after VACUUM did not extend the index');
$node->safe_psql('postgres', 'CHECKPOINT');
open($fh, '<', $path) or die "open: $!";
binmode $fh;
seek($fh, $zero_blkno * $blcksz, 0) or die "seek: $!";
read($fh, my $page, $blcksz) == $blcksz or die "read: $!";
close($fh);
isnt($page, "\0" x $blcksz, 'the zero page now holds a node');
is($node->safe_psql('postgres', $verify), '', 'verify is clean after the page was reused');
is($node->safe_psql('postgres', sprintf($search, 701)), '701', 'the row on the reused page is found');
is($node->safe_psql('postgres',
	"SELECT nodes - deleted_nodes FROM quantumdb.index_info('items_idx')"),
	'701', 'a live node for every row');

$node->stop;
ok(!grep({ /terminated by signal/ } split /\n/, slurp_file($node->logfile)),
	'no server process was terminated by a signal');
done_testing();
