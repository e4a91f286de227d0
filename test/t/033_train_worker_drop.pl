# A DROP ... CASCADE of what holds an index's operator class, while the train
# worker's REINDEX INDEX CONCURRENTLY rebuilds that index (session 65's
# hunt, /work/runs/hunt-s65b.md F1): the DROP read the class's dependents,
# waited for the REINDEX, found both rows gone after its swap, dropped the
# class and left the new index on it: the table could then not be read,
# written or dropped (XX000 "could not find tuple for opclass").  The worker
# now holds every object other than a relation its index depends on
# (train_object_locks.c), so the DROP waits for the whole REINDEX and drops
# the new index:
#   - DROP EXTENSION quantumdb CASCADE issued while the REINDEX waits for an
#     older snapshot (its validation done) drops the index, and the table
#     reads and drops cleanly;
#   - so does DROP FUNCTION ... CASCADE of a partial index's predicate
#     function (the worker holds every object the index depends on);
#   - the same DROP during the worker's build makes the worker give way;
#   - so does ANALYZE (session 65's hunt, /work/runs/hunt-s65c.md F2);
#   - a database whose settings choose a role or a session_authorization,
#     and one that takes no connections, have their indexes trained
#     (session 65's hunt, /work/runs/hunt-s65a.md F3, F4; session 66's,
#     hunt-s66a.md F3);
#   - quantumdb.max_train_workers bounds the workers across databases (F2);
#     the worker that ends starts one for the index whose worker left
#     (session 65's review, /work/runs/review-s65.md G3), also when it is
#     terminated (its second review's H1);
#   - one calibration worker at a time in a database takes the indexes the
#     others noted (hunt s65c F3), and one terminated notes again those it
#     had taken and not measured (review s65c K5).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;
use FindBin;
use lib $FindBin::RealBin;
use QdbIndexCheck;

my $copy = $ENV{QDB_GLOVE_COPY} or die "QDB_GLOVE_COPY is not set";

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;

sub setup
{
	$node->safe_psql('postgres', qq{
		CREATE EXTENSION quantumdb;
		CREATE TABLE t (id int PRIMARY KEY, emb real[]);
		CREATE INDEX t_idx ON t USING quantumdb (emb real_l2_ops) WITH (train_after_rows = 1000);
		COPY t FROM '$copy';
	});
}

sub drop_in_background
{
	my $drop = $node->background_psql('postgres', on_error_stop => 0);
	$drop->query_until(qr/started/, q{
		\echo started
		DROP EXTENSION quantumdb CASCADE;
	});
	return $drop;
}

sub table_sound
{
	my ($what) = @_;
	is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_index WHERE indrelid = 't'::regclass AND indexrelid <> 't_pkey'::regclass}),
		'0', "$what: the DROP dropped the quantumdb index and its copies");
	my ($rc, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM t');
	like($out, qr/^[0-9]+$/, "$what: the table reads") or diag($err);
	($rc, $out, $err) = $node->psql('postgres', "INSERT INTO t VALUES (-1, '{1,2}')");
	is($rc, 0, "$what: the table takes a row") or diag($err);
	($rc, $out, $err) = $node->psql('postgres', 'DROP TABLE t');
	is($rc, 0, "$what: the table drops") or diag($err);
}

# 1. the DROP after the REINDEX's build, while it waits for an older snapshot
setup();
my $offset = -s $node->logfile;
my $reader = $node->background_psql('postgres');
$reader->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t');
$node->safe_psql('postgres', 'VACUUM t');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_progress_create_index
	WHERE relid = 't'::regclass AND phase = 'waiting for old snapshots'}),
	'the worker\'s REINDEX waits for the older snapshot');
my $drop = drop_in_background();
ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM pg_stat_activity
	WHERE query LIKE 'DROP EXTENSION%' AND wait_event_type = 'Lock'}),
	'the DROP waits');
$reader->query_safe('COMMIT');
$reader->quit;
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_extension WHERE extname = 'quantumdb'}),
	'the DROP ended');
$drop->quit;
ok(wait_log($node, qr/LOG:  index "t_idx" (now has a compressor|was rebuilt without a compressor)/, $offset),
	'the REINDEX ended, not failed (then the DROP went on: the index is gone)');
table_sound('after the REINDEX\'s build');

