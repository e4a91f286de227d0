#!/usr/bin/env bash
# test/cassert_server.sh: builds, once, a PostgreSQL server of the installed
# major version with --enable-cassert (assertions on, freed memory wiped,
# memory contexts checked) and USE_VALGRIND, from Debian's source package,
# outside the checkout, and prints the path of its pg_config on stdout:
#
#   make check-cassert PG_CONFIG=$(bash test/cassert_server.sh)
#
# (make check-valgrind with it: VALGRIND_SUPP=PREFIX/valgrind.supp, since
# the source tree is removed after the build.)
#
# .ci/run runs the suites against it after `make test`: a production build
# hides an Assert that fails and most uses of freed memory, which such a
# server turns into a crash the suites see.
#
# QDB_CASSERT_PREFIX=DIR  where the server goes (default
#                  /var/tmp/qdb-pg-cassert-MAJOR); kept between runs: a
#                  server already there is reused.
# Needs root the first time (apt-get: the deb-src entries, the build's
# packages, the source package); the build takes about 5 minutes on 2 cores.
set -euo pipefail

log() { echo "== $*" >&2; }

major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1 || true)
[ -n "$major" ] || { echo "no PostgreSQL server under /usr/lib/postgresql" >&2; exit 1; }
prefix=${QDB_CASSERT_PREFIX:-/var/tmp/qdb-pg-cassert-$major}
pg_config=$prefix/bin/pg_config
perl_dir=$prefix/lib/postgresql/pgxs/src/test/perl
configure_args=(--enable-cassert --enable-debug --without-icu --without-readline --with-lz4
	--prefix="$prefix" CPPFLAGS=-DUSE_VALGRIND)
# written last: a server built otherwise, or a build cut short, is built again
marker=$prefix/.qdb-cassert-complete

if [ -x "$pg_config" ] && [ "$(cat "$marker" 2>/dev/null)" = "${configure_args[*]}" ]; then
	echo "$pg_config"
	exit 0
fi
[ "$(id -u)" = 0 ] || { echo "building the cassert server needs root (apt-get)" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
# (grep -c reads all of apt-cache's output: grep -q could end the pipe early)
has_source() {
	[ "$(apt-cache showsrc "postgresql-$major" 2>/dev/null | grep -c '^Version: ' || true)" -gt 0 ]
}
apt-get update -qq >/dev/null || log "apt-get update reported errors; trying the sources it got"
# the source package's entries, beside Debian's binary ones (deb822 or one-line)
if ! has_source; then
	log "adding deb-src entries for Debian's apt sources"
	for f in /etc/apt/sources.list.d/*.sources; do
		grep -qs 'debian\.org' "$f" || continue	# Debian's archive only
		sed 's/^Types: deb$/Types: deb-src/' "$f" >"/etc/apt/sources.list.d/qdb-src-$(basename "$f")"
	done
	if [ -f /etc/apt/sources.list ]; then
		grep '^deb .*debian\.org' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
			>/etc/apt/sources.list.d/qdb-src.list || true
	fi
	apt-get update -qq >/dev/null || log "apt-get update reported errors; trying the sources it got"
	has_source || { echo "no source package of postgresql-$major in apt's sources" >&2; exit 1; }
fi
pkgs=()
# valgrind: USE_VALGRIND includes its valgrind/memcheck.h
for p in build-essential pkg-config bzip2 zlib1g-dev liblz4-dev libipc-run-perl valgrind; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || pkgs+=("$p")
done
if [ ${#pkgs[@]} -gt 0 ]; then
	log "installing ${pkgs[*]}"
	apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

work=$(mktemp -d /var/tmp/qdb-pg-src.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
# the newest version whose files the mirror still has (an archive may list
# a security release whose files it no longer serves)
got=
for v in $(apt-cache showsrc "postgresql-$major" | sed -n 's/^Version: //p' | sort -rV | uniq); do
	if apt-get source -qq --download-only "postgresql-$major=$v" >/dev/null 2>&1; then
		got=$v
		break
	fi
	rm -f ./*
done
[ -n "$got" ] || { echo "no source package of postgresql-$major could be fetched" >&2; exit 1; }
log "building PostgreSQL $got with --enable-cassert into $prefix"
tarball=$(ls ./*.orig.tar.* | grep -v '\.asc$' | head -1)
tar xf "$tarball"
cd postgresql-"$major".*/
./configure "${configure_args[@]}" >configure.log 2>&1 || { tail -20 configure.log >&2; exit 1; }
make -s -j"$(nproc)" >make.log 2>&1 || { tail -40 make.log >&2; exit 1; }
make -s install >>make.log 2>&1 || { tail -20 make.log >&2; exit 1; }
mkdir -p "$perl_dir"
cp -r src/test/perl/PostgreSQL "$perl_dir/"
# the source tree goes: make check-valgrind VALGRIND_SUPP=$prefix/valgrind.supp
cp src/tools/valgrind.supp "$prefix/valgrind.supp"
chmod -R a+rX "$prefix"
echo "${configure_args[*]}" >"$marker"
echo "$pg_config"
