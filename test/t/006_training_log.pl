# Neural training as another session sees it: the rows of
# quantumdb.training_log appear while training still runs (each is
# committed by a background worker), a cancel (pg_cancel_backend) ends the
# training with "canceling statement" and stores no compressor, and the
# cancelled backend's memory is back where it was before training.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $copy = $ENV{QDB_GLOVE_COPY} or die "QDB_GLOVE_COPY is not set";

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION quantumdb;
	CREATE TABLE glove (id int PRIMARY KEY, emb real[]);
	COPY glove FROM '$copy';
});

# a long training in a background session
my $trainer = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $trainer->query_safe('SELECT pg_backend_pid()');
my $before = $trainer->query_safe(
	'SELECT sum(total_bytes) FROM pg_backend_memory_contexts');
$trainer->query_until(qr/started/, q{
	\echo started
	SELECT quantumdb.train('watched', 'glove', 'emb', kind => 'neural', metric => 'cosine',
		epochs => 10000, patience => 10000, batch_size => 64);
});

# rows appear while it runs
my $rows = 0;
for (my $i = 0; $i < 600 && $rows < 3; $i++)
{
	usleep(100_000);
	$rows = $node->safe_psql('postgres',
		q{SELECT count(*) FROM quantumdb.training_log WHERE compressor = 'watched'});
}
cmp_ok($rows, '>=', 3, "another session sees $rows epoch rows while training runs");
is($node->safe_psql('postgres', qq{SELECT state FROM pg_stat_activity WHERE pid = $pid}),
	'active', 'the training is still running');
is($node->safe_psql('postgres', q{
	SELECT min(epoch) = 0 AND bool_and(device = 'cpu') AND bool_and(validation_recall > 0)
	FROM quantumdb.training_log WHERE compressor = 'watched'}),
	't', 'the rows start at epoch 0 and carry the recall');

# cancel it
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
my $state = '';
for (my $i = 0; $i < 300; $i++)
{
	$state = $node->safe_psql('postgres',
		qq{SELECT state FROM pg_stat_activity WHERE pid = $pid});
	last if $state eq 'idle';
	usleep(100_000);
}
is($state, 'idle', 'the cancelled training ends');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM quantumdb.compressors WHERE name = 'watched'}),
	'0', 'no compressor is stored');
# the next query's round trip collects the cancelled one's stderr too
my $after = $trainer->query(
	'SELECT sum(total_bytes) FROM pg_backend_memory_contexts');
like($trainer->{stderr}, qr/canceling statement due to user request/,
	'the training reports the cancel');
cmp_ok($after - $before, '<', 1024 * 1024,
	"memory after the cancel is within 1 MB of before ($before -> $after bytes)");
$trainer->quit;

done_testing();
