#!/usr/bin/env bash
# `make test`: installs what is missing (as root), builds, installs, starts a
# throwaway cluster and runs every suite against it:
#   1. C unit tests (TAP output): the trainer core's (trainer/tests) and the
#      graph layer's (test/unit)
#   2. pg_regress: sql/*.sql against expected/*.out
#   3. TAP tests under test/t/ (PostgreSQL::Test::Cluster), when there are any
#   4. every server log: no process terminated by a signal, no leak warned of
# QDB_ONLY=REGEX runs only the pg_regress and TAP tests whose names match
# (e.g. QDB_ONLY='index|007'), and no unit tests: for a quick check while
# working; a full run is what counts.
# QDB_PG_CONFIG=PATH runs them against another server (make check-cassert);
# QDB_VALGRIND=SUPP runs the pg_regress suite against a server under
# valgrind, and no TAP tests (make check-valgrind).  See test/lib.sh.
# When something fails, the server logs (and valgrind's reports) are kept
# in test-logs/.
# The cluster is stopped and removed even when a test fails.  The last line
# is "N passed, N failed"; the exit status is nonzero on any failure.
set -u
. "$(dirname "$0")/lib.sh"
cd "$QDB_ROOT"

rm -rf "$QDB_ROOT/regression.diffs" "$QDB_ROOT/test-logs"
passed=0
failed=0
count() {	# count PASS_PATTERN FAIL_PATTERN FILE
	local p f
	p=$(grep -cE "$1" "$3")
	f=$(grep -cE "$2" "$3")
	passed=$((passed + p))
	failed=$((failed + f))
}

if ! qdb_setup; then
	echo "set-up failed"
	echo "0 passed, 1 failed"
	exit 1
fi
qdb_cluster_start || { echo "0 passed, 1 failed"; exit 1; }

# 1. unit tests
qdb_log "unit tests"
for t in trainer/tests/test_* test/unit/test_*; do
	case "$t" in *.c|*.h) continue ;; esac
	[ -n "${QDB_ONLY:-}" ] && continue
	[ -x "$t" ] || continue
	out="$QDB_TMP/$(basename "$t").tap"
	"./$t" >"$out" 2>&1
	rc=$?
	count '^ok ' '^not ok ' "$out"
	grep -E '^not ok ' "$out" | sed "s|^|$(basename "$t"): |" | tee -a "$QDB_TMP/failures"
	if [ $rc -ne 0 ] && ! grep -q '^not ok ' "$out"; then
		echo "$t exited with status $rc" | tee -a "$QDB_TMP/failures"; tail -5 "$out"; failed=$((failed + 1))
	fi
	echo "$(basename "$t"): $(grep -c '^ok ' "$out") ok, $(grep -c '^not ok ' "$out") not ok"
done

