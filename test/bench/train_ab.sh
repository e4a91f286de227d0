#!/usr/bin/env bash
# Training time and code quality of two qdb-train binaries side by side, in
# one run: for each set of ../shared/data, `qdb-train train` (opq by default,
# the set's metric, the first ROWS base rows) with binary A, then with
# binary B, each followed by `qdb-train eval` (exhaustive ADC, 10-recall@10
# on 1,000 queries against the set's exact ground truth).
# usage: test/bench/train_ab.sh A B [--rows N] [--kind K] [--seeds 1,2,3] [--args 'ARGS'] [SET ...]
#   --args: more `qdb-train train` options for both, e.g. '--rq-beam 32'.
#   A, B: qdb-train binaries (e.g. one built from an older commit with
#   `git worktree add ../old REV && make -C ../old/trainer qdb-train`).
#   SET defaults to the four sets of ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/../.."
a=${1:?binary A}; b=${2:?binary B}; shift 2
rows=50000 kind=opq seeds=1 extra=""
while [ $# -gt 0 ]; do
	case "$1" in
		--rows) rows=$2; shift 2 ;;
		--kind) kind=$2; shift 2 ;;
		--seeds) seeds=$2; shift 2 ;;
		--args) extra=$2; shift 2 ;;
		*) break ;;
	esac
done
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(fashion-mnist-784 glove-100-angular sift-photos-128 sap-fiori-minilm-384)
data=${QDB_DATA:-../shared/data}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "qdb-train train --kind $kind --rows $rows${extra:+ $extra}; A = $a, B = $b"
echo
echo "| set | metric | seed | A train s | B train s | B / A | A 10-recall@10 | B 10-recall@10 |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for s in "${sets[@]}"; do
	# the metric each set is benchmarked with (as compressors.py)
	case $s in *angular*|*minilm*) metric=cosine gt=gt_ip.ivecs ;; *) metric=l2 gt=gt.ivecs ;; esac
	for seed in ${seeds//,/ }; do
		row="| $s | $metric | $seed"
		secs=() recalls=()
		for bin in "$a" "$b"; do
			out=$("$bin" train --input "$data/$s/base.fvecs" --rows "$rows" --kind "$kind" \
				--metric "$metric" --seed "$seed" $extra --quiet --out "$tmp/m")
			secs+=("$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<< "$out")")
			recalls+=("$("$bin" eval --model "$tmp/m" --base "$data/$s/base.fvecs" \
				--query "$data/$s/query.fvecs" --gt "$data/$s/$gt" --queries 1000 |
				sed -n 's/.*recall10@10=\([0-9.]*\).*/\1/p')")
		done
		ratio=$(awk -v x="${secs[0]}" -v y="${secs[1]}" 'BEGIN { printf "%.2f", y / x }')
		echo "$row | ${secs[0]} | ${secs[1]} | $ratio | ${recalls[0]} | ${recalls[1]} |"
	done
done
