# pgvector's vector and halfvec columns in quantumdb indexes, through the
# extension quantumdb_pgvector: its operator classes under pgvector's names,
# the same ORDER BY embedding <op> $1 LIMIT k an application sends, the
# rerank by pgvector's own distance functions, training and the codec
# functions on vector values, CREATE EXTENSION in either order, and
# pg_dump / pg_restore.  Skipped where pgvector is not installed (it is not
# in Debian's archive; build it from its source to run this test).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $copy = $ENV{QDB_GLOVE_COPY} or die "QDB_GLOVE_COPY is not set";

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;

if ($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'") ne '1')
{
	$node->stop;
	plan skip_all => 'pgvector not installed';
}

my $sql = sub { $node->safe_psql('postgres', $_[0]) };

# Either order of the two it needs; without vector it says what is missing.
my ($rc, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION quantumdb_pgvector');
like($err, qr/required extension "(quantumdb|vector)" is not installed/,
	'quantumdb_pgvector needs its required extensions');
# a function of pgvector's name in the target schema, ahead of vector's own
# schema, is refused rather than bound into an operator class
$node->safe_psql('postgres', 'CREATE DATABASE hijack');
($rc, $out, $err) = $node->psql('hijack', q{
	CREATE SCHEMA vs; CREATE EXTENSION vector SCHEMA vs; CREATE EXTENSION quantumdb;
	CREATE FUNCTION public.l2_distance(vs.vector, vs.vector) RETURNS float8
		LANGUAGE sql AS 'SELECT 0::float8';
	CREATE EXTENSION quantumdb_pgvector;});
like($err, qr/these names do not find pgvector's own objects: l2_distance\(vector,vector\)/,
	'a same-named function in the target schema stops CREATE EXTENSION quantumdb_pgvector');
is($node->safe_psql('hijack', q{SELECT count(*) FROM pg_extension WHERE extname = 'quantumdb_pgvector'}),
	'0', 'and nothing was created');
$sql->(q{CREATE EXTENSION quantumdb; CREATE EXTENSION vector; CREATE EXTENSION quantumdb_pgvector;});
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other',
	q{CREATE EXTENSION vector; CREATE EXTENSION quantumdb; CREATE EXTENSION quantumdb_pgvector;});
is($node->safe_psql('other',
		q{SELECT count(*) FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod
		  WHERE a.amname = 'quantumdb' AND c.opcname ~ '^(vector|halfvec)_'}),
	'6', 'created after vector and quantumdb in the other order: six operator classes');
is($node->safe_psql('other',
		q{SELECT count(*) FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod
		  WHERE a.amname = 'quantumdb' AND NOT amvalidate(c.oid)}),
	'0', 'every quantumdb operator class passes amvalidate');

# glove rows (100 dims) as vector, halfvec and real[]
$sql->(qq{
	CREATE TABLE glove (id int PRIMARY KEY, emb real[]);
	COPY glove FROM '$copy';
	CREATE TABLE items (id int PRIMARY KEY, embedding vector(100), half halfvec(100));
	INSERT INTO items SELECT id, emb::vector, emb::vector::halfvec FROM glove WHERE id < 1800;
	CREATE TABLE queries AS SELECT id, emb::vector AS q FROM glove WHERE id >= 1800 AND id < 1850;
});
my $rows = $sql->('SELECT count(*) FROM items');

# training reads the vector column; CREATE INDEX uses that compressor
$sql->(q{
	SELECT compressor FROM quantumdb.train('gv', 'items', 'embedding', metric => 'cosine',
		kind => 'pq', subvectors => 20, kmeans_iters => 10, validation => 100);
	CREATE INDEX items_cos ON items USING quantumdb (embedding vector_cosine_ops)
		WITH (compressor = 'gv', m = 8, ef_construction = 64);
});
is($node->safe_psql('postgres', q{SELECT string_agg(v, E'\n') FROM quantumdb.verify('items_cos') v}),
	'', 'verify is clean');

# The application's query, as a prepared statement with a vector parameter.
my $qtext = $sql->('SELECT q::text FROM queries WHERE id = 1800');
my $plan = $sql->(qq{
	SET enable_seqscan = off;
	PREPARE nn(vector) AS SELECT id FROM items ORDER BY embedding <=> \$1 LIMIT 10;
	EXPLAIN (COSTS OFF) EXECUTE nn('$qtext');
});
like($plan, qr/Index Scan using items_cos/, 'the planner uses the quantumdb index for <=>');

# Recall of the index against pgvector's exact order: rerank 0 (ADC order),
# and a rerank of 40 rows, far below the table's size.
my $recall = sub {
	my ($settings, $col, $op, $idx) = @_;
	return $sql->(qq{
		$settings
		SELECT round(avg(hit)::numeric, 3) FROM (
			SELECT q.id, (SELECT count(*) FROM
				(SELECT i.id FROM items i ORDER BY i.$col $op q.q LIMIT 10) a
				JOIN (SELECT e.id FROM (SELECT id, $col FROM items OFFSET 0) e
				      ORDER BY e.$col $op q.q LIMIT 10) b USING (id)) / 10.0 AS hit
			FROM queries q) r;
	});
};
# the exact side: OFFSET 0 keeps the planner from using an index there
my $adc_vs_exhaustive = $sql->(q{
	SET enable_seqscan = off; SET quantumdb.rerank = 0; SET quantumdb.ef_search = 400;
	SELECT round(avg(hit)::numeric, 3) FROM (
		SELECT q.id, (SELECT count(*) FROM
			(SELECT i.id FROM items i ORDER BY i.embedding <=> q.q LIMIT 10) a
			JOIN (SELECT e.id FROM (SELECT id, embedding FROM items OFFSET 0) e
			      ORDER BY quantumdb.adc_distance('gv', q.q, quantumdb.encode('gv', e.embedding))
			      LIMIT 10) b USING (id)) / 10.0 AS hit
		FROM queries q) r;
});
note("rerank 0, ef_search 400: overlap with exhaustive ADC $adc_vs_exhaustive");
cmp_ok($adc_vs_exhaustive, '>=', 0.95, 'at rerank 0 the index returns what exhaustive ADC ranks first');

my $r40 = $recall->('SET enable_seqscan = off; SET quantumdb.rerank = 40; SET quantumdb.ef_search = 40;',
	'embedding', '<=>');
my $r0 = $recall->('SET enable_seqscan = off; SET quantumdb.rerank = 0; SET quantumdb.ef_search = 40;',
	'embedding', '<=>');
note("10-recall\@10 against pgvector's exact cosine order: rerank 40 $r40, rerank 0 $r0 ($rows rows)");
cmp_ok($r40, '>=', 0.85, 'rerank 40 of 1799 rows finds pgvector\'s exact neighbours');
cmp_ok($r40, '>', $r0, 'the rerank by pgvector\'s distance improves on the codes alone');

# the reranked rows come back in pgvector's exact order, with its distances
is($sql->(q{
	SET enable_seqscan = off; SET quantumdb.rerank = 40;
	SELECT count(*) FROM queries q, LATERAL (
		SELECT d, lag(d) OVER () AS prev FROM (
			SELECT embedding <=> q.q AS d FROM items ORDER BY embedding <=> q.q LIMIT 10) s) t
	WHERE t.prev > t.d;
}), '0', 'rows come back in increasing pgvector cosine distance');

# halfvec, l2 (the default class), its compressor trained by CREATE INDEX
$sql->(q{
	SET maintenance_work_mem = '256MB';
	CREATE INDEX items_half ON items USING quantumdb (half) WITH (m = 8, ef_construction = 64);
});
my $half_plan = $sql->(q{SET enable_seqscan = off;
	EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY half <-> '[1,2,3]'::vector::halfvec LIMIT 5});
like($half_plan, qr/Index Scan using items_half/, 'a halfvec column is indexed with halfvec_l2_ops');
my $rh = $sql->(q{
	SET enable_seqscan = off; SET quantumdb.rerank = 40; SET quantumdb.ef_search = 40;
	SELECT round(avg(hit)::numeric, 3) FROM (
		SELECT q.id, (SELECT count(*) FROM
			(SELECT i.id FROM items i ORDER BY i.half <-> q.q::halfvec LIMIT 10) a
			JOIN (SELECT e.id FROM (SELECT id, half FROM items OFFSET 0) e
			      ORDER BY e.half <-> q.q::halfvec LIMIT 10) b USING (id)) / 10.0 AS hit
		FROM queries q) r;
});
note("halfvec l2, rerank 40: 10-recall\@10 $rh");
cmp_ok($rh, '>=', 0.85, 'the halfvec index finds pgvector\'s exact l2 neighbours');

# pgvector's half-precision pattern, an expression index, is refused with a
# hint that names the column types and the generated column that does it
($rc, $out, $err) = $node->psql('postgres',
	'CREATE INDEX ON items USING quantumdb ((embedding::halfvec(100)) halfvec_l2_ops)');
like($err, qr/indexes on expressions are not supported\n.*HINT:  Index a column of type real\[\], vector or halfvec; a stored generated column can hold the expression's value\./,
	'an expression index: refused, with a hint that names vector, halfvec and a generated column');
like($sql->(q{
	CREATE TABLE gen (id int, v vector(100),
		h halfvec(100) GENERATED ALWAYS AS (v::halfvec(100)) STORED);
	INSERT INTO gen (id, v) SELECT id, embedding FROM items WHERE id < 400;
	CREATE INDEX gen_h ON gen USING quantumdb (h halfvec_l2_ops) WITH (m = 8, ef_construction = 64);
	SET enable_seqscan = off;
	EXPLAIN (COSTS OFF) SELECT id FROM gen ORDER BY h <-> (SELECT v::halfvec(100) FROM gen WHERE id = 1) LIMIT 5}),
	qr/Index Scan using gen_h/, 'the generated halfvec column the hint suggests is indexed');

# estimate_recall on pgvector's types: its ordering operator is pgvector's
# (<-> on halfvec, <=> on vector, in pgvector's schema)
for my $idx ('items_half', 'items_cos') {
	my ($n, $r) = split /\|/, $sql->(qq{
		SET quantumdb.rerank = 40; SET quantumdb.ef_search = 40;
		SELECT measured_queries, round(recall::numeric, 3) FROM quantumdb.estimate_recall('$idx', 50)});
	note("estimate_recall $idx: $r over $n queries");
	ok($n == 50 && $r >= 0.85, "estimate_recall measures $idx (50 queries, recall $r)");
}
# a query_column of another type is cast to the index's: pgvector's implicit
# casts would otherwise pick the operator of the other type (the column
# cast), which no index answers (55000 "does not scan index" before 0.8.4)
$sql->(q{CREATE TABLE eq AS SELECT id, q AS v, q::halfvec AS h, q::real[] AS r, id AS n FROM queries});
my $er = sub {
	my ($idx, $col) = @_;
	return $sql->(qq{
		SET quantumdb.rerank = 40; SET quantumdb.ef_search = 40;
		SELECT measured_queries || ' ' || round(recall::numeric, 4) FROM quantumdb.estimate_recall('$idx', 50,
			query_table => 'eq', query_column => '$col')});
};
my %er = map { $_ => $er->('items_cos', $_) } qw(v h r);
note("estimate_recall items_cos with vector, halfvec, real[] queries: $er{v}, $er{h}, $er{r}");
# (real[] also finds quantumdb_pgvector's own vector <=> real[] operator since
# 0.1.1; the halfvec column is the one only the cast lets through)
is($er{r}, $er{v}, 'estimate_recall: real[] queries on a vector index measure what vector queries do');
like($er{h}, qr/^50 0\.(8[5-9]|9)|^50 1/, 'estimate_recall: halfvec queries on a vector index are measured');
like($er->('items_half', 'v'), qr/^50 /, 'estimate_recall: vector queries on a halfvec index are measured');
($rc, $out, $err) = $node->psql('postgres', q{
	SELECT * FROM quantumdb.estimate_recall('items_cos', 5, query_table => 'eq', query_column => 'n')},
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/ERROR:  42804: column "n" of relation (public\.)?eq has type integer, which index "(public\.)?items_cos" cannot take as a query\n.*HINT:  Name a column of type (public\.)?vector\./s,
	'estimate_recall: a column with no cast to vector is 42804, naming the type');

# a real[] or numeric[] query for a vector column (quantumdb_pgvector 0.1.1):
# its operators take the array as it is and the vector index answers; before,
# pgvector's implicit cast of the column to real[] made quantumdb's real[]
# operator answer by a sequential scan
my $qarr = $sql->('SELECT q::real[]::text FROM queries WHERE id = 1800');
for my $t ('real[]', 'numeric[]') {
	like($sql->(qq{SET enable_seqscan = off;
		EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY embedding <=> '$qarr'::$t LIMIT 5}),
		qr/Index Scan using items_cos/, "a $t query for a vector column uses the vector index");
}
is($sql->(qq{SET enable_seqscan = off; SET quantumdb.rerank = 40;
	SELECT (SELECT array_agg(id) FROM (SELECT id FROM items ORDER BY embedding <=> '$qarr'::real[] LIMIT 10) a)
		= (SELECT array_agg(id) FROM (SELECT id FROM items ORDER BY embedding <=> '$qarr'::real[]::vector LIMIT 10) b)}),
	't', 'the real[] query returns what the vector query does');
is($sql->(qq{SELECT count(*) FILTER (WHERE embedding <-> '$qarr'::real[] = embedding <-> '$qarr'::real[]::vector
		AND embedding <=> '$qarr'::real[] = embedding <=> '$qarr'::real[]::vector
		AND embedding <#> '$qarr'::real[] = embedding <#> '$qarr'::real[]::vector) FROM items}),
	$sql->('SELECT count(*) FROM items'), '<->, <=> and <#> of a vector and a real[] are pgvector\'s distances');
is($sql->(q{SELECT string_agg(o.oprname || ' ' || o.oprcode::text, ', ' ORDER BY o.oprname) FROM pg_operator o
	WHERE o.oprleft = 'vector'::regtype AND o.oprright = 'real[]'::regtype}),
	'<#> quantumdb.vector_real_negative_inner_product, <-> quantumdb.vector_real_l2_distance, <=> quantumdb.vector_real_cosine_distance',
	'the three operators of a vector and a real[] are quantumdb_pgvector\'s');
# the update from 0.1.0 gives what a fresh install does
$node->safe_psql('postgres', 'CREATE DATABASE pgv_up');
# with functions in the target schema that would outrank pg_catalog's
# format and unnest on the script's search path (they must not run)
$node->safe_psql('pgv_up', q{SET client_min_messages = warning;
	CREATE EXTENSION quantumdb_pgvector VERSION '0.1.0' CASCADE;
	CREATE FUNCTION public.format(text, text, text, text) RETURNS text LANGUAGE plpgsql
		AS $$BEGIN RAISE EXCEPTION 'a trap ran'; END$$;
	CREATE FUNCTION public.format(text, text, text) RETURNS text LANGUAGE plpgsql
		AS $$BEGIN RAISE EXCEPTION 'a trap ran'; END$$;
	CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql
		AS $$BEGIN RAISE EXCEPTION 'a trap ran'; END$$;
	ALTER EXTENSION quantumdb_pgvector UPDATE});
my $members = q{
	SELECT e.extversion || E'\n' || string_agg(pg_describe_object(d.classid, d.objid, 0)
		|| coalesce(' ' || md5(pg_get_functiondef(p.oid)), '') || ' ' || coalesce(obj_description(d.objid, d.classid::regclass::text), '-'),
		E'\n' ORDER BY pg_describe_object(d.classid, d.objid, 0))
	FROM pg_extension e JOIN pg_depend d ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
		AND d.deptype = 'e'
	LEFT JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
	WHERE e.extname = 'quantumdb_pgvector' GROUP BY e.extversion};
is($node->safe_psql('pgv_up', $members), $sql->($members),
	'quantumdb_pgvector updated from 0.1.0 has the objects, bodies and comments of a fresh install');
# a fresh install with exact-match traps in the target schema for what its
# guard compares and calls by name (= of an oid and a regprocedure,
# regoperator or regtype, format, unnest): none of them runs
$node->safe_psql('postgres', 'CREATE DATABASE pgv_trap');
$node->safe_psql('pgv_trap', q{SET client_min_messages = warning;
	CREATE EXTENSION vector; CREATE EXTENSION quantumdb;
	CREATE FUNCTION public.trap_eq(oid, regprocedure) RETURNS bool LANGUAGE plpgsql
		AS $$BEGIN RAISE EXCEPTION 'a trap ran'; END$$;
	CREATE FUNCTION public.trap_eq(oid, regoperator) RETURNS bool LANGUAGE plpgsql
		AS $$BEGIN RAISE EXCEPTION 'a trap ran'; END$$;
	CREATE FUNCTION public.trap_eq(oid, regtype) RETURNS bool LANGUAGE plpgsql
		AS $$BEGIN RAISE EXCEPTION 'a trap ran'; END$$;
	CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regprocedure, FUNCTION = public.trap_eq);
	CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regoperator, FUNCTION = public.trap_eq);
	CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regtype, FUNCTION = public.trap_eq);
	CREATE FUNCTION public.format(text, text, text, text) RETURNS text LANGUAGE plpgsql
		AS $$BEGIN RAISE EXCEPTION 'a trap ran'; END$$;
	CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql
		AS $$BEGIN RAISE EXCEPTION 'a trap ran'; END$$;});
($rc, $out, $err) = $node->psql('pgv_trap', 'CREATE EXTENSION quantumdb_pgvector');
is($rc, 0, 'a fresh install runs none of the traps in the target schema') or diag($err);
# an install of 0.1.0 whose class binds another function than pgvector's
# (made, before 0.1.0's script checked its names, with a function of
# pgvector's name in the target schema; made here by a catalog update) is
# refused by the update, naming the class and the function
$node->safe_psql('postgres', 'CREATE DATABASE pgv_hij');
$node->safe_psql('pgv_hij', q{SET client_min_messages = warning;
	CREATE SCHEMA pgv; CREATE EXTENSION vector SCHEMA pgv; CREATE EXTENSION quantumdb;
	CREATE EXTENSION quantumdb_pgvector VERSION '0.1.0';
	CREATE FUNCTION public.l2_distance(pgv.vector, pgv.vector) RETURNS float8 LANGUAGE sql IMMUTABLE
		AS 'SELECT 0::float8';
	UPDATE pg_amproc SET amproc = 'public.l2_distance(pgv.vector,pgv.vector)'::regprocedure
	WHERE amprocnum = 1 AND amprocfamily = (SELECT c.opcfamily FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod
		WHERE a.amname = 'quantumdb' AND c.opcname = 'vector_l2_ops')});
($rc, $out, $err) = $node->psql('pgv_hij', 'ALTER EXTENSION quantumdb_pgvector UPDATE',
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/ERROR:  42501: operator classes of quantumdb_pgvector use objects that are not pgvector's\nDETAIL:  vector_l2_ops: function public\.l2_distance \(pgvector is in schema pgv\)/,
	'the update refuses an install whose class binds a function of another schema, naming it');
is($node->safe_psql('pgv_hij', q{SELECT extversion FROM pg_extension WHERE extname = 'quantumdb_pgvector'}),
	'0.1.0', 'the refused update leaves 0.1.0');
# the functions are bound to pgvector's objects, not their names: they
# follow pgvector to another schema
is($node->safe_psql('pgv_up', q{CREATE SCHEMA vx; ALTER EXTENSION vector SET SCHEMA vx;
	SELECT ('[1,2,3]'::vx.vector <=> '{1,2,4}'::real[]) = ('[1,2,3]'::vx.vector OPERATOR(vx.<=>) '[1,2,4]'::vx.vector)
		AND ('[1,2,3]'::vx.vector <-> '{1,2,4}'::real[]) = 1}),
	't', 'the vector and real[] operators still work after ALTER EXTENSION vector SET SCHEMA');

# the codec functions read vector and halfvec as they read real[]
is($sql->(q{
	SELECT count(*) FROM glove g JOIN items i USING (id)
	WHERE quantumdb.encode('gv', g.emb) <> quantumdb.encode('gv', i.embedding)
	   OR quantumdb.adc_distance('gv', g.emb, quantumdb.encode('gv', g.emb))
	   <> quantumdb.adc_distance('gv', i.embedding, quantumdb.encode('gv', g.emb));
}), '0', 'encode and adc_distance give the same for vector as for real[]');
is($sql->(q{
	SELECT count(*) FROM items
	WHERE quantumdb.adc_distance('gv', half, quantumdb.encode('gv', half))
	   <> quantumdb.adc_distance('gv', half::real[], quantumdb.encode('gv', half::real[]))
	   OR quantumdb.encode('gv', half) <> quantumdb.encode('gv', half::real[]);
}), '0', 'halfvec values read as pgvector converts them to real[]');

# inserts through the index, and the checks of user input
$sql->(q{INSERT INTO items SELECT id, emb::vector, emb::vector::halfvec FROM glove WHERE id >= 1850});
is($sql->(q{
	SET enable_seqscan = off; SET quantumdb.rerank = 40;
	SELECT id FROM items ORDER BY embedding <=> (SELECT emb::vector FROM glove WHERE id = 1900) LIMIT 1;
}), '1900', 'an inserted row is found through the index');
($rc, $out, $err) = $node->psql('postgres', q{
	SET enable_seqscan = off; \set VERBOSITY verbose
	SELECT id FROM items ORDER BY embedding <=> '[1,2,3]' LIMIT 1});
like($err, qr/22000: query has 3 dimensions, but index "items_cos" has 100/,
	'a query of other dimensions: 22000');
($rc, $out, $err) = $node->psql('postgres', q{
	SET enable_seqscan = off; \set VERBOSITY verbose
	SELECT id FROM items ORDER BY embedding <=> array_fill(0, ARRAY[100])::real[]::vector LIMIT 1});
like($err, qr/22000: cosine distance is undefined for a zero vector/, 'a zero query under cosine: 22000');
($rc, $out, $err) = $node->psql('postgres', q{\set VERBOSITY verbose
	INSERT INTO items VALUES (99999, array_fill(1, ARRAY[100])::real[]::vector, '[1,2]')});
like($err, qr/expected 100 dimensions, not 2|dimensions/, 'a row of other dimensions is refused');

# pgvector's small-table cases (its test/sql/hnsw_vector.sql) with USING
# quantumdb: the index starts without a compressor and answers as pgvector
# expects.  Not here: vector_l1_ops (quantumdb has no L1), hnsw's iterative
# scans, and ORDER BY val <=> '[0,0,0]', an ERROR in quantumdb where
# pgvector returns the rows at NaN distances.
my %small = (
	'vector_l2_ops' => [ '<->', "[1,2,3]\n[1,2,4]\n[1,1,1]\n[0,0,0]", 4 ],
	'vector_ip_ops' => [ '<#>', "[1,2,4]\n[1,2,3]\n[1,1,1]\n[0,0,0]", 4 ],
	'vector_cosine_ops' => [ '<=>', "[1,1,1]\n[1,2,3]\n[1,2,4]", 3 ]);
for my $class (sort keys %small)
{
	my ($op, $rows, $count) = @{ $small{$class} };
	my $got = $sql->(qq{
		SET client_min_messages = warning;
		SET enable_seqscan = off;
		CREATE TABLE t (val vector(3));
		INSERT INTO t (val) VALUES ('[0,0,0]'), ('[1,2,3]'), ('[1,1,1]'), (NULL);
		CREATE INDEX ON t USING quantumdb (val $class);
		INSERT INTO t (val) VALUES ('[1,2,4]');
		SELECT * FROM t ORDER BY val $op '[3,3,3]';
		SELECT COUNT(*) FROM (SELECT * FROM t ORDER BY val $op (SELECT NULL::vector)) t2;
		SELECT COUNT(*) FROM t;
		EXPLAIN (COSTS OFF) SELECT * FROM t ORDER BY val $op '[3,3,3]';
	});
	like($got, qr/^\Q$rows\E\n$count\n5\nIndex Scan using t_val_idx on t/,
		"pgvector's small-table case with $class");
	if ($class eq 'vector_cosine_ops')
	{
		is($sql->(q{SET enable_seqscan = off;
			SELECT string_agg(t.val::text || ' ' || t2.val::text, ';' ORDER BY t.val) FROM t
			CROSS JOIN LATERAL (SELECT * FROM t t2 ORDER BY val <=> t.val LIMIT 1) t2
			WHERE t.val != '[0,0,0]'}),
			'[1,1,1] [1,1,1];[1,2,3] [1,2,3];[1,2,4] [1,2,4]', 'the LATERAL nearest-neighbour join');
	}
	is($sql->(qq{SET client_min_messages = warning; SET enable_seqscan = off; TRUNCATE t;
		SELECT count(*) FROM (SELECT * FROM t ORDER BY val $op '[3,3,3]') s; DROP TABLE t;}),
		'0', "after TRUNCATE ($class)");
}

# the binary format: COPY out and back in (what a driver's binary COPY
# sends), into a table indexed again; the codes and the answers agree
my $bin = $node->basedir . '/items.bin';
$sql->(qq{
	COPY (SELECT i.id, i.embedding, i.half, g.emb FROM items i JOIN glove g USING (id))
		TO '$bin' WITH (FORMAT binary);
	CREATE TABLE items_bin (id int, embedding vector(100), half halfvec(100), emb real[]);
	COPY items_bin FROM '$bin' WITH (FORMAT binary);
	CREATE INDEX items_bin_cos ON items_bin USING quantumdb (embedding vector_cosine_ops)
		WITH (compressor = 'gv', m = 8, ef_construction = 64);
});
is($sql->(q{
	SELECT count(*) FROM items i JOIN items_bin b USING (id)
	WHERE quantumdb.encode('gv', i.embedding) <> quantumdb.encode('gv', b.embedding)
	   OR quantumdb.encode('gv', i.half) <> quantumdb.encode('gv', b.half)
	   OR quantumdb.encode('gv', i.embedding) <> quantumdb.encode('gv', b.emb)
}), '0', 'vector, halfvec and real[] through binary COPY encode the same');
# what decode returns, through binary COPY out and in
my $dbin = $node->basedir . '/decoded.bin';
$sql->(qq{
	COPY (SELECT id, quantumdb.decode('gv', quantumdb.encode('gv', embedding)) FROM items)
		TO '$dbin' WITH (FORMAT binary);
	CREATE TABLE decoded_bin (id int, d real[]);
	COPY decoded_bin FROM '$dbin' WITH (FORMAT binary);
});
is($sql->(q{
	SELECT count(*) FROM items i JOIN decoded_bin b USING (id)
	WHERE b.d IS DISTINCT FROM quantumdb.decode('gv', quantumdb.encode('gv', i.embedding))
}), '0', 'decode\'s real[] through binary COPY is the same value');
my $knn = q{SET enable_seqscan = off; SET quantumdb.rerank = 40;
	SELECT string_agg(id::text, ',') FROM (SELECT id FROM %s
		ORDER BY embedding <=> (SELECT q FROM queries WHERE id = 1802) LIMIT 5) s};
is($sql->(sprintf($knn, 'items_bin')), $sql->(sprintf($knn, 'items')),
	'the index on the binary copy answers as the original');

# a vector column stored compressed: CREATE INDEX says so, and its hint's
# UPDATE (a new value of the column's type) stores the rows uncompressed
$sql->(q{
	CREATE TABLE sv (id int, v vector(600));
	ALTER TABLE sv ALTER COLUMN v SET STORAGE MAIN;
	INSERT INTO sv SELECT i, (array_fill(0::real, ARRAY[590])
		|| (SELECT array_agg(sin(i * 0.7 + j)::real) FROM generate_series(1, 10) j))::vector
	FROM generate_series(1, 300) i;
	SELECT quantumdb.train('svc', 'sv', 'v', kind => 'pq', subvectors => 8, kmeans_iters => 2,
		validation => 0);
});
($rc, $out, $err) = $node->psql('postgres',
	q{CREATE INDEX ON sv USING quantumdb (v) WITH (compressor = 'svc')});
like($err, qr/300 of the 300 rows indexed store column v compressed.*UPDATE public\.sv SET v = v::real\[\]::vector rewrites/s,
	'the storage NOTICE on a vector column, with an UPDATE for its type');
is($sql->(q{
	ALTER TABLE sv ALTER COLUMN v SET STORAGE PLAIN;
	UPDATE sv SET v = v::real[]::vector;
	SELECT count(*) FILTER (WHERE pg_column_compression(v) IS NOT NULL) FROM sv;
	DROP TABLE sv;
}), '0', 'the hint\'s commands leave no row compressed');

# pg_dump and pg_restore: the extensions, the index and its compressor
my $archive = $node->basedir . '/pgv.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('postgres'), '-f', $archive ], 'pg_dump -Fc');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '-e', '-d', $node->connstr('restored'), $archive ], 'pg_restore');
my $q = q{SET enable_seqscan = off; SET quantumdb.rerank = 40;
	SELECT string_agg(id::text, ',') FROM (SELECT id FROM items
		ORDER BY embedding <=> (SELECT q FROM queries WHERE id = 1801) LIMIT 5) s};
is($node->safe_psql('restored', $q), $sql->($q), 'the restored index answers as the original');
like($node->safe_psql('restored', q{SET enable_seqscan = off;
	EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY embedding <=> '[1]' LIMIT 1}),
	qr/Index Scan using items_cos/, 'the restored database plans with the quantumdb index');

$node->stop;
done_testing();
