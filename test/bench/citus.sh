#!/usr/bin/env bash
# QuantumDB on Citus against one node (see citus.py): starts a throwaway
# Citus coordinator and two workers on this host (unix sockets in a temporary
# directory), builds and installs the extension first (unless --no-build),
# runs citus.py against the coordinator, stops the nodes.  Needs Citus
# installed for this PostgreSQL (it is not in Debian's archive: build it from
# its source, outside this repository).  Outputs go to test/bench/out/.
#
# usage: test/bench/citus.sh [--no-build] [citus.py options]
#   e.g. test/bench/citus.sh --set glove-100-angular --pairs 40:40,40:100,100:200
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$QDB_ROOT"

build=1
args=()
for a in "$@"; do
	case $a in
	--no-build) build=0 ;;
	-h|--help) exec /usr/bin/python3 test/bench/citus.py --help ;;
	*) args+=("$a") ;;
	esac
done

if [ "$build" = 1 ]; then
	qdb_setup
else
	QDB_PG_BIN=/usr/lib/postgresql/$(qdb_pg_major)/bin
fi
if [ ! -f "$("$QDB_PG_BIN/pg_config" --pkglibdir 2>/dev/null || pg_config --pkglibdir)/citus.so" ]; then
	echo "citus is not installed for this PostgreSQL; build it from its source first" >&2
	exit 2
fi
/usr/bin/python3 -c 'import psycopg2, numpy' 2>/dev/null || {
	[ "$(id -u)" = 0 ] || { echo "install python3-psycopg2 and python3-numpy first" >&2; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-psycopg2 python3-numpy >/dev/null
}

if [ "$(id -u)" = 0 ]; then
	QDB_OWNER=${QDB_OWNER:-postgres}
	id "$QDB_OWNER" >/dev/null 2>&1 || useradd --system --no-create-home "$QDB_OWNER"
else
	QDB_OWNER=$(id -un)
fi
dir=$(mktemp -d /tmp/quantumdb-citus.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown "$QDB_OWNER" "$dir"
port0=$((55000 + RANDOM % 900))
nodes="0 1 2"
stop_all() {
	for n in $nodes; do
		[ -f "$dir/n$n/postmaster.pid" ] &&
			qdb_as_owner "$QDB_PG_BIN/pg_ctl" -D "$dir/n$n" -m immediate -w stop >/dev/null 2>&1
	done
	rm -rf "$dir"
}
trap stop_all EXIT

for n in $nodes; do
	qdb_as_owner "$QDB_PG_BIN/initdb" -D "$dir/n$n" -A trust -E UTF8 --locale=C.UTF-8 -U postgres \
		>"$dir/initdb$n.log" 2>&1 || { cat "$dir/initdb$n.log" >&2; exit 1; }
	cat >>"$dir/n$n/postgresql.conf" <<CONF
shared_preload_libraries = 'citus'
listen_addresses = ''
unix_socket_directories = '$dir'
port = $((port0 + n))
citus.local_hostname = '$dir'
fsync = off
shared_buffers = ${QDB_BENCH_SHARED_BUFFERS:-1GB}
maintenance_work_mem = ${QDB_BENCH_MAINTENANCE_WORK_MEM:-1GB}
max_connections = 100
max_prepared_transactions = 100
CONF
	qdb_as_owner "$QDB_PG_BIN/pg_ctl" -D "$dir/n$n" -l "$dir/n$n.log" -w start >/dev/null ||
		{ cat "$dir/n$n.log" >&2; exit 1; }
	qdb_as_owner "$QDB_PG_BIN/psql" -h "$dir" -p $((port0 + n)) -U postgres -X -q -v ON_ERROR_STOP=1 \
		-c "CREATE EXTENSION citus" postgres
done
qdb_as_owner "$QDB_PG_BIN/psql" -h "$dir" -p "$port0" -U postgres -X -q -v ON_ERROR_STOP=1 postgres <<SQL
SELECT citus_set_coordinator_host('$dir', $port0);
SELECT citus_add_node('$dir', $((port0 + 1)));
SELECT citus_add_node('$dir', $((port0 + 2)));
CREATE EXTENSION quantumdb;
SQL
export PGHOST=$dir PGPORT=$port0 PGUSER=postgres PGDATABASE=postgres
mkdir -p test/bench/out
/usr/bin/python3 test/bench/citus.py "${args[@]}"
