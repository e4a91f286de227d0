#!/usr/bin/env bash
# Index benchmark (see index.py): starts a throwaway cluster like `make demo`
# (builds and installs the extension first), gives it more memory, loads one
# set from ../shared/data and runs index.py against it: the quantumdb index,
# pgvector's HNSW when pgvector is installed, and the exact sequential scan.
# Installs python3-psycopg2, python3-numpy and python3-matplotlib when
# missing (as root).
#
# usage: test/bench/index.sh [--no-build] [MODE] [index.py options]
#   e.g. test/bench/index.sh --set glove-100-angular --rows 20000 --queries 200
#   --no-build   use the extension already installed (no make, no make install)
# modes (test/bench/RESULTS.md, "Data larger than memory, growth, synthetic data"):
#   --mem-limit SIZE  load and build unconfined, then restart the server in a
#                memory cgroup (v1) of SIZE (e.g. 100M) with shared_buffers
#                16MB (QDB_BENCH_CONFINED_SHARED_BUFFERS) and drop the page
#                cache before each timed run; root only (cgroup.sh)
#   --growth N1,N2,...  one run per row count (--rows N, its own exact ground
#                truth), then growth.py's table and log-log plot
#                (out/growth-SET.{md,png})
#   --synth      make (once) and use the synthetic clustered set of
#                synth_clusters.py: 1,000,000 x 128 rows, or --rows N
#                (QDB_BENCH_SYNTH_DIR, default test/bench/out/data)
# QDB_BENCH_SHARED_BUFFERS (default 2GB) and QDB_BENCH_MAINTENANCE_WORK_MEM
# (default 2GB) set the cluster's memory for loading and building; outputs go
# to test/bench/out/.  QDB_PREFIX=DIR installs into a private copy of the
# server (test/lib.sh).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$QDB_ROOT"

build=1 mem_limit="" growth="" synth=0 rows="" set=glove-100-angular
args=()
while [ $# -gt 0 ]; do
	case $1 in
	--no-build) build=0 ;;
	--mem-limit) mem_limit=${2:?--mem-limit needs a size}; shift ;;
	--mem-limit=*) mem_limit=${1#*=} ;;
	--growth) growth=${2:?--growth needs row counts}; shift ;;
	--growth=*) growth=${1#*=} ;;
	--synth) synth=1 ;;
	-h|--help) exec /usr/bin/python3 test/bench/index.py --help ;;
	*)
		case $1 in
		--rows) rows=${2:-} ;;
		--rows=*) rows=${1#*=} ;;
		--set) set=${2:-} ;;
		--set=*) set=${1#*=} ;;
		esac
		args+=("$1") ;;
	esac
	shift
done
if [ -n "$mem_limit" ] && [ -n "$growth" ]; then
	echo "--mem-limit and --growth do not mix (each growth step loads and builds again)" >&2
	exit 2
fi
if [ -n "$mem_limit" ]; then
	. test/bench/cgroup.sh
	qdb_cgroup_require
fi

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
	[ -n "${QDB_PREFIX:-}" ] && QDB_PG_BIN=$QDB_PREFIX$QDB_PG_BIN
	export PATH="$QDB_PG_BIN:$PATH"
	make -s -C trainer qdb-train
fi

# the synthetic set, made once per size (the generator is deterministic)
mode_args=()
if [ "$synth" = 1 ]; then
	synth_dir=${QDB_BENCH_SYNTH_DIR:-$QDB_ROOT/test/bench/out/data}
	set=synth-clusters-128-${rows:-1000000}
	if [ ! -f "$synth_dir/$set/info.json" ]; then
		/usr/bin/python3 test/bench/synth_clusters.py --rows "${rows:-1000000}" --out "$synth_dir/$set"
	fi
	mode_args+=(--data "$synth_dir" --set "$set")
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

if [ -n "$mem_limit" ]; then
	# the report before the server stops; the group once it has
	trap 'qdb_cgroup_report; qdb_cluster_stop; qdb_cgroup_remove' EXIT
	trap 'exit 130' INT TERM
	qdb_cgroup_create "$mem_limit"
	export QDB_TMP QDB_PORT QDB_PG_BIN QDB_OWNER
	# the issue's targets: >= 5x pgvector's QPS at 100 MB, >= 8x at 64 MB
	target=5
	[ "$(cat "$QDB_CGROUP/memory.limit_in_bytes")" -le $((64 * 1048576)) ] && target=8
	hook="$(printf %q "$QDB_ROOT/test/bench/cgroup.sh")"
	mode_args+=(--after-build "$hook restart" --before-run "$hook drop-caches" --no-prewarm
		--cgroup "$QDB_CGROUP" --qps-target "$target")
fi

mkdir -p test/bench/out
rc=0
if [ -n "$growth" ]; then
	reports=()
	for n in ${growth//,/ }; do
		qdb_log "growth: $n rows"
		/usr/bin/python3 test/bench/index.py "${mode_args[@]}" "${args[@]}" --rows "$n" --tag "growth-$n" ||
			{ rc=$?; break; }
		reports+=("test/bench/out/index-$set-growth-$n.json")
	done
	[ "$rc" = 0 ] && /usr/bin/python3 test/bench/growth.py --out "test/bench/out/growth-$set" "${reports[@]}"
else
	/usr/bin/python3 test/bench/index.py "${mode_args[@]}" "${args[@]}" || rc=$?
fi
if [ "$rc" != 0 ]; then
	echo "== server log (last 30 lines):" >&2
	tail -30 "$QDB_TMP/server.log" >&2 || true
fi
exit "$rc"
