#!/usr/bin/env bash
# Kind neural's validation recall epoch by epoch under several loss sets and
# learning rates, one `qdb-train train --kind neural` per variant on the
# first ROWS rows of each set (the set's metric): the runs behind the loss
# weights' and learning rate's defaults (README, "The neural kind"; RESULTS,
# "Kind neural: where its training goes").  Epoch 0 is the opq start; a
# column per epoch holds the trainer's own validation 10-recall@10 (exhaustive
# ADC of its held-out rows against its training rows), and the last column
# the best minus the start.
# usage: test/bench/neural_losses.sh [--rows N] [--epochs N] [--seed S] [SET ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=25000 epochs=4 seed=42
while [ $# -gt 0 ]; do
	case "$1" in
		--rows) rows=$2; shift 2 ;;
		--epochs) epochs=$2; shift 2 ;;
		--seed) seed=$2; shift 2 ;;
		*) break ;;
	esac
done
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(sift-photos-128 glove-100-angular)
data=${QDB_DATA:-../shared/data}
bin=trainer/qdb-train
[ -x "$bin" ] || make -s -C trainer qdb-train
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
only_triplet="--w-recon 0 --w-cluster 0 --w-commit 0 --w-diversity 0 --w-triplet 1"
variants=(
	"defaults (five losses), lr 1e-4|"
	"triplet only, lr 1e-4|$only_triplet --lr 1e-4"
	"triplet only, lr 1e-3|$only_triplet --lr 1e-3"
	"triplet only, lr 1e-5|$only_triplet --lr 1e-5"
	"reconstruction + cluster + commitment, lr 1e-4|--w-triplet 0 --w-diversity 0"
)
echo "qdb-train train --kind neural --rows $rows --epochs $epochs --patience $epochs --seed $seed"
for s in "${sets[@]}"; do
	case $s in *angular*|*minilm*) metric=cosine ;; *) metric=l2 ;; esac
	echo
	echo "$s ($metric)"
	echo
	printf '| variant |'; for e in $(seq 0 "$epochs"); do printf ' epoch %s |' "$e"; done
	printf ' best - start |\n|---|'; for e in $(seq 0 "$epochs"); do printf -- '---:|'; done
	printf -- '---:|\n'
	for v in "${variants[@]}"; do
		name=${v%%|*} args=${v#*|}
		# shellcheck disable=SC2086
		"$bin" train --input "$data/$s/base.fvecs" --rows "$rows" --kind neural \
			--metric "$metric" --seed "$seed" --epochs "$epochs" --patience "$epochs" \
			$args --out "$tmp/m" > "$tmp/log" 2>&1
		sed -n 's/^neural epoch .*validation recall \([0-9.]*\).*/\1/p' "$tmp/log" |
			awk -v name="$name" '{ r[NR] = $1 } END {
				printf "| %s |", name; best = r[1]
				for (i = 1; i <= NR; i++) { printf " %s |", r[i]; if (r[i] > best) best = r[i] }
				printf " %+.4f |\n", best - r[1] }'
	done
done
