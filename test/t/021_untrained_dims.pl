# An index without a compressor takes its dimensions from the first row it
# is given, and another row's only where no row of them is left in the
# table (index_insert.c, untrained_dim).  A row another transaction is still
# inserting counts (the heap search uses a dirty snapshot, not the
# inserter's MVCC one, which would not see it): while it may commit, a row
# of other dimensions is refused; once it rolled back, taken.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION quantumdb;
	SET client_min_messages = warning;
	CREATE TABLE u (id int, emb real[]);
	CREATE INDEX u_idx ON u USING quantumdb (emb)});
my $dims = q{SELECT dimensions FROM quantumdb.index_info('u_idx')};

my $first = $node->background_psql('postgres', on_error_stop => 1);
$first->query_safe(q{BEGIN; INSERT INTO u VALUES (1, '{1,2,3}')});
is($node->safe_psql('postgres', $dims), '3', 'the first row, not committed yet, set 3 dimensions');

my ($ret, $out, $err) = $node->psql('postgres', q{INSERT INTO u VALUES (2, '{1,1}')});
isnt($ret, 0, 'a row of 2 dimensions is refused while the first may still commit');
like($err, qr/vector has 2 dimensions, but index "u_idx" has 3/, '... with the dimensions error');

$first->query_safe('ROLLBACK');
$first->quit;
$node->safe_psql('postgres', q{INSERT INTO u VALUES (2, '{1,1}')});
is($node->safe_psql('postgres', $dims), '2', 'once it rolled back, the next row sets 2');

($ret, $out, $err) = $node->psql('postgres', q{INSERT INTO u VALUES (3, '{1,2,3}')});
like($err, qr/vector has 3 dimensions, but index "u_idx" has 2/,
	'and a committed row of 2 keeps them');
$node->stop;
done_testing();
