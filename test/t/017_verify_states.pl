# What quantumdb.verify reports for the state a VACUUM stopped between its
# passes leaves (live nodes linking to nodes marked deleted, not yet
# relinked), made here by setting the deleted flag of nodes whose rows
# were deleted, as VACUUM's first pass does: one row that says what it is
# and that the next VACUUM repairs it, not one row per link; and that the
# next VACUUM does.  Then thirty nodes marked free while still linked (damage):
# one row per problem, at most 1,000, and a row counting the rest.  Then
# the entry point deleted so (a VACUUM stopped before choosing another): a
# row of its own, not damage, and the next VACUUM repairs it.
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
$node->safe_psql('postgres', 'CREATE EXTENSION quantumdb;' . synthetic_indexed_sql('t', 800) . q{
	CREATE TABLE u AS SELECT * FROM t;
	CREATE INDEX u_idx ON u USING quantumdb (emb) WITH (compressor = 'c1', m = 8);
	CREATE TABLE w AS SELECT * FROM t;
	CREATE INDEX w_idx ON w USING quantumdb (emb) WITH (compressor = 'c1', m = 8);
});
is($node->safe_psql('postgres', q{SELECT count(*) FROM quantumdb.verify('t_idx')}), '0',
	'a new index verifies clean');

my $blcksz = $node->safe_psql('postgres', 'SHOW block_size');
my %path = map { $_ => $node->data_dir . '/' . $node->safe_psql('postgres',
	"SELECT pg_relation_filepath('$_')") } ('t_idx', 'u_idx', 'w_idx');

sub io
{
	my ($rel, $pos, $len, $bytes) = @_;
	open(my $fh, '+<', $path{$rel}) or die "open: $!";
	binmode $fh;
	seek($fh, $pos, 0) or die "seek: $!";
	if (defined $bytes) { print $fh $bytes; }
	else { read($fh, $bytes, $len) == $len or die "read: $!"; }
	close($fh);
	return $bytes;
}

# the nodes of the first node page: (position of the tuple, heap ctid)
sub first_page_nodes
{
	my ($rel) = @_;
	my $first = unpack('L', io($rel, 64, 4));
	my $base = $first * $blcksz;
	my $lower = unpack('S', io($rel, $base + 12, 2));
	my @nodes;
	for my $off (1 .. ($lower - 24) / 4)
	{
		my $lp = unpack('L', io($rel, $base + 24 + 4 * ($off - 1), 4));
		next unless (($lp >> 15) & 3) == 1;			# LP_NORMAL
		my $at = $base + ($lp & 0x7FFF);
		my ($hi, $lo, $posn) = unpack('S S S', io($rel, $at + 2, 6));
		push @nodes, [ $at, '(' . (($hi << 16) | $lo) . ",$posn)" ];
	}
	return @nodes;
}

# the entry point (the meta page's), as (position of the tuple, heap ctid)
sub entry_node
{
	my ($rel) = @_;
	my $ref = unpack('L', io($rel, 52, 4));
	my $base = ($ref >> 8) * $blcksz;
	my $lp = unpack('L', io($rel, $base + 24 + 4 * (($ref & 0xFF) - 1), 4));
	my $at = $base + ($lp & 0x7FFF);
	my ($hi, $lo, $posn) = unpack('S S S', io($rel, $at + 2, 6));
	return [ $at, '(' . (($hi << 16) | $lo) . ",$posn)" ];
}

# (read with the server stopped: the pages are on disk)
$node->stop;
my @t_nodes = (first_page_nodes('t_idx'))[0 .. 4];
my @u_nodes = (first_page_nodes('u_idx'))[0 .. 29];
my $w_entry = entry_node('w_idx');
$node->start;
# 1. pass 1 of a VACUUM, then a crash: the rows are gone, their nodes deleted
$node->safe_psql('postgres', 'DELETE FROM t WHERE ctid = ANY (ARRAY['
	. join(',', map { "'$_->[1]'::tid" } @t_nodes) . '])');
# 3. the same for the entry point's row, before VACUUM chose another entry
$node->safe_psql('postgres', "DELETE FROM w WHERE ctid = '$w_entry->[1]'::tid");
# 2. thirty nodes marked free and deleted while other nodes still link to them
$node->stop;
io('t_idx', $_->[0], 1, chr(1)) for @t_nodes;
io('u_idx', $_->[0], 1, chr(3)) for @u_nodes;
io('w_idx', $w_entry->[0], 1, chr(1));
$node->start;

my $rows = $node->safe_psql('postgres', q{SELECT * FROM quantumdb.verify('t_idx')});
my @rows = split /\n/, $rows;
is(scalar @rows, 1, 'links to deleted nodes are one row');
like($rows, qr/^\d+ links from \d+ live nodes lead to deleted nodes: a VACUUM under way, or one that stopped before relinking them, leaves this, and the next VACUUM that removes dead rows from the index repairs it$/,
	'which says what they are');
# a scan returns every live row of table; after VACUUM, verify is clean
sub scan_then_vacuum
{
	my ($table, $live, $what) = @_;
	is($node->safe_psql('postgres', qq{SET enable_seqscan = off; SET quantumdb.rerank = 800;
		SELECT count(*) FROM (SELECT id FROM $table
		ORDER BY emb <~> (SELECT emb FROM $table WHERE id = 400) LIMIT 800) s}),
		$live, "$what: a scan still returns every live row");
	$node->safe_psql('postgres', "VACUUM $table");
	is($node->safe_psql('postgres', qq{SELECT count(*) FROM quantumdb.verify('${table}_idx')}),
		'0', "$what: the next VACUUM repairs it");
}
scan_then_vacuum('t', '795', 'links to deleted nodes');

$rows = $node->safe_psql('postgres', q{SELECT * FROM quantumdb.verify('u_idx')});
@rows = split /\n/, $rows;
is(scalar @rows, 1001, 'damage: at most 1,000 rows and one more');
like($rows[0], qr/links to free node|free node .* still has links/, 'each names a problem');
like($rows[-1], qr/^and \d+ more problems$/, 'the last counts the rest');

$rows = $node->safe_psql('postgres', q{SELECT * FROM quantumdb.verify('w_idx')});
@rows = split /\n/, $rows;
is(scalar @rows, 2, 'a deleted entry point: the links to it and the entry, one row each');
like($rows[1], qr/^the entry point is deleted while live nodes remain: a VACUUM under way, or one that stopped before choosing another, leaves this/,
	'the entry point\'s row says what it is');
scan_then_vacuum('w', '799', 'a deleted entry point');

$node->stop;
done_testing();
