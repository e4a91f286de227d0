# pg_dump keeps the compressor catalog's rows (pg_extension_config_dump):
# after a dump and a restore into another database, the model bytes are the
# same and encode gives the same codes.
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
});

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

$node->stop;
done_testing();
