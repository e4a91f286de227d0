# An index built on an empty table has no compressor, and a VACUUM that
# finds its table holding train_after_rows rows starts a background worker
# that trains one by REINDEX INDEX CONCURRENTLY (train_worker.c):
#   - the index keeps its name, is valid, holds every row and verifies clean;
#   - train_after_rows = 0, or fewer rows, start no worker, and the NOTICE
#     says what the option does; a partial index covering fewer than 256
#     rows is not reindexed (it would stay without a compressor);
#   - a worker cancelled while its REINDEX waits drops the copy the REINDEX
#     made, and the next VACUUM trains the index; a second index's worker
#     started meanwhile leaves at once (one at a time per database), and
#     the partitions of a table are trained one after another by one worker;
#   - a failed try holds the next back for quantumdb.train_retry_delay,
#     twice as long after each further failure in a row; a REINDEX that
#     leaves the index without a compressor (copies of a few vectors) counts;
#   - a worker terminated there leaves the copy; the next worker names it in
#     a WARNING and trains nothing until it is dropped;
#   - another index's leftover whose name, cut short, is the one this
#     index's copy would have, does not hold it back;
#   - VACUUM starts no worker for an index that is not valid;
#   - a compressor the build trained on fewer rows than train_after_rows is
#     trained again by a worker once VACUUM finds that many rows;
#   - autovacuum starts the worker by itself.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use QdbIndexCheck;

my $copy = $ENV{QDB_GLOVE_COPY} or die "QDB_GLOVE_COPY is not set";

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION quantumdb;
	CREATE TABLE glove (id int PRIMARY KEY, emb real[]);
	COPY glove FROM '$copy';
});

my $untrained = 'no compressor yet: scans read the heap';

# table $t of the 2,000 glove rows, its index ${t}_idx built while it was empty
sub empty_indexed
{
	my ($t, $options) = @_;
	$node->safe_psql('postgres', qq{
		CREATE TABLE $t (id int PRIMARY KEY, emb real[]);
		CREATE INDEX ${t}_idx ON $t USING quantumdb (emb real_cosine_ops) WITH ($options);
		INSERT INTO $t SELECT id, emb FROM glove WHERE id < 2000;
	});
}

sub built_from
{
	my ($index) = @_;
	return $node->safe_psql('postgres', "SELECT built_from FROM quantumdb.index_info('$index')");
}

sub vacuum_notice
{
	my ($t) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "VACUUM $t");
	is($rc, 0, "VACUUM $t");
	return $err;
}

# the indexes of $t: "name valid" lines
sub indexes_of
{
	my ($t) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT string_agg(c.relname || ' ' || i.indisvalid, ', ' ORDER BY c.relname)
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = '$t'::regclass AND c.relname <> '${t}_pkey'});
}

sub wait_trained
{
	my ($index) = @_;
	return $node->poll_query_until('postgres',
		"SELECT built_from <> '$untrained' FROM quantumdb.index_info('$index')");
}

# the worker's pid once its REINDEX waits for the writer of $t
sub worker_waiting
{
	my ($t) = @_;
	$node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_progress_create_index
		WHERE relid = '$t'::regclass AND phase = 'waiting for writers before build'})
	  or die "no worker waits for the writer of $t";
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_progress_create_index WHERE relid = '$t'::regclass");
}

# 1. no worker: the option off, or fewer rows than it says
empty_indexed('off_t', 'train_after_rows = 0');
empty_indexed('few', 'm = 8');
my $err = vacuum_notice('off_t');
unlike($err, qr/background worker trains one/, 'train_after_rows = 0: no worker');
like($err, qr/HINT:  REINDEX INDEX CONCURRENTLY public\.off_t_idx; trains it/,
	'train_after_rows = 0: the NOTICE says REINDEX trains it');
$err = vacuum_notice('few');
like($err, qr/A background worker trains it after a VACUUM that finds 10000 rows \(the index option train_after_rows\)/,
	'2,000 rows: the NOTICE names the default threshold');
sleep 2;
is(built_from('off_t_idx'), $untrained, 'train_after_rows = 0: still no compressor');
is(built_from('few_idx'), $untrained, 'below the threshold: still no compressor');

# 2. the worker trains the index
empty_indexed('items', 'train_after_rows = 1000, m = 8');
my $oid = $node->safe_psql('postgres', "SELECT 'items_idx'::regclass::oid");
$err = vacuum_notice('items');
like($err, qr/index "items_idx" has no compressor yet, and its table now has about 2000 rows: a background worker trains one/,
	'the VACUUM says a worker trains the index');
