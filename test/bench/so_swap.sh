# Sourced by the A/B hooks (build_ab.sh, build_recall_ab.sh,
# scan_order_ab.sh), run as root: qdb_so_save keeps a copy of the installed
# quantumdb.so and puts it back when the script exits; qdb_so_use SO
# installs SO in its place (each new connection then loads it);
# qdb_so_rebuild SO INDEX DEF drops INDEX and runs DEF (its CREATE INDEX)
# with SO, printing the seconds it took (PGOPTIONS passes settings).
qdb_so_save() {
	qdb_so_lib=$(pg_config --pkglibdir)
	qdb_so_saved=$(mktemp)
	cp "$qdb_so_lib/quantumdb.so" "$qdb_so_saved"
	trap 'qdb_so_use "$qdb_so_saved"; rm -f "$qdb_so_saved"' EXIT
}

# by a rename: a backend still mapping the old file (one exiting) keeps its
# inode, where a copy in place would change its pages under it (SIGBUS)
qdb_so_use() {
	install -m 755 "$1" "$qdb_so_lib/quantumdb.so.swap" && mv -f "$qdb_so_lib/quantumdb.so.swap" "$qdb_so_lib/quantumdb.so"
}

qdb_so_rebuild() {
	local t0 t1
	qdb_so_use "$1"
	psql -X -q -c "DROP INDEX IF EXISTS $2" >/dev/null
	t0=$(date +%s.%N)
	# a new connection loads the .so just copied
	psql -X -q -v ON_ERROR_STOP=1 -c "$3" >/dev/null || return 1
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc
}
