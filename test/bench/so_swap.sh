# Sourced by the A/B hooks (build_ab.sh, scan_order_ab.sh), run as root:
# qdb_so_save keeps a copy of the installed quantumdb.so and puts it back
# when the script exits; qdb_so_use SO installs SO in its place (each new
# connection then loads it).
qdb_so_save() {
	qdb_so_lib=$(pg_config --pkglibdir)
	qdb_so_saved=$(mktemp)
	cp "$qdb_so_lib/quantumdb.so" "$qdb_so_saved"
	trap 'cp "$qdb_so_saved" "$qdb_so_lib/quantumdb.so"; rm -f "$qdb_so_saved"' EXIT
}

qdb_so_use() {
	cp "$1" "$qdb_so_lib/quantumdb.so"
}
