# test/lib.sh: set-up shared by `make test` and `make demo` (sourced).
#
# qdb_setup        as root: apt-get install what is missing; then build and
#                  install the extension
# qdb_cluster_start  initdb + start a throwaway cluster in a temporary
#                  directory owned by a non-root user (Postgres refuses root)
# qdb_cluster_stop stop it and remove the directory (also on EXIT)
# qdb_psql ARGS    psql against the throwaway cluster, as its owner
#
# QDB_PREFIX=DIR   test against a private copy of the server under DIR
#                  (made on first use) instead of the system's, so that
#                  several checkouts can build, install and test at once

QDB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QDB_DB=quantumdb_test

qdb_log() { echo "== $*" >&2; }

qdb_pg_major() {
	ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1
}

# Runs a command as the cluster's owner.
qdb_as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$QDB_OWNER" -- "$@"
	else
		"$@"
	fi
}

qdb_install_packages() {
	local major pkgs=() p
	major=$(qdb_pg_major)
	if [ -z "$major" ]; then
		echo "no PostgreSQL server found under /usr/lib/postgresql; install postgresql first" >&2
		return 1
	fi
	for p in "postgresql-server-dev-$major" libopenblas-dev libipc-run-perl build-essential; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || pkgs+=("$p")
	done
	[ ${#pkgs[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages: ${pkgs[*]}; run as root (or install them) first" >&2
		return 1
	fi
	qdb_log "installing ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}

qdb_setup() {
	qdb_install_packages || return 1
	local major
	major=$(qdb_pg_major)
	QDB_PG_BIN=/usr/lib/postgresql/$major/bin
	if [ -n "${QDB_PREFIX:-}" ]; then
		if [ ! -x "$QDB_PREFIX/usr/lib/postgresql/$major/bin/postgres" ]; then
			qdb_log "copying the server into $QDB_PREFIX"
			mkdir -p "$QDB_PREFIX/usr/lib/postgresql" "$QDB_PREFIX/usr/share/postgresql" &&
				cp -a "/usr/lib/postgresql/$major" "$QDB_PREFIX/usr/lib/postgresql/" &&
				cp -a "/usr/share/postgresql/$major" "$QDB_PREFIX/usr/share/postgresql/" || return 1
			chmod -R a+rX "$QDB_PREFIX"
		fi
		QDB_PG_BIN=$QDB_PREFIX/usr/lib/postgresql/$major/bin
	fi
	export PATH="$QDB_PG_BIN:$PATH"
	qdb_log "building"
	make -C "$QDB_ROOT" -s -j2 all >/dev/null || return 1
	make -C "$QDB_ROOT/trainer" -s -j2 all tests >/dev/null || return 1
	qdb_log "installing the extension"
	if [ -n "${QDB_PREFIX:-}" ]; then
		make -C "$QDB_ROOT" -s install DESTDIR="$QDB_PREFIX" >/dev/null || return 1
	elif [ "$(id -u)" = 0 ]; then
		make -C "$QDB_ROOT" -s install >/dev/null || return 1
	else
		sudo -n make -C "$QDB_ROOT" -s install >/dev/null || {
			echo "make install needs root; run as root or install once with sudo" >&2; return 1; }
	fi
}

qdb_cluster_stop() {
	if [ -n "${QDB_TMP:-}" ] && [ -d "$QDB_TMP" ]; then
		if [ -f "$QDB_TMP/data/postmaster.pid" ]; then
			qdb_as_owner "$QDB_PG_BIN/pg_ctl" -D "$QDB_TMP/data" -m immediate -w stop >/dev/null 2>&1
		fi
		rm -rf "$QDB_TMP"
	fi
}

qdb_cluster_start() {
	if [ "$(id -u)" = 0 ]; then
		QDB_OWNER=${QDB_OWNER:-postgres}
		if ! id "$QDB_OWNER" >/dev/null 2>&1; then
			useradd --system --no-create-home "$QDB_OWNER" || return 1
		fi
	else
		QDB_OWNER=$(id -un)
	fi
	QDB_TMP=$(mktemp -d /tmp/quantumdb-test.XXXXXX)
	chmod 755 "$QDB_TMP"
	[ "$(id -u)" = 0 ] && chown "$QDB_OWNER" "$QDB_TMP"
	trap qdb_cluster_stop EXIT
	QDB_PORT=${QDB_PORT:-$((54000 + RANDOM % 1000))}
	qdb_log "starting a throwaway cluster in $QDB_TMP (port $QDB_PORT, owner $QDB_OWNER)"
	qdb_as_owner "$QDB_PG_BIN/initdb" -D "$QDB_TMP/data" -A trust -E UTF8 --locale=C.UTF-8 -U postgres \
		>"$QDB_TMP/initdb.log" 2>&1 || { cat "$QDB_TMP/initdb.log" >&2; return 1; }
	cat >>"$QDB_TMP/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$QDB_TMP'
port = $QDB_PORT
fsync = off
shared_buffers = 256MB
maintenance_work_mem = 256MB
max_parallel_workers_per_gather = 0
CONF
	# freed malloc memory is overwritten, so that a use after free (of a
	# large palloc chunk) fails every time instead of now and then
	qdb_as_owner env MALLOC_PERTURB_=165 "$QDB_PG_BIN/pg_ctl" -D "$QDB_TMP/data" -l "$QDB_TMP/server.log" -w start >/dev/null ||
		{ cat "$QDB_TMP/server.log" >&2; return 1; }
	export PGHOST=$QDB_TMP PGPORT=$QDB_PORT PGUSER=postgres
	qdb_as_owner "$QDB_PG_BIN/createdb" -h "$QDB_TMP" -p "$QDB_PORT" -U postgres "$QDB_DB"
}

qdb_psql() {
	qdb_as_owner "$QDB_PG_BIN/psql" -h "$QDB_TMP" -p "$QDB_PORT" -U postgres -X -q -v ON_ERROR_STOP=1 "$@"
}

# Writes an .fvecs/.ivecs file as COPY text ("row<TAB>{v1,v2,...}") into a
# file the cluster's owner can read; prints that path.
qdb_vecs_to_copy() {
	local src=$1 name=$2 count=${3:-0} out
	out="$QDB_TMP/$name.copy"
	"$QDB_ROOT/trainer/qdb-train" dump --input "$src" --count "$count" >"$out" || return 1
	chmod 644 "$out"
	echo "$out"
}
