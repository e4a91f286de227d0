# COMMIT empties a temporary table ON COMMIT DELETE ROWS and rebuilds its
# indexes in place; that truncation is not transactional, so a rebuild that
# fails there leaves the index without pages.  index_build.c keeps the
# compressor's absence from failing it (sql/rebuild.sql); any other failure
# (here a lock timeout on the compressor catalog, which another session
# holds) must leave an index that says what happened, not "could not read
# block 0", and that REINDEX mends.
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
	CREATE TABLE src (id int, emb real[]);
	INSERT INTO src SELECT i, array(SELECT random()::real + 0 * i FROM generate_series(1, 16))
	FROM generate_series(1, 600) i;
	SELECT quantumdb.train('c', 'src', 'emb', kind => 'pq', subvectors => 4)});

my $s = $node->background_psql('postgres', on_error_stop => 0);

# output and errors of one query in session $s
sub in_session
{
	my ($sql) = @_;
	$s->{stderr} = '';
	my $out = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}

my $scan = q{SET enable_seqscan = off;
	SELECT id FROM oc ORDER BY emb <~> (SELECT emb FROM src WHERE id = 7) LIMIT 1};
my ($out, $err) = in_session(q{SET client_min_messages = warning;
	CREATE TEMP TABLE oc (id int, emb real[]) ON COMMIT DELETE ROWS;
	CREATE INDEX oc_idx ON oc USING quantumdb (emb) WITH (compressor = 'c')});
is($err, '', 'the index of a temporary table ON COMMIT DELETE ROWS names a compressor');

my $locker = $node->background_psql('postgres', on_error_stop => 1);
$locker->query_safe(q{BEGIN; LOCK TABLE quantumdb.compressors IN ACCESS EXCLUSIVE MODE});
($out, $err) = in_session(q{SET lock_timeout = '200ms'; BEGIN;
	INSERT INTO oc SELECT id, emb FROM src WHERE id <= 20; COMMIT});
like($err, qr/lock timeout/, "the rebuild at COMMIT cannot read the catalog: the COMMIT fails");

($out, $err) = in_session(q{INSERT INTO oc SELECT id, emb FROM src WHERE id <= 20});
like($err, qr/index "oc_idx" has no pages: its last build did not finish/,
	'an insert then says the index has no pages');
unlike($err, qr/could not read block/, '... not that a block could not be read');
($out, $err) = in_session($scan);
like($err, qr/index "oc_idx" has no pages/, 'so does a scan through it');

$locker->query_safe('COMMIT');
$locker->quit;
($out, $err) = in_session(q{REINDEX INDEX oc_idx; BEGIN;
	INSERT INTO oc SELECT id, emb FROM src WHERE id <= 20});
is($err, '', 'REINDEX mends it');
($out, $err) = in_session($scan);
is($out, '7', 'the index answers again');
($out, $err) = in_session('COMMIT');
is($err, '', 'and COMMIT rebuilds it');
($out, $err) = in_session(q{SELECT compressor || ' ' || nodes FROM quantumdb.index_info('oc_idx')});
is($out, 'c 0', 'with its compressor, empty');
$s->quit;
$node->stop;
done_testing();
