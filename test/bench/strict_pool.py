#!/usr/bin/python3
"""A strict_order scan that returns many rows: ROWS rows of glove-100-angular
(cosine), the index with its trained compressor, then per rerank value
the seconds of `SELECT count(*) FROM (SELECT id FROM t ORDER BY emb <=> q) s`
with quantumdb.max_scan_tuples at its maximum (every row comes back),
best of REPEAT.  Each batch of re-scored rows joins the pool of rows
waiting to be returned; the cost of that join is what this measures.
libpq's PG* variables name the server; --reuse keeps the table of a run
before.

  test/bench/strict_pool.py [--rows 20000] [--rerank 1,10,100] [--repeat 3]
"""
import argparse
import os
import time

from index import connect, copy_vectors, new_table, one, read_vecs

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--rerank", default="1,10,100")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "glove-100-angular"))
    a = ap.parse_args()
    cur = connect().cursor()
    if not a.reuse:
        x = read_vecs(os.path.join(a.data, "base.fvecs"), count=a.rows)
        new_table(cur, "sp", "id int PRIMARY KEY, emb real[]", "WITH (autovacuum_enabled = off)")
        copy_vectors(cur, "sp", x)
        cur.execute("CREATE INDEX sp_idx ON sp USING quantumdb (emb real_cosine_ops)")
        cur.execute("ANALYZE sp")
    cur.execute("SET enable_seqscan = off; SET quantumdb.max_scan_tuples = 2147483647")
    rows = one(cur, "SELECT count(*) FROM sp")
    for rr in [int(v) for v in a.rerank.split(",")]:
        cur.execute("SET quantumdb.rerank = %d" % rr)
        best = None
        for _ in range(a.repeat):
            t0 = time.time()
            n = one(cur, "SELECT count(*) FROM (SELECT id FROM sp ORDER BY emb <=> "
                    "(SELECT emb FROM sp WHERE id = 7)) s")
            t = time.time() - t0
            best = t if best is None else min(best, t)
        print("rerank %d: %d of %d rows in %.3f s" % (rr, n, rows, best), flush=True)


if __name__ == "__main__":
    main()