# 1b. the same with DROP FUNCTION ... CASCADE of the function in a partial
# index's predicate (session 65's review, /work/runs/review-s65.md G4)
$node->safe_psql('postgres', qq{
	CREATE EXTENSION quantumdb;
	CREATE FUNCTION keep_row(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT \$1 >= 0';
	CREATE TABLE t (id int PRIMARY KEY, emb real[]);
	CREATE INDEX t_idx ON t USING quantumdb (emb real_l2_ops) WITH (train_after_rows = 1000) WHERE keep_row(id);
	COPY t FROM '$copy';
});
$offset = -s $node->logfile;
$reader = $node->background_psql('postgres');
$reader->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t');
$node->safe_psql('postgres', 'VACUUM t');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_progress_create_index
	WHERE relid = 't'::regclass AND phase = 'waiting for old snapshots'}),
	'a partial index: the worker\'s REINDEX waits for the older snapshot');
$drop = $node->background_psql('postgres', on_error_stop => 0);
$drop->query_until(qr/started/, q{
	\echo started
	DROP FUNCTION keep_row(int) CASCADE;
});
ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM pg_stat_activity
	WHERE query LIKE 'DROP FUNCTION%' AND wait_event_type = 'Lock'}),
	'the DROP FUNCTION waits');
$reader->query_safe('COMMIT');
$reader->quit;
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_proc WHERE proname = 'keep_row'}),
	'the DROP FUNCTION ended');
$drop->quit;
table_sound('DROP FUNCTION of the predicate\'s function');
$node->safe_psql('postgres', 'DROP EXTENSION quantumdb');

# 2. the DROP during the worker's training (20,000 rows: glove's 2,000
# ten times, moved a little): it gives way
setup();
$node->safe_psql('postgres', q{
	INSERT INTO t SELECT t.id + 2000 * k, (SELECT array_agg(e + 0.01 * k ORDER BY i)
		FROM unnest(t.emb) WITH ORDINALITY u (e, i))
	FROM t, generate_series(1, 9) k});
$offset = -s $node->logfile;
$node->safe_psql('postgres', 'VACUUM t');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_progress_create_index
	WHERE relid = 't'::regclass AND phase LIKE 'building index%'}),
	'the worker builds');
$drop = drop_in_background();
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_extension WHERE extname = 'quantumdb'}),
	'the DROP ended');
$drop->quit;
ok(wait_log($node, qr/LOG:  training a compressor for index "t_idx" gave way to another session waiting for a lock on it, its table or an object it depends on/, $offset),
	'the worker gave way');
table_sound('during the build');

# 2b. ANALYZE during the worker's training (session 65's hunt,
# /work/runs/hunt-s65c.md F2): the worker gives way, ANALYZE goes on
setup();
$node->safe_psql('postgres', q{
	INSERT INTO t SELECT t.id + 2000 * k, (SELECT array_agg(e + 0.01 * k ORDER BY i)
		FROM unnest(t.emb) WITH ORDINALITY u (e, i))
	FROM t, generate_series(1, 9) k});
$offset = -s $node->logfile;
$node->safe_psql('postgres', 'VACUUM t');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_progress_create_index
	WHERE relid = 't'::regclass AND phase LIKE 'building index%'}),
	'the worker builds');
my ($arc, $aout, $aerr) = $node->psql('postgres', 'ANALYZE t');
is($arc, 0, 'ANALYZE during the training succeeds') or diag($aerr);
ok(wait_log($node, qr/LOG:  training a compressor for index "t_idx" gave way to another session waiting for a lock on it, its table or an object it depends on/, $offset),
	'the worker gave way to ANALYZE');
ok(!$node->log_contains(qr/deadlock detected/, $offset), 'no deadlock');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'quantumdb train'"), 'no worker left');
$node->safe_psql('postgres', 'DROP TABLE t; DROP EXTENSION quantumdb');

