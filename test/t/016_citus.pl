# QuantumDB on Citus distributed tables (src/citus.c, README "Citus"): a
# coordinator and two workers on unix sockets, started here; a third worker
# added later.  Compressors trained, imported and dropped on the
# coordinator reach every worker in the same transaction (and a rolled-back
# drop does not); CREATE INDEX naming one builds every shard's index with
# it; without one each shard's index trains on its own rows and the empty
# shell table on the coordinator trains nothing; an empty distributed
# table and create_distributed_table of a table with the index work; a
# seeded sample gives the same model from the distributed table as from a
# plain table with the same rows; quantumdb.shard_index_info reports each
# shard's index; a node added later copies from the coordinator what its
# indexes name (citus_add_node, a shard moved or distributed to it),
# CREATE INDEX and quantumdb.citus_sync_compressors() copy to it, and an
# index naming a dropped compressor fails a move loudly.  Skipped where Citus is not installed (it is not in
# Debian's archive; build it from its source to run this test).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $copy = $ENV{QDB_GLOVE_COPY} or die "QDB_GLOVE_COPY is not set";

my $probe = PostgreSQL::Test::Cluster->new('probe');
$probe->init;
$probe->start;
my $have = $probe->safe_psql('postgres',
	"SELECT count(*) FROM pg_available_extensions WHERE name = 'citus'");
$probe->stop;
if ($have ne '1')
{
	print "skipped: citus not installed\n";
	plan skip_all => 'skipped: citus not installed';
}

sub citus_node
{
	my ($name) = @_;
	my $n = PostgreSQL::Test::Cluster->new($name);
	$n->init;
	$n->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'citus'
max_connections = 60
max_prepared_transactions = 60
autovacuum = off
maintenance_work_mem = 256MB
});
	# Citus reaches the node itself by this name (shard moves)
	$n->append_conf('postgresql.conf', "citus.local_hostname = '" . $n->host . "'\n");
	$n->start;
	$n->safe_psql('postgres', 'CREATE EXTENSION citus');
	return $n;
}

my $coord = citus_node('coordinator');
my @workers = (citus_node('worker1'), citus_node('worker2'));
my $sql = sub { $coord->safe_psql('postgres', $_[0]) };
my ($rc, $out, $err);
my $on = sub { $_[0]->safe_psql('postgres', $_[1]) };

$sql->(sprintf("SELECT citus_set_coordinator_host('%s', %d)", $coord->host, $coord->port));
$sql->(sprintf("SELECT citus_add_node('%s', %d)", $_->host, $_->port)) for @workers;
$sql->('CREATE EXTENSION quantumdb');
is($on->($_, q{SELECT extversion = default_version FROM pg_extension e
	JOIN pg_available_extensions a ON a.name = e.extname WHERE extname = 'quantumdb'}), 't',
	'CREATE EXTENSION reached ' . $_->name) for @workers;

# glove rows: a distributed table of 4 shards and a plain table of the same rows
$sql->(qq{
	CREATE TABLE glove (id int, emb real[]);
	COPY glove FROM '$copy';
	CREATE TABLE items (id int, emb real[]);
	SELECT create_distributed_table('items', 'id', shard_count => 4);
	INSERT INTO items SELECT id, emb FROM glove WHERE id < 1900;
});
my $train = sub {
	my ($name, $table) = @_;
	$sql->(qq{SET client_min_messages = warning;
		SELECT compressor FROM quantumdb.train('$name', '$table', 'emb', metric => 'cosine',
			kind => 'pq', subvectors => 20, kmeans_iters => 8, validation => 100, seed => 7)});
};
my $rows = sub { my ($n, $name) = @_;
	$on->($n, qq{SELECT coalesce(owner || ':' || coalesce(source::text, '-') || ':' || md5(model), 'none')
		FROM (SELECT 1) one LEFT JOIN quantumdb.compressors ON name = '$name'}) };

# 1. a compressor trained on the coordinator is on every worker
$train->('gc', 'items');
my $here = $rows->($coord, 'gc');
like($here, qr/^postgres:items:[0-9a-f]{32}$/, 'trained on the distributed table');
is($rows->($_, 'gc'), $here, 'the trained compressor reached ' . $_->name) for @workers;

# the seeded sample does not depend on where and in which order rows arrive
$train->('gc_again', 'items');
$sql->(q{CREATE TABLE plain AS SELECT * FROM glove WHERE id < 1900 ORDER BY id DESC});
$train->('gc_plain', 'plain');
is($sql->(q{SELECT count(DISTINCT md5(model)) FROM quantumdb.compressors
	WHERE name IN ('gc', 'gc_again', 'gc_plain')}), '1',
	'the same seed gives the same model from the distributed table twice and from a plain table');

