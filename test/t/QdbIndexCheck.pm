# QdbIndexCheck.pm: checks shared by the quantumdb index TAP tests.
package QdbIndexCheck;

use strict;
use warnings;
use Test::More;
use PostgreSQL::Test::Cluster;
use Exporter 'import';
use PostgreSQL::Test::Utils;
use Time::HiRes ();

our @EXPORT = qw(start_quiet_node create_indexed_items synthetic_indexed_sql check_all_rows_indexed
	wait_log);

# A new cluster named $name, started, with autovacuum off (its VACUUMs are
# the test's own).
sub start_quiet_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', "autovacuum = off\n");
	$node->start;
	return $node;
}

# Loads the glove sample (COPY file $copy) into table glove, its first
# $rows rows into items, and indexes items (cosine, m 8) with a small pq
# compressor trained on them.
sub create_indexed_items
{
	my ($node, $copy, $rows) = @_;
	$node->safe_psql('postgres', qq{
		CREATE EXTENSION quantumdb;
		CREATE TABLE glove (id int PRIMARY KEY, emb real[]);
		COPY glove FROM '$copy';
		CREATE TABLE items (id int PRIMARY KEY, emb real[]);
		INSERT INTO items SELECT id, emb FROM glove WHERE id < $rows;
		SELECT compressor FROM quantumdb.train('c1', 'items', 'emb', metric => 'cosine',
			kind => 'pq', subvectors => 20, kmeans_iters => 10, validation => 100);
		CREATE INDEX items_idx ON items USING quantumdb (emb real_cosine_ops)
			WITH (compressor = 'c1', m = 8, ef_construction = 64);
	});
}

# SQL that makes table $table of $rows synthetic 32-dimension rows (no
# data file), trains pq compressor c1 on it (8 bytes) and indexes it as
# ${table}_idx (m 8); the extension must exist.
sub synthetic_indexed_sql
{
	my ($table, $rows) = @_;
	return qq{
		CREATE TABLE $table (id int, emb real[]);
		INSERT INTO $table
		SELECT i, (SELECT array_agg(sin(i * 0.377 + j * 1.91 + (i % 11) * j)::real)
		           FROM generate_series(1, 32) j)
		FROM generate_series(1, $rows) i;
		SELECT compressor FROM quantumdb.train('c1', '$table', 'emb', kind => 'pq',
			subvectors => 8, kmeans_iters => 5, validation => 0);
		CREATE INDEX ${table}_idx ON $table USING quantumdb (emb) WITH (compressor = 'c1', m = 8);
	};
}

# Every row of the table is in the index and reachable from its entry
# point: a scan allowed to visit every node (rerank 0: code order, no heap
# reads for the distance) returns each row once.  $allowed rows may be
# missing: those of unreachable nodes, which an insert (or a repair) can
# leave and the next VACUUM links back.
sub check_all_rows_indexed
{
	my ($node, $what, $allowed) = @_;
	my ($returned, $distinct, $rows, $missing) = split /\|/, $node->safe_psql('postgres', q{
		SET enable_seqscan = off; SET enable_bitmapscan = off;
		SET quantumdb.ef_search = 10000; SET quantumdb.rerank = 0;
		SET quantumdb.max_scan_tuples = 1000000;
		CREATE TEMP TABLE full_scan AS SELECT id FROM items
			ORDER BY emb <=> (SELECT emb FROM glove WHERE id = 0) LIMIT 1000000;
		SELECT count(*), count(DISTINCT id), (SELECT count(*) FROM items),
			(SELECT string_agg(id::text, ',' ORDER BY id) FROM items
			 WHERE id NOT IN (SELECT id FROM full_scan))
		FROM full_scan});
	$missing //= '';
	note("$what: a full index scan returns $returned rows ($distinct ids) of $rows"
		  . ($missing ne '' ? "; missing: $missing" : ''));
	is($returned, $distinct, "$what: a full index scan returns no row twice");
	cmp_ok($rows - $distinct, '<=', $allowed,
		"$what: a full index scan returns every row" . ($allowed ? " but at most $allowed" : ''));
}

# Whether $node's server log past $offset gets a line matching $re within
# the tests' timeout.
sub wait_log
{
	my ($node, $re, $offset) = @_;
	for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
	{
		return 1 if $node->log_contains($re, $offset);
		Time::HiRes::usleep(100_000);
	}
	return 0;
}

1;
