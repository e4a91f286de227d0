-- The backend's code cache (index_code_cache.c): a scan reads a node's page
-- to expand it or to return it, and takes the code of a node it only visits
-- from the cache once an earlier scan of this backend has read it.  Counted
-- as shared buffers of the index scan (EXPLAIN (ANALYZE, BUFFERS)), with
-- rerank 0 so that no heap page counts.  The cache never changes a result:
-- the index at rerank 0 returns what exhaustive ADC returns, before and
-- after inserts, deletes and VACUUM.
SET client_min_messages = warning;
SELECT setseed(0.5);
CREATE TABLE cc (id int PRIMARY KEY, emb real[]) WITH (autovacuum_enabled = off);
INSERT INTO cc SELECT i, array(SELECT (random() - 0.5)::real FROM generate_series(1, 24) WHERE i > 0)
FROM generate_series(1, 3000) i;
SELECT compressor FROM quantumdb.train('cc_c', 'cc', 'emb', kind => 'pq', subvectors => 8,
                                       kmeans_iters => 5, validation => 0);
CREATE INDEX cc_idx ON cc USING quantumdb (emb) WITH (compressor = 'cc_c', m = 8);

-- the shared buffers an index scan for row qid's vector touches
CREATE FUNCTION scan_buffers(qid int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE format(
    'EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF)
     SELECT id FROM cc ORDER BY emb <~> (SELECT emb FROM cc WHERE id = %s) LIMIT 10', qid)
  LOOP
    IF line ~ 'Index Scan' THEN
      CONTINUE;
    END IF;
    IF line ~ 'Buffers: shared hit=' THEN
      RETURN substring(line FROM 'hit=(\d+)')::int;
    END IF;
  END LOOP;
  RETURN NULL;
END $$;

SET enable_seqscan = off;
SET quantumdb.rerank = 0;
SET quantumdb.ef_search = 100;
-- with the cache off, a scan reads a page for every node it visits
SET quantumdb.code_cache_size = 0;
CREATE TEMP TABLE b AS SELECT scan_buffers(7) AS off_first, scan_buffers(7) AS off_again;
-- with it on, the first scan fills it and the same scan again reads far less
RESET quantumdb.code_cache_size;
ALTER TABLE b ADD COLUMN on_first int, ADD COLUMN on_again int, ADD COLUMN other int;
UPDATE b SET on_first = scan_buffers(7);
UPDATE b SET on_again = scan_buffers(7);
-- after scans for 30 other rows, a query never run before gains too
SELECT count(scan_buffers(i)) FROM generate_series(100, 129) i;
UPDATE b SET other = scan_buffers(11);
SELECT off_again >= off_first * 0.9 AS off_stays,
       on_first >= off_first * 0.9 AS first_scan_reads_as_without,
       on_again * 3 <= on_first AS again_reads_a_third_or_less,
       other * 2 <= off_first AS a_new_query_reads_half_or_less
FROM b;

-- pg_statio counts each node page a scan reads as an index block hit, the
-- pages pinned in the buffer remembered for them (index_recent_buffer.c:
-- all of them by now) as those found through the buffer mapping table, and
-- pg_stat_user_indexes counts the scan (EXPLAIN's count of the same query,
-- less its subquery's 3 pages, is about 10% more than the index's own
-- statistics count, with or without the remembered buffers)
SELECT pg_stat_force_next_flush();
SELECT idx_blks_hit AS hit0, idx_scan AS scan0
FROM pg_statio_user_indexes JOIN pg_stat_user_indexes USING (indexrelid)
WHERE pg_statio_user_indexes.indexrelname = 'cc_idx' \gset
SELECT count(*) FROM (SELECT id FROM cc ORDER BY emb <~> (SELECT emb FROM cc WHERE id = 7) LIMIT 10) s;
-- a backend sends its counts at most once a second, unless told to after a statement
SELECT pg_stat_force_next_flush();
SELECT scan_buffers(7) - 3 AS scan7 \gset
SELECT :scan7 > 0 AS scan_read_pages, idx_blks_hit - :hit0 >= :scan7 * 3 / 4 AS statio_counts_them,
       idx_scan - :scan0 >= 1 AS scan_counted
FROM pg_statio_user_indexes JOIN pg_stat_user_indexes USING (indexrelid)
WHERE pg_statio_user_indexes.indexrelname = 'cc_idx';

-- never a different result: the index at rerank 0 with a walk that sees
-- every node returns the ADC distances of exhaustive ADC
CREATE FUNCTION adc_mismatches() RETURNS bigint LANGUAGE sql AS $$
SELECT count(*) FROM cc q,
  LATERAL (SELECT array_agg(round(d::numeric, 4) ORDER BY d) a FROM
           (SELECT quantumdb.adc_distance('cc_c', q.emb, quantumdb.encode('cc_c', emb)) d
            FROM cc ORDER BY emb <~> q.emb LIMIT 10) s) i,
  LATERAL (SELECT array_agg(round(d::numeric, 4) ORDER BY d) a FROM
           (SELECT quantumdb.adc_distance('cc_c', q.emb, quantumdb.encode('cc_c', emb)) d
            FROM cc ORDER BY 1 LIMIT 10) s) e
WHERE q.id % 150 = 1 AND i.a IS DISTINCT FROM e.a $$;
SET quantumdb.ef_search = 10000;
SELECT adc_mismatches() AS warm_cache_mismatches;
DELETE FROM cc WHERE id % 3 = 0;
-- VACUUM frees the deleted rows' nodes only when no other backend's
-- snapshot can still see them (an auto-analyze, say): wait, up to 60 s
DO $$ BEGIN
  FOR i IN 1..600 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid <> pg_backend_pid()
                          AND datname = current_database() AND backend_xmin IS NOT NULL);
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
VACUUM cc;
SELECT reusable_nodes > 0 AS vacuum_freed_nodes FROM quantumdb.index_info('cc_idx');
-- new rows in the freed slots: other codes at the references the cache knew
INSERT INTO cc SELECT i + 10000, array(SELECT (random() - 0.5)::real FROM generate_series(1, 24) WHERE i > 0)
FROM generate_series(1, 1000) i;
SELECT reusable_nodes < 1000 AS slots_reused FROM quantumdb.index_info('cc_idx');
SELECT adc_mismatches() AS mismatches_after_reuse;
SELECT count(*) AS problems FROM quantumdb.verify('cc_idx');
-- a cache that quantumdb.code_cache_size holds to a part of the index (8 kB:
-- about 10 of its node pages' places, a new backend's cache growing from 8
-- pages) still saves page reads and changes no result
SELECT pg_stat_force_next_flush();	-- this backend's counts, before it goes
\c
SET client_min_messages = warning;
SET enable_seqscan = off;
SET quantumdb.rerank = 0;
SET quantumdb.ef_search = 100;
-- the index's own cache loaded first (meta and compressor pages), no codes kept
SET quantumdb.code_cache_size = 0;
SELECT scan_buffers(11) > 0 AS loaded;
SET quantumdb.code_cache_size = 8;
SELECT scan_buffers(7) AS small_cold \gset
SELECT scan_buffers(7) < :small_cold AS small_cache_saves_reads;
SET quantumdb.ef_search = 10000;
SELECT adc_mismatches() AS mismatches_small_cache, adc_mismatches() AS mismatches_small_cache_again;
RESET quantumdb.code_cache_size;
-- the cache changes no walk: at ef_search 40 and rerank 0, where a wrong
-- code would turn a walk elsewhere, 53 queries return the same rows in the
-- same order from a backend without the cache as from one whose cache
-- holds every code they meet
CREATE FUNCTION walks() RETURNS TABLE (qid int, ids int[]) LANGUAGE sql AS $$
SELECT q.id, (SELECT array_agg(id) FROM (SELECT id FROM cc ORDER BY emb <~> q.emb LIMIT 10) s)
FROM cc q WHERE q.id % 75 = 2 $$;
SELECT pg_stat_force_next_flush();
\c
SET client_min_messages = warning;
SET enable_seqscan = off;
SET quantumdb.rerank = 0;
SET quantumdb.ef_search = 40;
SET quantumdb.code_cache_size = 0;
CREATE TABLE walks_without AS SELECT * FROM walks();
SELECT pg_stat_force_next_flush();
\c
SET client_min_messages = warning;
SET enable_seqscan = off;
SET quantumdb.rerank = 0;
SET quantumdb.ef_search = 40;
SELECT count(*) AS queries FROM walks();
SELECT count(*) AS queries, count(*) FILTER (WHERE w.ids IS DISTINCT FROM c.ids) AS walks_changed_by_cache
FROM walks_without w JOIN walks() c USING (qid);
DROP TABLE walks_without;
-- a calibration's queries (quantumdb.calibrate's, the build's, the worker's)
-- are not counted as scans in pg_stat_user_indexes, which tells whether
-- anyone uses the index
SELECT pg_stat_force_next_flush();
SELECT idx_scan AS scans0 FROM pg_stat_user_indexes WHERE indexrelname = 'cc_idx' \gset
SELECT count(*) > 0 AS calibrated FROM quantumdb.calibrate('cc_idx', queries => 20);
SELECT pg_stat_force_next_flush();
SELECT idx_scan - :scans0 AS scans_by_calibration FROM pg_stat_user_indexes WHERE indexrelname = 'cc_idx';
DROP TABLE cc;
SELECT quantumdb.drop_compressor('cc_c');