# 2. CREATE INDEX naming it builds every shard's index with it
$sql->(q{CREATE INDEX items_q ON items USING quantumdb (emb real_cosine_ops)
	WITH (compressor = 'gc', m = 8, ef_construction = 64)});
is($sql->(q{SELECT string_agg(DISTINCT info->>'compressor', ',') || '/' || sum((info->>'nodes')::int)
	|| '/' || count(*) || '/' || sum(cardinality(problems))
	FROM quantumdb.shard_index_info('items_q')}), 'gc/1900/4/0',
	'shard_index_info: 4 shard indexes with gc, 1900 nodes in all, verify clean');
is($sql->(q{SELECT nodes FROM quantumdb.index_info('items_q')}), '0',
	'the coordinator\'s own index of the shell table is empty');

# the distributed ORDER BY ... LIMIT uses each shard's index, and the
# coordinator merges by exact distance (query vectors as literals: a
# subquery on another table is a join Citus plans differently)
my @queries = split /\n/, $sql->(q{SELECT emb::text FROM glove WHERE id >= 1900 ORDER BY id});
# A plain SET does not reach the shards; SET LOCAL does under
# citus.propagate_set_commands = 'local' (README "Citus").
my $local = sub {
	my ($settings, $query) = @_;
	return $sql->(qq{SET citus.propagate_set_commands = 'local'; BEGIN;
		SET LOCAL enable_seqscan = off; $settings $query; COMMIT;});
};
my $plan = $local->('SET LOCAL citus.explain_all_tasks = on;',
	qq{EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb <=> '$queries[0]'::real[] LIMIT 10});
