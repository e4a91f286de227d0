#!/usr/bin/python3
"""A rerank that stops early, simulated (issue 11's "a rerank that stops
early when the next candidate's compressed distance cannot beat the k-th
exact distance found"): Faiss OPQ16x8 (after a PCA to 112 dims on glove,
240 above 256 dims) ranks the first --rows rows of a shared set by ADC; its
top --candidates stand in for the walk's; they are re-scored with exact
distances in ADC order, and the rerank stops before candidate i (i >= 10)
when i's ADC distance exceeds the 10th exact distance found so far plus a
margin: a multiple of the largest, or of the standard deviation of, the ADC
minus exact differences seen so far in this query.  Reported: 10-recall@10
against the exact top 10 of those rows, and the mean number re-scored,
beside a fixed rerank depth.  Faiss's OPQ is trained with --opq-iters
alternations on --train-rows rows to keep the run within minutes here (its
full training takes about 8 minutes on glove): the codes are weaker than
quantumdb's, so compare the rules with each other, not with the index.

usage: test/bench/rerank_stop_sim.py SET [--rows N] [--candidates C]
       [--opq-iters I] [--train-rows T] [--queries Q]
e.g.   test/bench/rerank_stop_sim.py glove-100-angular --rows 100000 --candidates 200
"""
import argparse
import os
import time

import numpy as np
import faiss

from opq_error_sim import load_set

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rerank(ad, ai, ex, gts, stop):
    """Mean 10-recall@10 and rows re-scored with stop(adc, d10, errs, i)."""
    rec = used = 0.0
    for q in range(len(ad)):
        best, errs = [], []
        for i in range(ad.shape[1]):
            if i >= 10 and stop(ad[q, i], np.partition(best, 9)[9], errs, i):
                break
            best.append(ex[q, i])
            errs.append(ad[q, i] - ex[q, i])
        top = np.argsort(best)[:10]
        rec += len(set(ai[q, top]) & gts[q]) / 10
        used += len(best)
    return rec / len(ad), used / len(ad)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("set")
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--opq-iters", type=int, default=10)
    ap.add_argument("--train-rows", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=1000)
    a = ap.parse_args()
    xb, xq, _, _ = load_set(os.path.join(ROOT, "..", "shared", "data", a.set), a.queries)
    xb = xb[:a.rows].copy()
    d = xb.shape[1]
    flat = faiss.IndexFlatL2(d)
    flat.add(xb)
    _, gt = flat.search(xq, 10)
    gts = [set(g) for g in gt]
    dims = 112 if a.set.startswith("glove") else (240 if d > 256 else d)
    opq = faiss.OPQMatrix(d, 16, dims)
    opq.niter = a.opq_iters
    opq.max_train_points = a.train_rows
    idx = faiss.IndexPreTransform(opq, faiss.IndexPQ(dims, 16, 8))
    t0 = time.time()
    idx.train(xb[:a.train_rows])
    idx.add(xb)
    print("%s: %d rows, OPQ16 to %d dims (%d alternations on %d rows) in %.0f s, "
          "%d candidates, %d queries" % (a.set, len(xb), dims, a.opq_iters, a.train_rows,
                                         time.time() - t0, a.candidates, len(xq)), flush=True)
    ad, ai = idx.search(xq, a.candidates)
    ex = np.sum((xb[ai] - xq[:, None, :]) ** 2, axis=2)
    print("| rule | 10-recall@10 | rows re-scored |\n|---|---:|---:|")
    for r in (20, 40, 60, 80, 100, 133, 150, 200):
        if r <= a.candidates:
            print("| fixed %d | %.4f | %.1f |" % ((r,) + rerank(ad, ai, ex, gts,
                                                              lambda s, d10, e, i, r=r: i >= r)),
                  flush=True)
    for p in (0.5, 1.0, 1.5, 2.0, 3.0):
        print("| largest difference x %.1f | %.4f | %.1f |" % ((p,) + rerank(
            ad, ai, ex, gts, lambda s, d10, e, i, p=p: s > d10 + p * max(e))), flush=True)
    for p in (1.0, 2.0, 3.0, 4.0):
        print("| standard deviation x %.1f | %.4f | %.1f |" % ((p,) + rerank(
            ad, ai, ex, gts, lambda s, d10, e, i, p=p: s > d10 + p * np.std(e))), flush=True)


if __name__ == "__main__":
    main()
