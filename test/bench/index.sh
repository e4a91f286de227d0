#!/usr/bin/env bash
# Index benchmark (see index.py): starts a throwaway cluster like `make demo`
# (builds and installs the extension first), gives it more memory, loads one
# set from ../shared/data and runs index.py against it: the quantumdb index,
# pgvector's HNSW when pgvector is installed, and the exact sequential scan.
# Installs python3-psycopg2, python3-numpy and python3-matplotlib when
# missing (as root).
#
# usage: test/bench/index.sh [--no-build] [index.py options]
#   e.g. test/bench/index.sh --set glove-100-angular --rows 20000 --queries 200
#   --no-build   use the extension already installed (no make, no make install)
# QDB_BENCH_SHARED_BUFFERS (default 2GB) and QDB_BENCH_MAINTENANCE_WORK_MEM
# (default 2GB) set the cluster's memory; outputs go to test/bench/out/.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$QDB_ROOT"

build=1
args=()
for a in "$@"; do
	case $a in
	--no-build) build=0 ;;
	-h|--help) exec /usr/bin/python3 test/bench/index.py --help ;;
	*) args+=("$a") ;;
	esac
done

pkgs=()
/usr/bin/python3 -c 'import psycopg2' 2>/dev/null || pkgs+=(python3-psycopg2)
/usr/bin/python3 -c 'import numpy' 2>/dev/null || pkgs+=(python3-numpy)
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || pkgs+=(python3-matplotlib)
if [ ${#pkgs[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || { echo "install ${pkgs[*]} first" >&2; exit 1; }
	qdb_log "installing ${pkgs[*]}"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

if [ "$build" = 1 ]; then
	qdb_setup
else
	QDB_PG_BIN=/usr/lib/postgresql/$(qdb_pg_major)/bin
	export PATH="$QDB_PG_BIN:$PATH"
	make -s -C trainer qdb-train
fi

qdb_cluster_start
# lib.sh's cluster is sized for tests; the benchmark wants the table and every
# index in shared buffers and the HNSW builds in memory
qdb_psql -d "$QDB_DB" \
	-c "ALTER SYSTEM SET shared_buffers = '${QDB_BENCH_SHARED_BUFFERS:-2GB}'" \
	-c "ALTER SYSTEM SET maintenance_work_mem = '${QDB_BENCH_MAINTENANCE_WORK_MEM:-2GB}'"
qdb_as_owner "$QDB_PG_BIN/pg_ctl" -D "$QDB_TMP/data" -l "$QDB_TMP/server.log" -w restart >/dev/null ||
	{ cat "$QDB_TMP/server.log" >&2; exit 1; }
export PGDATABASE=$QDB_DB
mkdir -p test/bench/out
rc=0
/usr/bin/python3 test/bench/index.py "${args[@]}" || rc=$?
if [ "$rc" != 0 ]; then
	echo "== server log (last 30 lines):" >&2
	tail -30 "$QDB_TMP/server.log" >&2 || true
fi
exit "$rc"
