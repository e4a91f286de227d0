# The calibration worker a VACUUM starts (calibrate_after_vacuum) waits at
# most 10 s for a lock: held behind a lock taken before it asks, it logs
# the timeout with a CONTEXT line that names the index and says what comes
# next, and the next VACUUM that finds the index's size changed starts a
# worker that calibrates it and logs so, with a CONTEXT line that says no
# more than what it was doing.  The order is made, not raced for: a SHARE lock
# holds the VACUUM back, an ACCESS EXCLUSIVE request queues behind the
# VACUUM, and the worker, started at the VACUUM's end, queues behind that.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::RealBin;
use QdbIndexCheck;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION quantumdb;' . synthetic_indexed_sql('t', 800));
my $taken = q{SELECT min(taken_at) FROM quantumdb.calibration('t_idx')};
my $t0 = $node->safe_psql('postgres', $taken);
isnt($t0, '', 'the build calibrated the index');

# a third of the rows gone: the next VACUUM finds the index smaller by more
# than a quarter
$node->safe_psql('postgres', 'DELETE FROM t WHERE id % 3 = 0');

sub waiting
{
	my ($what) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND $what")
	  or die "not waiting on a lock: $what";
}

my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN; LOCK TABLE t IN SHARE MODE');
my $vacuum = $node->background_psql('postgres');
$vacuum->query_until(qr/started/, "\\echo started\nVACUUM t;\n");
waiting(q{query LIKE 'VACUUM t%'});
my $blocker = $node->background_psql('postgres');
$blocker->query_until(qr/started/, "\\echo started\nBEGIN;\nLOCK TABLE t IN ACCESS EXCLUSIVE MODE;\n");
waiting(q{query LIKE 'LOCK TABLE t IN ACCESS EXCLUSIVE%'});
my $log_offset = -s $node->logfile;
$holder->query_safe('COMMIT');
$vacuum->query_safe('SELECT 1');	# the VACUUM has ended
$blocker->query_safe('SELECT 1');	# the blocker holds its lock
waiting(q{backend_type = 'quantumdb calibrate'});

# the worker gives up after 10 s
my $log = '';
for (my $i = 0; $i < 300 && $log !~ /lock timeout/; $i++)
{
	usleep(100_000);
	$log = slurp_file($node->logfile, $log_offset);
}
$blocker->query_safe('COMMIT');
like($log, qr/ERROR:  canceling statement due to lock timeout\n[^\n]*CONTEXT:  calibrating index public\.t_idx again after VACUUMs changed its size or replaced its rows; the next such VACUUM tries again\n/,
	'the worker\'s timeout names the index and what comes next');
is($node->safe_psql('postgres', $taken), $t0, 'and the calibration is the build\'s');

# the next VACUUM tries again, and its worker calibrates
$node->safe_psql('postgres', 'VACUUM t');
ok($node->poll_query_until('postgres', "SELECT ($taken) > '$t0'"),
	'the next VACUUM\'s worker calibrates the index');
# its LOG line (written before the commit the poll saw) says what it did,
# and not what happens after a failure
like(slurp_file($node->logfile, $log_offset),
	qr/LOG:  quantumdb: index "t_idx" calibrated again[^\n]*\n[^\n]*CONTEXT:  calibrating index public\.t_idx again after VACUUMs changed its size or replaced its rows\n/,
	'the worker\'s success is logged without "the next such VACUUM tries again"');
unlike(slurp_file($node->logfile, $log_offset), qr/terminated by signal|TRAP:|PANIC:/,
	'no process crashed');

$_->quit for ($holder, $vacuum, $blocker);
$node->stop;
done_testing();
