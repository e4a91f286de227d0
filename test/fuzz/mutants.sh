#!/bin/sh
# test/fuzz/mutants.sh (make mutants): builds fuzz_node_page against copies
# of src/node_check.c with one check disabled at a time, and fuzzes each for
# at most MUTANT_TIME seconds from corpus-node/.  Each must crash: a check
# whose removal the fuzzer cannot notice is a check it does not test.
# Nothing is written outside a temporary directory; corpus-node/ is only read.
set -u
CLANG=${CLANG:-clang}
MUTANT_TIME=${MUTANT_TIME:-60}
tmp=$(mktemp -d /tmp/qdb_mutants.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
missed=0

# name|sed expression that disables one check in node_check.c
while IFS='|' read -r name expr; do
	[ -z "$name" ] && continue
	sed -e "$expr" ../../src/node_check.c >"$tmp/node_check.c"
	if cmp -s ../../src/node_check.c "$tmp/node_check.c"; then
		echo "$name: the sed expression changed nothing"; missed=$((missed + 1)); continue
	fi
	# shellcheck disable=SC2086
	$CLANG -g -O1 -std=gnu11 $NODE_INC -I../../src -fno-omit-frame-pointer \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-o "$tmp/fuzz" fuzz_node_page.c "$tmp/node_check.c" 2>"$tmp/cc.log" ||
		{ cat "$tmp/cc.log"; exit 1; }
	mkdir -p "$tmp/corpus-$name"
	start=$(date +%s)
	"$tmp/fuzz" -max_total_time="$MUTANT_TIME" -max_len=8195 -print_final_stats=1 \
		-artifact_prefix="$tmp/$name-" "$tmp/corpus-$name" corpus-node >"$tmp/$name.log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	execs=$(grep -o 'number_of_executed_units: [0-9]*' "$tmp/$name.log" | grep -o '[0-9]*$')
	if [ $rc -ne 0 ]; then
		what=$(grep -m1 -oE 'ERROR: AddressSanitizer: [a-z-]+|runtime error: [a-z ]+|fuzz_node_page: .*' "$tmp/$name.log")
		echo "$name: crash after ${secs} s, ${execs:-?} executions: $what"
	else
		echo "$name: NOT FOUND in ${secs} s (${execs:-?} executions)"
		missed=$((missed + 1))
	fi
done <<'EOF'
level|s/node->level > shape->max_level/0/
size|s/len != QdbNodeSize(/0 \&\& len != QdbNodeSize(/
inside|s/start + len > ((PageHeader) page)->pd_special/0/
aligned|s/start != MAXALIGN(start)/0/
pagesize|s/PageGetPageSize(page) != BLCKSZ ||//
maxoff|s/PageGetMaxOffsetNumber(page) > QDB_MAX_NODES_PER_PAGE/0/
EOF
[ $missed -eq 0 ] && echo "every mutant crashed" || echo "$missed mutant(s) survived"
[ $missed -eq 0 ]