# 3. a database whose settings choose a role (session 65's hunt,
# /work/runs/hunt-s65a.md F3) and a session_authorization (which its owner
# may set; session 66's hunt, /work/runs/hunt-s66a.md F3): the worker
# trains as before
$node->safe_psql('postgres', q{
	CREATE ROLE alice;
	CREATE DATABASE rdb;
	ALTER DATABASE rdb SET role = 'alice';
	ALTER DATABASE rdb SET session_authorization = 'alice';
});
# notes a dropped database left in pg_stat_tmp (session 65's hunt,
# /work/runs/hunt-s65a.md F6) go at the end of the worker's round; those
# of a database that exists stay
my $stat_tmp = $node->data_dir . '/pg_stat_tmp';
my $postgres_oid = $node->safe_psql('postgres', q{SELECT oid FROM pg_database WHERE datname = 'postgres'});
for my $note ('quantumdb_train_retry.4000000000', 'quantumdb_calibrate_waiting.4000000001',
	"quantumdb_train_retry.$postgres_oid")
{
	open(my $fh, '>', "$stat_tmp/$note") or die "$note: $!";
	close($fh);
}
$offset = -s $node->logfile;
$node->safe_psql('rdb', qq{
	SET ROLE postgres;
	CREATE EXTENSION quantumdb;
	CREATE TABLE t (id int PRIMARY KEY, emb real[]);
	CREATE INDEX t_idx ON t USING quantumdb (emb real_l2_ops) WITH (train_after_rows = 1000);
	COPY t FROM '$copy';
	VACUUM t;
});
ok(wait_log($node, qr/LOG:  index "t_idx" now has a compressor/, $offset),
	'a database that sets role: the worker trains the index');
ok(!$node->log_contains(qr/must be owner of index/, $offset), 'no ownership error');
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'quantumdb train'"),
	'the worker ended');
ok(!-e "$stat_tmp/quantumdb_train_retry.4000000000" && !-e "$stat_tmp/quantumdb_calibrate_waiting.4000000001",
	'the notes of a database that is gone are removed');
ok(-e "$stat_tmp/quantumdb_train_retry.$postgres_oid", 'a database\'s that exists stay');
unlink("$stat_tmp/quantumdb_train_retry.$postgres_oid");

# 4. a database that takes no connections (F4): VACUUM in a session opened
# before still has the index trained
$node->safe_psql('postgres', 'CREATE DATABASE ndb');
$node->safe_psql('ndb', qq{
	CREATE EXTENSION quantumdb;
	CREATE TABLE t (id int PRIMARY KEY, emb real[]);
	CREATE INDEX t_idx ON t USING quantumdb (emb real_l2_ops) WITH (train_after_rows = 1000);
	COPY t FROM '$copy';
});
$offset = -s $node->logfile;
my $open = $node->background_psql('ndb');
$node->safe_psql('postgres', 'ALTER DATABASE ndb ALLOW_CONNECTIONS false');
$open->query('VACUUM t');
ok(wait_log($node, qr/LOG:  index "t_idx" now has a compressor/, $offset),
	'a database that takes no connections: the worker trains the index');
ok(!$node->log_contains(qr/is not currently accepting connections/, $offset), 'the worker connected');
$open->quit;

# 5. quantumdb.max_train_workers across databases (F2): with 1, a worker
# in another database while one waits in ndb leaves; the next VACUUM trains
$node->safe_psql('postgres', 'ALTER DATABASE ndb ALLOW_CONNECTIONS true');
$node->append_conf('postgresql.conf', "quantumdb.max_train_workers = 1\n");
$node->reload;
# A table $t with an index without a compressor in ndb and rdb; ndb's
# worker held by a snapshot, rdb's worker leaves: the reader holding it
sub one_waits_one_leaves
{
	my ($t, $offset) = @_;
	for my $db ('ndb', 'rdb')
	{
		$node->safe_psql($db, qq{
			SET ROLE postgres;
			CREATE TABLE $t (id int PRIMARY KEY, emb real[]);
			CREATE INDEX ${t}_idx ON $t USING quantumdb (emb real_l2_ops) WITH (train_after_rows = 1000);
			COPY $t FROM '$copy';
		});
	}
	my $reader = $node->background_psql('ndb');
	$reader->query_safe("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM $t");
	$node->safe_psql('ndb', "VACUUM $t");
	ok($node->poll_query_until('ndb', qq{SELECT count(*) = 1 FROM pg_stat_progress_create_index
		WHERE relid = '$t'::regclass AND phase = 'waiting for old snapshots'}),
		"$t: a worker waits in one database");
	$node->safe_psql('rdb', "SET ROLE postgres; VACUUM $t");
	ok(wait_log($node, qr/LOG:  1 background workers train compressors at a time \(quantumdb.max_train_workers\), none free: the first of them to end starts another for this index/, $offset),
		"$t: the worker started in another database leaves");
	return $reader;
}

