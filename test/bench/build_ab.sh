#!/usr/bin/env bash
# CREATE INDEX timed with two (or more) builds of quantumdb.so side by side,
# alternating on one table: a hook for `test/bench/index.sh --build-only
# --after-build`, run as root (it copies each .so over the installed one).
# It drops the benchmark's quantumdb index and builds it again from its own
# definition (pg_get_indexdef: the same operator class, m, ef_construction
# and compressor), once per variant and round, and prints a table of times
# with each variant's mean and its ratio to the first.
#
# usage: QDB_AB_VARIANTS="old.so@2GB new.so@2GB new.so@100MB" \
#          test/bench/index.sh --no-build --set SET --build-only --no-pgvector \
#          [--qdb-kind rq ...] --after-build test/bench/build_ab.sh
#   QDB_AB_VARIANTS: SO@MAINTENANCE_WORK_MEM, separated by spaces
#   QDB_AB_ROUNDS (default 2), QDB_AB_OUT (default test/bench/out/build-ab.md)
# The installed quantumdb.so is put back at the end.
set -euo pipefail
variants=${QDB_AB_VARIANTS:?QDB_AB_VARIANTS, e.g. "old.so@2GB new.so@2GB"}
rounds=${QDB_AB_ROUNDS:-2}
out=${QDB_AB_OUT:-$(dirname "$0")/out/build-ab.md}
index=${QDB_AB_INDEX:-items_emb_qdb}
. "$(dirname "$0")/so_swap.sh"
qdb_so_save

def=$(psql -X -At -c "SELECT pg_get_indexdef('$index'::regclass)")
declare -A sum
{
	echo "# CREATE INDEX side by side ($(date -u +%F))"
	echo
	echo "\`$def\`"
	echo
	echo "| round | variant | maintenance_work_mem | CREATE INDEX s |"
	echo "|---:|---|---|---:|"
} >"$out"
for round in $(seq 1 "$rounds"); do
	for v in $variants; do
		so=${v%@*} mem=${v#*@}
		s=$(PGOPTIONS="-c maintenance_work_mem=$mem" qdb_so_rebuild "$so" "$index" "$def")
		sum[$v]=$(echo "${sum[$v]:-0} + $s" | bc)
		printf '| %d | %s | %s | %.1f |\n' "$round" "$(basename "$so")" "$mem" "$s" >>"$out"
	done
done
{
	echo
	echo "| variant | maintenance_work_mem | mean s | ratio to the first |"
	echo "|---|---|---:|---:|"
	first=""
	for v in $variants; do
		mean=$(echo "scale=3; ${sum[$v]} / $rounds" | bc)
		[ -n "$first" ] || first=$mean
		printf '| %s | %s | %.1f | %.2f |\n' "$(basename "${v%@*}")" "${v#*@}" "$mean" \
			"$(echo "scale=4; $mean / $first" | bc)"
	done
} >>"$out"
cat "$out"
