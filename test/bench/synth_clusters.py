#!/usr/bin/python3
"""Synthetic clustered Gaussian vectors with exact ground truth, for the
index benchmark's 1M x 128 run (index.sh --synth).

Writes OUT/base.fvecs, OUT/query.fvecs, OUT/gt.ivecs (the exact K nearest
base rows of each query by L2, ties by row number) and OUT/info.json; the
same seed and sizes give the same bytes.  How the data is made:

- a decaying spectrum: dimension j has scale (1 + j)^-0.5 (the first
  dimensions carry most of the variance, as in real embeddings), turned by a
  random orthogonal matrix so that no axis is special;
- CLUSTERS centres drawn from that distribution, with lognormal weights (a
  few large clusters, many small ones);
- each row: a centre picked by weight, plus the same spectrum's noise times
  the cluster's spread (uniform in [0.2, 0.5]);
- queries: the same process from another random stream.

Base rows are made in blocks of 10,000 from one stream, so a smaller --rows
(a multiple of 10,000) gives the first rows of a larger set.  The ground
truth is a float64 brute force in numpy, in blocks of queries and rows.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

BLOCK = 10000


def log(msg):
    print("== " + msg, file=sys.stderr, flush=True)


def write_vecs(path, a):
    """.fvecs (float32) or .ivecs (int32): each row its length, then values."""
    n, d = a.shape
    out = np.empty((n, d + 1), dtype=np.int32)
    out[:, 0] = d
    out[:, 1:] = a.view(np.int32) if a.dtype == np.float32 else a.astype(np.int32)
    out.tofile(path)


class Model:
    """The clusters: centres, weights, spreads and the rotated spectrum."""

    def __init__(self, seed, dim, clusters):
        rng = np.random.default_rng([seed, 0])
        self.scale = (1.0 + np.arange(dim)) ** -0.5
        self.rot, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        self.centres = (rng.standard_normal((clusters, dim)) * self.scale) @ self.rot
        w = rng.lognormal(0.0, 1.0, clusters)
        self.cdf = np.cumsum(w / w.sum())
        self.spread = rng.uniform(0.2, 0.5, clusters)

    def rows(self, rng, n):
        label = np.minimum(np.searchsorted(self.cdf, rng.random(n)), len(self.cdf) - 1)
        noise = (rng.standard_normal((n, len(self.scale))) * self.scale) @ self.rot
        return (self.centres[label] + noise * self.spread[label, None]).astype(np.float32)


def make(model, rng, n):
    return np.concatenate([model.rows(rng, min(BLOCK, n - s)) for s in range(0, n, BLOCK)])


def ground_truth(base, query, k, qblock=200, bblock=100000):
    """Exact k nearest rows of base for each query by L2 (float64)."""
    out = np.empty((len(query), k), dtype=np.int64)
    bnorm = np.concatenate([np.einsum("ij,ij->i", b, b) for b in
                            (base[s:s + bblock].astype(np.float64) for s in range(0, len(base), bblock))])
    for qs in range(0, len(query), qblock):
        q = query[qs:qs + qblock].astype(np.float64)
        qn = np.einsum("ij,ij->i", q, q)[:, None]
        best_d = np.empty((len(q), 0))
        best_i = np.empty((len(q), 0), dtype=np.int64)
        for bs in range(0, len(base), bblock):
            b = base[bs:bs + bblock].astype(np.float64)
            d = qn + bnorm[None, bs:bs + len(b)] - 2.0 * (q @ b.T)
            if d.shape[1] > k:
                part = np.argpartition(d, k - 1, axis=1)[:, :k]
            else:
                part = np.broadcast_to(np.arange(d.shape[1]), d.shape)
            best_d = np.concatenate([best_d, np.take_along_axis(d, part, axis=1)], axis=1)
            best_i = np.concatenate([best_i, part + bs], axis=1)
            # ties broken by row number: the order does not depend on the blocks
            order = np.lexsort((best_i, best_d), axis=1)[:, :k]
            best_d = np.take_along_axis(best_d, order, axis=1)
            best_i = np.take_along_axis(best_i, order, axis=1)
        out[qs:qs + len(q)] = best_i
        log("  ground truth: %d of %d queries" % (qs + len(q), len(query)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--k", type=int, default=100, help="neighbours per query in gt.ivecs")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True, help="folder to write (made if missing)")
    a = ap.parse_args()
    if a.rows <= a.k:
        sys.exit("--rows must exceed --k")

    t0 = time.perf_counter()
    os.makedirs(a.out, exist_ok=True)
    model = Model(a.seed, a.dim, a.clusters)
    log("making %d x %d base rows and %d queries (%d clusters, seed %d)"
        % (a.rows, a.dim, a.queries, a.clusters, a.seed))
    base = make(model, np.random.default_rng([a.seed, 1]), a.rows)
    query = make(model, np.random.default_rng([a.seed, 2]), a.queries)
    write_vecs(os.path.join(a.out, "base.fvecs"), base)
    write_vecs(os.path.join(a.out, "query.fvecs"), query)
    t = time.perf_counter()
    gt = ground_truth(base, query, a.k)
    gt_s = time.perf_counter() - t
    write_vecs(os.path.join(a.out, "gt.ivecs"), gt)
    info = {"generator": "test/bench/synth_clusters.py", "n_base": a.rows, "n_query": a.queries,
            "dim": a.dim, "k": a.k, "metric": "l2", "clusters": a.clusters, "seed": a.seed,
            "ground_truth_s": round(gt_s, 1)}
    with open(os.path.join(a.out, "info.json"), "w") as f:
        json.dump(info, f, indent=1)
    log("wrote %s (%.0f s, ground truth %.0f s)" % (a.out, time.perf_counter() - t0, gt_s))


if __name__ == "__main__":
    main()