ok(wait_trained('items_idx'), 'the worker trained the index');
is(built_from('items_idx'), 'vectors', 'built from the table\'s vectors');
is(indexes_of('items'), 'items_idx true', 'one index, under its own name, valid');
isnt($node->safe_psql('postgres', "SELECT 'items_idx'::regclass::oid"), $oid,
	'a new relation (REINDEX CONCURRENTLY)');
is($node->safe_psql('postgres', "SELECT nodes FROM quantumdb.index_info('items_idx')"),
	'2000', 'every row is a node');
is($node->safe_psql('postgres', "SELECT count(*) FROM quantumdb.verify('items_idx')"),
	'0', 'verify finds nothing');
check_all_rows_indexed($node, 'trained by the worker', 0);
ok($node->log_contains(qr/LOG:  index "items_idx" now has a compressor/),
	'the worker logs its success');

# 2a. a partial index covering fewer than 256 rows: a REINDEX would leave it
# without a compressor again, at every VACUUM; the worker does not run one
$node->safe_psql('postgres', q{
	CREATE TABLE few_covered (id int PRIMARY KEY, emb real[]);
	CREATE INDEX few_covered_idx ON few_covered USING quantumdb (emb real_cosine_ops)
		WITH (train_after_rows = 1000) WHERE id < 100;
	INSERT INTO few_covered SELECT id, emb FROM glove WHERE id < 2000;
});
$oid = $node->safe_psql('postgres', "SELECT 'few_covered_idx'::regclass::oid");
my $offset = -s $node->logfile;
vacuum_notice('few_covered');
ok(wait_log($node, qr/LOG:  index "few_covered_idx" covers fewer than 256 rows with a vector: no compressor trained/, $offset),
	'the worker says the partial index covers too few rows');
is($node->safe_psql('postgres', "SELECT 'few_covered_idx'::regclass::oid"), $oid,
	'and runs no REINDEX');
# and counts it as a failed try: its search may read the whole table, and
# every VACUUM started it again (session 61's hunt, F2)
ok(wait_log($node, qr/covers fewer than 256 rows with a vector: no compressor trained\n[^\n]*DETAIL:  A REINDEX would leave it without one again\. No VACUUM starts another worker for it before/, $offset),
	'its LOG says when the next try may come');
like(vacuum_notice('few_covered'),
	qr/DETAIL:  A background worker's training of it failed 1 time in a row: no VACUUM starts another before/,
	'the next VACUUM starts no worker for it');

# 2c. rows whose vectors are zeros, under cosine, which a build leaves out:
# they do not count either
$node->safe_psql('postgres', q{
	CREATE TABLE zv (id int PRIMARY KEY, emb real[]);
	CREATE INDEX zv_idx ON zv USING quantumdb (emb real_cosine_ops) WITH (train_after_rows = 1000);
	INSERT INTO zv SELECT id, CASE WHEN id < 100 THEN emb ELSE array_fill(0::real, ARRAY[100]) END
	FROM glove WHERE id < 2000;
});
$oid = $node->safe_psql('postgres', "SELECT 'zv_idx'::regclass::oid");
$offset = -s $node->logfile;
vacuum_notice('zv');
ok(wait_log($node, qr/LOG:  index "zv_idx" covers fewer than 256 rows with a vector: no compressor trained/, $offset),
	'zero vectors under cosine are not counted');
is($node->safe_psql('postgres', "SELECT 'zv_idx'::regclass::oid"), $oid, 'no REINDEX ran');

# 2b. the build evaluates a partial index's predicate as the table's owner,
# under the worker's search_path: pinned, so that an overload in public of a
# function the predicate calls unqualified is not what runs
$node->safe_psql('postgres', q{
	CREATE TABLE ran_as (who name, app text);
	CREATE FUNCTION public.array_length(real[], integer) RETURNS integer
	LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO ran_as VALUES (current_user, current_setting('application_name'));
		RETURN pg_catalog.array_length($1, $2);
	END $$;
	CREATE FUNCTION has_dims(v real[]) RETURNS boolean
	LANGUAGE sql IMMUTABLE AS $$ SELECT array_length(v, 1) > 0 $$;
	CREATE TABLE sp_t (id int PRIMARY KEY, emb real[]);
	CREATE INDEX sp_t_idx ON sp_t USING quantumdb (emb real_cosine_ops)
		WITH (train_after_rows = 1000) WHERE has_dims(emb);
	INSERT INTO sp_t SELECT id, emb FROM glove WHERE id < 2000;
});
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM ran_as WHERE app <> ''}), '>', 0,
	'the overload runs under this session\'s search_path');
