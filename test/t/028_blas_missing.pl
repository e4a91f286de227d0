# OpenBLAS is opened on first use (src/blas_load.c), so a server whose
# OpenBLAS cannot be opened still loads quantumdb: scans and inserts of an
# opq index work, and what needs BLAS fails with 58P01 and a hint.  A
# REINDEX that failed so must not leave the index marked as being built:
# that mark turns off the WAL of the index's changes, and the session's
# later inserts were lost in a crash (session 58's review,
# /work/runs/review-s58a.md: 0 of 300 rows found after recovery).
# QDB_BLAS_LIBRARY in the server's environment names the file to open.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use QdbIndexCheck;

my $node = start_quiet_node('main');
$node->safe_psql('postgres', q{
	CREATE EXTENSION quantumdb;
	CREATE TABLE t (id serial PRIMARY KEY, emb real[]);
	INSERT INTO t (emb)
	SELECT ARRAY[sin(i), cos(i * 0.7), sin(i * 0.31), cos(i * 1.3),
	             sin(i * 2.1), cos(i * 0.11), sin(i * 0.53), cos(i * 1.7)]::real[]
	FROM generate_series(1, 400) i;
	SELECT compressor FROM quantumdb.train('c', 't', 'emb', subvectors => 4, validation => 0);
	CREATE INDEX ti ON t USING quantumdb (emb) WITH (compressor = 'c');
});
$node->stop;

$ENV{QDB_BLAS_LIBRARY} = 'libqdb-no-such-blas.so.0';
$node->start;
my ($ret, $out, $err) = $node->psql('postgres', qq{\\set VERBOSITY verbose
	SELECT quantumdb.train('c2', 't', 'emb', subvectors => 4, validation => 0);});
like($err, qr/58P01: could not load libqdb-no-such-blas\.so\.0, which quantumdb's training and encoding need/,
	'training without OpenBLAS: 58P01 naming the file');
like($err, qr/HINT:  Install OpenBLAS/, 'and a hint');

is($node->safe_psql('postgres', q{
	SET enable_seqscan = off;
	INSERT INTO t (emb) VALUES ('{1,1,1,1,1,1,1,1}');
	SELECT count(*) FROM (SELECT id FROM t ORDER BY emb <~> '{0,1,0,1,0,1,0,1}' LIMIT 5) s;}),
	'5', 'an opq index is scanned and takes a row without OpenBLAS');

# in one session: a REINDEX that fails to open OpenBLAS, then inserts
($ret, $out, $err) = $node->psql('postgres', q{
	REINDEX INDEX ti;
	INSERT INTO t (emb)
	SELECT ARRAY[cos(i), sin(i * 0.7), cos(i * 0.31), sin(i * 1.3),
	             cos(i * 2.1), sin(i * 0.11), cos(i * 0.53), sin(i * 1.7)]::real[]
	FROM generate_series(1, 300) i;}, on_error_stop => 0);
like($err, qr/could not load libqdb-no-such-blas/, 'REINDEX without OpenBLAS fails');
$node->stop('immediate');

delete $ENV{QDB_BLAS_LIBRARY};
$node->start;
is($node->safe_psql('postgres', q{
	SELECT (SELECT nodes FROM quantumdb.index_info('ti')) || ' ' || (SELECT count(*) FROM t)}),
	'701 701', 'after a crash the index holds every row inserted after the failed REINDEX');
is($node->safe_psql('postgres', q{SELECT count(*) FROM quantumdb.verify('ti')}), '0',
	'and verifies clean');
done_testing();
