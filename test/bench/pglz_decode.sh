#!/usr/bin/env bash
# Decoding pglz-compressed rows: the server's decoder against
# src/pglz_decode.c (pglz_decode_bench.c), on the first ROWS rows of each
# set of ../shared/data, each compressed by the server's pglz (as TOAST
# compresses a value, though the server compresses only values over about
# 2 kB); sets whose rows do not compress are said so and skipped.
# usage: test/bench/pglz_decode.sh [ROWS] [SET ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-3000}; shift || true
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(fashion-mnist-784 glove-100-angular sift-photos-128 sap-fiori-minilm-384)
data=${QDB_DATA:-../shared/data}
pg_config=${PG_CONFIG:-pg_config}
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
cc -O2 -std=gnu11 -Isrc -I"$("$pg_config" --includedir-server)" -o "$bin" \
	test/bench/pglz_decode_bench.c src/pglz_decode.c \
	-L"$("$pg_config" --pkglibdir)" -lpgcommon -lpgport
for s in "${sets[@]}"; do
	printf '%s: ' "$s"
	"$bin" "$data/$s/base.fvecs" "$rows" 5 || true
done
