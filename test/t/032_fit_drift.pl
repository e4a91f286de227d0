# A compressor that no longer fits the rows (calibrate_worker.c, session 63's
# hunt F2: rows moved away from those it was trained on, the table's size
# the same):
#   - VACUUMs that removed a quarter of the index's entries start the
#     calibration worker though the row count did not change, and its LOG
#     line gives the compressor's mean squared error now and at the build;
#   - rows replaced by rows of another kind (random vectors) make it log that the compressor fits worse; an index whose
#     build trained its compressor is then trained again by the train worker
#     the next VACUUM starts (a new compressor; verify clean; the new rows
#     as queries at rerank 0 find 5 points more of their exact 10 nearest);
#   - rows replaced by other rows of the same kind (an index built on 1,000
#     glove rows, 600 of them replaced by 600 other glove rows) are
#     calibrated again without that: the build's measure allows for rows
#     the compressor was not trained on;
#   - an index that names a compressor keeps it, and the log says to train
#     another; quantumdb.calibrate says so in a NOTICE.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use QdbIndexCheck;

my $copy = $ENV{QDB_GLOVE_COPY} or die "QDB_GLOVE_COPY is not set";

my $node = start_quiet_node('main');
$node->safe_psql('postgres', qq{
	CREATE EXTENSION quantumdb;
	CREATE TABLE glove (id int PRIMARY KEY, emb real[]);
	COPY glove FROM '$copy';
	CREATE TABLE drift (id int PRIMARY KEY, emb real[]);
	CREATE TABLE same (id int PRIMARY KEY, emb real[]);
	CREATE TABLE named (id int PRIMARY KEY, emb real[]);
	CREATE TABLE ipdrift (id int PRIMARY KEY, emb real[]);
	INSERT INTO drift SELECT id, emb FROM glove;
	INSERT INTO same SELECT id, emb FROM glove WHERE id < 1000;
	INSERT INTO named SELECT id, emb FROM glove;
	INSERT INTO ipdrift SELECT id, emb FROM glove;
	CREATE INDEX drift_idx ON drift USING quantumdb (emb real_cosine_ops)
		WITH (train_after_rows = 1000, m = 8);
	CREATE INDEX same_idx ON same USING quantumdb (emb real_cosine_ops)
		WITH (train_after_rows = 1000, m = 8);
	CREATE INDEX ipdrift_idx ON ipdrift USING quantumdb (emb real_ip_ops)
		WITH (train_after_rows = 0, m = 8);
	SELECT quantumdb.train('c_named', 'glove', 'emb', metric => 'cosine');
	CREATE INDEX named_idx ON named USING quantumdb (emb real_cosine_ops)
		WITH (compressor = 'c_named', m = 8);
});
my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM glove');

sub checksum
{
	my ($index) = @_;
	return $node->safe_psql('postgres',
		"SELECT compressor_checksum FROM quantumdb.index_info('$index')");
}

# 10-recall@10 at rerank 0 of the replaced rows (ids below 250) of $t as
# queries, against an exact scan
sub recall_rr0
{
	my ($t) = @_;
	my $q = qq{SELECT a.id, array(SELECT b.id FROM $t b ORDER BY b.emb <=> a.emb LIMIT 10)
		FROM $t a WHERE a.id % 5 < 3 AND a.id < 250 ORDER BY a.id};
	my $exact = $node->safe_psql('postgres',
		"SET enable_indexscan = off; SET enable_bitmapscan = off; $q");
	my $index = $node->safe_psql('postgres',
		"SET quantumdb.rerank = 0; SET quantumdb.ef_search = 40; SET enable_seqscan = off; $q");
	my $plan = $node->safe_psql('postgres',
		"SET enable_seqscan = off; EXPLAIN (COSTS OFF) $q");
	die "the inner query does not use $t\'s index:\n$plan" unless $plan =~ /Index Scan using ${t}_idx/;
	my %truth = map { my ($id, $ids) = split /\|/; ($id => { map { $_ => 1 } $ids =~ /(\d+)/g }) }
	  split /\n/, $exact;
	my ($hits, $all) = (0, 0);
	for (split /\n/, $index)
	{
		my ($id, $ids) = split /\|/;
		$hits += grep { $truth{$id}{$_} } $ids =~ /(\d+)/g;
		$all += 10;
	}
	return $hits / $all;
}