vacuum_notice('sp_t');
ok(wait_trained('sp_t_idx'), 'the worker trained the partial index');
is($node->safe_psql('postgres', q{SELECT count(*) FROM ran_as WHERE app = ''}), '0',
	'the worker\'s build never ran the overload');
$node->safe_psql('postgres', 'DROP FUNCTION public.array_length(real[], integer)');

# 2c. a statement waiting for a lock on the table: the worker gives way to
# it as autovacuum does, says so at LOG and counts no failure, so the next
# VACUUM starts a worker at once.  (The ALTER used to wait out the whole
# training and build; the REINDEX then died of a deadlock with it, an
# ERROR counted as a failure: session 59's hunt.)
empty_indexed('y_t', 'train_after_rows = 1000');
my $ywriter = $node->background_psql('postgres');
$ywriter->query_safe('BEGIN; INSERT INTO y_t VALUES (100000, (SELECT emb FROM glove WHERE id = 1999))');
my $yoffset = -s $node->logfile;
vacuum_notice('y_t');
worker_waiting('y_t');
my $ddl = $node->background_psql('postgres');
$ddl->query_until(qr/started/, "\\echo started\nALTER TABLE y_t ADD COLUMN extra int;\n");
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_locks
	WHERE relation = 'y_t'::regclass AND mode = 'AccessExclusiveLock' AND NOT granted}),
	'the ALTER waits for the table');
$ywriter->query_safe('COMMIT');
ok(wait_log($node, qr/LOG:  training a compressor for index "y_t_idx" gave way to another session waiting for a lock on it, its table or an object it depends on/,
	$yoffset), 'the worker gave way to it');
# its training looks for such a statement: it does not train to the end first
ok($node->log_contains(qr/gave way to another session waiting for a lock on it, its table or an object it depends on\n.*DETAIL:  It stopped in the middle of its training\./,
	$yoffset), 'in the middle of its training');
$ddl->query_safe('SELECT 1');
$ddl->quit;
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'quantumdb train'}),
	'the worker ended');
is(indexes_of('y_t'), 'y_t_idx true', 'its copy is dropped');
ok(!$node->log_contains(qr/training a compressor for index "y_t_idx" failed/, $yoffset),
	'no failure is counted');
ok(!$node->log_contains(qr/ERROR:  deadlock detected/, $yoffset), 'no deadlock');
$err = vacuum_notice('y_t');
like($err, qr/background worker trains one/, 'the next VACUUM starts a worker at once');
ok(wait_trained('y_t_idx'), 'which trains the index');
$ywriter->quit;
$node->safe_psql('postgres', 'DROP TABLE y_t');

# 2d. the same for a statement waiting for a lock on the index itself:
# ALTER INDEX ... SET, which takes the REINDEX's own SHARE UPDATE EXCLUSIVE
# (it waited out the whole build, then a deadlock threw the work away and
# counted a failure: session 64's hunt, /work/runs/hunt-s64b.md F1)
empty_indexed('z_t', 'train_after_rows = 1000');
my $zwriter = $node->background_psql('postgres');
$zwriter->query_safe('BEGIN; INSERT INTO z_t VALUES (100000, (SELECT emb FROM glove WHERE id = 1999))');
my $zoffset = -s $node->logfile;
vacuum_notice('z_t');
worker_waiting('z_t');
my $zddl = $node->background_psql('postgres');
$zddl->query_until(qr/started/, "\\echo started\nALTER INDEX z_t_idx SET (train_after_rows = 0);\n");
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_locks
	WHERE relation = 'z_t_idx'::regclass AND NOT granted}),
	'the ALTER INDEX waits for the index');
$zwriter->query_safe('COMMIT');
ok(wait_log($node, qr/LOG:  training a compressor for index "z_t_idx" gave way to another session waiting for a lock on it, its table or an object it depends on/,
	$zoffset), 'the worker gave way to it');
$zddl->query_safe('SELECT 1');
$zddl->quit;
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'quantumdb train'}),
	'the worker ended');
ok(!$node->log_contains(qr/training a compressor for index "z_t_idx" failed/, $zoffset),
	'no failure is counted');
$zwriter->quit;
$node->safe_psql('postgres', 'DROP TABLE z_t');

