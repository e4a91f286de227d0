# A build indexes the row versions that snapshots older than it may still
# see (recently dead).  One of other dimensions than the index's (the rows
# re-embedded by another model), or with a NaN or a null element, is left
# out: the build failed on it while
# any older snapshot lived, on any table of the database (hunt of session
# 53), and CREATE INDEX then keeps those older transactions off the index
# (indcheckxmin), as for a broken HOT chain.  One too long for l2 stays
# the build's ERROR: an older snapshot's sequential scan ranks it (review
# of session 53).  And an insert the index refuses because the index is
# not valid (a failed REINDEX CONCURRENTLY leaves one that still takes
# every insert) says so in its hint.
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
	CREATE TABLE base16 (id int, emb real[]);
	INSERT INTO base16 SELECT i, array(SELECT sin(i * 0.37 + j * 1.3)::real
	                                   FROM generate_series(1, 16) j)
	FROM generate_series(1, 600) i;
	SELECT quantumdb.train('c16', 'base16', 'emb', kind => 'pq', subvectors => 4);
	CREATE TABLE dd (id int PRIMARY KEY, emb real[]);
	INSERT INTO dd SELECT i, array(SELECT cos(i * 0.11 + j)::real FROM generate_series(1, 8) j)
	FROM generate_series(1, 500) i;
	CREATE TABLE ll (id int PRIMARY KEY, emb real[]);
	INSERT INTO ll SELECT id, emb FROM base16 WHERE id <= 300;
	UPDATE ll SET emb = array_fill(1e20::real, ARRAY[16]) WHERE id = 1;
	CREATE TABLE nn (id int PRIMARY KEY, emb real[]);
	INSERT INTO nn SELECT id, emb FROM base16 WHERE id <= 300;
	UPDATE nn SET emb[3] = 'NaN' WHERE id = 1;
	UPDATE nn SET emb[5] = NULL WHERE id = 2});

# an old snapshot, on another table (rows are deleted and inserted again:
# an UPDATE that stays on its page, a HOT update, leaves a version no build
# indexes, and PostgreSQL sets indcheckxmin for it itself)
my $old = $node->background_psql('postgres', on_error_stop => 1);
$old->query_safe(q{BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM base16});

$node->safe_psql('postgres', q{
	DELETE FROM dd;
	INSERT INTO dd SELECT id, emb FROM base16 WHERE id <= 500;
	DELETE FROM ll WHERE id = 1;
	INSERT INTO ll SELECT id, emb FROM base16 WHERE id = 1;
	DELETE FROM nn WHERE id <= 2;
	INSERT INTO nn SELECT id, emb FROM base16 WHERE id <= 2});
is($node->safe_psql('postgres', 'SELECT min(array_length(emb, 1)) FROM dd'), '16',
	'every live row has 16 dimensions');

my ($rc, $out, $err) = $node->psql('postgres',
	q{CREATE INDEX dd_idx ON dd USING quantumdb (emb) WITH (compressor = 'c16')});
is($rc, 0, 'CREATE INDEX with a compressor, while an old snapshot sees 8-dimensional versions')
	or diag($err);
($rc, $out, $err) = $node->psql('postgres',
	q{SET client_min_messages = warning; CREATE INDEX dd_own ON dd USING quantumdb (emb)});
is($rc, 0, 'CREATE INDEX that trains its own compressor, the same') or diag($err);
($rc, $out, $err) = $node->psql('postgres', 'REINDEX INDEX dd_idx');
is($rc, 0, 'REINDEX, the same') or diag($err);
is($node->safe_psql('postgres', q{SELECT string_agg(indcheckxmin::text, ',' ORDER BY indexrelid)
	FROM pg_index WHERE indexrelid IN ('dd_idx'::regclass, 'dd_own'::regclass)}), 'true,true',
	'CREATE INDEX that left versions out keeps older transactions off the index');
is($old->query_safe(q{SET enable_seqscan = off; EXPLAIN (COSTS OFF)
	SELECT id FROM dd ORDER BY emb <~> array_fill(0::real, ARRAY[16]) LIMIT 3}) =~ /dd_idx|dd_own/
	? 'index' : 'no index', 'no index', '... so the old transaction plans without it');
($rc, $out, $err) = $node->psql('postgres',
	q{CREATE INDEX ll_idx ON ll USING quantumdb (emb) WITH (compressor = 'c16')});
like($err, qr/vector is too long for l2 and ip distances/,
	'a version too long for l2 that an old snapshot sees stays the ERROR');
($rc, $out, $err) = $node->psql('postgres',
	q{CREATE INDEX nn_idx ON nn USING quantumdb (emb) WITH (compressor = 'c16')});
is($rc, 0, 'CREATE INDEX while an old snapshot sees versions with a NaN and a null element')
	or diag($err);
is($node->safe_psql('postgres', q{SELECT nodes FROM quantumdb.index_info('nn_idx')}), '300',
	'... which it leaves out');

is($node->safe_psql('postgres', q{SELECT nodes FROM quantumdb.index_info('dd_idx')}), '500',
	'the index holds the live versions, not the dead ones of other dimensions');
for my $idx ('dd_idx', 'dd_own', 'nn_idx')
{
	is($node->safe_psql('postgres', qq{SELECT count(*) FROM quantumdb.verify('$idx')}), '0',
		"verify finds nothing wrong in $idx");
}
my $q = q{SELECT id FROM dd ORDER BY emb <~> (SELECT emb FROM base16 WHERE id = 250) LIMIT 5};
my $exact = $node->safe_psql('postgres', "SET enable_indexscan = off; $q");
my $got = $node->safe_psql('postgres',
	"SET enable_seqscan = off; SET quantumdb.rerank = 1000; SET quantumdb.ef_search = 1000; $q");
is($got, $exact, 'a scan through the index finds the exact nearest');
$old->query_safe('COMMIT');
$old->quit;
($rc, $out, $err) = $node->psql('postgres',
	q{CREATE INDEX ll_idx ON ll USING quantumdb (emb) WITH (compressor = 'c16')});
is($rc, 0, '... and builds once that snapshot is gone') or diag($err);

# an index that is not valid refuses a row it cannot hold, and says why it still takes inserts
$node->safe_psql('postgres', 'DROP INDEX dd_own');
$node->safe_psql('postgres',
	q{UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'dd_idx'::regclass});
($rc, $out, $err) = $node->psql('postgres',
	q{INSERT INTO dd VALUES (1000, array_fill(1::real, ARRAY[8]))});
like($err, qr/vector has 8 dimensions, but index "dd_idx" has 16/,
	'an insert of other dimensions is refused');
like($err, qr/HINT:  Index \S*dd_idx is not valid: .* One that failed takes every insert until it is dropped \(DROP INDEX\)\./,
	'... and the hint says the index is not valid and takes inserts until dropped');

unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no server process crashed');
$node->stop;
done_testing();
