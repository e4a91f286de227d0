# The training log's background worker and who it runs as, what happens
# when it cannot write, and that waiting for it never hangs the trainer:
#  (a) training as a NOLOGIN role reached with SET ROLE writes one row per
#      epoch, and the server log shows no FATAL (the worker logs in as the
#      session user);
#  (b) a training whose log worker is blocked on a lock stops on
#      pg_cancel_backend and on statement_timeout within seconds;
#  (c) rows that cannot be written are a WARNING, and training goes on.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION quantumdb;
	SELECT setseed(0.5);
	CREATE TABLE r (id int PRIMARY KEY, emb real[]);
	INSERT INTO r SELECT i, array(SELECT random()::real FROM generate_series(1, 16) WHERE i > 0)
		FROM generate_series(1, 600) i;
	CREATE ROLE alice LOGIN;
	CREATE ROLE trainer NOLOGIN;
	GRANT trainer TO alice;
	GRANT SELECT ON r TO trainer;
	GRANT INSERT ON quantumdb.compressors, quantumdb.training_log TO trainer;
});

my $train = q{SELECT quantumdb.train('%s', 'r', 'emb', kind => 'neural', subvectors => 4,
	epochs => %d, patience => 10000, batch_size => 64)};

# (a) a NOLOGIN role reached with SET ROLE
my $log_offset = -s $node->logfile;
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET ROLE trainer; " . sprintf($train, 'nologin', 3),
	extra_params => [ '-U', 'alice' ]);
is($ret, 0, 'training as a NOLOGIN role reached with SET ROLE succeeds');
my $epochs = () = $stderr =~ /training "nologin": epoch \d+\/\d+ on/g;
cmp_ok($epochs, '>', 0, "it runs $epochs epochs");
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM quantumdb.training_log WHERE compressor = 'nologin'}),
	$epochs, 'each epoch run has its log row');
unlike($stderr, qr/WARNING/, 'no WARNING');
my $server_log = slurp_file($node->logfile, $log_offset);
unlike($server_log, qr/FATAL/, 'no FATAL in the server log');

# (c) rows that cannot be written: a WARNING, and the training goes on
$node->safe_psql('postgres', q{
	ALTER TABLE quantumdb.training_log
		ADD CONSTRAINT refuse CHECK (compressor <> 'refused')});
($ret, $stdout, $stderr) = $node->psql('postgres', sprintf($train, 'refused', 2));
is($ret, 0, 'training with an unwritable log succeeds');
like($stderr,
	qr/WARNING:  training "refused": the log row of epoch 0 was not written: .*check constraint "refuse"/,
	'the first lost row is a WARNING with the reason');
like($stderr, qr/WARNING:  training "refused": (\d+) of \1 training log rows of run \d+ were not written/,
	'the end of training counts the lost rows');
is(() = $stderr =~ /WARNING/g, 2, 'two WARNINGs, not one per epoch');
$node->safe_psql('postgres',
	'ALTER TABLE quantumdb.training_log DROP CONSTRAINT refuse');

# (b) a log worker blocked on a lock: the trainer still stops on a cancel
my $locker = $node->background_psql('postgres');
$locker->query_safe(
	'BEGIN; LOCK TABLE quantumdb.training_log IN SHARE MODE');

# waits until the training's log worker waits on the lock
sub worker_blocked
{
	for (my $i = 0; $i < 300; $i++)
	{
		return 1 if $node->safe_psql('postgres', q{
			SELECT count(*) FROM pg_stat_activity
			WHERE backend_type = 'quantumdb training log' AND wait_event_type = 'Lock'}) > 0;
		usleep(100_000);
	}
	return 0;
}

# seconds until the session pid is idle again, or undef after $limit
sub seconds_to_idle
{
	my ($pid, $limit) = @_;
	my $t0 = time;
	while (time - $t0 < $limit)
	{
		return time - $t0 if $node->safe_psql('postgres',
			qq{SELECT state FROM pg_stat_activity WHERE pid = $pid}) eq 'idle';
		usleep(100_000);
	}
	return undef;
}

foreach my $how ('pg_cancel_backend', 'statement_timeout')
{
	my $trainer = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $trainer->query_safe('SELECT pg_backend_pid()');
	# long enough for the first epoch's worker to start on a loaded machine
	$trainer->query_safe("SET statement_timeout = '10s'") if $how eq 'statement_timeout';
	$trainer->query_until(qr/started/,
		"\\echo started\n" . sprintf($train, "blocked_$how", 10000) . ";\n");
	ok(worker_blocked(), "$how: the log worker waits on the lock");
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)")
	  if $how eq 'pg_cancel_backend';
	my $secs = seconds_to_idle($pid, 15);
	ok(defined $secs, "$how: the training stops while the worker is blocked"
		  . (defined $secs ? sprintf(' (%.1f s)', $secs) : ''));
	if (!defined $secs)
	{
		# the old code: only releasing the lock ends the wait
		$locker->query_safe('COMMIT; BEGIN; LOCK TABLE quantumdb.training_log IN SHARE MODE');
		seconds_to_idle($pid, 60);
	}
	$trainer->query('SELECT 1');
	like($trainer->{stderr},
		$how eq 'pg_cancel_backend'
		? qr/canceling statement due to user request/
		: qr/canceling statement due to statement timeout/,
		"$how: the training reports the cancel");
	$trainer->quit;
}
$locker->query_safe('COMMIT');
my $left = 1;
for (my $i = 0; $i < 100 && $left; $i++)
{
	$left = $node->safe_psql('postgres', q{
		SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'quantumdb training log'});
	usleep(100_000) if $left;
}
is($left, 0, 'no log worker is left behind');
$locker->quit;

# (d) the training's own transaction holds the lock its log worker needs:
# the worker gives up after its lock_timeout (5 s) and the row is lost with
# a WARNING, instead of a wait that only a cancel ends
my $t0 = time;
($ret, $stdout, $stderr) = $node->psql('postgres',
	"BEGIN; LOCK TABLE quantumdb.training_log IN SHARE MODE; "
	  . sprintf($train, 'own_lock', 1) . "; COMMIT;",
	timeout => 120);
my $took = time - $t0;
is($ret, 0, 'a training whose own transaction locks the log ends');
like($stderr, qr/were not written/, 'its log rows are lost with a WARNING');
cmp_ok($took, '<', 60, sprintf('it does not wait for a cancel (%.1f s)', $took));

# (e) a role allowed to train inserts rows under the run numbers the next
# runs will take (they come from a sequence): another role's run still
# writes all its rows (before 0.8.2 the key (run, epoch) refused them as
# duplicates, and the refusals told the role how many epochs runs had)
$node->safe_psql('postgres', q{
	CREATE ROLE mallory;
	GRANT INSERT ON quantumdb.training_log TO mallory;
	SET ROLE mallory;
	INSERT INTO quantumdb.training_log (run, compressor, epoch, device)
	SELECT r, 'junk', e, 'cpu' FROM generate_series(1, 100) r, generate_series(0, 5) e;
});
($ret, $stdout, $stderr) = $node->psql('postgres', sprintf($train, 'after_junk', 2));
is($ret, 0, 'training after another role filled the next run numbers succeeds');
unlike($stderr, qr/WARNING/, 'no row of it is refused');
is($node->safe_psql('postgres', q{
	SELECT count(*) = count(*) FILTER (WHERE l.run::text = c.settings->>'training_log_run')
		AND count(*) > 0
	FROM quantumdb.training_log l, quantumdb.compressors c
	WHERE l.compressor = 'after_junk' AND c.name = 'after_junk'}),
	't', 'its rows are logged under its run');

done_testing();