# 3. cancelled while the REINDEX waits for a writer: its copy is dropped
empty_indexed('c_t', 'train_after_rows = 1000');
my $writer = $node->background_psql('postgres');
$writer->query_safe('BEGIN; INSERT INTO c_t VALUES (100000, (SELECT emb FROM glove WHERE id = 1999))');
vacuum_notice('c_t');
my $pid = worker_waiting('c_t');
is(indexes_of('c_t'), 'c_t_idx true, c_t_idx_ccnew false', 'the REINDEX made its copy');
# meanwhile another index's worker leaves at once: one at a time
empty_indexed('q_t', 'train_after_rows = 1000');
$offset = -s $node->logfile;
vacuum_notice('q_t');
ok(wait_log($node, qr/LOG:  another index's compressor is being trained in this database: that worker takes this one next if it still wants training then \(if it is stopped first, the database's next worker does\)/, $offset),
	'the second worker logged why it left');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'quantumdb train'}),
	'the second worker ended');
is(built_from('q_t_idx'), $untrained, 'and trained nothing');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
# the drop waits for the writer too
$writer->query_safe('COMMIT');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_class WHERE relname = 'c_t_idx_ccnew'"),
	'the cancelled worker dropped the copy');
ok($node->log_contains(qr/LOG:  dropped index "c_t_idx_ccnew", what the failed REINDEX CONCURRENTLY of index "c_t_idx" left/),
	'and logged it');
is(built_from('c_t_idx'), $untrained, 'the cancelled worker trained nothing');
ok($node->log_contains(qr/LOG:  training a compressor for index "c_t_idx" failed \(1 time in a row\): no VACUUM starts another try before /),
	'the failure is logged with the time of the next try');
# the index the second worker noted is not left waiting for a VACUUM: the
# cancelled worker, at its end, starts one for it (session 67's review,
# /work/runs/review-s67.md R1, and hunt, /work/runs/hunt-s67c.md F1)
ok(wait_trained('q_t_idx'), 'the cancelled worker, at its end, starts one for the index noted');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'quantumdb train'}),
	'which ends');
# 3f. a failed try holds VACUUM back quantumdb.train_retry_delay (600 s by
# default), twice that after a second failure in a row
$err = vacuum_notice('c_t');
like($err, qr/DETAIL:  A background worker's training of it failed 1 time in a row: no VACUUM starts another before (\S+ \S+) \(quantumdb.train_retry_delay\)/,
	'the next VACUUM starts no worker: it says until when');
my ($until) = $err =~ /starts another before (\S+ \S+) /;
is($node->safe_psql('postgres', "SELECT '$until'::timestamptz - now() BETWEEN '570 s' AND '600 s'"),
	't', 'for 600 s');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'quantumdb train'}),
	'0', 'no worker runs');
sub retry_delay
{
	my ($delay) = @_;
	$node->append_conf('postgresql.conf', "quantumdb.train_retry_delay = $delay\n");
	$node->reload;
}
retry_delay(0);
$writer->query_safe('BEGIN; INSERT INTO c_t VALUES (100001, (SELECT emb FROM glove WHERE id = 1998))');
vacuum_notice('c_t');
$pid = worker_waiting('c_t');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$writer->query_safe('COMMIT');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_class WHERE relname = 'c_t_idx_ccnew'"),
	'with the delay 0, the next VACUUM tried again; cancelled again, its copy is dropped');
ok(wait_log($node, qr/LOG:  training a compressor for index "c_t_idx" failed \(2 times in a row\): the next VACUUM that finds the table large enough tries again/, $offset),
	'the second failure is counted');
retry_delay(600);
$err = vacuum_notice('c_t');
($until) = $err =~ /failed 2 times in a row: no VACUUM starts another before (\S+ \S+) /;
ok(defined $until, 'after a second failure the VACUUM waits again');
is($node->safe_psql('postgres', "SELECT '$until'::timestamptz - now() BETWEEN '1170 s' AND '1200 s'"),
	't', 'twice as long');
my $retry_file = $node->data_dir . '/pg_stat_tmp/quantumdb_train_retry.'
  . $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'postgres'");
my $c_t_oid = $node->safe_psql('postgres', "SELECT 'c_t_idx'::regclass::oid");
like(slurp_file($retry_file), qr/^$c_t_oid \d+ 2 \d+$/m, 'the note of the failures');
retry_delay(0);
vacuum_notice('c_t');
ok(wait_trained('c_t_idx'), 'the next VACUUM\'s worker trained the index');
unlike(slurp_file($retry_file), qr/^$c_t_oid /m, 'and the note of its failures is gone');
is(indexes_of('c_t'), 'c_t_idx true', 'no copy is left');

