#!/usr/bin/env bash
# test/bench/cgroup.sh: confines the benchmark's throwaway server with the
# cgroup v1 memory controller (index.sh --mem-limit).  Sourced by index.sh
# for the group's life (create, report, remove); run as a command by
# index.py's hooks, with the variables index.sh exports (QDB_CGROUP,
# QDB_TMP, QDB_PORT, QDB_PG_BIN, QDB_OWNER):
#
#   cgroup.sh restart      restart the server inside the group, with
#                          shared_buffers $QDB_BENCH_CONFINED_SHARED_BUFFERS
#                          (default 16MB), the page cache dropped first
#   cgroup.sh drop-caches  sync and drop the page cache (echo 3)
#
# The postmaster enters the group before it serves: a shell writes its own
# pid into cgroup.procs and then execs pg_ctl, whose postmaster and every
# backend after it inherit the group.  Page cache is charged to the group
# that reads a page first, so after the drop the limit bounds the server's
# private memory, its shared memory and the file pages it reads alike.

QDB_CGROUP_ROOT=${QDB_CGROUP_ROOT:-/sys/fs/cgroup/memory}

# Fails with a message unless root and the v1 memory controller are there.
qdb_cgroup_require() {
	if [ "$(id -u)" != 0 ]; then
		echo "--mem-limit needs root (it creates a cgroup and drops the page cache)" >&2
		return 1
	fi
	if [ ! -f "$QDB_CGROUP_ROOT/memory.limit_in_bytes" ]; then
		echo "--mem-limit needs the cgroup v1 memory controller at $QDB_CGROUP_ROOT (no memory.limit_in_bytes there)" >&2
		return 1
	fi
	if [ ! -w /proc/sys/vm/drop_caches ]; then
		echo "--mem-limit needs to write /proc/sys/vm/drop_caches (read-only here)" >&2
		return 1
	fi
}

# qdb_cgroup_create LIMIT: a new group with memory (and memory + swap) at
# LIMIT (anything memory.limit_in_bytes takes: 100M, 1G, bytes); sets and
# exports QDB_CGROUP.
qdb_cgroup_create() {
	local limit=$1
	QDB_CGROUP=$QDB_CGROUP_ROOT/quantumdb-bench-$$
	mkdir "$QDB_CGROUP" || { echo "could not create the cgroup $QDB_CGROUP" >&2; return 1; }
	export QDB_CGROUP
	echo "$limit" >"$QDB_CGROUP/memory.limit_in_bytes" ||
		{ echo "memory.limit_in_bytes refused '$limit'" >&2; return 1; }
	# memory + swap, else the limit only moves pages to swap
	if [ -f "$QDB_CGROUP/memory.memsw.limit_in_bytes" ]; then
		echo "$limit" >"$QDB_CGROUP/memory.memsw.limit_in_bytes" ||
			{ echo "memory.memsw.limit_in_bytes refused '$limit'" >&2; return 1; }
	fi
	qdb_log "cgroup $QDB_CGROUP: memory.limit_in_bytes $(cat "$QDB_CGROUP/memory.limit_in_bytes")"
}

qdb_cgroup_drop_caches() {
	sync && echo 3 >/proc/sys/vm/drop_caches
}

# Restarts the throwaway server inside $QDB_CGROUP and checks that the
# postmaster is there.
qdb_cgroup_restart() {
	local pid sb=${QDB_BENCH_CONFINED_SHARED_BUFFERS:-16MB}
	[ -n "${QDB_CGROUP:-}" ] && [ -d "$QDB_CGROUP" ] || { echo "no cgroup (QDB_CGROUP unset)" >&2; return 1; }
	runuser -u "$QDB_OWNER" -- "$QDB_PG_BIN/psql" -h "$QDB_TMP" -p "$QDB_PORT" -U postgres -X -q \
		-v ON_ERROR_STOP=1 -d postgres -c "ALTER SYSTEM SET shared_buffers = '$sb'" || return 1
	runuser -u "$QDB_OWNER" -- "$QDB_PG_BIN/pg_ctl" -D "$QDB_TMP/data" -m fast -w stop >/dev/null || return 1
	qdb_cgroup_drop_caches || return 1
	bash -c 'echo $$ >"$1/cgroup.procs" && exec runuser -u "$2" -- "$3/pg_ctl" -D "$4/data" -l "$4/server.log" -w start' \
		_ "$QDB_CGROUP" "$QDB_OWNER" "$QDB_PG_BIN" "$QDB_TMP" >/dev/null ||
		{ tail -20 "$QDB_TMP/server.log" >&2; return 1; }
	pid=$(head -1 "$QDB_TMP/data/postmaster.pid")
	if ! grep -qx "$pid" "$QDB_CGROUP/cgroup.procs"; then
		echo "the postmaster ($pid) is not in $QDB_CGROUP: $(grep memory "/proc/$pid/cgroup")" >&2
		return 1
	fi
	echo "== server restarted in $QDB_CGROUP (postmaster $pid, shared_buffers $sb, page cache dropped)" >&2
}

# One line of the group's memory counters.
qdb_cgroup_report() {
	local g=${QDB_CGROUP:-} f line=""
	[ -n "$g" ] && [ -d "$g" ] || return 0
	for f in limit_in_bytes usage_in_bytes max_usage_in_bytes failcnt; do
		line+=" $f $(cat "$g/memory.$f")"
	done
	line+=" oom_kill $(awk '$1 == "oom_kill" {print $2}' "$g/memory.oom_control")"
	line+=" processes $(wc -l <"$g/cgroup.procs")"
	qdb_log "cgroup $(basename "$g"):$line"
}

# Removes the group: any process still inside (a server that did not stop)
# goes back to the root group first.
qdb_cgroup_remove() {
	local g=${QDB_CGROUP:-} p
	[ -n "$g" ] && [ -d "$g" ] || return 0
	for _ in $(seq 1 20); do
		rmdir "$g" 2>/dev/null && { qdb_log "cgroup $(basename "$g") removed"; return 0; }
		for p in $(cat "$g/cgroup.procs" 2>/dev/null); do
			echo "$p" >"$QDB_CGROUP_ROOT/cgroup.procs" 2>/dev/null
		done
		sleep 0.5
	done
	echo "could not remove the cgroup $g" >&2
	return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	case ${1:-} in
	restart) qdb_cgroup_restart ;;
	drop-caches) qdb_cgroup_drop_caches ;;
	*) echo "usage: $0 restart|drop-caches (run by index.py's hooks under index.sh --mem-limit)" >&2; exit 2 ;;
	esac
fi
