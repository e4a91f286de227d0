# An index without a compressor takes its dimensions from the first row it
# is given, and another row's only where no row of them is left in the
# table (index_insert.c, untrained_dim).  A row another transaction is still
# inserting counts (the heap search uses a dirty snapshot, not the
# inserter's MVCC one, which would not see it): while it may commit, a row
# of other dimensions is refused; once it rolled back, taken.  So does a
# row this transaction deleted, while the delete may roll back.
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

# a row this transaction deleted counts while the delete may roll back (a
# DELETE of the last rows of 3 then an insert of 2, rolled back, left the
# index at 2 beside them: every later row of 2 was taken, and scans and
# REINDEX failed on the mix; session 61's hunt)
$node->safe_psql('postgres', q{
	CREATE TABLE u3 (id int, emb real[]);
	CREATE INDEX u3_idx ON u3 USING quantumdb (emb);
	INSERT INTO u3 VALUES (1, '{1,2,3}')});
my $dims3 = q{SELECT dimensions FROM quantumdb.index_info('u3_idx')};
($ret, $out, $err) = $node->psql('postgres', q{
	BEGIN;
	DELETE FROM u3;
	INSERT INTO u3 VALUES (2, '{1,2}');
	COMMIT});
like($err, qr/vector has 2 dimensions, but index "u3_idx" has 3/,
	'a row of 2 after this transaction\'s DELETE of the rows of 3 is refused');
is($node->safe_psql('postgres', $dims3), '3', 'the index keeps 3 dimensions');
($ret, $out, $err) = $node->psql('postgres', q{INSERT INTO u3 VALUES (3, '{7,8}')});
like($err, qr/vector has 2 dimensions, but index "u3_idx" has 3/, 'and refuses a row of 2 after the rollback');
($ret, $out, $err) = $node->psql('postgres', q{
	BEGIN;
	SAVEPOINT s;
	UPDATE u3 SET emb = '{1,2}';
	ROLLBACK TO SAVEPOINT s;
	INSERT INTO u3 VALUES (4, '{5,6}');
	COMMIT}, on_error_stop => 0);
my $refusals = () = $err =~ /vector has 2 dimensions, but index "u3_idx" has 3/g;
is($refusals, 2, 'an UPDATE to 2 dimensions in a savepoint is refused too, and so is a row of 2 after ROLLBACK TO');
is($node->safe_psql('postgres', q{SELECT string_agg(array_length(emb, 1)::text, ',') FROM u3}), '3',
	'the table holds rows of 3 alone');
# a row this transaction inserted, deleted in a savepoint: the delete may
# be undone too (session 61's review)
$node->safe_psql('postgres', q{
	CREATE TABLE u4 (id int, emb real[]);
	CREATE INDEX u4_idx ON u4 USING quantumdb (emb)});
($ret, $out, $err) = $node->psql('postgres', q{
	BEGIN;
	INSERT INTO u4 VALUES (1, '{1,2,3}');
	SAVEPOINT a;
	DELETE FROM u4;
	INSERT INTO u4 VALUES (2, '{1,2}');
	ROLLBACK TO SAVEPOINT a;
	COMMIT}, on_error_stop => 0);
like($err, qr/vector has 2 dimensions, but index "u4_idx" has 3/,
	'a row of 2 after deleting, in a savepoint, this transaction\'s own row of 3 is refused');
is($node->safe_psql('postgres', q{SELECT dimensions FROM quantumdb.index_info('u4_idx')}), '3',
	'and the index keeps 3 dimensions');
# a row inserted by the deleting (sub)transaction, or inside it, is gone
# whatever rolls back: it does not keep the dimensions (session 61's second
# review, F1.1: the first was refused)
$node->safe_psql('postgres', q{
	CREATE TABLE u5 (id int, emb real[]);
	CREATE INDEX u5_idx ON u5 USING quantumdb (emb);
	BEGIN;
	INSERT INTO u5 VALUES (1, '{1,2,3}');
	DELETE FROM u5;
	INSERT INTO u5 VALUES (2, '{1,2,3,4}');
	COMMIT});
is($node->safe_psql('postgres', q{SELECT dimensions FROM quantumdb.index_info('u5_idx')}), '4',
	'a row of 4 after this transaction inserted and deleted the only row of 3 sets 4');
$node->safe_psql('postgres', q{
	CREATE TABLE u6 (id int, emb real[]);
	CREATE INDEX u6_idx ON u6 USING quantumdb (emb);
	BEGIN;
	SAVEPOINT outer_sp;
	SAVEPOINT inner_sp;
	INSERT INTO u6 VALUES (1, '{1,2,3}');
	RELEASE SAVEPOINT inner_sp;
	DELETE FROM u6;
	INSERT INTO u6 VALUES (2, '{1,2,3,4}');
	RELEASE SAVEPOINT outer_sp;
	COMMIT});
is($node->safe_psql('postgres', q{SELECT dimensions FROM quantumdb.index_info('u6_idx')}), '4',
	'so does a row inserted in a savepoint inside the one that deleted it');
($ret, $out, $err) = $node->psql('postgres', q{
	CREATE TABLE u7 (id int, emb real[]);
	CREATE INDEX u7_idx ON u7 USING quantumdb (emb);
	BEGIN;
	INSERT INTO u7 VALUES (1, '{1,2,3}');
	SAVEPOINT s;
	DELETE FROM u7;
	RELEASE SAVEPOINT s;
	SAVEPOINT t;
	INSERT INTO u7 VALUES (2, '{1,2}');
	COMMIT}, on_error_stop => 0);
like($err, qr/vector has 2 dimensions, but index "u7_idx" has 3/,
	'a delete in a released savepoint of a row inserted outside it still keeps the dimensions');
# a delete that committed frees the dimensions
$node->safe_psql('postgres', q{DELETE FROM u3; INSERT INTO u3 VALUES (5, '{1,2}')});
is($node->safe_psql('postgres', $dims3), '2', 'after a committed DELETE a row of 2 sets them');
$node->stop;
done_testing();
