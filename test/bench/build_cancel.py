#!/usr/bin/python3
"""How late a statement_timeout lands in CREATE INDEX: a build at high m
and ef_construction (whose batches of 1,024 rows took seconds each) under
timeouts of 2 to 6 s, the overshoot (seconds past the timeout until the
ERROR) of each.  Table bc (ROWS rows of sift-photos-128) and compressor
bc_c are made in the database the usual PG* environment variables name.

  test/bench/build_cancel.py [--rows N] [--m M] [--ef-construction E] [--timeouts MS,...]
"""
import argparse
import os
import time

import psycopg2

from index import connect, copy_vectors, new_table, read_vecs

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=9000)
    ap.add_argument("--m", type=int, default=100)
    ap.add_argument("--ef-construction", type=int, default=1000)
    ap.add_argument("--timeouts", default="2000,3000,4000,5000,6000")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "sift-photos-128"))
    a = ap.parse_args()
    x = read_vecs(os.path.join(a.data, "base.fvecs"), count=a.rows)
    cur = connect().cursor()
    new_table(cur, "bc", "id int, emb real[]")
    copy_vectors(cur, "bc", x)
    cur.execute("SELECT quantumdb.drop_compressor('bc_c') FROM quantumdb.compressors WHERE name = 'bc_c'")
    cur.execute("SELECT compressor FROM quantumdb.train('bc_c', 'bc', 'emb')")
    late = []
    for ms in [int(t) for t in a.timeouts.split(",")]:
        cur.execute("SET statement_timeout = %d" % ms)
        t = time.time()
        try:
            cur.execute("CREATE INDEX bc_i ON bc USING quantumdb (emb) WITH (compressor = 'bc_c', "
                        "m = %d, ef_construction = %d, calibration_queries = 0)"
                        % (a.m, a.ef_construction))
            late.append("finished")
            cur.execute("RESET statement_timeout")
            cur.execute("DROP INDEX bc_i")
        except psycopg2.errors.QueryCanceled:
            late.append("%.2f" % (time.time() - t - ms / 1000.0))
        cur.execute("RESET statement_timeout")
    print("timeouts %s ms: seconds late %s" % (a.timeouts, " ".join(late)), flush=True)
    cur.execute("DROP TABLE bc")
    cur.execute("SELECT quantumdb.drop_compressor('bc_c')")


if __name__ == "__main__":
    main()
