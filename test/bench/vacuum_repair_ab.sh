#!/usr/bin/env bash
# vacuum_repair.py with two (or more) builds of quantumdb.so in turn, run as
# root (each .so is installed over the system's in turn, so_swap.sh): the
# same rows, builds and deletes for each, so the VACUUM columns differ only
# by the repair.  libpq's PG* variables name the server; the arguments go
# to vacuum_repair.py.  The installed quantumdb.so is put back at the end.
#
# usage: QDB_AB_VARIANTS="old=old.so new=new.so" test/bench/vacuum_repair_ab.sh [--m 16,48] ...
set -euo pipefail
variants=${QDB_AB_VARIANTS:?QDB_AB_VARIANTS, e.g. "old=old.so new=new.so"}
. "$(dirname "$0")/so_swap.sh"
qdb_so_save
for v in $variants; do
	qdb_so_use "${v#*=}"
	/usr/bin/python3 "$(dirname "$0")/vacuum_repair.py" "$@" | sed "s/^/${v%%=*}: /"
done
