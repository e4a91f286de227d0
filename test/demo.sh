#!/usr/bin/env bash
# `make demo`: the main job end to end on real data.  Loads glove-100-angular
# (QDB_DATA may point at another folder with base.fvecs, query.fvecs and
# gt_ip.ivecs; without ../shared/data, the 2,000-vector sample shipped in
# test/data/glove-2k), trains an opq compressor with quantumdb.train(), and
# a neural one from it (3 epochs, on the CPU unless a GPU is present),
# encodes every row to a 16-byte code, builds the quantumdb index with the opq
# compressor, and reports the 10-recall@10 against the exact ground truth,
# latency and size of: exhaustive ADC (quantumdb.adc_distance over stored
# codes, both compressors), index scans at two settings and under
# quantumdb.target_recall = 0.95 (the pair the build's calibration chose),
# and the exact sequential scan (<=>).
# QDB_DEMO_QUERIES (default 200) sets how many queries are run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$QDB_ROOT"

data=${QDB_DATA:-}
if [ -z "$data" ]; then
	if [ -f "$QDB_ROOT/../shared/data/glove-100-angular/base.fvecs" ]; then
		data=$QDB_ROOT/../shared/data/glove-100-angular
	else
		data=$QDB_ROOT/test/data/glove-2k
	fi
fi
nq=${QDB_DEMO_QUERIES:-200}

qdb_setup
qdb_cluster_start
qdb_log "loading $data"
base=$(qdb_vecs_to_copy "$data/base.fvecs" base)
query=$(qdb_vecs_to_copy "$data/query.fvecs" query "$nq")
gt=$(qdb_vecs_to_copy "$data/gt_ip.ivecs" gt "$nq")

t0=$(date +%s.%N)
qdb_psql -d "$QDB_DB" <<SQL
CREATE EXTENSION quantumdb;
CREATE TABLE docs (id int PRIMARY KEY, embedding real[]);
CREATE TABLE queries (id int PRIMARY KEY, embedding real[]);
CREATE TABLE truth (id int PRIMARY KEY, nn int[]);
\copy docs FROM '$base'
\copy queries FROM '$query'
\copy truth FROM '$gt'
ANALYZE;
SQL
t1=$(date +%s.%N)

qdb_log "training"
qdb_psql -d "$QDB_DB" -c "SET client_min_messages = notice" \
	-c "SELECT * FROM quantumdb.train('docs_opq', 'docs', 'embedding', kind => 'opq', metric => 'cosine')" \
	>"$QDB_TMP/train.out" 2>"$QDB_TMP/train.notices"
# the first line, every tenth OPQ alternation and the summary
sed 's/^/   /' "$QDB_TMP/train.notices" |
	grep -E 'NOTICE:  (training|trained)' | grep -vE ': pq [0-9]+/|: pca ' |
	awk '!/ opq [0-9]+\// || / opq [0-9]*0\//' >&2 || true
# the neural kind from the same start, 3 epochs (its NOTICE per epoch)
qdb_psql -d "$QDB_DB" -c "SET client_min_messages = notice" \
	-c "SELECT * FROM quantumdb.train('docs_neural', 'docs', 'embedding', kind => 'neural', metric => 'cosine', epochs => 3)" \
	>"$QDB_TMP/train_n.out" 2>"$QDB_TMP/train_n.notices"
sed 's/^/   /' "$QDB_TMP/train_n.notices" | grep -E 'NOTICE:  .*(epoch|trained|on the CPU)' >&2 || true

