#!/usr/bin/python3
"""What a new connection that uses a quantumdb index costs the server.

usage: test/bench/connect_cost.py [--conns N] [--query SQL] [--so A.so B.so]

Opens N connections one after another (libpq's PGHOST, PGPORT, PGUSER,
PGDATABASE; the server must run on this machine), runs QUERY once in each
(by default a nearest-neighbour query through the first quantumdb index it
finds, LIMIT 10) and closes it.  It reports per connection the wall time
and the server's CPU time: the user and system time of the exited backends,
threads included, as the postmaster's reaped-children times count them
(/proc/PID/stat, cutime and cstime).  With --so it alternates blocks of
connections between two builds of quantumdb.so, renaming a copy of each
over the installed one (run as root; the installed file is put back at the
end), so
the two are measured side by side in one run; --compare-query times
another query (pgvector's on the same table, say) in alternating blocks
too.  Prints a markdown table.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import psycopg2


def postmaster_children_cpu(pm):
    f = open("/proc/%d/stat" % pm).read().rsplit(")", 1)[1].split()
    # fields 16 and 17 of stat (cutime, cstime), counted from field 3 here
    return (int(f[13]) + int(f[14])) / os.sysconf("SC_CLK_TCK")


def default_query(cur):
    cur.execute("""SELECT c.relname, t.relname, a.attname
                     FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                     JOIN pg_am am ON am.oid = c.relam AND am.amname = 'quantumdb'
                     JOIN pg_class t ON t.oid = i.indrelid
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
                    LIMIT 1""")
    row = cur.fetchone()
    if row is None:
        raise SystemExit("no quantumdb index in this database; give --query")
    _, table, col = row
    return ("SELECT ctid FROM %s ORDER BY %s <~> (SELECT %s FROM %s LIMIT 1) LIMIT 10"
            % (table, col, col, table))


def install(src, target):
    """Puts src in target's place by a rename: a backend still mapping the
    old file (one exiting) keeps its inode; copying over it in place would
    change the pages under it (SIGBUS)."""
    tmp = target + ".connect_cost"
    shutil.copy(src, tmp)
    os.replace(tmp, target)


def block(n, query, pm):
    c0 = postmaster_children_cpu(pm)
    t0 = time.time()
    for _ in range(n):
        c = psycopg2.connect("")
        cur = c.cursor()
        cur.execute(query)
        cur.fetchall()
        c.close()
    wall = time.time() - t0
    # the last backend's exit is reaped asynchronously
    time.sleep(0.3)
    return wall / n, (postmaster_children_cpu(pm) - c0) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=40, help="connections per block")
    ap.add_argument("--blocks", type=int, default=4, help="blocks per build")
    ap.add_argument("--query", default=None)
    ap.add_argument("--compare-query", default=None,
                    help="a second query timed in alternating blocks (e.g. pgvector's on the same table)")
    ap.add_argument("--reference", action="store_true",
                    help="also time connections that run SELECT 1 (no quantumdb)")
    ap.add_argument("--so", nargs=2, metavar=("A", "B"), default=None,
                    help="two builds of quantumdb.so to alternate")
    args = ap.parse_args()

    c = psycopg2.connect("")
    cur = c.cursor()
    query = args.query or default_query(cur)
    cur.execute("SELECT pg_backend_pid()")
    bpid = cur.fetchone()[0]
    pm = int(open("/proc/%d/stat" % bpid).read().rsplit(")", 1)[1].split()[1])
    cur.execute("SHOW dynamic_library_path")
    c.close()
    builds = {"installed": None}
    saved = None
    if args.so:
        lib = subprocess.check_output(["pg_config", "--pkglibdir"], text=True).strip()
        target = os.path.join(lib, "quantumdb.so")
        saved = tempfile.mktemp()
        shutil.copy(target, saved)
        builds = {os.path.basename(args.so[0]) + " (A)": args.so[0],
                  os.path.basename(args.so[1]) + " (B)": args.so[1]}
    results = {k: [] for k in builds}
    if args.compare_query:
        results["--compare-query"] = []
    if args.reference:
        results["SELECT 1 (no quantumdb)"] = []
    try:
        for b in range(args.blocks):
            for name, so in builds.items():
                if so:
                    install(so, target)
                block(2, query, pm)  # warm the page cache for this build
                results[name].append(block(args.conns, query, pm))
            if args.compare_query:
                block(2, args.compare_query, pm)
                results["--compare-query"].append(block(args.conns, args.compare_query, pm))
            if args.reference:
                results["SELECT 1 (no quantumdb)"].append(block(args.conns, "SELECT 1", pm))
    finally:
        if saved:
            install(saved, target)
            os.unlink(saved)
    print("query: `%s`, %d blocks of %d connections per build, os.cpu_count() %d"
          % (query, args.blocks, args.conns, os.cpu_count()))
    if args.compare_query:
        print("--compare-query: `%s`" % args.compare_query)
    print()
    print("| build | wall ms per connection (median of blocks) | server CPU ms per connection (median) |")
    print("|---|---:|---:|")
    for name, r in results.items():
        print("| %s | %.2f | %.2f |" % (name, 1e3 * statistics.median(x[0] for x in r),
                                        1e3 * statistics.median(x[1] for x in r)))


if __name__ == "__main__":
    main()
