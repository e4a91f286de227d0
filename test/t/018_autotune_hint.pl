# The CREATE INDEX that quantumdb.autotune's NOTICE hints at runs as given
# when the extension lives in a schema off the search path: the operator
# class is schema-qualified there (it was written bare: "operator class
# real_cosine_ops does not exist"), and bare where the path finds it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE SCHEMA ext;
	CREATE EXTENSION quantumdb SCHEMA ext;
	CREATE TABLE t (id int, emb real[]);
	INSERT INTO t
	SELECT i, (SELECT array_agg(sin(i * 0.377 + j * 1.91 + (i % 11) * j)::real)
	           FROM generate_series(1, 16) j)
	FROM generate_series(1, 1400) i;
});

# the HINT of autotune's NOTICE: the CREATE INDEX statement
sub autotune_hint
{
	my ($name, $path) = @_;
	my ($stdout, $stderr);
	$node->psql('postgres', qq{
		SET search_path = $path;
		SET client_min_messages = notice;
		SELECT 1 FROM quantumdb.autotune('$name', 'public.t', 'emb', 'cosine',
			budget => '5 min', kinds => '{pq}', sample => 1200, validation => 100,
			stage_trials => '{2,1,1}');
	}, stdout => \$stdout, stderr => \$stderr, on_error_die => 1);
	my ($hint) = $stderr =~ /HINT:\s+(CREATE INDEX [^\n]*)/;
	return $hint;
}

my $hint = autotune_hint('c1', 'public');
like($hint, qr/USING quantumdb \(emb ext\.real_cosine_ops\) WITH \(compressor = 'c1'/,
	'off the search path, the hint qualifies the operator class');
$node->safe_psql('postgres', "SET search_path = public; $hint");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_index WHERE indrelid = 'public.t'::regclass}), '1',
	'the hinted CREATE INDEX runs as given');

$hint = autotune_hint('c2', 'public, ext');
like($hint, qr/USING quantumdb \(emb real_cosine_ops\) WITH \(compressor = 'c2'/,
	'on the search path, the operator class is bare');

# a kind whose training does not fit in maintenance_work_mem is left out
# with a NOTICE; its hint says for how many rows the setting it names is
# (it named one for ten times the rows the message gave)
my ($out, $err);
$node->psql('postgres', q{
	SET maintenance_work_mem = '16MB';
	SET client_min_messages = notice;
	SELECT 1 FROM quantumdb.autotune('c3', 'public.t', 'emb', 'cosine',
		budget => '5 min', kinds => '{pq,rq}', sample => 1200, validation => 100,
		stage_trials => '{2,1,1}');
}, stdout => \$out, stderr => \$err, on_error_die => 1);
like($err, qr/leaves kind rq out: its training on (\d+) rows of 16 dimensions needs about \d+ MB, and maintenance_work_mem is 16384 kB\n.*HINT:  SET maintenance_work_mem = '\d+MB' to search it too: room for \d+ rows, and a tenth to spare\./,
	'a kind left out for memory: the hint says for how many rows its setting is');

done_testing();
