# pg_dump keeps the compressor catalog's rows (pg_extension_config_dump):
# after a dump and a restore into another database, the model bytes are the
# same and encode gives the same codes.  The table's two quantumdb indexes
# (one naming the compressor, one that trains its own in the build) are
# rebuilt by the restore, from plain SQL and from pg_restore: clean, and
# exact where their settings cover the table.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# COPY text of the 2,000 real GloVe vectors of test/data/glove-2k, written
# by run_tests.sh where the server can read it
my $copy = $ENV{QDB_GLOVE_COPY} or die "QDB_GLOVE_COPY is not set";
my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;

$node->safe_psql('postgres', qq{
	CREATE EXTENSION quantumdb;
	CREATE TABLE docs (id int PRIMARY KEY, embedding real[]);
	COPY docs FROM '$copy';
	SELECT quantumdb.train('c', 'docs', 'embedding', kind => 'opq', subvectors => 4,
	                       kmeans_iters => 3, opq_iters => 2);
	CREATE INDEX docs_named ON docs USING quantumdb (embedding) WITH (compressor = 'c');
	CREATE INDEX docs_own ON docs USING quantumdb (embedding);
});

# per index (the other dropped for the while): problems verify finds, its
# nodes, the plan, and whether the index scan, its candidates covering the
# table, gives the sequential scan's top 10
sub index_state
{
	my ($db) = @_;
	my $q = 'SELECT id FROM docs ORDER BY embedding <~> (SELECT embedding FROM docs WHERE id = 7) LIMIT 10';
	my $out = '';
	foreach my $idx ('docs_named', 'docs_own')
	{
		my $other = $idx eq 'docs_named' ? 'docs_own' : 'docs_named';
		$out .= $node->safe_psql($db, qq{
			BEGIN;
			DROP INDEX $other;
			SET LOCAL quantumdb.ef_search = 3000;
			SET LOCAL quantumdb.rerank = 3000;
			SET LOCAL enable_seqscan = off;
			EXPLAIN (COSTS OFF) $q;
			CREATE TEMP TABLE got AS SELECT array_agg(id) AS ids FROM ($q) s;
			SET LOCAL enable_seqscan = on;
			SET LOCAL enable_indexscan = off;
			SELECT '$idx', (SELECT count(*) FROM quantumdb.verify('$idx')),
				(SELECT nodes FROM quantumdb.index_info('$idx')),
				(SELECT ids FROM got) = (SELECT array_agg(id) FROM ($q) s);
			ROLLBACK;}) . "\n";
	}
	return $out;
}

my $codes_sql = "SELECT md5(string_agg(encode(quantumdb.encode('c', embedding), 'hex'), ',' ORDER BY id)) FROM docs";
my $model_sql = "SELECT md5(model) || ' ' || kind || ' ' || dimensions FROM quantumdb.compressors WHERE name = 'c'";
my $codes = $node->safe_psql('postgres', $codes_sql);
my $model = $node->safe_psql('postgres', $model_sql);
like($model, qr/^[0-9a-f]{32} opq 100$/, 'compressor stored');
my $owner = $node->safe_psql('postgres', 'SELECT current_user');

my $dump = "$PostgreSQL::Test::Utils::tmp_check/dump.sql";
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
	'-d', $node->connstr('restored'), '-f', $dump ], 'restore');

is($node->safe_psql('restored', $model_sql), $model, 'model bytes survive dump and restore');
is($node->safe_psql('restored', $codes_sql), $codes, 'same codes after restore');
# owner and source are dumped by name and found again by name
is($node->safe_psql('restored',
		"SELECT owner::text || ' ' || source::text || ' ' || source_column FROM quantumdb.compressors WHERE name = 'c'"),
	"$owner docs embedding", 'owner and source survive dump and restore');
is($node->safe_psql('restored',
		"SELECT source = 'docs'::regclass FROM quantumdb.compressors WHERE name = 'c'"),
	't', 'the source names the restored table');

my $state = index_state('postgres');
like($state, qr/Index Scan using docs_named.*docs_named\|0\|2000\|t.*Index Scan using docs_own.*docs_own\|0\|2000\|t/s,
	'both indexes are clean and exact before the dump');
is(index_state('restored'), $state, 'the same after a restore from plain SQL');

my $archive = "$PostgreSQL::Test::Utils::tmp_check/dump.custom";
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('postgres'), '-f', $archive ],
	'pg_dump -Fc');
$node->safe_psql('postgres', 'CREATE DATABASE restored_custom');
$node->command_ok([ 'pg_restore', '-e', '-d', $node->connstr('restored_custom'), $archive ],
	'pg_restore');
is(index_state('restored_custom'), $state, 'the same after pg_restore');

# pg_restore --jobs: the way the README gives (the compressors come with
# the data, so pre-data and data first, then post-data on several jobs)
# restores both indexes
$node->safe_psql('postgres', 'CREATE DATABASE restored_jobs');
$node->command_ok([ 'pg_restore', '-e', '--section=pre-data', '--section=data',
	'-d', $node->connstr('restored_jobs'), $archive ], 'pg_restore pre-data and data');
$node->command_ok([ 'pg_restore', '-e', '--jobs=2', '--section=post-data',
	'-d', $node->connstr('restored_jobs'), $archive ], 'pg_restore --jobs=2 post-data');
is(index_state('restored_jobs'), $state, 'the same after that parallel restore');
# an index built before the compressors' rows: the ERROR says the way
my ($ret, $out, $err) = $node->psql('restored_jobs', q{
	DELETE FROM quantumdb.compressors;
	CREATE INDEX early ON docs USING quantumdb (embedding) WITH (compressor = 'c')});
like($err, qr/compressor "c" does not exist.*HINT:.*--section=pre-data --section=data first, then --section=post-data/s,
	'a missing compressor hints at the sections');

# a compressor dropped while an index names it: a WARNING names the index
# (its dump could not be restored); with the option reset, a dump restores
# it, training a compressor from the table
($ret, $out, $err) = $node->psql('postgres', q{SELECT quantumdb.drop_compressor('c')});
like($err, qr/WARNING:  compressor "c" is still named by 1 index: public\.docs_named\n.*ALTER INDEX \.\.\. RESET \(compressor\)/s,
	'dropping a compressor an index names warns');
$node->safe_psql('postgres', 'ALTER INDEX docs_named RESET (compressor)');
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump after the drop');
$node->safe_psql('postgres', 'CREATE DATABASE restored_reset');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
	'-d', $node->connstr('restored_reset'), '-f', $dump ], 'its restore');
like(index_state('restored_reset'), qr/docs_named\|0\|2000\|t.*docs_own\|0\|2000\|t/s,
	'both indexes are restored, clean and exact');

$node->stop;
done_testing();