# 3b. a DBA's own REINDEX CONCURRENTLY queued behind the worker, then the
# worker cancelled: the DBA's REINDEX goes through (the worker waits for the
# table's lock to drop its copy without a snapshot that the REINDEX would
# wait for: it died of a deadlock), and the worker's copy is dropped
empty_indexed('d_t', 'train_after_rows = 1000');
my $d_offset = -s $node->logfile;
$writer->query_safe('BEGIN; INSERT INTO d_t VALUES (100000, (SELECT emb FROM glove WHERE id = 1999))');
vacuum_notice('d_t');
$pid = worker_waiting('d_t');
my $dba = $node->background_psql('postgres', on_error_stop => 0);
$dba->query_until(qr/started/, "\\echo started\nREINDEX INDEX CONCURRENTLY d_t_idx;\n");
$node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE query LIKE 'REINDEX INDEX CONCURRENTLY d_t_idx%' AND wait_event_type = 'Lock'})
  or die 'the DBA\'s REINDEX does not wait';
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$writer->query_safe('COMMIT');
my $dba_result = $dba->query('SELECT 1');
$dba->quit;
unlike($dba->{stderr} // '', qr/deadlock/, 'the DBA\'s REINDEX did not deadlock');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_class WHERE relname LIKE 'd_t_idx_ccnew%'}),
	'no copy is left');
is(indexes_of('d_t'), 'd_t_idx true', 'one index, valid');
isnt(built_from('d_t_idx'), $untrained, 'the DBA\'s REINDEX trained it');
ok(wait_log($node, qr/LOG:  training a compressor for index "d_t_idx" failed/, $d_offset),
	'the worker says its own REINDEX failed');
ok(!$node->log_contains(qr/index "d_t_idx" now has a compressor/, $d_offset),
	'not that the index now has a compressor by its doing');

# a note that makes no sense (a time ahead: a clock set back; garbage) holds nothing back
empty_indexed('fu_t', 'train_after_rows = 1000');
my ($fu_oid, $fu_node) = split /\|/, $node->safe_psql('postgres',
	"SELECT oid, relfilenode FROM pg_class WHERE relname = 'fu_t_idx'");
retry_delay(600);
append_to_file($retry_file, "$fu_oid $fu_node 3 " . (time() + 400 * 86400) . "\nnot a note\n$fu_oid $fu_node -4 0\n");
like(vacuum_notice('fu_t'), qr/a background worker trains one/, 'a note of a failure ahead of now holds nothing back');
ok(wait_trained('fu_t_idx'), 'and the worker trained the index');

# 3g. copies of three vectors: the REINDEX leaves the index without a
# compressor (fewer than 256 distinct vectors), which counts as a failure:
# the next VACUUM does not rebuild it again at once
$node->safe_psql('postgres', q{
	CREATE TABLE dup_t (id int PRIMARY KEY, emb real[]);
	CREATE INDEX dup_t_idx ON dup_t USING quantumdb (emb real_cosine_ops) WITH (train_after_rows = 1000);
	INSERT INTO dup_t SELECT g.id, glove.emb FROM generate_series(1, 2000) g(id) JOIN glove ON glove.id = g.id % 3;
});
$offset = -s $node->logfile;
like(vacuum_notice('dup_t'), qr/a background worker trains one/, 'copies of three vectors: VACUUM starts the worker');
ok(wait_log($node, qr/LOG:  index "dup_t_idx" was rebuilt without a compressor/, $offset),
	'its REINDEX leaves the index without a compressor');
ok($node->log_contains(qr/DETAIL:  Fewer than 256 distinct vectors were among the rows it covers/, $offset),
	'and the log says why');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'quantumdb train'}),
	'the worker ends');
like(vacuum_notice('dup_t'), qr/failed 1 time in a row: no VACUUM starts another before/,
	'the next VACUUM does not rebuild it again');
retry_delay(0);

# 3d. under a server-wide lock_timeout the REINDEX fails waiting for a
# writer, and the drop of its copy waits for that writer however long
$node->safe_psql('postgres', "ALTER SYSTEM SET lock_timeout = '2s'; SELECT pg_reload_conf();");
empty_indexed('lt_t', 'train_after_rows = 1000');
$writer->query_safe('BEGIN; INSERT INTO lt_t VALUES (100000, (SELECT emb FROM glove WHERE id = 1999))');
$offset = -s $node->logfile;
vacuum_notice('lt_t');
ok(wait_log($node, qr/ERROR:  canceling statement due to lock timeout/, $offset),
	'the REINDEX timed out waiting for the writer');
sleep 3;
$writer->query_safe('COMMIT');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_class WHERE relname LIKE 'lt_t_idx_ccnew%'}),
	'its copy was dropped once the writer ended');
