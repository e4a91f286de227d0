#!/usr/bin/python3
"""A new connection's first nearest-neighbour queries: time and the
backend's minor page faults (/proc/PID/stat) query by query.

usage: test/bench/first_query_faults.py TABLE COLUMN [--queries N]

libpq's PGHOST, PGPORT, PGUSER, PGDATABASE name the server, which must run
on this machine.  The queries are the vectors of TABLE's first N rows (by
ctid), each `ORDER BY COLUMN <~> vector LIMIT 10` with the session's
settings.  The first query of a backend faults in every shared buffer page
it touches (and the index's compressor, read once per backend); later ones
find most of their pages mapped.
"""
import argparse
import time

import psycopg2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("table")
    ap.add_argument("column")
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    c = psycopg2.connect("")
    cur = c.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]

    def faults():
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return int(f[7])  # minflt, field 10 of stat

    cur.execute("SELECT %s::text FROM %s LIMIT %d" % (args.column, args.table, args.queries))
    vectors = [r[0] for r in cur.fetchall()]
    sql = "SELECT ctid FROM %s ORDER BY %s <~> %%s::real[] LIMIT 10" % (args.table, args.column)
    print("| query | ms | minor faults |")
    print("|---:|---:|---:|")
    for k, v in enumerate(vectors):
        f0 = faults()
        t = time.time()
        cur.execute(sql, (v,))
        cur.fetchall()
        ms = (time.time() - t) * 1e3
        if k < 3 or k in (5, 10, 50, 100) or k == len(vectors) - 1:
            print("| %d | %.2f | %d |" % (k + 1, ms, faults() - f0))


if __name__ == "__main__":
    main()
