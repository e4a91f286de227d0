#!/usr/bin/python3
"""How much of a re-scored row a rerank that stops decoding early would
skip: for each query, the exact 11th to 40th neighbours stand for the
candidates that lose to the 10th (the walk's candidates are farther, so
this flatters the idea a little), and the script reports which fraction of
a row's values (in storage order) must be summed before the partial
squared L2 distance passes the 10th neighbour's.  pglz decodes a row front
to back, so that fraction is what such a rerank would still decode.

usage: test/bench/rerank_prefix_sim.py [SET] [--queries N]   (numpy; L2 sets)
"""
import argparse
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fvecs(p):
    a = np.fromfile(p, dtype=np.int32)
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].view(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("set", nargs="?", default="fashion-mnist-784")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    args = ap.parse_args()
    base = fvecs(os.path.join(args.data, args.set, "base.fvecs"))
    queries = fvecs(os.path.join(args.data, args.set, "query.fvecs"))[:args.queries]
    fractions = []
    for q in queries:
        d = ((base - q) ** 2).sum(1)
        order = np.argsort(d)[:40]
        d10 = d[order[9]]
        for r in order[10:40]:
            c = np.cumsum((base[r] - q) ** 2)
            fractions.append((np.searchsorted(c, d10) + 1) / base.shape[1])
    f = np.array(fractions)
    print("%s, %d queries, neighbours 11 to 40: a row's values summed before its partial "
          "distance passes the 10th neighbour's: mean %.3f, median %.3f, 90th percentile %.3f"
          % (args.set, len(queries), f.mean(), np.median(f), np.percentile(f, 90)))


if __name__ == "__main__":
    main()
