#!/usr/bin/python3
"""What kind opq's error byte (trainer/opq_error.c) can give, simulated with
Faiss (Debian's python3-faiss): Faiss's OPQ (after a PCA to --pca dims when
that is below the set's) with M sub-quantizers, searched by exhaustive L2
ADC on the set's queries against its exact ground truth (gt.ivecs), plain
and with each row's squared error ||x - xhat||^2 (the PCA's dropped part
included) added to its distances: exact, and quantized to one byte on a
linear and on a log scale over its range.  With M = 15 and the byte the
code is 16 bytes, as quantumdb's.

usage: test/bench/opq_error_sim.py SET [--pca D] [--m M,...] [--sample N]
e.g.   test/bench/opq_error_sim.py fashion-mnist-784 --pca 240 --m 15,16
"""
import argparse
import os

import numpy as np
import faiss

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fvecs(path):
    a = np.fromfile(path, dtype=np.int32)
    return a.reshape(-1, a[0] + 1)[:, 1:].view(np.float32).copy()


def ivecs(path):
    a = np.fromfile(path, dtype=np.int32)
    return a.reshape(-1, a[0] + 1)[:, 1:].copy()


def load_set(d_dir, queries):
    """A shared set's rows, queries and ground truth; cosine sets (those with
    gt_ip.ivecs) with rows and queries normalised.  Returns (xb, xq, gt, cosine)."""
    cosine = os.path.exists(os.path.join(d_dir, "gt_ip.ivecs"))
    xb = fvecs(os.path.join(d_dir, "base.fvecs"))
    xq = fvecs(os.path.join(d_dir, "query.fvecs"))[:queries]
    gt = ivecs(os.path.join(d_dir, "gt_ip.ivecs" if cosine else "gt.ivecs"))[:queries]
    if cosine:
        xb /= np.linalg.norm(xb, axis=1, keepdims=True)
        xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    return xb, xq, gt, cosine


def recall10(dist, gt):
    top = np.argsort(dist, axis=1)[:, :10]
    return np.mean([len(set(top[i]) & set(gt[i, :10])) / 10 for i in range(len(top))])


def one_byte(err, log):
    v = np.log(err + 1e-9) if log else err
    lo, hi = v.min(), v.max()
    q = lo + np.round((v - lo) / (hi - lo) * 255) * (hi - lo) / 255
    return np.exp(q) if log else q


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("set")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--pca", type=int, default=256)
    ap.add_argument("--m", default="16")
    ap.add_argument("--sample", type=int, default=50000)
    ap.add_argument("--queries", type=int, default=1000)
    a = ap.parse_args()
    d_dir = os.path.join(a.data, a.set)
    xb = fvecs(os.path.join(d_dir, "base.fvecs"))
    xq = fvecs(os.path.join(d_dir, "query.fvecs"))[:a.queries]
    gt = ivecs(os.path.join(d_dir, "gt.ivecs"))[:a.queries]
    d = xb.shape[1]
    xt = xb[:a.sample]
    pdim = a.pca if a.pca < d else d
    print(f"{a.set}: {xb.shape[0]} rows x {d}, PCA to {pdim}, trained on {xt.shape[0]} rows")
    print("| M | plain | + exact error | + error, 1 byte linear | + error, 1 byte log |")
    print("|---:|---:|---:|---:|---:|")
    for m in [int(s) for s in a.m.split(",")]:
        pca = faiss.PCAMatrix(d, pdim) if pdim < d else None
        if pca:
            pca.train(xt)
        proj = (lambda x: pca.apply_py(x)) if pca else (lambda x: x)
        opq = faiss.OPQMatrix(pdim, m)
        t = proj(xt)
        opq.train(t)
        pq = faiss.ProductQuantizer(pdim, m, 8)
        pq.train(opq.apply_py(t))
        yb = opq.apply_py(proj(xb))
        rec = pq.decode(pq.compute_codes(yb))
        err = ((yb - rec) ** 2).sum(1)
        if pca:
            mean = faiss.vector_to_array(pca.mean)
            err += ((xb - mean) ** 2).sum(1) - (proj(xb) ** 2).sum(1)
        yq = opq.apply_py(proj(xq))
        dist = (yq ** 2).sum(1)[:, None] - 2 * yq @ rec.T + (rec ** 2).sum(1)[None, :]
        print(f"| {m} | {recall10(dist, gt):.4f} | {recall10(dist + err[None, :], gt):.4f} "
              f"| {recall10(dist + one_byte(err, False)[None, :], gt):.4f} "
              f"| {recall10(dist + one_byte(err, True)[None, :], gt):.4f} |", flush=True)


if __name__ == "__main__":
    main()