sub no_workers
{
	return $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type LIKE 'quantumdb%'");
}

# 60% of the rows replaced by rows of another kind: random vectors, each
# component uniform in [-0.5, 0.5) (the same ones in every run)
sub replace_rows
{
	my ($t) = @_;
	$node->safe_psql('postgres', qq{
		SELECT setseed(0.42);
		UPDATE $t SET emb = (SELECT array_agg((random() - 0.5)::real)
			FROM generate_series(1, 100) WHERE $t.id IS NOT NULL)
		WHERE id % 5 < 3});
}

# quantumdb.calibration_fit: coding_error, expected, fits_worse, retrain_pending
sub fit
{
	my ($index) = @_;
	return $node->safe_psql('postgres', qq{SELECT coding_error > 0, expected > coding_error,
		abs(ratio - coding_error / expected) < 1e-9, fits_worse, retrain_pending, removed
		FROM quantumdb.calibration_fit('$index')});
}

is(fit('drift_idx'), 't|t|t|f|f|0', 'calibration_fit after the build: measured, expected above it, fits');
my $drift0 = checksum('drift_idx');
my $same0 = checksum('same_idx');
my $named0 = checksum('named_idx');

# 1. rows of another kind
my $offset = -s $node->logfile;
replace_rows('drift');
$node->safe_psql('postgres', 'VACUUM drift');
ok(wait_log($node, qr/LOG:  quantumdb: index "drift_idx" calibrated again: $rows nodes, $rows at its last calibration, [0-9]+ entries removed since; the compressor's coding error [-0-9.e+]+, [-0-9.e+]+ expected at the build/, $offset),
	'VACUUMs that replaced rows start the calibration worker (the count of rows the same)');
ok(wait_log($node, qr/LOG:  quantumdb: the compressor of index "drift_idx" fits its rows worse than at its build: coding error [-0-9.e+]+ against [-0-9.e+]+ expected\n[^\n]*DETAIL:  A VACUUM of its table that finds it and the index holding 1000 rows \(its option train_after_rows\) has a background worker rebuild it/, $offset),
	'rows moved away: the worker says the compressor fits worse');
ok(no_workers(), 'the calibration worker is done');
my $recall_stale = recall_rr0('drift');
like(fit('drift_idx'), qr/^t\|f\|t\|t\|t\|[0-9]+$/,
	'calibration_fit: fits worse, the train worker to train it again, entries removed');
$node->safe_psql('postgres', 'ALTER INDEX drift_idx SET (train_after_rows = 0)');
like(fit('drift_idx'), qr/^t\|f\|t\|t\|f\|/, 'calibration_fit: with train_after_rows 0 nothing is pending');
$node->safe_psql('postgres', 'ALTER INDEX drift_idx SET (train_after_rows = 1000)');
my ($rc, $out, $err) = $node->psql('postgres', 'VACUUM drift');
like($err, qr/NOTICE:  index "drift_idx" has a compressor that fits its rows worse than at its build: a background worker trains another/,
	'the next VACUUM starts the train worker');
ok(wait_log($node, qr/LOG:  index "drift_idx" has a compressor that fits its rows worse than at its build: training another \(REINDEX INDEX CONCURRENTLY\)/, $offset),
	'the train worker says why it trains the index again');
ok(wait_log($node, qr/LOG:  index "drift_idx" has a compressor trained again/, $offset), 'the train worker rebuilt the index');
ok(!$node->log_contains(qr/index "drift_idx" (has no compressor|now has a compressor)/, $offset),
	'not that the index had no compressor');
ok(no_workers(), 'no worker left');
isnt(checksum('drift_idx'), $drift0, 'the index has a new compressor');
is($node->safe_psql('postgres', "SELECT count(*) FROM quantumdb.verify('drift_idx')"), '0',
	'verify is clean');
my $recall_new = recall_rr0('drift');
note("10-recall\@10 at rerank 0 of the replaced rows: $recall_stale with the old compressor, $recall_new with the new");
cmp_ok($recall_new, '>', $recall_stale + 0.05,
	'the replaced rows as queries at rerank 0: 10-recall@10 5 points higher than with the old compressor');
$offset = -s $node->logfile;
($rc, $out, $err) = $node->psql('postgres', 'VACUUM drift');
unlike($err, qr/trains another/, 'the new compressor is not trained again');
like(fit('drift_idx'), qr/^t\|t\|t\|f\|f\|[0-9]+$/, 'calibration_fit of the new index: fits, nothing pending');

# 2. rows of the same kind: 600 of the 1,000 replaced by rows 1000 to 1599
$offset = -s $node->logfile;
$node->safe_psql('postgres', q{
	DELETE FROM same WHERE id % 5 < 3;
	INSERT INTO same SELECT id, emb FROM glove WHERE id >= 1000 AND id < 1600});
$node->safe_psql('postgres', 'VACUUM same');
ok(wait_log($node, qr/LOG:  quantumdb: index "same_idx" calibrated again/, $offset),
	'rows replaced by rows of their kind: calibrated again');
ok(no_workers(), 'the calibration worker is done');
ok(!$node->log_contains(qr/the compressor of index "same_idx" fits its rows worse/, $offset),
	'rows of the same kind: no complaint');
($rc, $out, $err) = $node->psql('postgres', 'VACUUM same');
unlike($err, qr/trains another/, 'and no train worker');
is(checksum('same_idx'), $same0, 'the compressor is the build\'s');

# 3. a named compressor
$offset = -s $node->logfile;
replace_rows('named');
$node->safe_psql('postgres', 'VACUUM named');
ok(wait_log($node, qr/the compressor of index "named_idx" fits its rows worse than at its build[^\n]*\n[^\n]*DETAIL:  The index uses compressor "c_named": train another on the rows the table has now and build the index with it\./, $offset),
	'a named compressor: the log says to train another');
ok(no_workers(), 'the calibration worker is done');
($rc, $out, $err) = $node->psql('postgres', 'VACUUM named');
unlike($err, qr/trains another/, 'no train worker for a named compressor');
is(checksum('named_idx'), $named0, 'the named compressor stays');
like(fit('named_idx'), qr/^t\|f\|t\|t\|f\|/, 'calibration_fit: a named compressor fits worse, nothing pending');
($rc, $out, $err) = $node->psql('postgres', "SELECT count(*) FROM quantumdb.calibrate('named_idx')");
like($err, qr/NOTICE:  quantumdb: the compressor of index "named_idx" fits its rows worse than at its build/,
	'quantumdb.calibrate says so in a NOTICE');

# 4. under ip: the squared distance to the code's reconstruction, as a
# share of the rows' squared length
like(fit('ipdrift_idx'), qr/^t\|t\|t\|f\|f\|0$/, 'calibration_fit under ip: measured after the build');
$offset = -s $node->logfile;
# 60% of the rows moved by 1 in every component (about 2.5 of the
# components' standard deviations)
$node->safe_psql('postgres', q{
	UPDATE ipdrift SET emb = (SELECT array_agg(e + 1 ORDER BY i) FROM unnest(emb) WITH ORDINALITY u (e, i))
	WHERE id % 5 < 3});
$node->safe_psql('postgres', 'VACUUM ipdrift');
ok(wait_log($node, qr/the compressor of index "ipdrift_idx" fits its rows worse than at its build[^\n]*\n[^\n]*DETAIL:  No worker trains it again/, $offset),
	'under ip: rows of another kind are noticed');
ok(no_workers(), 'the calibration worker is done');
like(fit('ipdrift_idx'), qr/^t\|f\|t\|t\|f\|/, 'calibration_fit under ip: fits worse, nothing pending (train_after_rows 0)');
note($node->safe_psql('postgres', "SELECT * FROM quantumdb.calibration_fit('ipdrift_idx')"));

ok(!$node->log_contains(qr/terminated by signal|TRAP:/), 'no crash');
$node->stop;
done_testing();
