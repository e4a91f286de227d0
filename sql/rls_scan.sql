-- Index scans by a user whom row-level security restricts: rows in exact
-- order, read from the heap, never in the order of codes learnt from rows
-- the policies hide (session 57's hunt, F1).  A pq model with one
-- sub-quantizer on 257 rows merges the two nearest rows, the reader's
-- (0,0) and the owner's hidden (1,0), into one centroid (0.5,0): in the
-- codes' order the reader's (0,0) ranks as if it were at (0.5,0), and
-- where the order of its two rows flips tells the hidden row.
SET client_min_messages = warning;
\set VERBOSITY terse

CREATE ROLE qdb_rls_owner;
CREATE ROLE qdb_rls_reader;
CREATE SCHEMA qdb_rls AUTHORIZATION qdb_rls_owner;
GRANT INSERT ON quantumdb.compressors TO qdb_rls_owner;

SET ROLE qdb_rls_owner;
CREATE TABLE qdb_rls.t (id int, who text, emb real[]);
INSERT INTO qdb_rls.t VALUES (1, 'qdb_rls_reader', '{0,0}'), (2, 'qdb_rls_reader', '{-3,0}'),
	(3, 'qdb_rls_owner', '{1,0}');
INSERT INTO qdb_rls.t
SELECT 100 + i, 'qdb_rls_owner', ARRAY[1000 + i * 50, 1000 + i * 37]::real[]
FROM generate_series(1, 254) i;
SELECT compressor, training_rows
FROM quantumdb.train('qdb_rls_c', 'qdb_rls.t', 'emb', kind => 'pq', subvectors => 1,
                     sample => 257, validation => 0, kmeans_iters => 5);
CREATE INDEX t_emb ON qdb_rls.t USING quantumdb (emb real_l2_ops) WITH (compressor = 'qdb_rls_c');
ALTER TABLE qdb_rls.t ENABLE ROW LEVEL SECURITY;
-- (the reader's rows by name, not current_user, which a SECURITY DEFINER
-- function changes below)
CREATE POLICY own ON qdb_rls.t FOR SELECT TO qdb_rls_reader USING (who = 'qdb_rls_reader');
GRANT USAGE ON SCHEMA qdb_rls TO qdb_rls_reader;
GRANT SELECT ON qdb_rls.t TO qdb_rls_reader;
RESET ROLE;

-- at x = -1.4 the reader's (0,0) is nearer (1.4 against 1.6); in the codes'
-- order (0.5,0) is farther (1.9): that order puts row 2 first
CREATE FUNCTION qdb_rls.first_two(x real) RETURNS text LANGUAGE sql AS
$$ SELECT string_agg(id::text, ',') FROM
   (SELECT id FROM qdb_rls.t ORDER BY emb <~> ARRAY[x, 0]::real[] LIMIT 2) s $$;
GRANT USAGE ON SCHEMA qdb_rls TO PUBLIC;
SET enable_seqscan = off;
SET enable_sort = off;
SET quantumdb.ef_search = 1000;

-- the owner, whom the policy does not restrict: the index's own order
-- (rerank 0: codes; the table's owner may read the model anyway)
SET ROLE qdb_rls_owner;
SET quantumdb.rerank = 0;
SELECT qdb_rls.first_two(-1.4) AS owner_rerank_0;
RESET ROLE;

-- the reader: exact order whatever rerank and iterative_scan say
SET ROLE qdb_rls_reader;
SELECT id, who FROM qdb_rls.t ORDER BY id;
SET quantumdb.rerank = 0;
SELECT qdb_rls.first_two(-1.4) AS reader_rerank_0;
SELECT ef_search, rerank, chosen_by FROM quantumdb.scan_settings('qdb_rls.t_emb');
SET quantumdb.rerank = 1;
SELECT qdb_rls.first_two(-1.4) AS reader_rerank_1;
SET quantumdb.iterative_scan = relaxed_order;
SELECT qdb_rls.first_two(-1.4) AS reader_relaxed;
SELECT qdb_rls.first_two(-1.6) AS reader_beyond_the_flip;
RESET quantumdb.iterative_scan;
-- still through the index (enable_seqscan off), with the policy's filter
EXPLAIN (COSTS OFF) SELECT id FROM qdb_rls.t ORDER BY emb <~> '{-1.4,0}'::real[] LIMIT 2;
-- a user may not turn it off
SET quantumdb.approximate_under_rls = on;
RESET ROLE;

-- a superuser may, for a role (ALTER ROLE ... SET) or a session: the
-- codes' order again
SET quantumdb.approximate_under_rls = on;
SET ROLE qdb_rls_reader;
SET quantumdb.rerank = 0;
SELECT qdb_rls.first_two(-1.4) AS reader_approximate;
RESET ROLE;
RESET quantumdb.approximate_under_rls;

-- the planner prices the reader's scan as the heap read and sort it is:
-- with sequential scans allowed the owner's plan uses the index and the
-- reader's does not (ef_search 1: the owner's index scan is cheap)
RESET enable_seqscan;
RESET enable_sort;
SET quantumdb.ef_search = 1;
SET ROLE qdb_rls_owner;
EXPLAIN (COSTS OFF) SELECT id FROM qdb_rls.t ORDER BY emb <~> '{-1.4,0}'::real[] LIMIT 2;
RESET ROLE;
SET ROLE qdb_rls_reader;
EXPLAIN (COSTS OFF) SELECT id FROM qdb_rls.t ORDER BY emb <~> '{-1.4,0}'::real[] LIMIT 2;
RESET ROLE;
SET enable_seqscan = off;
SET enable_sort = off;
-- the index scan's own cost: the reader's, a heap read and a sort, above
-- the owner's walk of one candidate (32.4 against 19.5 when written; the
-- reader's was the owner's and its filter's, 1.03 times it, before)
CREATE FUNCTION qdb_rls.index_cost() RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	j json;
BEGIN
	EXECUTE 'EXPLAIN (FORMAT JSON) SELECT id FROM qdb_rls.t ORDER BY emb <~> ''{-1.4,0}''::real[] LIMIT 2'
		INTO j;
	RETURN (j->0->'Plan'->'Plans'->0->>'Total Cost')::float8;
END $$;
SET ROLE qdb_rls_owner;
CREATE TEMP TABLE costs AS SELECT qdb_rls.index_cost() AS owner_cost;
RESET ROLE;
GRANT ALL ON costs TO PUBLIC;
SET ROLE qdb_rls_reader;
UPDATE costs SET owner_cost = owner_cost;
SELECT qdb_rls.index_cost() > 1.3 * owner_cost AS reader_priced_as_heap_read FROM costs;
RESET ROLE;
DROP TABLE costs;
SET quantumdb.ef_search = 1000;

-- decided as the scan begins, by the user it plans for: a reader's cursor
-- fetched by a SECURITY DEFINER function of the owner stays exact
SET ROLE qdb_rls_owner;
CREATE FUNCTION qdb_rls.fetch_all(c refcursor) RETURNS text LANGUAGE plpgsql
SECURITY DEFINER AS $$
DECLARE
	r record;
	ids text := '';
BEGIN
	LOOP
		FETCH c INTO r;
		EXIT WHEN NOT FOUND;
		ids := ids || r.id || ' ';
	END LOOP;
	RETURN ids;
END $$;
RESET ROLE;
SET ROLE qdb_rls_reader;
SET quantumdb.rerank = 0;
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM qdb_rls.t ORDER BY emb <~> '{-1.4,0}'::real[] LIMIT 2;
SELECT qdb_rls.fetch_all('c') AS reader_cursor_fetched_by_definer;
COMMIT;
RESET ROLE;

-- the policy on a partitioned table, the index on its partition (whose own
-- security is off and which the reader may not read): exact too; and the
-- same through a table it inherits from
SET ROLE qdb_rls_owner;
CREATE TABLE qdb_rls.p (id int, who text, emb real[]) PARTITION BY RANGE (id);
CREATE TABLE qdb_rls.p1 PARTITION OF qdb_rls.p FOR VALUES FROM (0) TO (100000);
INSERT INTO qdb_rls.p SELECT * FROM qdb_rls.t;
CREATE INDEX p1_emb ON qdb_rls.p1 USING quantumdb (emb real_l2_ops) WITH (compressor = 'qdb_rls_c');
ALTER TABLE qdb_rls.p ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON qdb_rls.p FOR SELECT USING (who = current_user);
GRANT SELECT ON qdb_rls.p TO qdb_rls_reader;
CREATE TABLE qdb_rls.ip (id int, who text, emb real[]);
CREATE TABLE qdb_rls.ic () INHERITS (qdb_rls.ip);
INSERT INTO qdb_rls.ic SELECT * FROM qdb_rls.t;
CREATE INDEX ic_emb ON qdb_rls.ic USING quantumdb (emb real_l2_ops) WITH (compressor = 'qdb_rls_c');
ALTER TABLE qdb_rls.ip ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON qdb_rls.ip FOR SELECT USING (who = current_user);
GRANT SELECT ON qdb_rls.ip TO qdb_rls_reader;
SET quantumdb.rerank = 0;
SELECT string_agg(id::text, ',') AS owner_partitioned FROM
	(SELECT id FROM qdb_rls.p ORDER BY emb <~> '{-1.4,0}'::real[] LIMIT 2) s;
RESET ROLE;
SET ROLE qdb_rls_reader;
SET quantumdb.rerank = 0;
SELECT string_agg(id::text, ',') AS reader_partitioned FROM
	(SELECT id FROM qdb_rls.p ORDER BY emb <~> '{-1.4,0}'::real[] LIMIT 2) s;
SELECT string_agg(id::text, ',') AS reader_inherited FROM
	(SELECT id FROM qdb_rls.ip ORDER BY emb <~> '{-1.4,0}'::real[] LIMIT 2) s;
EXPLAIN (COSTS OFF) SELECT id FROM qdb_rls.p ORDER BY emb <~> '{-1.4,0}'::real[] LIMIT 2;
RESET ROLE;

-- without an ORDER BY query vector (NULL): every row the policy shows
SET ROLE qdb_rls_reader;
SELECT id FROM qdb_rls.t ORDER BY emb <~> NULL::real[] LIMIT 5;
RESET ROLE;

-- a role the policy does not restrict for lack of one: a BYPASSRLS role
CREATE ROLE qdb_rls_bypass BYPASSRLS;
GRANT SELECT ON qdb_rls.t TO qdb_rls_bypass;
SET ROLE qdb_rls_bypass;
SET quantumdb.rerank = 0;
SELECT qdb_rls.first_two(-1.4) AS bypass_rerank_0;
RESET ROLE;

RESET quantumdb.rerank;
RESET quantumdb.ef_search;
RESET enable_seqscan;
RESET enable_sort;
DROP SCHEMA qdb_rls CASCADE;
SELECT quantumdb.drop_compressor('qdb_rls_c');
REVOKE INSERT ON quantumdb.compressors FROM qdb_rls_owner;
DROP ROLE qdb_rls_owner;
DROP ROLE qdb_rls_reader;
DROP ROLE qdb_rls_bypass;
