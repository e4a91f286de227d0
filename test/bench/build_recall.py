#!/usr/bin/env python3
"""10-recall@10 and work per query of plain `ORDER BY emb <op> q LIMIT 10`
queries through the quantumdb index of a table loaded by index.py (table
items, column emb, ids the rows' places in base.fvecs), at each
ef_search:rerank pair: one line per pair, "EF:RERANK RECALL BUFFERS QPS",
for build_recall_ab.sh.  The ground truth is the set's file when the table
holds every base row, else a numpy brute force over the rows it holds.
BUFFERS: shared buffers (hit + read) per query from EXPLAIN (ANALYZE,
BUFFERS) of the first 100 queries; QPS: one client, the second of two runs
(scan_order.py's measures).

  test/bench/build_recall.py --set fashion-mnist-784 --pairs 40:0,40:40
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from index import METRICS, K, connect, exact_truth, read_vecs  # noqa: E402
from scan_order import explain, load_set, run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", required=True)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--metric", choices=sorted(METRICS))
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--pairs", default="40:0,40:40", help="ef_search:rerank list")
    args = ap.parse_args()
    metric, op, gt_path, base, query = load_set(args)
    cur = connect().cursor()
    cur.execute("SELECT count(*), max(id) FROM items")
    count, top = cur.fetchone()
    if count == len(base):
        truth = read_vecs(gt_path, dtype=np.int32)[:len(query), :K]
    else:
        truth = exact_truth(base[:top + 1], query, metric)
    literals = ["{" + ",".join("%.9g" % x for x in v) + "}" for v in query]
    sql = "SELECT id, emb %s %%s::real[] AS d FROM items ORDER BY d LIMIT %d" % (op, K)
    cur.execute("SET enable_seqscan = off")
    for pair in args.pairs.split(","):
        ef, rerank = (int(x) for x in pair.split(":"))
        cur.execute("SET quantumdb.ef_search = %d; SET quantumdb.rerank = %d" % (ef, rerank))
        recall, qps, _ = run(cur, sql, literals, truth)
        bufs, _ = explain(cur, sql, literals[:100])
        print("%s %.4f %.1f %.0f" % (pair, recall, bufs, qps), flush=True)


if __name__ == "__main__":
    main()
