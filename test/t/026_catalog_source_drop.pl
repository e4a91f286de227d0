# A row written into quantumdb.compressors while a DROP TABLE of its source
# is under way (session 57's hunt, /work/runs/hunt-s57a.md F2).  The row's
# check locks the source: the write waits for a DROP begun first and then
# finds the table gone, and a DROP begun after the write waits for it, so
# that its sql_drop trigger sees the row and clears the source.  Before,
# neither waited, and the row kept the dropped table's OID, which pg_dump
# writes as a bare number for a restore to bind to whatever has it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION quantumdb;
	CREATE ROLE writer;
	GRANT INSERT ON quantumdb.compressors TO writer;
	CREATE TABLE src (id int, emb real[]);
	INSERT INTO src SELECT i, ARRAY[i, i % 7, i % 13, 1]::real[] FROM generate_series(1, 300) i;
	CREATE TABLE gone (id int, emb real[]);
	CREATE TABLE gone2 (id int, emb real[]);
	GRANT SELECT ON src, gone, gone2 TO writer;
	SET ROLE writer;
	SELECT compressor FROM quantumdb.train('w1', 'src', 'emb', kind => 'pq', subvectors => 2,
		validation => 0, kmeans_iters => 2);
});

# a row naming table $t, written as the writer
sub row_sql
{
	my ($name, $t) = @_;
	return qq{INSERT INTO quantumdb.compressors
		(name, kind, dimensions, metric, settings, model, source, source_column)
	SELECT '$name', kind, dimensions, metric, '{}', quantumdb.export('w1'), '$t', 'emb'
	FROM quantumdb.compressors WHERE name = 'w1';};
}

# whether backend $pid waits for a lock, polled for up to 30 s
sub waits
{
	my ($pid) = @_;
	for (my $i = 0; $i < 300; $i++)
	{
		return 1 if $node->safe_psql('postgres',
			qq{SELECT count(*) FROM pg_locks WHERE pid = $pid AND NOT granted}) eq '1';
		usleep(100_000);
	}
	return 0;
}

# until backend $pid is idle (its statement done), for up to 30 s
sub wait_idle
{
	my ($pid) = @_;
	for (my $i = 0; $i < 300; $i++)
	{
		return if $node->safe_psql('postgres',
			qq{SELECT state FROM pg_stat_activity WHERE pid = $pid}) =~ /^idle/;
		usleep(100_000);
	}
}

# 1. the DROP first: the write waits for it, then finds the table gone
my $dropper = $node->background_psql('postgres', on_error_stop => 0);
my $writer = $node->background_psql('postgres', on_error_stop => 0);
my $wpid = $writer->query_safe('SELECT pg_backend_pid()');
$writer->query_safe('SET ROLE writer');
$dropper->query_safe('BEGIN');
$dropper->query_safe('DROP TABLE gone');
$writer->query_until(qr/sent/, "\\echo sent\n" . row_sql('dangling', 'gone') . "\n");
ok(waits($wpid), 'a row naming a table whose DROP is under way waits for it');
$dropper->query_safe('COMMIT');
wait_idle($wpid);
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM quantumdb.compressors WHERE name = 'dangling'}),
	'0', 'once the DROP commits the row is refused: no row keeps the dropped OID');
# the next query collects the write's output
$writer->query('SELECT 1');
like($writer->{stderr}, qr/source table \(OID \d+\) does not exist/,
	'with an ERROR that says the source is gone');
$writer->quit;

# 2. the write first: the DROP waits for it, and its trigger clears the source
my $dpid = $dropper->query_safe('SELECT pg_backend_pid()');
$writer = $node->background_psql('postgres', on_error_stop => 0);
$writer->query_safe('SET ROLE writer');
$writer->query_safe('BEGIN');
$writer->query_safe(row_sql('kept', 'gone2'));
$dropper->query_until(qr/sent/, "\\echo sent\nDROP TABLE gone2;\n");
ok(waits($dpid), 'a DROP of the source of a row being written waits for it');
$writer->query_safe('COMMIT');
wait_idle($dpid);
is($node->safe_psql('postgres',
	q{SELECT source IS NULL AND source_column IS NULL FROM quantumdb.compressors
	  WHERE name = 'kept'}),
	't', 'once the row commits, the DROP clears its source');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname = 'gone2'}),
	'0', 'and the table is gone');

$writer->quit;

# 3. a writer that may not read the table gets its refusal without queuing
# on the table's lock (session 57's review R3: it waited for any lock,
# and could time others' locks so)
$node->safe_psql('postgres', q{
	CREATE ROLE outsider;
	GRANT INSERT ON quantumdb.compressors TO outsider;
	CREATE TABLE secret (id int, emb real[]);
	CREATE TABLE blob AS
	SELECT kind, dimensions, metric, quantumdb.export('w1') AS model
	FROM quantumdb.compressors WHERE name = 'w1';
	GRANT SELECT ON blob TO outsider;
});
$dropper->query_safe('BEGIN');
$dropper->query_safe('LOCK TABLE secret IN ACCESS EXCLUSIVE MODE');
my ($ret, $out, $err) = $node->psql('postgres', q{
	SET statement_timeout = '20s';
	SET ROLE outsider;
	INSERT INTO quantumdb.compressors
		(name, kind, dimensions, metric, settings, model, source, source_column)
	SELECT 'peek', kind, dimensions, metric, '{}', model, 'secret', 'emb' FROM blob});
like($err, qr/source must be a table its writer may read/,
	'a writer without SELECT is refused while another session locks the table');
unlike($err, qr/statement timeout/, 'without waiting for the lock');
$dropper->query_safe('COMMIT');

# 4. the source column must exist (R4: a column that never existed was
# kept, for the readers of a column of that name added later)
($ret, $out, $err) = $node->psql('postgres',
	q{SET ROLE writer; INSERT INTO quantumdb.compressors
		(name, kind, dimensions, metric, settings, model, source, source_column)
	SELECT 'nocol', kind, dimensions, metric, '{}', quantumdb.export('w1'), 'src', 'no_such_column'
	FROM quantumdb.compressors WHERE name = 'w1'});
like($err, qr/column "no_such_column" of a compressor's source table src does not exist/,
	'a source column that does not exist is refused');

$dropper->quit;
done_testing();
