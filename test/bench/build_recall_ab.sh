#!/usr/bin/env bash
# CREATE INDEX with two (or more) builds of quantumdb.so side by side on one
# table, each build's index then queried: a hook for `test/bench/index.sh
# --build-only --after-build`, run as root (it copies each .so over the
# installed one).  For each variant and round it drops the benchmark's
# quantumdb index, builds it again from its own definition (timed), and
# measures 10-recall@10 of plain `ORDER BY emb <op> q LIMIT 10` queries at
# each ef_search:rerank pair, with shared buffers per query and one
# client's QPS (build_recall.py): for any change to how the build links
# (first used for a shuffled link order: test/bench/RESULTS.md, "The
# build's link order").
#
# usage: QDB_AB_VARIANTS="old=old.so new=new.so" QDB_AB_SET=glove-100-angular \
#          test/bench/index.sh --no-build --set glove-100-angular --build-only \
#          --no-pgvector --after-build test/bench/build_recall_ab.sh
#   QDB_AB_PAIRS (default 10:0,20:0,40:0,40:40,80:80), QDB_AB_QUERIES (1000),
#   QDB_AB_ROUNDS (1), QDB_AB_OUT (default test/bench/out/build-recall-ab-SET.md)
#   QDB_AB_ORDER=first-dim: before the variants, rewrite the table in the
#   order of its vectors' first coordinate (CLUSTER on an expression index),
#   rows that come in clumps as a table loaded by topic does
# The installed quantumdb.so is put back at the end.
set -euo pipefail
variants=${QDB_AB_VARIANTS:?QDB_AB_VARIANTS, e.g. "old=old.so new=new.so"}
set_=${QDB_AB_SET:?QDB_AB_SET, the set index.sh loaded}
pairs=${QDB_AB_PAIRS:-10:0,20:0,40:0,40:40,80:80}
queries=${QDB_AB_QUERIES:-1000}
rounds=${QDB_AB_ROUNDS:-1}
order=${QDB_AB_ORDER:-file}
out=${QDB_AB_OUT:-$(dirname "$0")/out/build-recall-ab-$set_.md}
index=${QDB_AB_INDEX:-items_emb_qdb}
. "$(dirname "$0")/so_swap.sh"
qdb_so_save

def=$(psql -X -At -c "SELECT pg_get_indexdef('$index'::regclass)")
if [ "$order" = first-dim ]; then
	psql -X -q -v ON_ERROR_STOP=1 -c "CREATE INDEX items_first_dim ON items ((emb[1]))" \
		-c "CLUSTER items USING items_first_dim" -c "DROP INDEX items_first_dim" -c "ANALYZE items"
fi
{
	echo "# CREATE INDEX side by side, then 10-recall@10 ($(date -u +%F))"
	echo
	echo "\`$def\`; rows in $order order; $queries queries; one client"
	echo
	echo "| round | variant | CREATE INDEX s | ef_search:rerank | recall@10 | buffers/query | QPS |"
	echo "|---:|---|---:|---|---:|---:|---:|"
} >"$out"
for round in $(seq 1 "$rounds"); do
	for v in $variants; do
		name=${v%%=*} so=${v#*=}
		s=$(printf '%.1f' "$(qdb_so_rebuild "$so" "$index" "$def")")
		/usr/bin/python3 "$(dirname "$0")/build_recall.py" --set "$set_" --pairs "$pairs" \
			--queries "$queries" | while read -r pair recall bufs qps; do
			printf '| %d | %s | %s | %s | %s | %s | %s |\n' "$round" "$name" "$s" "$pair" \
				"$recall" "$bufs" "$qps" >>"$out"
		done
	done
done
cat "$out"