$offset = -s $node->logfile;
$reader = one_waits_one_leaves('u', $offset);
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'quantumdb train'"),
	'one worker is left');
$reader->query_safe('COMMIT');
$reader->quit;
ok(wait_log($node, qr/LOG:  started a background worker to train the index with OID [0-9]+ of the database with OID [0-9]+, which waited for a place/, $offset),
	'the first worker, at its end, starts one for the index that waited');
ok(wait_log($node, qr/LOG:  index "u_idx" now has a compressor(?s:.*)LOG:  index "u_idx" now has a compressor/, $offset),
	'both databases\' indexes are trained, the second with no VACUUM of its own');
is($node->safe_psql('rdb', q{SET ROLE postgres;
	SELECT built_from NOT LIKE 'no compressor%' FROM quantumdb.index_info('u_idx')}),
	't', 'the index of the other database has a compressor');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'quantumdb train'"), 'no worker left');

# 6. the same with the first worker terminated while it waits (session
# 65's second review, /work/runs/review-s65b.md H1): it hands its place
# on as it exits, past the notes of databases dropped since (session 66's
# hunt, /work/runs/hunt-s66b.md F1: it started a worker for the first
# note it read, which died at its connection, and the waiting index got
# none; 20 such notes put one ahead of the live one almost always)
$offset = -s $node->logfile;
$reader = one_waits_one_leaves('v', $offset);
for my $gone (4000000100 .. 4000000119)
{
	open(my $fh, '>', "$stat_tmp/quantumdb_train_waiting.$gone") or die "$gone: $!";
	print $fh "16384\n";
	close($fh);
}
$node->safe_psql('postgres', q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE backend_type = 'quantumdb train'});
ok(wait_log($node, qr/LOG:  started a background worker to train the index with OID [0-9]+ of the database with OID [0-9]+, which waited for a place/, $offset),
	'the terminated worker, as it exits, starts one for the index that waited');
ok(wait_log($node, qr/LOG:  index "v_idx" now has a compressor/, $offset),
	'the other database\'s index is trained');
ok(!$node->log_contains(qr/FATAL:  database 40000001[01][0-9] does not exist/, $offset),
	'no worker started for a database that is gone');
unlink glob("$stat_tmp/quantumdb_train_waiting.40000001*");
$reader->query_safe('COMMIT');
$reader->quit;

# 7. one calibration worker at a time in a database (session 65's hunt,
# /work/runs/hunt-s65c.md F3): one VACUUM of 4 tables whose indexes grew by
# half starts them one after another, and every index is calibrated again
for my $i (1 .. 4)
{
	$node->safe_psql('ndb', qq{
		CREATE TABLE c$i (id int PRIMARY KEY, emb real[]);
		COPY c$i FROM '$copy';
		DELETE FROM c$i WHERE id >= 1000;
		CREATE INDEX c${i}_idx ON c$i USING quantumdb (emb real_l2_ops) WITH (train_after_rows = 0, m = 8);
	});
}
my $taken = $node->safe_psql('ndb', q{SELECT max(taken_at) FROM quantumdb.calibration('c4_idx')});
for my $i (1 .. 4)
{
	$node->safe_psql('ndb', qq{
		CREATE TEMP TABLE more AS SELECT * FROM c$i WITH NO DATA;
		COPY more FROM '$copy';
		INSERT INTO c$i SELECT * FROM more WHERE id >= 1000 AND id < 1500;
	});
}
$node->safe_psql('ndb', 'VACUUM c1, c2, c3, c4');
my $most = 0;
for (1 .. 40)
{
	my $n = $node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'quantumdb calibrate'});
	$most = $n if $n > $most;
	Time::HiRes::usleep(50_000);
}
cmp_ok($most, '<=', 1, 'at most one calibration worker at a time in the database');
ok($node->poll_query_until('ndb', qq{SELECT bool_and(t > '$taken') FROM (
	SELECT (SELECT max(taken_at) FROM quantumdb.calibration(i)) t
	FROM unnest(ARRAY['c1_idx', 'c2_idx', 'c3_idx', 'c4_idx']::regclass[]) i) s}),
	'every index was calibrated again');