qdb_log "encoding and searching"
report=$(qdb_psql -d "$QDB_DB" -At -F ' ' <<'SQL'
\timing off
CREATE TEMP TABLE t (step text, ms float8);
CREATE FUNCTION pg_temp.ms(t timestamptz) RETURNS float8
LANGUAGE sql AS $$ SELECT extract(epoch FROM clock_timestamp() - t) * 1000 $$;
-- every query through the index into table tab; returns the milliseconds
CREATE FUNCTION pg_temp.index_pass(tab text, ef int, rr int) RETURNS float8
LANGUAGE plpgsql AS $f$
DECLARE t0 timestamptz;
BEGIN
  PERFORM set_config('quantumdb.ef_search', ef::text, true);
  PERFORM set_config('quantumdb.rerank', rr::text, true);
  t0 := clock_timestamp();
  EXECUTE format('CREATE TABLE %I AS SELECT q.id, ARRAY(SELECT d.id FROM docs d '
                 'ORDER BY d.embedding <=> q.embedding LIMIT 10) AS top FROM queries q', tab);
  RETURN pg_temp.ms(t0);
END $f$;
-- the same under quantumdb.target_recall: the pair the index's calibration
-- chose goes into table pair
CREATE FUNCTION pg_temp.target_pass(tab text, target float8) RETURNS float8
LANGUAGE plpgsql AS $f$
DECLARE t0 timestamptz;
BEGIN
  RESET quantumdb.ef_search;
  RESET quantumdb.rerank;
  PERFORM set_config('quantumdb.target_recall', target::text, true);
  CREATE TABLE pair AS SELECT ef_search, rerank FROM quantumdb.scan_settings('docs_idx');
  t0 := clock_timestamp();
  EXECUTE format('CREATE TABLE %I AS SELECT q.id, ARRAY(SELECT d.id FROM docs d '
                 'ORDER BY d.embedding <=> q.embedding LIMIT 10) AS top FROM queries q', tab);
  RETURN pg_temp.ms(t0);
END $f$;
DO $$
DECLARE t0 timestamptz;
BEGIN
  t0 := clock_timestamp();
  CREATE TABLE codes AS SELECT id, quantumdb.encode('docs_opq', embedding) AS code FROM docs;
  INSERT INTO t VALUES ('encode', pg_temp.ms(t0));
  t0 := clock_timestamp();
  CREATE TABLE adc AS
  SELECT q.id, ARRAY(SELECT c.id FROM codes c
                     ORDER BY quantumdb.adc_distance('docs_opq', q.embedding, c.code)
                     LIMIT 10) AS top FROM queries q;
  INSERT INTO t VALUES ('adc', pg_temp.ms(t0));
  t0 := clock_timestamp();
  CREATE TABLE codes_n AS SELECT id, quantumdb.encode('docs_neural', embedding) AS code FROM docs;
  CREATE TABLE adc_n AS
  SELECT q.id, ARRAY(SELECT c.id FROM codes_n c
                     ORDER BY quantumdb.adc_distance('docs_neural', q.embedding, c.code)
                     LIMIT 10) AS top FROM queries q;
  INSERT INTO t VALUES ('adc_n', pg_temp.ms(t0));
  -- room for the graph with full vectors (exact distances while building)
  PERFORM set_config('maintenance_work_mem', '1GB', true);
  t0 := clock_timestamp();
  CREATE INDEX docs_idx ON docs USING quantumdb (embedding real_cosine_ops)
    WITH (compressor = 'docs_opq');
  INSERT INTO t VALUES ('build', pg_temp.ms(t0));
  -- index scans: a warm-up pass, then the timed ones, at two settings
  PERFORM pg_temp.index_pass('warm', 40, 100);
  INSERT INTO t VALUES ('idx_a', pg_temp.index_pass('idx_a', 40, 100));
  INSERT INTO t VALUES ('idx_b', pg_temp.index_pass('idx_b', 100, 300));
  INSERT INTO t VALUES ('idx_t', pg_temp.target_pass('idx_t', 0.95));
  PERFORM set_config('enable_indexscan', 'off', true);
  t0 := clock_timestamp();
  CREATE TABLE exact AS
  SELECT q.id, ARRAY(SELECT d.id FROM docs d ORDER BY d.embedding <=> q.embedding LIMIT 10) AS top
  FROM (SELECT * FROM queries ORDER BY id LIMIT 20) q;
  INSERT INTO t VALUES ('exact', pg_temp.ms(t0));
END $$;
SELECT 'rows', count(*) FROM docs;
SELECT 'queries', count(*) FROM queries;
SELECT 'dims', dimensions FROM quantumdb.compressors WHERE name = 'docs_opq';
SELECT 'train_s', round(training_seconds::numeric, 2) FROM quantumdb.compressors WHERE name = 'docs_opq';
SELECT 'val_recall', round(validation_recall::numeric, 4) FROM quantumdb.compressors WHERE name = 'docs_opq';
SELECT 'train_n_s', round(training_seconds::numeric, 2) FROM quantumdb.compressors WHERE name = 'docs_neural';
SELECT 'val_n_recall', round(validation_recall::numeric, 4) FROM quantumdb.compressors WHERE name = 'docs_neural';
SELECT 'epochs_n', count(*) - 1 FROM quantumdb.training_log WHERE compressor = 'docs_neural';
SELECT 'recall_n', round(avg(cardinality(ARRAY(SELECT unnest(a.top) INTERSECT SELECT unnest(g.nn[1:10])))) / 10.0, 4)
  FROM adc_n a JOIN truth g USING (id);
SELECT 'recall1_n', round(avg((g.nn[1] = ANY (a.top))::int), 4) FROM adc_n a JOIN truth g USING (id);
SELECT 'vector_bytes', round(avg(pg_column_size(embedding))) FROM docs;
SELECT 'code_bytes', round(avg(octet_length(code))) FROM codes;
SELECT 'table_mb', round(pg_table_size('docs') / 1048576.0, 1);
SELECT 'codes_mb', round(pg_table_size('codes') / 1048576.0, 1);
SELECT 'recall', round(avg(cardinality(ARRAY(SELECT unnest(a.top) INTERSECT SELECT unnest(g.nn[1:10])))) / 10.0, 4)
  FROM adc a JOIN truth g USING (id);
SELECT 'recall1', round(avg((g.nn[1] = ANY (a.top))::int), 4) FROM adc a JOIN truth g USING (id);
SELECT 'idx_a_recall', round(avg(cardinality(ARRAY(SELECT unnest(a.top) INTERSECT SELECT unnest(g.nn[1:10])))) / 10.0, 4)
  FROM idx_a a JOIN truth g USING (id);
SELECT 'idx_b_recall', round(avg(cardinality(ARRAY(SELECT unnest(a.top) INTERSECT SELECT unnest(g.nn[1:10])))) / 10.0, 4)
  FROM idx_b a JOIN truth g USING (id);
SELECT 'idx_t_recall', round(avg(cardinality(ARRAY(SELECT unnest(a.top) INTERSECT SELECT unnest(g.nn[1:10])))) / 10.0, 4)
  FROM idx_t a JOIN truth g USING (id);
SELECT 'idx_t_pair', ef_search || '/' || rerank FROM pair;
SELECT 'index_mb', round(pg_relation_size('docs_idx') / 1048576.0, 1);
SELECT 'index_bpv', round(bytes_per_vector::numeric) FROM quantumdb.index_info('docs_idx');
SELECT 'unreachable', unreachable_nodes FROM quantumdb.index_info('docs_idx');
SELECT 'exact_recall', round(avg(cardinality(ARRAY(SELECT unnest(e.top) INTERSECT SELECT unnest(g.nn[1:10])))) / 10.0, 4)
  FROM exact e JOIN truth g USING (id);
SELECT step || '_ms', round(ms::numeric, 1) FROM t;
SQL
)
t2=$(date +%s.%N)
get() { echo "$report" | awk -v k="$1" '$1 == k { print $2 }'; }
calc() { awk "BEGIN { printf \"%.1f\", $1 }"; }
nqr=$(get queries)
cat <<REPORT

