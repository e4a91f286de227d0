# quantumdb.compressors replicated by logical replication (session 61's
# hunt, /work/runs/hunt-s61a.md F1).  The trigger that gives a row whose
# owner is not the role its owner_name names to the role writing it did not
# fire in replication's workers (session_replication_role = replica), and a
# binary subscription sends owner as the publisher's OID: a model went to
# whichever subscriber role had that OID.  Here: a row whose owner was
# dropped on the publisher, and an UPDATE of a row whose owner's OID is
# another role's on the subscriber.  And a replicated TRUNCATE of a table
# whose index names a compressor dropped on the subscriber.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pub = PostgreSQL::Test::Cluster->new('pub');
$pub->init(allows_streaming => 'logical');
$pub->start;
my $sub = PostgreSQL::Test::Cluster->new('sub');
$sub->init;
$sub->start;

# on the subscriber a table decoy, readable by all, takes the OID the
# publisher's t has: a source sent as an OID would name it
$sub->safe_psql('postgres', q{
	CREATE EXTENSION quantumdb;
	CREATE TABLE decoy (id int, v real[]);
	GRANT SELECT ON decoy TO PUBLIC;
	CREATE TABLE t (id int PRIMARY KEY, v real[]);
});
$pub->safe_psql('postgres', q{
	CREATE EXTENSION quantumdb;
	CREATE TABLE t (id int PRIMARY KEY, v real[]);
});
$pub->safe_psql('postgres', q{
	INSERT INTO t SELECT i, (SELECT array_agg(sin(i * 0.37 + j)::real) FROM generate_series(1, 8) j)
	FROM generate_series(1, 400) i;
	SELECT compressor FROM quantumdb.train('ca', 't', 'v', kind => 'pq', subvectors => 4,
		kmeans_iters => 2, validation => 0);
	SELECT compressor FROM quantumdb.train('cb', 't', 'v', kind => 'pq', subvectors => 4,
		kmeans_iters => 2, validation => 0);
	-- the publisher's roles come after 40 others: their OIDs are free on the subscriber
	DO $$BEGIN FOR i IN 1 .. 40 LOOP EXECUTE format('CREATE ROLE pad_%s', i); END LOOP; END$$;
	CREATE ROLE alice;
	CREATE ROLE bob;
	UPDATE quantumdb.compressors SET owner = 'alice' WHERE name = 'ca';
	UPDATE quantumdb.compressors SET owner = 'bob' WHERE name = 'cb';
	DROP ROLE bob;
});
my $alice_oid = $pub->safe_psql('postgres', q{SELECT 'alice'::regrole::oid});
# on the subscriber: alice, and a role mallory with the publisher's alice's OID
$sub->safe_psql('postgres', qq{
	CREATE ROLE alice;
	DO \$\$BEGIN
		WHILE (SELECT max(oid) FROM pg_authid) < $alice_oid - 1 LOOP
			EXECUTE format('CREATE ROLE filler_%s', (SELECT max(oid) FROM pg_authid));
		END LOOP;
	END\$\$;
	CREATE ROLE mallory;
});
my $mallory_oid = $sub->safe_psql('postgres', q{SELECT 'mallory'::regrole::oid});
my $su = $sub->safe_psql('postgres', q{SELECT current_user});
SKIP:
{
	skip "mallory did not get alice's OID ($mallory_oid, not $alice_oid)", 7
		if $mallory_oid ne $alice_oid;

	$pub->safe_psql('postgres', q{CREATE PUBLICATION catalog FOR TABLE quantumdb.compressors});
	my $conn = $pub->connstr . ' dbname=postgres';
	$sub->safe_psql('postgres',
		qq{CREATE SUBSCRIPTION catalog CONNECTION '$conn' PUBLICATION catalog WITH (binary = true)});
	$sub->wait_for_subscription_sync($pub, 'catalog');

	# the initial copy is text: alice by name; cb's owner by its number; a
	# binary subscription's rows take no source
	is($sub->safe_psql('postgres', q{SELECT owner || ' ' || owner_name || ' ' || coalesce(source::text, 'none') FROM quantumdb.compressors WHERE name = 'ca'}),
		'alice alice none', 'copied: ca belongs to the subscriber\'s alice, with no source');
	is($sub->safe_psql('postgres', q{SELECT owner || ' ' || owner_name FROM quantumdb.compressors WHERE name = 'cb'}),
		"$su $su",
		'copied: cb, whose owner was dropped, goes to the subscription\'s owner, not to a role with its OID');
	like(slurp_file($sub->logfile), qr/WARNING:  compressor "cb" belonged to role "bob"/,
		'with the WARNING');

	# binary: the UPDATE sends alice's publisher OID, mallory's here
	$pub->safe_psql('postgres', q{UPDATE quantumdb.compressors SET validation_recall = 0.5 WHERE name = 'ca'});
	$pub->wait_for_catchup('catalog');
	is($sub->safe_psql('postgres',
			q{SELECT owner || ' ' || owner_name || ' ' || validation_recall || ' ' || coalesce(source::text, 'none') FROM quantumdb.compressors WHERE name = 'ca'}),
		'alice alice 0.5 none',
		'a replicated UPDATE keeps the row\'s owner, not the role with the publisher\'s OID, and takes no source');
	# a compressor trained on the publisher later: a binary INSERT
	$pub->safe_psql('postgres', q{
		SELECT compressor FROM quantumdb.train('cd', 't', 'v', kind => 'pq', subvectors => 4,
			kmeans_iters => 2, validation => 0)});
	$pub->wait_for_catchup('catalog');
	is($sub->safe_psql('postgres', q{SELECT coalesce(source::text, 'none') FROM quantumdb.compressors WHERE name = 'cd'}),
		'none', 'a replicated INSERT takes no source, not the table with the publisher\'s table OID');
	my ($ret, $out, $err) = $sub->psql('postgres',
		q{SET ROLE mallory; SELECT length(quantumdb.export('ca'))});
	like($err, qr/ERROR:  permission denied for compressor "ca"/, "and mallory may not export it");
	# the subscriber's owner stays through later replicated UPDATEs (a DBA
	# gave the row away here; the publisher's row still names alice)
	$sub->safe_psql('postgres', q{CREATE ROLE keeper; UPDATE quantumdb.compressors SET owner = 'keeper' WHERE name = 'ca'});
	$pub->safe_psql('postgres', q{UPDATE quantumdb.compressors SET validation_recall = 0.6 WHERE name = 'ca'});
	$pub->wait_for_catchup('catalog');
	is($sub->safe_psql('postgres', q{SELECT owner || ' ' || owner_name || ' ' || validation_recall FROM quantumdb.compressors WHERE name = 'ca'}),
		'keeper keeper 0.6', 'a later replicated UPDATE keeps the owner the subscriber gave the row');
	$sub->safe_psql('postgres', q{UPDATE quantumdb.compressors SET owner = 'alice' WHERE name = 'ca'});
	$sub->safe_psql('postgres', q{DROP SUBSCRIPTION catalog});
}

