#!/usr/bin/env python3
"""Scans of a table with rows deleted and not vacuumed, one quantumdb.so
after another: LIMIT 10 at ef_search 40 / rerank 40, ms per query and
10-recall@10 against the exact answer among the live rows.

Needs glove-100-angular loaded by `index.py --set glove-100-angular
--build-only` (table items, ids 0..99999 in base order) in the database of
the libpq environment, and root (it copies each .so over the installed one,
as so_swap.sh does; new connections load it).  First, by hand:

  ALTER TABLE items SET (autovacuum_enabled = off);
  DELETE FROM items WHERE id % 7 = 0;

  test/bench/dead_rows_ab.py A.so B.so [A.so B.so ...] [--every 7] [--queries 300]
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np
import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from index import read_vecs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("libs", nargs="+", help="quantumdb.so files, run in this order")
    ap.add_argument("--every", type=int, default=7, help="rows with id %% EVERY = 0 were deleted")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "glove-100-angular"))
    ap.add_argument("--lib", default=subprocess.run(["pg_config", "--pkglibdir"], capture_output=True,
                                                   text=True).stdout.strip() + "/quantumdb.so")
    args = ap.parse_args()
    q = read_vecs(os.path.join(args.data, "query.fvecs"), count=args.queries)
    base = read_vecs(os.path.join(args.data, "base.fvecs"))
    ids = np.arange(len(base))
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    qq = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = qq @ b.T
    sims[:, ids % args.every == 0] = -9          # deleted: not an answer
    truth = np.argsort(-sims, axis=1)[:, :10]
    literals = ["{" + ",".join("%.9g" % v for v in x) + "}" for x in q]
    for lib in args.libs:
        subprocess.run(["cp", lib, args.lib + ".tmp"], check=True)
        os.replace(args.lib + ".tmp", args.lib)
        conn = psycopg2.connect("")
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SET quantumdb.ef_search = 40; SET quantumdb.rerank = 40; SET enable_seqscan = off")
        cur.execute("PREPARE p(real[]) AS SELECT id FROM items ORDER BY emb <=> $1 LIMIT 10")
        for _ in range(2):                      # the second round is timed
            got = []
            t0 = time.perf_counter()
            for lit in literals:
                cur.execute("EXECUTE p(%s)", (lit,))
                got.append([r[0] for r in cur.fetchall()])
            secs = time.perf_counter() - t0
        recall = np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth)])
        print("%s: %.3f ms per query, 10-recall@10 %.4f"
              % (lib, 1000 * secs / len(literals), recall))
        conn.close()


if __name__ == "__main__":
    main()