$node->safe_psql('postgres', "ALTER SYSTEM RESET lock_timeout; SELECT pg_reload_conf();");

# 3e. cancelled after the swap, while its REINDEX waits for a reader to
# drop the old index: the old index, now "_ccold", is dropped
empty_indexed('o_t', 'train_after_rows = 1000');
my $o_offset = -s $node->logfile;
my $reader = $node->background_psql('postgres');
$reader->query_safe('BEGIN; SELECT count(*) FROM o_t');
vacuum_notice('o_t');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_progress_create_index
	WHERE relid = 'o_t'::regclass AND phase = 'waiting for readers before marking dead'}),
	'the worker waits for the reader after the swap');
$pid = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_progress_create_index WHERE relid = 'o_t'::regclass});
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$reader->query_safe('COMMIT');
$reader->quit;
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_class WHERE relname LIKE 'o_t_idx_cc%'}),
	'the old index the swap left was dropped');
is(indexes_of('o_t'), 'o_t_idx true', 'one index, valid');
isnt(built_from('o_t_idx'), $untrained, 'with a compressor');
ok(wait_log($node, qr/LOG:  index "o_t_idx" now has a compressor/, $o_offset),
	'the worker says the index has its compressor');
ok(!$node->log_contains(qr/training a compressor for index "o_t_idx" failed/, $o_offset),
	'not that its training failed');

# 3c. the partitions of a table, crossing the threshold in one VACUUM: one
# worker trains them all, one after another (the others' workers leave)
$node->safe_psql('postgres', q{
	CREATE TABLE parts (id int, emb real[]) PARTITION BY RANGE (id);
	CREATE TABLE parts_a PARTITION OF parts FOR VALUES FROM (0) TO (700);
	CREATE TABLE parts_b PARTITION OF parts FOR VALUES FROM (700) TO (1400);
	CREATE TABLE parts_c PARTITION OF parts FOR VALUES FROM (1400) TO (2100);
	CREATE INDEX parts_idx ON parts USING quantumdb (emb real_cosine_ops) WITH (train_after_rows = 500);
	INSERT INTO parts SELECT id, emb FROM glove WHERE id < 2000;
	ANALYZE parts;
});
# (ANALYZE counts the parent's rows: its partitioned index is no candidate)
vacuum_notice('parts');
ok($node->poll_query_until('postgres', q{
	SELECT bool_and(q.built_from <> 'no compressor yet: scans read the heap')
	FROM pg_inherits i, LATERAL quantumdb.index_info(i.inhrelid::regclass) q
	WHERE i.inhparent = 'parts_idx'::regclass}),
	'every partition\'s index was trained after one VACUUM');

# 4. terminated there: the copy stays, and the next VACUUM names it
empty_indexed('k_t', 'train_after_rows = 1000');
$writer->query_safe('BEGIN; INSERT INTO k_t VALUES (100000, (SELECT emb FROM glove WHERE id = 1999))');
vacuum_notice('k_t');
$pid = worker_waiting('k_t');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid");
$writer->query_safe('COMMIT');
is(indexes_of('k_t'), 'k_t_idx true, k_t_idx_ccnew false', 'the terminated worker left its copy');
$err = vacuum_notice('k_t');
like($err, qr/DETAIL:  A REINDEX CONCURRENTLY of it that did not finish left index "k_t_idx_ccnew", not valid \((?:it serves no query and takes every insert|it serves no query and takes no insert)\): no background worker trains this index while it is there\..*HINT:  DROP INDEX CONCURRENTLY public\.k_t_idx_ccnew;/s,
	'the next VACUUM names the copy');
unlike($err, qr/background worker trains one/, 'and starts no worker');
sleep 1;
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'quantumdb train'}),
	'0', 'none runs');
is(built_from('k_t_idx'), $untrained, 'nothing is trained');
is(indexes_of('k_t'), 'k_t_idx true, k_t_idx_ccnew false', 'nor is the copy dropped');
$node->safe_psql('postgres', 'DROP INDEX CONCURRENTLY k_t_idx_ccnew');
vacuum_notice('k_t');
ok(wait_trained('k_t_idx'), 'with the copy dropped, the next VACUUM\'s worker trains the index');