# 8. a calibration worker terminated while it works through the indexes
# others noted notes them again, and the database's next worker measures
# them (session 65's third review, /work/runs/review-s65c.md K5: they were
# lost); one terminated starts none in its database as it exits (session
# 67's second review, /work/runs/review-s67b.md S4: a DROP DATABASE
# ... WITH (FORCE) terminates it): the next VACUUM does.  c2 and c3 are noted (the queue file written as a worker writes
# it) and locked; c1's VACUUM starts the worker, which measures c1, takes
# the notes and waits for the first of them, with the other taken and not
# measured.
for my $i (1 .. 4)
{
	$node->safe_psql('ndb', qq{
		CREATE TEMP TABLE more AS SELECT * FROM c$i WITH NO DATA;
		COPY more FROM '$copy';
		INSERT INTO c$i SELECT * FROM more WHERE id >= 1500 AND id < 2000;
	});
}
$taken = $node->safe_psql('ndb', q{SELECT max(taken_at) FROM quantumdb.calibration('c2_idx')});
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'quantumdb calibrate'})
	or die 'a calibration worker of section 7 is still there';
my $lock23 = $node->background_psql('ndb');
$lock23->query_safe('BEGIN; LOCK TABLE c2, c3 IN ACCESS EXCLUSIVE MODE');
my $queue = $node->safe_psql('ndb', q{SELECT 'pg_stat_tmp/quantumdb_calibrate_waiting.' || oid FROM pg_database WHERE datname = 'ndb'});
my $c23 = $node->safe_psql('ndb', q{SELECT 'c2_idx'::regclass::oid || E'\n' || 'c3_idx'::regclass::oid});
open(my $qf, '>', $node->data_dir . "/$queue") or die "$queue: $!";
print $qf "$c23\n";
close($qf);
$node->safe_psql('ndb', 'VACUUM c1');
ok($node->poll_query_until('ndb', q{SELECT count(*) = 1 FROM pg_locks l
	JOIN pg_stat_activity a USING (pid)
	WHERE a.backend_type = 'quantumdb calibrate' AND l.relation IN ('c2'::regclass, 'c3'::regclass)
		AND NOT l.granted}),
	'the calibration worker took the notes and waits for the first');
$node->safe_psql('postgres', q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE backend_type = 'quantumdb calibrate'});
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'quantumdb calibrate'});
# (c1 may be there too: since session 67 the VACUUM of c1 also starts a
# worker for the notes it finds, and of the two the one that leaves notes
# its index)
my $noted = $node->safe_psql('ndb', qq{SELECT array_agg(DISTINCT o::oid::regclass::text ORDER BY o::oid::regclass::text)
	FROM regexp_split_to_table(trim(pg_read_file('$queue', 0, 100, true), E'\\n'), E'\\n') AS o});
like($noted, qr/c2_idx,c3_idx/, 'the terminated worker noted again the indexes it had taken and not measured');
$lock23->query_safe('COMMIT');
$lock23->quit;
$node->safe_psql('ndb', 'VACUUM c4');
ok($node->poll_query_until('ndb', qq{SELECT bool_and(t > '$taken') FROM (
	SELECT (SELECT max(taken_at) FROM quantumdb.calibration(i)) t
	FROM unnest(ARRAY['c2_idx', 'c3_idx']::regclass[]) i) s}),
	'the next calibration worker of the database measures them');

# 9. a VACUUM of an index with a compressor names a copy a REINDEX
# CONCURRENTLY of it left (session 66's hunt, /work/runs/hunt-s66d.md F1,
# F4: only an index without one was told, so one marked to be trained again
# kept its compressor for good, its VACUUMs silent).  The REINDEX is
# terminated while it waits for an older snapshot.
$node->safe_psql('ndb', 'CREATE INDEX c4_copy_idx ON c4 USING quantumdb (emb real_l2_ops) WITH (m = 8)');
my $old_snapshot = $node->background_psql('ndb');
$old_snapshot->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1');
my $reindex = $node->background_psql('ndb', on_error_stop => 0);
$reindex->query_until(qr/started/, qq{\\echo started\nREINDEX INDEX CONCURRENTLY c4_copy_idx;\n});
$node->poll_query_until('ndb', q{SELECT count(*) = 1 FROM pg_stat_progress_create_index
	WHERE phase = 'waiting for old snapshots'}) or die 'the REINDEX does not wait';
