# quantumdb.max_calibration_workers bounds the calibration workers of the
# whole cluster (session 66's hunt, /work/runs/hunt-s66e.md F1: VACUUMs of
# 30 databases at once ran up to 14, and a parallel query launched none of
# its workers).  With 1: a worker held in one database (behind a lock, as
# in t/019: a SHARE lock holds the VACUUM back, an ACCESS EXCLUSIVE request
# queues behind the VACUUM, and the worker, started at the VACUUM's end,
# queues behind that) keeps the place; the worker a VACUUM starts in a
# second database notes its index and leaves; the first, at its end, starts
# one there, which calibrates the index with no VACUUM of its own.  And
# a note no worker serves (a restart) is served by the next VACUUM of any
# quantumdb index of its database.
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
$node->append_conf('postgresql.conf', "autovacuum = off\nquantumdb.max_calibration_workers = 1\n");
$node->start;
my $taken = q{SELECT min(taken_at) FROM quantumdb.calibration('t_idx')};
my %t0;
for my $db ('adb', 'bdb')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION quantumdb;' . synthetic_indexed_sql('t', 800));
	$t0{$db} = $node->safe_psql($db, $taken);
	isnt($t0{$db}, '', "$db: the build calibrated the index");
	# a third of the rows gone: the next VACUUM finds the index smaller by
	# more than a quarter
	$node->safe_psql($db, 'DELETE FROM t WHERE id % 3 = 0');
}

sub waiting
{
	my ($what) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND $what")
	  or die "not waiting on a lock: $what";
}

# adb's worker, held behind an ACCESS EXCLUSIVE request
my $holder = $node->background_psql('adb');
$holder->query_safe('BEGIN; LOCK TABLE t IN SHARE MODE');
my $vacuum = $node->background_psql('adb');
$vacuum->query_until(qr/started/, "\\echo started\nVACUUM t;\n");
waiting(q{datname = 'adb' AND query LIKE 'VACUUM t%'});
my $blocker = $node->background_psql('adb');
$blocker->query_until(qr/started/, "\\echo started\nBEGIN;\nLOCK TABLE t IN ACCESS EXCLUSIVE MODE;\n");
waiting(q{datname = 'adb' AND query LIKE 'LOCK TABLE t IN ACCESS EXCLUSIVE%'});
my $offset = -s $node->logfile;
$holder->query_safe('COMMIT');
$vacuum->query_safe('SELECT 1');	# the VACUUM has ended
$blocker->query_safe('SELECT 1');	# the blocker holds its lock
waiting(q{datname = 'adb' AND backend_type = 'quantumdb calibrate'});

# bdb's worker finds no place
$node->safe_psql('bdb', 'VACUUM t');
ok(wait_log($node, qr/LOG:  1 background workers calibrate indexes at a time \(quantumdb.max_calibration_workers\), none free: the first of them to end starts another for this index/, $offset),
	'the worker started in the second database leaves');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = 'bdb' AND backend_type = 'quantumdb calibrate'"),
	'and has ended');
is($node->safe_psql('bdb', $taken), $t0{bdb}, 'without calibrating');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'quantumdb calibrate'"),
	'1', 'one calibration worker runs in the cluster');

# the first worker goes on, and at its end starts one for bdb's index
$blocker->query_safe('COMMIT');
ok(wait_log($node, qr/LOG:  started a background worker to calibrate the index with OID [0-9]+ of the database with OID [0-9]+, which waited for a place \(quantumdb.max_calibration_workers\)/, $offset),
	'the first worker, at its end, starts one for the index that waited');
ok($node->poll_query_until('bdb', "SELECT ($taken) > '$t0{bdb}'"),
	'which calibrates it with no VACUUM of its own');
ok($node->poll_query_until('adb', "SELECT ($taken) > '$t0{adb}'"),
	'the first database\'s index is calibrated too');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'quantumdb calibrate'"),
	'no worker is left');

# 2. an index noted with no worker to serve it, grown by half (as a server restart leaves
# such notes: session 67's hunt, /work/runs/hunt-s67c.md F2): the next
# VACUUM of any quantumdb index of the database starts a worker for it
my $t1 = $node->safe_psql('bdb', $taken);
$node->safe_psql('bdb', q{INSERT INTO t SELECT id + 1000, emb FROM t LIMIT 400;
	CREATE TABLE w (id int, emb real[]);
	INSERT INTO w SELECT id, emb FROM t LIMIT 300;
	CREATE INDEX w_idx ON w USING quantumdb (emb) WITH (compressor = 'c1', m = 8)});
my $bdb = $node->safe_psql('bdb', q{SELECT oid FROM pg_database WHERE datname = 'bdb'});
my $t_idx = $node->safe_psql('bdb', q{SELECT 't_idx'::regclass::oid});
my $note = $node->data_dir . "/pg_stat_tmp/quantumdb_calibrate_waiting.$bdb";
open(my $fh, '>', $note) or die "$note: $!";
print $fh "$t_idx\n";
close($fh);
$offset = -s $node->logfile;
$node->safe_psql('bdb', 'VACUUM w');
ok($node->poll_query_until('bdb', "SELECT ($taken) > '$t1'"),
	'a VACUUM of another index starts a worker for the index noted');
ok($node->log_contains(qr/LOG:  started a background worker to calibrate the index with OID $t_idx of the database with OID $bdb, noted earlier/, $offset),
	'and logs it');
ok(!-e $note, 'the note is gone');
unlike(slurp_file($node->logfile), qr/terminated by signal|TRAP:|PANIC:/, 'no process crashed');

$_->quit for ($holder, $vacuum, $blocker);
$node->stop;
done_testing();
