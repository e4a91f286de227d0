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
CREATE POLICY own ON qdb_rls.t FOR SELECT USING (who = current_user);
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
