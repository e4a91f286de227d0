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
# QDB_PG_CONFIG=PATH  test against the server of that pg_config (e.g. one
#                  built from source with --enable-cassert, see README.md):
#                  build and install with it, take the server's binaries,
#                  pg_regress and the TAP test modules from its installation
#                  (QDB_PREFIX is then not used)
# QDB_VALGRIND=SUPP  start the throwaway cluster's server under valgrind
#                  memcheck with the suppressions file SUPP (make
#                  check-valgrind); each process logs to $QDB_TMP/valgrind/

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
	local major pkgs=() p pkgs_wanted
	major=$(qdb_pg_major)
	if [ -z "$major" ] && [ -z "${QDB_PG_CONFIG:-}" ]; then
		echo "no PostgreSQL server found under /usr/lib/postgresql; install postgresql first" >&2
		return 1
	fi
	pkgs_wanted=("postgresql-server-dev-$major" libopenblas-dev libipc-run-perl build-essential)
	[ -n "${QDB_PG_CONFIG:-}" ] && pkgs_wanted=(libopenblas-dev libipc-run-perl build-essential)
	[ -n "${QDB_VALGRIND:-}" ] && pkgs_wanted+=(valgrind)
	for p in "${pkgs_wanted[@]}"; do
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
	local major pg_config_arg=() stamp
	if [ -n "${QDB_PG_CONFIG:-}" ]; then
		[ -x "$QDB_PG_CONFIG" ] || { echo "QDB_PG_CONFIG: $QDB_PG_CONFIG is not an executable pg_config" >&2; return 1; }
		QDB_PG_BIN=$("$QDB_PG_CONFIG" --bindir)
		pg_config_arg=(PG_CONFIG="$QDB_PG_CONFIG")
		QDB_PGXS_DIR=$(dirname "$(dirname "$(dirname "$("$QDB_PG_CONFIG" --pgxs)")")")
	else
		major=$(qdb_pg_major)
		QDB_PG_BIN=/usr/lib/postgresql/$major/bin
		QDB_PGXS_DIR=/usr/lib/postgresql/$major/lib/pgxs
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
	fi
	export PATH="$QDB_PG_BIN:$PATH"
	# objects built for one server are not reused for another, nor for the
	# same pg_config configured again (--with-lz4 changes what is compiled)
	stamp="${QDB_PG_CONFIG:-default} $("${QDB_PG_CONFIG:-$QDB_PG_BIN/pg_config}" --configure 2>/dev/null)"
	if [ "$(cat "$QDB_ROOT/.qdb-build-server" 2>/dev/null)" != "$stamp" ]; then
		rm -f "$QDB_ROOT"/src/*.o "$QDB_ROOT"/src/*.bc "$QDB_ROOT"/quantumdb.so
		# the unit tests' programs, as run_tests.sh finds them
		for t in "$QDB_ROOT"/test/unit/test_*; do
			case "$t" in *.c | *.h) ;; *) rm -f "$t" ;; esac
		done
	fi
	qdb_log "building"
	make -C "$QDB_ROOT" -s -j2 "${pg_config_arg[@]}" all >/dev/null || return 1
	echo "$stamp" >"$QDB_ROOT/.qdb-build-server"
	make -C "$QDB_ROOT/trainer" -s -j2 all tests >/dev/null || return 1
	make -C "$QDB_ROOT" -s "${pg_config_arg[@]}" unit-tests >/dev/null || return 1
	qdb_log "installing the extension"
	if [ -n "${QDB_PG_CONFIG:-}" ]; then
		if [ -w "$("$QDB_PG_CONFIG" --pkglibdir)" ]; then
			make -C "$QDB_ROOT" -s "${pg_config_arg[@]}" install >/dev/null || return 1
		else
			sudo -n make -C "$QDB_ROOT" -s "${pg_config_arg[@]}" install >/dev/null || {
				echo "make install into $("$QDB_PG_CONFIG" --pkglibdir) needs root" >&2; return 1; }
		fi
	elif [ -n "${QDB_PREFIX:-}" ]; then
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
	if [ -n "${QDB_VALGRIND:-}" ]; then
		qdb_valgrind_start || return 1
	else
		# freed malloc memory is overwritten, so that a use after free (of a
		# large palloc chunk) fails every time instead of now and then
		qdb_as_owner env MALLOC_PERTURB_=165 "$QDB_PG_BIN/pg_ctl" -D "$QDB_TMP/data" -l "$QDB_TMP/server.log" -w start >/dev/null ||
			{ cat "$QDB_TMP/server.log" >&2; return 1; }
	fi
	export PGHOST=$QDB_TMP PGPORT=$QDB_PORT PGUSER=postgres
	qdb_as_owner "$QDB_PG_BIN/createdb" -h "$QDB_TMP" -p "$QDB_PORT" -U postgres "$QDB_DB"
}

# Starts the postmaster (and so every backend it forks) under valgrind
# memcheck, with PostgreSQL's suppressions ($QDB_VALGRIND) and the
# project's (test/valgrind.supp); each process
# writes its report to $QDB_TMP/valgrind/PID.log, an error between the
# markers VALGRINDERROR-BEGIN and VALGRINDERROR-END.
qdb_valgrind_start() {
	local i
	[ -r "$QDB_VALGRIND" ] || { echo "QDB_VALGRIND: no suppressions file $QDB_VALGRIND" >&2; return 1; }
	command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; return 1; }
	mkdir -p "$QDB_TMP/valgrind"
	# PostgreSQL's suppressions and the project's (test/valgrind.supp)
	cat "$QDB_VALGRIND" "$QDB_ROOT/test/valgrind.supp" >"$QDB_TMP/valgrind.supp"
	[ "$(id -u)" = 0 ] && chown -R "$QDB_OWNER" "$QDB_TMP/valgrind" "$QDB_TMP/valgrind.supp"
	qdb_as_owner bash -c 'nohup valgrind --quiet --trace-children=yes --leak-check=no --track-origins=yes \
		--read-var-info=no --num-callers=30 --suppressions="$1/valgrind.supp" \
		--error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END --log-file="$1/valgrind/%p.log" \
		"$2/postgres" -D "$1/data" >"$1/server.log" 2>&1 </dev/null &' _ "$QDB_TMP" "$QDB_PG_BIN"
	for i in $(seq 1 300); do
		"$QDB_PG_BIN/pg_isready" -q -h "$QDB_TMP" -p "$QDB_PORT" && return 0
		sleep 1
	done
	echo "the server did not start under valgrind:" >&2
	cat "$QDB_TMP/server.log" >&2
	return 1
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