QuantumDB demo: $(basename "$data"), $(get rows) vectors of $(get dims) dimensions (cosine)
  load (COPY)                       $(calc "$t1 - $t0") s
  train opq, 16 x 8 bits (SQL)      $(get train_s) s   validation 10-recall@10 $(get val_recall)
  train neural, $(get epochs_n) epochs (SQL, CPU) $(get train_n_s) s   validation 10-recall@10 $(get val_n_recall)
  encode every row                  $(calc "$(get encode_ms) / 1000") s
  size per vector                   $(get vector_bytes) bytes as real[] -> $(get code_bytes) bytes as a code
  table size                        $(get table_mb) MB (real[]) vs $(get codes_mb) MB (codes, with row overhead)
  exhaustive ADC, $nqr queries       10-recall@10 $(get recall), 1-recall@10 $(get recall1), $(calc "$(get adc_ms) / $nqr") ms per query
                                    ($(awk "BEGIN { printf \"%.3f\", $(get adc_ms) * 1000 / $nqr / $(get rows) }") us per row: quantumdb.adc_distance over stored codes)
  exhaustive ADC, neural codes      10-recall@10 $(get recall_n), 1-recall@10 $(get recall1_n)
  build index (m 16, ef_constr. 200) $(calc "$(get build_ms) / 1000") s   $(get index_mb) MB, $(get index_bpv) bytes per vector, $(get unreachable) nodes unreachable
  index scan, ef_search 40, rerank 100    10-recall@10 $(get idx_a_recall), $(calc "$(get idx_a_ms) / $nqr") ms per query
  index scan, ef_search 100, rerank 300   10-recall@10 $(get idx_b_recall), $(calc "$(get idx_b_ms) / $nqr") ms per query
  index scan, target_recall 0.95 (chose $(get idx_t_pair))  10-recall@10 $(get idx_t_recall), $(calc "$(get idx_t_ms) / $nqr") ms per query
  exact scan (<=>), 20 queries      10-recall@10 $(get exact_recall), $(calc "$(get exact_ms) / 20") ms per query
REPORT
