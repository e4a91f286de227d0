#!/usr/bin/python3
"""A second code per row, simulated with Faiss (Debian's python3-faiss) before
building one: how far would re-scoring the walk's candidates with a refined
reconstruction cut the heap rerank that 10-recall@10 needs?

Each set as test/bench/adc_correction_sim.py --mode gamma prepares it: rows
reduced by PCA to 256 dims above that (fashion-mnist-784), else centred on
the sample's mean; Faiss OPQ with M sub-quantizers (16 bytes at M 16)
trained on the first --sample rows.  The refinement is a product quantizer
with R sub-quantizers (R bytes) trained on the residuals y - yhat of the
same rows, in OPQ's rotated space; the refined reconstruction is
yhat + rhat.  Distances: l2 to the reconstruction; under cosine the angle
about the image of the origin, as quantumdb's ADC (trainer/adc.c).

For each query: its candidates are ADC's top K (a stand-in for the walk's
candidate list); ordered by ADC alone, or by the refined distance; the
share of the exact top 10 (the set's ground truth) among the first N of
that order, for N = 10 ... 200, is what a heap rerank of depth N finds.

usage: test/bench/refine_sim.py SET [--m 16] [--refine 8,16] [--k 200,400]
       [--depths 10,20,40,...]
"""
import argparse
import os

import numpy as np
import faiss

from opq_error_sim import ROOT, load_set

DEPTHS = (10, 20, 40, 60, 80, 100, 133, 150, 200)


def share_in_first(order, gt, n):
    return np.mean([len(set(order[i, :n]) & set(gt[i, :10])) / 10 for i in range(len(order))])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("set")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--refine", default="8,16")
    ap.add_argument("--k", default="200,400")
    ap.add_argument("--sample", type=int, default=50000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--depths", default=",".join(str(x) for x in DEPTHS),
                    help="rerank depths N of the table")
    a = ap.parse_args()
    depths = [int(x) for x in a.depths.split(",")]
    d_dir = os.path.join(a.data, a.set)
    xb, xq, gt, cosine = load_set(d_dir, a.queries)
    n, d = xb.shape
    train = xb[:a.sample]
    mean = train.mean(0)
    pdim = min(256, -(-d // a.m) * a.m)
    if d > pdim:
        pca = faiss.PCAMatrix(d, pdim)
        pca.train(train)
        proj = pca.apply_py
    else:
        proj = lambda x: np.hstack([x - mean, np.zeros((len(x), pdim - d), np.float32)])
    opq = faiss.OPQMatrix(pdim, a.m)
    opq.train(proj(train))
    pq = faiss.ProductQuantizer(pdim, a.m, 8)
    yt = opq.apply_py(proj(train))
    pq.train(yt)
    yb = opq.apply_py(proj(xb))
    yhat = pq.decode(pq.compute_codes(yb))
    yq = opq.apply_py(proj(xq))
    o = opq.apply_py(proj(np.zeros((1, d), np.float32))) if cosine else 0

    def dist(rec):
        r = rec - o
        if cosine:
            return -((yq - o) @ r.T) / np.linalg.norm(r, axis=1)[None, :]
        return (r ** 2).sum(1)[None, :] - 2 * (yq - o) @ r.T

    d1 = dist(yhat)
    print(f"{a.set} ({'cosine' if cosine else 'l2'}): {n} rows x {d}, OPQ{a.m} in {pdim} dims, "
          f"trained on {len(train)}; {len(xq)} queries")
    head = " | ".join(f"{x}" for x in depths)
    print(f"| order of the candidates | {head} |\n|---|" + "---:|" * len(depths))
    kmax = max(int(k) for k in a.k.split(","))
    cand = np.argsort(d1, axis=1)[:, :kmax]
    print(f"| ADC, {a.m} bytes | " +
          " | ".join(f"{share_in_first(cand, gt, x):.4f}" for x in depths) + " |", flush=True)
    tcodes = pq.compute_codes(yt)
    resid_t = yt - pq.decode(tcodes)
    resid_b = yb - yhat
    for r in (int(x) for x in a.refine.split(",")):
        rq = faiss.ProductQuantizer(pdim, r, 8)
        rq.train(resid_t)
        d2 = dist(yhat + rq.decode(rq.compute_codes(resid_b)))
        for k in (int(x) for x in a.k.split(",")):
            c = cand[:, :k]
            sub = np.take_along_axis(d2, c, axis=1)
            order = np.take_along_axis(c, np.argsort(sub, axis=1), axis=1)
            print(f"| ADC's top {k}, by the {a.m} + {r}-byte reconstruction | " +
                  " | ".join(f"{share_in_first(order, gt, x):.4f}" for x in depths) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