like($plan, qr/Index Scan using items_q_\d+/, 'shards scan their quantumdb index');
my $answers = sub {
	my ($table, $settings) = @_;
	return [ split /\n/, $local->($settings, join ";\n", map {
		qq{SELECT string_agg(id::text, ',') FROM (SELECT id FROM $table
			ORDER BY emb <=> '$_'::real[] LIMIT 10) s} } @queries) ];
};
my $exact = $answers->('plain', '');
my $recall = sub {
	my ($got) = @_;
	my ($hits, $all) = (0, 0);
	for my $i (0 .. $#queries)
	{
		my %want = map { $_ => 1 } split /,/, $exact->[$i];
		$hits += grep { $want{$_} } split /,/, $got->[$i];
		$all += scalar keys %want;
	}
	return $all ? $hits / $all : 0;
};
my $default = $answers->('items', '');
my $shallow = $answers->('items', 'SET LOCAL quantumdb.ef_search = 10; SET LOCAL quantumdb.rerank = 10;');
my $plain_set = [ split /\n/, $sql->(join ";\n",
	'SET quantumdb.ef_search = 10', 'SET quantumdb.rerank = 10', map {
	qq{SELECT string_agg(id::text, ',') FROM (SELECT id FROM items
		ORDER BY emb <=> '$_'::real[] LIMIT 10) s} } @queries) ];
my $differ = sub { scalar grep { $_[0]->[$_] ne $_[1]->[$_] } 0 .. $#queries };
cmp_ok($recall->($default), '>=', 0.9,
	sprintf('10-recall@10 of the distributed index scan: %.3f', $recall->($default)));
cmp_ok($differ->($shallow, $default), '>', 0,
	sprintf('SET LOCAL ef_search 10 / rerank 10 reaches the shards: %d of %d answers change, recall %.3f',
		$differ->($shallow, $default), scalar @queries, $recall->($shallow)));
is($differ->($plain_set, $default), 0, 'a plain SET does not reach them: the same answers as without');
# ALTER DATABASE ... SET reaches every node, for sessions started after it
# (each new coordinator session opens its own connections to the workers)
$sql->(q{ALTER DATABASE postgres SET quantumdb.ef_search = 10;
	ALTER DATABASE postgres SET quantumdb.rerank = 10;
	ALTER DATABASE postgres SET enable_seqscan = off;});
my $by_database = [ split /\n/, $sql->(join ";\n", map {
	qq{SELECT string_agg(id::text, ',') FROM (SELECT id FROM items
		ORDER BY emb <=> '$_'::real[] LIMIT 10) s} } @queries) ];
$sql->(q{ALTER DATABASE postgres RESET quantumdb.ef_search;
	ALTER DATABASE postgres RESET quantumdb.rerank;
	ALTER DATABASE postgres RESET enable_seqscan;});
is($differ->($by_database, $shallow), 0,
	'ALTER DATABASE ... SET reaches the shards of new sessions: the answers of SET LOCAL');

# query shapes (README "Citus"): a subquery on the distributed table for the
# query vector is a Citus ERROR, a MATERIALIZED CTE runs the index scans, a
# generic plan is a Citus ERROR
($rc, $out, $err) = $coord->psql('postgres', q{SELECT id FROM items
	ORDER BY emb <=> (SELECT emb FROM items WHERE id = 5) LIMIT 10});
like($err, qr/complex joins are only supported/, 'the query vector as a subquery on the table: a Citus ERROR');
$plan = $local->('SET LOCAL citus.explain_all_tasks = on;', q{EXPLAIN (COSTS OFF)
	WITH q AS MATERIALIZED (SELECT emb FROM items WHERE id = 5)
	SELECT id FROM items ORDER BY emb <=> (SELECT emb FROM q) LIMIT 10});
like($plan, qr/Index Scan using items_q_\d+/, 'through a MATERIALIZED CTE: the shards scan their index');
is($sql->(q{WITH q AS MATERIALIZED (SELECT emb FROM items WHERE id = 5)
	SELECT string_agg(id::text, ',') FROM (SELECT id FROM items
	ORDER BY emb <=> (SELECT emb FROM q) LIMIT 3) s}),
	$sql->(q{SELECT string_agg(id::text, ',') FROM (SELECT id FROM plain
	ORDER BY emb <=> (SELECT emb FROM plain WHERE id = 5) LIMIT 3) s}),
	'and finds the nearest rows');
($rc, $out, $err) = $coord->psql('postgres', qq{SET plan_cache_mode = force_generic_plan;
	PREPARE p(real[]) AS SELECT id FROM items ORDER BY emb <=> \$1 LIMIT 10;
	EXECUTE p('$queries[0]')});
like($err, qr/could not create distributed plan/, 'force_generic_plan: a Citus ERROR');

# 3. import and drop on the coordinator reach the workers; a rolled-back
#    drop leaves them
$sql->(q{SELECT quantumdb.import('gi', quantumdb.export('gc'))});
is($rows->($_, 'gi'), $rows->($coord, 'gi'), 'the imported compressor reached ' . $_->name)
	for @workers;
$sql->(q{BEGIN; SELECT quantumdb.drop_compressor('gi'); ROLLBACK;});
is($rows->($_, 'gi'), $rows->($coord, 'gi'), 'a rolled-back drop kept it on ' . $_->name)
	for @workers;
$sql->(q{SELECT quantumdb.drop_compressor('gi')});
is($rows->($_, 'gi'), 'none', 'the drop reached ' . $_->name) for @workers;
($rc, $out, $err) = $coord->psql('postgres',
	q{BEGIN; SELECT quantumdb.import('gc', quantumdb.export('gc_plain')); COMMIT;});
like($err, qr/compressor "gc" already exists/, 'a taken name fails on the coordinator first');

# a compressor made in the transaction that indexes with it: its copies
# are uncommitted on one connection per worker, so parallel shard builds
# cannot see them (an ERROR on the coordinator, with the way out), while
# sequential mode builds on that connection
($rc, $out, $err) = $coord->psql('postgres', q{BEGIN;
	SELECT quantumdb.import('gtx', quantumdb.export('gc'));
	CREATE INDEX items_tx ON items USING quantumdb (emb real_cosine_ops) WITH (compressor = 'gtx');
	COMMIT;});
like($err, qr/"gtx" was created or copied to the workers in this transaction.*HINT:.*multi_shard_modify_mode = 'sequential'/s,
	'a compressor of this transaction in parallel mode: an ERROR with a hint');
is($rows->($workers[0], 'gtx'), 'none', 'and nothing was left on the workers');
$sql->(q{BEGIN; SET LOCAL citus.multi_shard_modify_mode = 'sequential';
	SELECT quantumdb.import('gtx', quantumdb.export('gc'));
	CREATE INDEX items_tx ON items USING quantumdb (emb real_cosine_ops)
		WITH (compressor = 'gtx', m = 8, ef_construction = 64);
	COMMIT;});
is($sql->(q{SELECT count(*) || '/' || string_agg(DISTINCT info->>'compressor', ',')
	FROM quantumdb.shard_index_info('items_tx')}), '4/gtx',
	'in sequential mode the same transaction builds every shard index with it');
$sql->(q{DROP INDEX items_tx; SELECT quantumdb.drop_compressor('gtx')});

# 4. without a compressor: each shard's index trains on its own rows; the
#    coordinator's empty shell trains nothing and says nothing
($rc, $out, $err) = $coord->psql('postgres',
	q{CREATE INDEX items_own ON items USING quantumdb (emb real_cosine_ops)
	  WITH (m = 8, ef_construction = 64)});
is($rc, 0, 'CREATE INDEX without a compressor on the distributed table');
unlike($err, qr/no compressor yet/, 'no notice about the empty shell table');
is($sql->(q{SELECT string_agg(DISTINCT info->>'built_from', ',') || '/'
	|| count(*) FILTER (WHERE info->>'compressor' IS NULL) || '/' || sum((info->>'nodes')::int)
	FROM quantumdb.shard_index_info('items_own')}), 'vectors/4/1900',
	'every shard trained its own model on its own rows');
$sql->('DROP INDEX items_own');

# an empty distributed table, and a table distributed after its index
$sql->(q{
	CREATE TABLE empty_items (id int, emb real[]);
	SELECT create_distributed_table('empty_items', 'id', shard_count => 2);
	CREATE INDEX empty_q ON empty_items USING quantumdb (emb real_cosine_ops);
	CREATE TABLE later (id int, emb real[]);
	CREATE INDEX later_q ON later USING quantumdb (emb real_cosine_ops);
	SELECT create_distributed_table('later', 'id', shard_count => 2);
	INSERT INTO later SELECT id, emb FROM glove WHERE id < 300;
});
is($sql->(q{SELECT count(*) FROM quantumdb.shard_index_info('empty_q') WHERE cardinality(problems) = 0}),
	'2', 'an index on an empty distributed table builds empty, without an error');
is($sql->(qq{SELECT string_agg(id::text, ',') FROM (SELECT id FROM later
	ORDER BY emb <=> '$queries[5]'::real[] LIMIT 3) s}),
	$sql->(qq{SELECT string_agg(id::text, ',') FROM (SELECT id FROM glove WHERE id < 300
	ORDER BY emb <=> '$queries[5]'::real[] LIMIT 3) s}),
	'a table distributed after its index is created answers exactly until it trains');

# 5. a node added later: it copies from the coordinator the compressors its
#    shell and shard indexes name (citus_add_node, a shard moved there, a
#    table distributed there); CREATE INDEX copies them to it;
#    citus_sync_compressors() copies every one
my $late = citus_node('worker3');
$sql->(sprintf("SELECT citus_add_node('%s', %d)", $late->host, $late->port));
is($on->($late, q{SELECT count(*) FROM pg_extension WHERE extname = 'quantumdb'}), '1',
	'quantumdb is on the added node');
# (its shell table is not yet a Citus table on the node then, so the copy
# has no source there: its owner's and superusers' only, README "Citus")
(my $here_nosource = $here) =~ s/:items:/:-:/;
is($rows->($late, 'gc'), $here_nosource, 'citus_add_node: the added node copied gc, which items_q names');
is($rows->($late, 'gc_plain'), 'none', 'and no compressor that no index names');
is($sql->(q{SELECT quantumdb.citus_sync_compressors()}), '3', 'citus_sync_compressors sends 3');
is($rows->($late, 'gc'), $here, 'and gives the copy made during citus_add_node its source');

$on->($late, q{SELECT quantumdb.drop_compressor('gc')});
is($rows->($late, 'gc'), 'none', 'a drop on a worker is local');
my $shard = $sql->(q{SELECT min(shardid) FROM pg_dist_shard WHERE logicalrelid = 'items'::regclass});
my ($src_host, $src_port) = split /\|/, $sql->(
	qq{SELECT nodename, nodeport FROM pg_dist_shard_placement WHERE shardid = $shard});
$sql->(sprintf(q{SELECT citus_move_shard_placement(%d, '%s', %d, '%s', %d,
	shard_transfer_mode => 'block_writes')}, $shard, $src_host, $src_port, $late->host, $late->port));
is($sql->(qq{SELECT node || '/' || (info->>'compressor') || '/' || (info->>'nodes') || '/'
	|| cardinality(problems) FROM quantumdb.shard_index_info('items_q') WHERE shard = $shard}),
	$late->host . ':' . $late->port . '/gc/' . $on->($late, "SELECT count(*) FROM items_$shard") . '/0',
	'a shard moved to a node without gc: the node copied it, the moved index has every row');
is($rows->($late, 'gc'), $here, 'gc is on the node again, with its source');

$on->($late, q{SELECT quantumdb.drop_compressor('gc')});
$sql->(q{
	CREATE TABLE items3 (id int, emb real[]);
	SELECT create_distributed_table('items3', 'id', shard_count => 6);
	INSERT INTO items3 SELECT id, emb FROM glove WHERE id < 600;
	CREATE INDEX items3_q ON items3 USING quantumdb (emb real_cosine_ops) WITH (compressor = 'gc');
});
is($rows->($late, 'gc'), $here, 'CREATE INDEX sent gc to the node that lacked it');
is($sql->(q{SELECT count(DISTINCT node) || '/' || string_agg(DISTINCT info->>'compressor', ',')
	FROM quantumdb.shard_index_info('items3_q')}), '3/gc', 'items3\'s shard indexes on 3 workers use gc');

$on->($late, q{SELECT quantumdb.drop_compressor('gc')});
$sql->(q{CREATE TABLE later2 (id int, emb real[]);
	INSERT INTO later2 SELECT id, emb FROM glove WHERE id < 600;
	CREATE INDEX later2_q ON later2 USING quantumdb (emb real_cosine_ops) WITH (compressor = 'gc');
	SELECT create_distributed_table('later2', 'id', shard_count => 6)});
is($sql->(q{SELECT count(*) || '/' || string_agg(DISTINCT info->>'compressor', ',') || '/'
	|| sum((info->>'nodes')::int) FROM quantumdb.shard_index_info('later2_q')}), '6/gc/600',
	'a table distributed after its index named gc: the node without gc copied it');

$on->($late, q{SELECT quantumdb.drop_compressor('gc')});
is($sql->(q{SELECT quantumdb.citus_sync_compressors()}), '3',
	'citus_sync_compressors sends the 3 compressors');
is($rows->($late, 'gc'), $here, 'the node has gc again');
is($sql->(q{SELECT quantumdb.citus_sync_compressors()}), '3',
	'a second sync is harmless (the workers keep what they have)');

# a copy sent earlier in the same transaction (sync) is treated as the
# transaction's own: an ERROR in parallel mode, not a wait on it
($rc, $out, $err) = $coord->psql('postgres', q{BEGIN; SELECT quantumdb.citus_sync_compressors();
	CREATE INDEX items3_q2 ON items3 USING quantumdb (emb real_cosine_ops) WITH (compressor = 'gc');
	COMMIT;}, timeout => 120);
like($err, qr/"gc" was created or copied to the workers in this transaction/,
	'sync then CREATE INDEX in one parallel transaction: an ERROR, not a wait');

# an index naming a compressor that was dropped since: a shard moved to a
# node cannot copy it, and the move fails, never building without it
$sql->(q{SELECT quantumdb.import('gd', quantumdb.export('gc'));
	CREATE TABLE items4 (id int, emb real[]);
	SELECT create_distributed_table('items4', 'id', shard_count => 3);
	INSERT INTO items4 SELECT id, emb FROM glove WHERE id < 600;
	CREATE INDEX items4_q ON items4 USING quantumdb (emb real_cosine_ops) WITH (compressor = 'gd');
	SELECT quantumdb.drop_compressor('gd');});
my ($shard4, $h4, $p4) = split /\|/, $sql->(sprintf(q{SELECT p.shardid, p.nodename, p.nodeport
	FROM pg_dist_shard_placement p JOIN pg_dist_shard s USING (shardid)
	WHERE s.logicalrelid = 'items4'::regclass AND p.nodeport <> %d ORDER BY 1 LIMIT 1}, $late->port));
($rc, $out, $err) = $coord->psql('postgres', sprintf(q{SELECT citus_move_shard_placement(%d, '%s', %d,
	'%s', %d, shard_transfer_mode => 'block_writes')}, $shard4, $h4, $p4, $late->host, $late->port));
like($err, qr/compressor "gd" does not exist on this node.*citus_sync_compressors/s,
	'a shard move to a node that cannot copy the compressor: an ERROR with the way out');

# a worker that has another model under the name refuses the copy
$train->('gc_other', 'glove');
$on->($late, q{SELECT quantumdb.drop_compressor('gc_again')});
$on->($late, q{SELECT quantumdb.import('gc_again', quantumdb.export('gc_other'))});
($rc, $out, $err) = $coord->psql('postgres', q{SELECT quantumdb.citus_sync_compressors()});
like($err, qr/compressor "gc_again" already exists on this node with another model/,
	'a worker with another model under the name refuses the copy');

$_->stop for ($coord, @workers, $late);
done_testing();
