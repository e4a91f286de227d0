#!/usr/bin/python3
"""Two per-row or global corrections of ADC under cosine, simulated with Faiss
(Debian's python3-faiss) before building either, on a set's queries against
its exact ground truth (gt_ip.ivecs for cosine sets, gt.ivecs otherwise):

  --mode error: the error byte of kind opq (trainer/opq_error.c) carried over
    to cosine.  Faiss OPQ with M sub-quantizers on unit rows, centred as
    quantumdb's opq (mean of the sample), scored by the angle to the decoded
    vector (1 - q . xhat / |xhat|, as trainer/adc.c); then with c * e added,
    e = 1 - x . xhat / |xhat| the row's own distance to its code (exact, and
    as one byte of 256 levels, the means of equal runs of the sorted e, as
    opq_error.c fits them).  M = 15 plus the byte is a 16-byte code.
  --mode gamma: one global exponent on the decoded vector's norm: cosine
    ranks by -q . xhat / |xhat|^gamma (gamma 1: the angle, 0: the inner
    product), l2 by gamma |xhat|^2 - 2 q . xhat (gamma 1: ADC).

Reports 10-recall@10 and the share of the exact top 10 within ADC's top R.

usage: test/bench/adc_correction_sim.py SET --mode error|gamma [--m M] [--sample N]
e.g.   test/bench/adc_correction_sim.py glove-100-angular --mode error
"""
import argparse
import os

import numpy as np
import faiss

from opq_error_sim import ROOT, load_set  # the shared sets' reader beside it


def found(dist, gt, r):
    top = np.argpartition(dist, r, axis=1)[:, :r]
    return np.mean([len(set(top[i]) & set(gt[i, :10])) / 10 for i in range(len(top))])


def one_byte(e):
    """256 levels, the means of equal runs of the sorted errors; each row its nearest."""
    levels = np.array([r.mean() for r in np.array_split(np.sort(e), 256)])
    return levels[np.searchsorted((levels[1:] + levels[:-1]) / 2, e)]


def train_opq(x, m, pdim):
    """Faiss OPQ + PQ on rows x (already reduced or padded to pdim)."""
    opq = faiss.OPQMatrix(pdim, m)
    opq.train(x)
    pq = faiss.ProductQuantizer(pdim, m, 8)
    pq.train(opq.apply_py(x))
    return opq, pq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("set")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--mode", choices=["error", "gamma"], required=True)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--sample", type=int, default=50000)
    ap.add_argument("--queries", type=int, default=1000)
    a = ap.parse_args()
    d_dir = os.path.join(a.data, a.set)
    xb, xq, gt, cosine = load_set(d_dir, a.queries)
    n, d = xb.shape
    mean = xb[:a.sample].mean(0)
    print(f"{a.set} ({'cosine' if cosine else 'l2'}): {n} rows x {d}, trained on {min(n, a.sample)}")

    def cells(dist):
        return " | ".join(f"{found(dist, gt, r):.4f}" for r in (10, 40, 100, 133))

    head = "10-recall@10 | top 10 in ADC's 40 | in 100 | in 133 |"
    if a.mode == "error":
        if not cosine:
            raise SystemExit("--mode error is for cosine sets (l2: opq_error_sim.py)")
        print(f"| code | {head}\n|---|---:|---:|---:|---:|")
        for m in (16, 15):
            pdim = -(-d // m) * m
            pad = lambda x: np.hstack([x - mean, np.zeros((len(x), pdim - d), np.float32)])
            opq, pq = train_opq(pad(xb[:a.sample]), m, pdim)
            y = pq.decode(pq.compute_codes(opq.apply_py(pad(xb))))
            xhat = opq.reverse_transform(y)[:, :d] + mean
            xhat /= np.linalg.norm(xhat, axis=1, keepdims=True)
            dist = 1 - xq @ xhat.T
            print(f"| M = {m}, the angle to xhat | {cells(dist)} |", flush=True)
            if m == 15:
                e = 1 - (xb * xhat).sum(1)
                for c in (-1.0, -0.5, 0.5, 1.0):
                    print(f"| M = 15, + {c} e exact | {cells(dist + c * e[None, :])} |", flush=True)
                    print(f"| M = 15, + {c} e in a byte | {cells(dist + c * one_byte(e)[None, :])} |",
                          flush=True)
        return
    pdim = min(256, -(-d // a.m) * a.m)
    if d > pdim:
        pca = faiss.PCAMatrix(d, pdim)
        pca.train(xb[:a.sample])
        proj = pca.apply_py
    else:
        proj = lambda x: np.hstack([x - mean, np.zeros((len(x), pdim - d), np.float32)])
    opq, pq = train_opq(proj(xb[:a.sample]), a.m, pdim)
    yb = pq.decode(pq.compute_codes(opq.apply_py(proj(xb))))
    yq = opq.apply_py(proj(xq))
    if cosine:
        # about the image of the origin, as quantumdb's angle about the mean
        o = opq.apply_py(proj(np.zeros((1, d), np.float32)))
        yb, yq = yb - o, yq - o
    dot = yq @ yb.T
    nn = (yb ** 2).sum(1)
    print(f"| gamma | {head}\n|---:|---:|---:|---:|---:|")
    for g in (0.0, 0.5, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.5):
        dist = -dot / nn[None, :] ** (g / 2) if cosine else g * nn[None, :] - 2 * dot
        print(f"| {g} | {cells(dist)} |", flush=True)


if __name__ == "__main__":
    main()