# 4d. cancelled twice: the REINDEX, then the drop of its copy, both waiting
# for a writer: the worker logs the copy it leaves and notes the failure (it
# ended in FATAL, "CommitTransactionCommand: unexpected state DEFAULT"
# without the note: session 55's concurrency hunt), and the next VACUUM
# names that copy, dead or not
empty_indexed('cc_t', 'train_after_rows = 1000');
$writer->query_safe('BEGIN; INSERT INTO cc_t VALUES (100000, (SELECT emb FROM glove WHERE id = 1999))');
$offset = -s $node->logfile;
vacuum_notice('cc_t');
$pid = worker_waiting('cc_t');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
ok($node->poll_query_until('postgres', qq{
	SELECT (SELECT count(*) FROM pg_stat_progress_create_index WHERE pid = $pid) = 0
	   AND (SELECT count(*) FROM pg_locks WHERE pid = $pid AND NOT granted) = 1}),
	'cancelled, the worker waits for the writer to drop its copy');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
ok(wait_log($node, qr/LOG:  index "cc_t_idx_ccnew", what the failed REINDEX CONCURRENTLY of index "cc_t_idx" left, could not be dropped and is left/, $offset),
	'cancelled again there, it logs the copy it leaves');
ok(wait_log($node, qr/LOG:  training a compressor for index "cc_t_idx" failed \(1 time in a row\)/, $offset),
	'and notes the failure');
$writer->query_safe('COMMIT');
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'the worker ends');
ok(!$node->log_contains(qr/FATAL:  CommitTransactionCommand/, $offset), 'not in FATAL');
like(vacuum_notice('cc_t'), qr/left index "cc_t_idx_ccnew"/, 'the next VACUUM names the copy');
$node->safe_psql('postgres', 'DROP INDEX CONCURRENTLY cc_t_idx_ccnew');
vacuum_notice('cc_t');
ok(wait_trained('cc_t_idx'), 'with the copy dropped, the next VACUUM\'s worker trains the index');

# 4b. names cut short: the leftover of another index whose name shares its
# first 57 bytes is named as this index's copy would be (REINDEX
# CONCURRENTLY cuts the name to fit "_ccnew"), but it indexes the column
# by another operator class: it does not hold this index back
my $long = 'l' x 57;
$node->safe_psql('postgres', qq{
	CREATE TABLE ln_t (id int PRIMARY KEY, emb real[]);
	CREATE INDEX ${long}_a ON ln_t USING quantumdb (emb real_cosine_ops) WITH (train_after_rows = 1000);
	CREATE INDEX ${long}_b ON ln_t USING quantumdb (emb real_l2_ops) WITH (train_after_rows = 0);
	INSERT INTO ln_t SELECT id, emb FROM glove WHERE id < 2000;
});
$writer->query_safe('BEGIN; INSERT INTO ln_t VALUES (100000, (SELECT emb FROM glove WHERE id = 1999))');
my $dba2 = $node->background_psql('postgres', on_error_stop => 0);
$dba2->query_until(qr/started/, "\\echo started\nREINDEX INDEX CONCURRENTLY ${long}_b;\n");
$pid = worker_waiting('ln_t');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid");
$writer->query_safe('COMMIT');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname = '} . $long . q{_ccnew'}),
	'1', 'the other index\'s REINDEX left its copy, named as this one\'s would be');
$offset = -s $node->logfile;
vacuum_notice('ln_t');
ok(wait_trained("${long}_a"), 'the index is trained all the same');
ok(!$node->log_contains(qr/is not trained while index/, $offset), 'with no WARNING about the copy');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname = '} . $long . q{_ccnew'}),
	'1', 'which is left as it was');

# 4c. an index left not valid (a CREATE INDEX CONCURRENTLY cancelled after
# its build, waiting for an old snapshot): VACUUM starts no worker for it
$node->safe_psql('postgres', 'CREATE TABLE iv_t (id int PRIMARY KEY, emb real[])');
$writer->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM glove');
my $cic = $node->background_psql('postgres', on_error_stop => 0);
$cic->query_until(qr/started/, "\\echo started\nCREATE INDEX CONCURRENTLY iv_t_idx ON iv_t USING quantumdb (emb real_cosine_ops) WITH (train_after_rows = 1000);\n");
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_progress_create_index
	WHERE relid = 'iv_t'::regclass AND phase = 'waiting for old snapshots'}),
	'the CREATE INDEX CONCURRENTLY waits for the old snapshot');
$node->safe_psql('postgres', q{SELECT pg_cancel_backend(pid) FROM pg_stat_progress_create_index WHERE relid = 'iv_t'::regclass});
$writer->query_safe('COMMIT');
$cic->quit;
$node->safe_psql('postgres', 'INSERT INTO iv_t SELECT id, emb FROM glove WHERE id < 2000');
is(indexes_of('iv_t'), 'iv_t_idx false', 'it left its index, not valid');
$err = vacuum_notice('iv_t');
unlike($err, qr/background worker trains one/, 'VACUUM starts no worker for it');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'quantumdb train'}),
	'0', 'none runs');
