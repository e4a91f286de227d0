#!/usr/bin/env bash
# Training time of the default compressor (opq, 16 x 8 bits, cosine) at
# common embedding sizes: qdb-train on N synthetic rows of each dimension
# (test/bench/synth_vectors.py, made once under test/bench/out/), each run
# RUNS times; prints wall and CPU (user + sys) seconds per run.
# usage: test/bench/train_time.sh [--rows N] [--runs R] [--limit S] [DIM ...]
#   DIM defaults to 768 1536; --limit stops a run after S seconds (0: none).
#   QDB_TRAIN=path times another qdb-train binary (default trainer/qdb-train).
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=50000 runs=2 limit=0
while [ $# -gt 0 ]; do
	case "$1" in
		--rows) rows=$2; shift 2 ;;
		--runs) runs=$2; shift 2 ;;
		--limit) limit=$2; shift 2 ;;
		*) break ;;
	esac
done
dims=("$@")
[ ${#dims[@]} -gt 0 ] || dims=(768 1536)
bin=${QDB_TRAIN:-trainer/qdb-train}
[ -n "${QDB_TRAIN:-}" ] || make -s -C trainer qdb-train
out=test/bench/out
mkdir -p "$out"
echo "| rows x dim | run | wall s | CPU s (user+sys) | result |"
echo "|---|---:|---:|---:|---|"
for d in "${dims[@]}"; do
	data=$out/synth-${rows}x${d}.fvecs
	[ -f "$data" ] || /usr/bin/python3 test/bench/synth_vectors.py "$rows" "$d" "$data"
	for r in $(seq 1 "$runs"); do
		log=$out/train-${rows}x${d}-run$r.log
		set +e
		/usr/bin/time -f '%e %U %S' -o "$log.time" timeout "$limit" "$bin" train \
			--input "$data" --kind opq --metric cosine --subvectors 16 \
			--out "$out/synth-${rows}x${d}.safetensors" >"$log" 2>&1
		rc=$?
		set -e
		read -r wall user sys < <(tail -1 "$log.time")
		case $rc in
			0) result=ok ;;
			124) result="stopped at the ${limit} s limit: $(grep -E '^[a-z]+ [0-9]+/' "$log" | tail -1)" ;;
			*) result="failed ($rc), see $log" ;;
		esac
		printf '| %d x %d | %d | %.1f | %.1f | %s |\n' "$rows" "$d" "$r" "$wall" \
			"$(echo "$user + $sys" | bc)" "$result"
	done
done