# a replicated TRUNCATE rebuilds the subscriber's index on the empty table:
# one naming a compressor dropped there builds without one, with a
# WARNING, where it stopped the subscription (session 61's hunt, F3)
$pub->safe_psql('postgres', q{
	CREATE TABLE lt (id int PRIMARY KEY, v real[]);
	INSERT INTO lt SELECT id, v FROM t;
	CREATE PUBLICATION lt_pub FOR TABLE lt;
});
$sub->safe_psql('postgres', q{CREATE TABLE lt (id int PRIMARY KEY, v real[])});
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION lt_sub CONNECTION '" . $pub->connstr . " dbname=postgres' PUBLICATION lt_pub");
$sub->wait_for_subscription_sync($pub, 'lt_sub');
$sub->safe_psql('postgres', q{
	SET client_min_messages = error;
	SELECT compressor FROM quantumdb.train('cc', 'lt', 'v', kind => 'pq', subvectors => 4,
		kmeans_iters => 2, validation => 0);
	CREATE INDEX lti ON lt USING quantumdb (v) WITH (compressor = 'cc');
	SELECT quantumdb.drop_compressor('cc');
});
$pub->safe_psql('postgres', q{
	TRUNCATE lt;
	INSERT INTO lt SELECT id, v FROM t WHERE id <= 10;
});
ok($sub->poll_query_until('postgres', q{SELECT count(*) = 10 FROM lt}),
	'the subscriber applies a TRUNCATE of a table whose index names a dropped compressor');
like(slurp_file($sub->logfile), qr/WARNING:  index "lti" was rebuilt without a compressor/,
	'with a WARNING');
like($sub->safe_psql('postgres', q{SELECT built_from FROM quantumdb.index_info('lti')}),
	qr/no compressor yet/, 'the index has none');
is($sub->safe_psql('postgres', q{SET enable_seqscan = off;
	SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM lt ORDER BY v <~> (SELECT v FROM lt WHERE id = 1) LIMIT 3) s}),
	join(',', sort { $a <=> $b } split /,/, $sub->safe_psql('postgres', q{SET enable_indexscan = off;
	SELECT string_agg(id::text, ',') FROM (SELECT id FROM lt ORDER BY v <~> (SELECT v FROM lt WHERE id = 1) LIMIT 3) s})),
	'and answers as an exact scan');
$sub->safe_psql('postgres', q{DROP SUBSCRIPTION lt_sub});

# an UPDATE under session_replication_role = replica in a session of its
# own is an ordinary one: the owner changes, the name follows
$sub->safe_psql('postgres', q{
	SET session_replication_role = replica;
	UPDATE quantumdb.compressors SET owner = 'mallory' WHERE name = 'ca';
});
is($sub->safe_psql('postgres', q{SELECT owner || ' ' || owner_name FROM quantumdb.compressors WHERE name = 'ca'}),
	'mallory mallory', 'a DBA\'s UPDATE of the owner under session_replication_role = replica takes');
# and an INSERT there is checked as a restore's
# (its name has a quote: the WARNING's hint quotes it)
my ($ret, $out, $err) = $sub->psql('postgres', q{
	SET session_replication_role = replica;
	INSERT INTO quantumdb.compressors (name, kind, dimensions, metric, settings, model, owner, owner_name)
	SELECT 'o''cc', kind, dimensions, metric, settings, model, 'alice', 'carol'
	FROM quantumdb.compressors WHERE name = 'ca';
});
like($err, qr/compressor "o'cc" belonged to role "carol", not to role "alice"/,
	'an INSERT under session_replication_role = replica is checked');
like($err, qr/WHERE name = 'o''cc';/, 'the hint quotes the name');
is($sub->safe_psql('postgres', q{SELECT owner FROM quantumdb.compressors WHERE name = 'o''cc'}),
	$su, 'and goes to the inserting role');

$sub->stop;
$pub->stop;
done_testing();