$node->safe_psql('postgres', 'DROP TABLE iv_t');
$writer->quit;

# 4x. a row the index without a compressor took but a trained one cannot
# hold (too long for l2): the worker's failure says to mend the row, not
# only to REINDEX, which fails the same way (session 61's hunt, s61b F2)
$node->safe_psql('postgres', q{
	CREATE TABLE tl (id int PRIMARY KEY, emb real[]);
	CREATE INDEX tl_idx ON tl USING quantumdb (emb) WITH (train_after_rows = 1000);
	INSERT INTO tl SELECT id, emb FROM glove WHERE id < 1500;
	INSERT INTO tl VALUES (99999, array_fill(1e19::real, ARRAY[100]));
});
$offset = -s $node->logfile;
vacuum_notice('tl');
ok(wait_log($node, qr/training a compressor for index "tl_idx" failed \(1 time in a row\)[^\n]*\n[^\n]*HINT:  A row of the table is one the index cannot hold once trained/, $offset),
	'a worker that failed on a row the trained index cannot hold says to mend the row');
$node->safe_psql('postgres', 'DROP TABLE tl');

# 4y. a compressor the build trained on fewer rows than train_after_rows:
# once a VACUUM finds that many, a worker trains it again (session 63's
# hunt, /work/runs/hunt-s63a.md F1: an index made on 256 rows kept their
# compressor at 20,000 rows)
$node->safe_psql('postgres', q{
	CREATE TABLE sm (id int PRIMARY KEY, emb real[]);
	INSERT INTO sm SELECT id, emb FROM glove WHERE id < 400;
	CREATE INDEX sm_idx ON sm USING quantumdb (emb real_cosine_ops)
		WITH (train_after_rows = 1000, m = 8);
	CREATE INDEX sm_part ON sm USING quantumdb (emb real_cosine_ops)
		WITH (train_after_rows = 1000, m = 8) WHERE id < 300;
});
my $crc = q{SELECT compressor_checksum FROM quantumdb.index_info('sm_idx')};
my $small = $node->safe_psql('postgres', $crc);
isnt($small, '', 'built on 399 rows: it trained a compressor');
$err = vacuum_notice('sm');
unlike($err, qr/background worker trains/, 'at 399 rows VACUUM starts no worker');
$node->safe_psql('postgres', 'INSERT INTO sm SELECT id, emb FROM glove WHERE id >= 400 AND id < 1500');
$err = vacuum_notice('sm');
like($err, qr/index "sm_idx" has a compressor its build trained on fewer rows than its train_after_rows \(1000\), and its table now has about \d+ rows: a background worker trains another/,
	'at 1,499 rows VACUUM says a worker trains it again');
unlike($err, qr/index "sm_part" has a compressor its build/,
	'not a partial index covering 299 of them: a rebuild would sample as few again');
ok($node->poll_query_until('postgres', "SELECT ($crc) <> '$small'"),
	'the worker trained another compressor');
is(indexes_of('sm'), 'sm_idx true, sm_part true', 'the index keeps its name and is valid');
$err = vacuum_notice('sm');
unlike($err, qr/background worker trains/, 'trained on 1,499 rows: the next VACUUM starts no worker');
is($node->safe_psql('postgres', "SELECT count(*) FROM quantumdb.verify('sm_idx')"),
	'0', 'verify finds nothing');
$node->safe_psql('postgres', 'DROP TABLE sm');

# 5. autovacuum starts the worker
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET autovacuum = on;
	ALTER SYSTEM SET autovacuum_naptime = 1;
	SELECT pg_reload_conf();
});
$node->safe_psql('postgres', q{
	CREATE TABLE av (id int PRIMARY KEY, emb real[])
		WITH (autovacuum_vacuum_insert_threshold = 100, autovacuum_vacuum_insert_scale_factor = 0);
	CREATE INDEX av_idx ON av USING quantumdb (emb real_cosine_ops) WITH (train_after_rows = 1000);
	INSERT INTO av SELECT id, emb FROM glove WHERE id < 2000;
});
ok(wait_trained('av_idx'), 'after autovacuum, a worker trained the index');
ok($node->log_contains(qr/LOG:  index "av_idx" has no compressor yet, and its table now has about 2000 rows: a background worker trains one/),
	'autovacuum logged that it started the worker');
is($node->safe_psql('postgres', "SELECT count(*) FROM quantumdb.verify('av_idx')"),
	'0', 'verify finds nothing');

$node->stop;
done_testing();