$node->safe_psql('ndb', q{SELECT pg_terminate_backend(pid) FROM pg_stat_progress_create_index});
$old_snapshot->query_safe('COMMIT');
$old_snapshot->quit;
# its psql ended with its connection
eval { $reindex->quit; };
$node->poll_query_until('ndb', q{SELECT count(*) = 1 FROM pg_class WHERE relname = 'c4_copy_idx_ccnew'})
	or die 'no copy left';
my ($vacuum_out, $vacuum_err);
$node->psql('ndb', 'VACUUM c4', stdout => \$vacuum_out, stderr => \$vacuum_err);
like($vacuum_err, qr/NOTICE:  a REINDEX CONCURRENTLY of index "c4_copy_idx" that did not finish left index "c4_copy_idx_ccnew"/,
	'VACUUM names the copy a REINDEX CONCURRENTLY of an index with a compressor left');
like($vacuum_err, qr/HINT:  DROP INDEX CONCURRENTLY public\.c4_copy_idx_ccnew;/, 'and says how to drop it');

# 10. so does it the old index the swap left (..._ccold): the REINDEX is
# terminated while it waits for a reader of the table before it marks the
# old index dead (a READ COMMITTED transaction holds its lock, no snapshot)
$node->safe_psql('ndb', 'DROP INDEX CONCURRENTLY c4_copy_idx_ccnew');
my $reader_lock = $node->background_psql('ndb');
$reader_lock->query_safe('BEGIN; SELECT count(*) FROM c4');
$reindex = $node->background_psql('ndb', on_error_stop => 0);
$reindex->query_until(qr/started/, qq{\\echo started\nREINDEX INDEX CONCURRENTLY c4_copy_idx;\n});
$node->poll_query_until('ndb', q{SELECT count(*) = 1 FROM pg_stat_progress_create_index
	WHERE phase = 'waiting for readers before marking dead'}) or die 'the REINDEX does not wait';
$node->safe_psql('ndb', q{SELECT pg_terminate_backend(pid) FROM pg_stat_progress_create_index});
$reader_lock->query_safe('COMMIT');
$reader_lock->quit;
eval { $reindex->quit; };
$node->poll_query_until('ndb', q{SELECT count(*) = 1 FROM pg_class WHERE relname = 'c4_copy_idx_ccold'})
	or die 'no old index left';
$node->psql('ndb', 'VACUUM c4', stdout => \$vacuum_out, stderr => \$vacuum_err);
like($vacuum_err, qr/NOTICE:  a REINDEX CONCURRENTLY of index "c4_copy_idx" that did not finish left index "c4_copy_idx_ccold"/,
	'VACUUM names the old index the swap left');
$node->safe_psql('ndb', 'DROP INDEX CONCURRENTLY c4_copy_idx_ccold');

# 11. the worker that runs takes the other indexes of its database marked
# to be trained again (a compressor trained on a small sample), not only
# those without one: the worker a VACUUM started for the other left while
# it trained, and only 52 of 300 partitions were trained again (session
# 66's hunt, /work/runs/hunt-s66e.md F5)
for my $r ('r1', 'r2')
{
	$node->safe_psql('ndb', qq{
		CREATE TABLE $r (id int PRIMARY KEY, emb real[]);
		CREATE TEMP TABLE more AS SELECT * FROM $r WITH NO DATA;
		COPY more FROM '$copy';
		INSERT INTO $r SELECT * FROM more WHERE id < 300;
		CREATE INDEX ${r}_idx ON $r USING quantumdb (emb real_l2_ops) WITH (train_after_rows = 1000, m = 8);
		INSERT INTO $r SELECT * FROM more WHERE id >= 300;
	});
}
$offset = -s $node->logfile;
$node->safe_psql('ndb', 'VACUUM r1, r2');
ok(wait_log($node, qr/LOG:  index "r1_idx" has a compressor trained again/, $offset)
	&& wait_log($node, qr/LOG:  index "r2_idx" has a compressor trained again/, $offset),
	'both indexes marked to be trained again are, by one worker after the other');

ok(!$node->log_contains(qr/terminated by signal|TRAP:|could not find tuple for opclass|cache lookup failed/),
	'no crash, no dangling operator class');
$node->stop;
done_testing();
