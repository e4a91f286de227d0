# A real client, unchanged: test/client/pgvector_app.mjs uses npm pg and npm
# pgvector as pgvector's README shows them, against a vector column whose
# only index is a quantumdb one, then sends parameters in the binary
# format.  The packages go into a throwaway folder from the npm registry.  Skipped where pgvector is not installed (it is not in Debian's
# archive; build it from its source to run this test) or node and npm are
# missing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use File::Temp qw(tempdir);
use FindBin;
use Test::More;

my $copy = $ENV{QDB_GLOVE_COPY} or die "QDB_GLOVE_COPY is not set";
my $app = "$FindBin::Bin/../client/pgvector_app.mjs";

plan skip_all => 'node and npm not installed'
  unless system('node --version >/dev/null 2>&1') == 0
  && system('npm --version >/dev/null 2>&1') == 0;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;
if ($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'") ne '1')
{
	$node->stop;
	plan skip_all => 'pgvector not installed';
}

# the migration an application runs: table, rows, a quantumdb index
$node->safe_psql('postgres', qq{
	CREATE EXTENSION quantumdb_pgvector CASCADE;
	CREATE TABLE glove (id int PRIMARY KEY, emb real[]);
	COPY glove FROM '$copy';
	CREATE TABLE items (id bigserial PRIMARY KEY, embedding vector(100));
	INSERT INTO items SELECT id, emb::vector FROM glove WHERE id < 1900;
	CREATE TABLE queries AS SELECT id, emb::vector AS q FROM glove WHERE id >= 1900 AND id < 1960;
	SELECT compressor FROM quantumdb.train('gv', 'items', 'embedding', metric => 'cosine',
		kind => 'pq', subvectors => 20, kmeans_iters => 10, validation => 0);
	CREATE INDEX ON items USING quantumdb (embedding vector_cosine_ops)
		WITH (compressor = 'gv', m = 8, ef_construction = 64);
	-- a full rerank: the index must then give the exact scan's answer
	ALTER DATABASE postgres SET quantumdb.rerank = 5000;
	ALTER DATABASE postgres SET quantumdb.ef_search = 400;
	ALTER DATABASE postgres SET enable_seqscan = off;
});

my $dir = tempdir(CLEANUP => 1);
local $ENV{npm_config_cache} = "$dir/.npm-cache";
my ($out, $err);
my $ok = IPC::Run::run([ 'npm', 'install', '--prefix', $dir, '--no-audit', '--no-fund',
		'--loglevel=error', 'pg', 'pgvector' ], '>', \$out, '2>', \$err);
ok($ok, 'npm install pg pgvector') or diag($err);
system('cp', $app, "$dir/app.mjs") == 0 or die "cp $app: $!";

local $ENV{PGHOST} = $node->host;
local $ENV{PGPORT} = $node->port;
local $ENV{PGDATABASE} = 'postgres';
local $ENV{PGUSER} = (getpwuid($<))[0];
$ok = IPC::Run::run([ 'node', "$dir/app.mjs" ], '>', \$out, '2>', \$err);
ok($ok, 'the application ran') or diag("stdout: $out\nstderr: $err");
note($out);
my %r = $out =~ /"(\w+)":("[^"]*"|true|false|\d+)/g;

cmp_ok($r{queries} // 0, '>=', 50, 'the application ran its queries');
is($r{same_as_exact}, $r{queries}, 'every ORDER BY embedding <=> $1 LIMIT 5 gives the exact scan\'s ids');
is($r{inserted_found}, 'true', 'rows inserted with pgvector.toSql are found through the index');
is($r{read_back}, 'true', 'pgvector\'s type parser reads the column back');
like($r{plan}, qr/Index Scan using items_embedding_idx/, 'EXPLAIN shows the quantumdb index');
is($r{binary_encode_real}, 'true', 'encode with a real[] parameter in binary');
is($r{binary_encode_vector}, 'true', 'encode with a vector parameter in binary');
is($r{binary_adc}, 'true', 'adc_distance with binary parameters');
is($r{binary_scan}, 'true', 'an index scan with a binary vector parameter');

$node->stop;
done_testing();