# 2. pg_regress
qdb_log "pg_regress"
tests=$(ls sql/*.sql | grep -v -- '--' | xargs -n1 basename | sed 's/\.sql$//' | sort |
	grep -E "${QDB_ONLY:-.}")
base_copy=$(qdb_vecs_to_copy test/data/glove-2k/base.fvecs glove_base) &&
	query_copy=$(qdb_vecs_to_copy test/data/glove-2k/query.fvecs glove_query) &&
	gt_copy=$(qdb_vecs_to_copy test/data/glove-2k/gt_ip.ivecs glove_gt)
regress=$QDB_PGXS_DIR/src/test/regress/pg_regress
# the inputs are copied so the cluster's owner can read them wherever the
# checkout lives
mkdir -p "$QDB_TMP/regress-in" && cp -r sql expected "$QDB_TMP/regress-in/"
chmod -R a+rX "$QDB_TMP/regress-in"
if [ -n "$tests" ]; then
	(cd "$QDB_TMP" && qdb_as_owner "$regress" --host="$QDB_TMP" --port="$QDB_PORT" \
		--user=postgres --inputdir="$QDB_TMP/regress-in" --outputdir="$QDB_TMP/regress" \
		--dbname=quantumdb_regress --load-extension=quantumdb $tests) >"$QDB_TMP/regress.log" 2>&1
	rc=$?
	grep -E '\.\.\. |tests passed|failed' "$QDB_TMP/regress.log"
	count '\.\.\. ok' '\.\.\. FAILED|\.\.\. failed' "$QDB_TMP/regress.log"
	if [ $rc -ne 0 ] && ! grep -qE '\.\.\. (FAILED|failed)' "$QDB_TMP/regress.log"; then
		echo "pg_regress exited with status $rc:" | tee -a "$QDB_TMP/failures"; tail -5 "$QDB_TMP/regress.log"
		failed=$((failed + 1))
	fi
	grep -E '\.\.\. (FAILED|failed)' "$QDB_TMP/regress.log" >>"$QDB_TMP/failures"
	if [ -s "$QDB_TMP/regress/regression.diffs" ]; then
		head -60 "$QDB_TMP/regress/regression.diffs" >>"$QDB_TMP/failures"
		cp "$QDB_TMP/regress/regression.diffs" "$QDB_ROOT/regression.diffs"
		head -200 "$QDB_ROOT/regression.diffs"
		echo "(full diffs in regression.diffs)"
	fi
fi

# 3. TAP tests
taps=$(cd test && ls t/*.pl 2>/dev/null | grep -E "${QDB_ONLY:-.}")
[ -n "${QDB_VALGRIND:-}" ] && taps=
if [ -n "$taps" ]; then
	qdb_log "TAP tests"
	pgxs=$QDB_PGXS_DIR
	tapdir="$QDB_TMP/tap"
	mkdir -p "$tapdir"
	cp -r test/t test/client "$tapdir/"
	[ "$(id -u)" = 0 ] && chown -R "$QDB_OWNER" "$tapdir"
	(cd "$tapdir" && qdb_as_owner env PATH="$QDB_PG_BIN:$PATH" PG_REGRESS="$regress" MALLOC_PERTURB_=165 \
		TESTDIR="$tapdir" QDB_GLOVE_COPY="$base_copy" \
		prove -I "$pgxs/src/test/perl" -v $taps) >"$QDB_TMP/tap.log" 2>&1
	rc=$?
	# the diagnostics of a failed assertion are shown, the rest of "# " not
	awk '/^ *not ok /{d=1; print; next} /^ *ok /{d=0} !/^# / || d' "$QDB_TMP/tap.log"
	# which file each failed assertion is in, for the summary at the end
	awk '/^t\/[^ ]*\.pl /{f=$1} /^ *not ok /{print f ": " $0}' "$QDB_TMP/tap.log" >>"$QDB_TMP/failures"
	count '^ *ok ' '^ *not ok ' "$QDB_TMP/tap.log"
	if [ $rc -ne 0 ] && ! grep -qE '^ *not ok ' "$QDB_TMP/tap.log"; then
		echo "prove exited with status $rc" | tee -a "$QDB_TMP/failures"
		failed=$((failed + 1))
	fi
	if [ $rc -ne 0 ]; then
		for f in "$tapdir"/tmp_check/log/*; do [ -f "$f" ] && { echo "== $f"; tail -20 "$f"; }; done
	fi
fi

# 4. every server log of the run, the TAP tests' too: one check per kind
#    of line that must not be there.  scan_logs WHAT OK PATTERN: "not ok -
#    WHAT: FILE" per log with such lines, or "ok - OK" when none has.
scan_logs() {
	local what=$1 ok=$2 pattern=$3 bad=0 f lines
	for f in "$QDB_TMP/server.log" "$QDB_TMP"/tap/tmp_check/log/*.log; do
		[ -f "$f" ] || continue
		lines=$(grep -E "$pattern" "$f")
		# 003_crash's own SIGKILL of a backend is no crash
		case "$f" in */003_crash_*) lines=$(printf '%s\n' "$lines" | grep -v 'signal 9: Killed') ;; esac
		lines=$(printf '%s\n' "$lines" | grep -v '^$')
		[ -z "$lines" ] && continue
		echo "not ok - $what: $f" | tee -a "$QDB_TMP/failures"
		printf '%s\n' "$lines" | head -5
		bad=1
	done
	if [ "$bad" = 0 ]; then
		echo "ok - $ok"
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
}
qdb_log "server logs"
# a crash that every assertion tolerated is still a crash
scan_logs "a server process crashed" "no server process was terminated by a signal" \
	'terminated by signal|terminated by exception|TRAP:'
# a leak the server warns of at a transaction's or a process's end (a
# buffer pin, a relation, a snapshot, a tuple descriptor, a plan, a
# temporary file, dynamic shared memory: "WARNING:  ... leak ..."; a lock
# released twice: "you don't own a lock"; a snapshot pushed and not popped,
# or SPI connected and not finished: "snapshot ... still active",
# "registered snapshots seem to remain", "left non-empty SPI stack"), a
# background worker's and autovacuum's included, which no test's output
# shows
scan_logs "the server warned of a leak" "no server warned of a leak" \
	"WARNING: +(.* leak\b|.*leak:|you don't own a lock|snapshot .* still active|registered snapshots seem to remain|.*left non-empty SPI stack)"

# 5. valgrind's reports: every error is a failure
if [ -n "${QDB_VALGRIND:-}" ]; then
	qdb_log "valgrind reports"
	qdb_as_owner "$QDB_PG_BIN/pg_ctl" -D "$QDB_TMP/data" -m fast -w -t 300 stop >/dev/null 2>&1
	verrs=$(cat "$QDB_TMP"/valgrind/*.log 2>/dev/null | grep -c 'VALGRINDERROR-BEGIN')
	if [ "$verrs" -eq 0 ]; then
		echo "ok - valgrind reports no error ($(ls "$QDB_TMP"/valgrind | wc -l) processes)"
		passed=$((passed + 1))
	else
		echo "not ok - valgrind reports $verrs errors in: $(grep -l VALGRINDERROR-BEGIN "$QDB_TMP"/valgrind/*.log | xargs -n1 basename | tr '\n' ' ')"
		grep -h -m1 -A25 'VALGRINDERROR-BEGIN' "$QDB_TMP"/valgrind/*.log | head -60
		failed=$((failed + 1))
	fi
fi

if [ "$failed" -ne 0 ]; then
	rm -rf "$QDB_ROOT/test-logs" && mkdir -p "$QDB_ROOT/test-logs"
	cp "$QDB_TMP/server.log" "$QDB_TMP"/tap/tmp_check/log/* "$QDB_ROOT/test-logs/" 2>/dev/null
	[ -d "$QDB_TMP/valgrind" ] && grep -l VALGRINDERROR-BEGIN "$QDB_TMP"/valgrind/*.log 2>/dev/null |
		xargs -r cp -t "$QDB_ROOT/test-logs/"
	echo "(server logs in test-logs/)"
	# last, so that a log cut to its tail still names what failed
	echo "== what failed"
	head -100 "$QDB_TMP/failures" 2>/dev/null
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
