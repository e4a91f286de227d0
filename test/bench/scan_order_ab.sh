#!/usr/bin/env bash
# scan_order.py with two (or more) builds of quantumdb.so side by side on
# one table: a hook for `test/bench/index.sh --build-only --after-build`,
# run as root (it copies each .so over the installed one; every run of
# scan_order.py opens a new connection, which loads the .so in place).
# Variants alternate, round after round; each run writes
# OUT/VARIANT-ROUND/scan-order-SET.md.
#
# usage: QDB_AB_VARIANTS="old=old.so new=new.so" QDB_AB_SET=glove-100-angular \
#          test/bench/index.sh --no-build --set glove-100-angular --build-only \
#          --no-pgvector --after-build test/bench/scan_order_ab.sh
#   QDB_AB_PAIRS (default 10:10,40:40,100:200), QDB_AB_QUERIES (500),
#   QDB_AB_ROUNDS (2), QDB_AB_OUT (test/bench/out/scan-order-ab)
# The installed quantumdb.so is put back at the end.
set -euo pipefail
variants=${QDB_AB_VARIANTS:?QDB_AB_VARIANTS, e.g. "old=old.so new=new.so"}
set_=${QDB_AB_SET:?QDB_AB_SET, the set index.sh loaded}
pairs=${QDB_AB_PAIRS:-10:10,40:40,100:200}
queries=${QDB_AB_QUERIES:-500}
rounds=${QDB_AB_ROUNDS:-2}
out=${QDB_AB_OUT:-$(dirname "$0")/out/scan-order-ab}
. "$(dirname "$0")/so_swap.sh"
qdb_so_save

for round in $(seq 1 "$rounds"); do
	for v in $variants; do
		name=${v%%=*} so=${v#*=}
		qdb_so_use "$so"
		/usr/bin/python3 "$(dirname "$0")/scan_order.py" --set "$set_" --pairs "$pairs" \
			--queries "$queries" --out "$out/$name-$round"
	done
done
