#!/usr/bin/python3
"""Codes chosen for the angle, not the distance, simulated with Faiss
(Debian's python3-faiss) before building it: under cosine quantumdb ranks a
row by the angle between the query and the row's decoded vector
(trainer/adc.c), so an error along the row itself (it changes the decoded
vector's length, not its direction) costs nothing, and an error across it
all.  PQ's encoder picks each sub-space's nearest codeword, which weighs
both alike.  Here each row's code is then improved by coordinate descent
(ScaNN's way of encoding for its score-aware loss), sub-space after
sub-space, on the loss

    |e|^2 + (eta - 1) (e . u)^2,    e = xhat - x,  u = x / |x|

(eta 1: PQ's own code; eta 0: the error across the row only, to first
order the angle; eta > 1: ScaNN's weighting for inner products).  Faiss OPQ
is trained on the sample's unit rows centred on its mean, as quantumdb's
opq; the codes and codebooks are the same for every eta, only the encoding
differs, so the query side (the tables) is unchanged.

Reports 10-recall@10 by the angle to the decoded vector and the share of
the exact top 10 (gt_ip.ivecs) within its top R, and the rows' mean
squared error and mean angle error.

With eta "angle" the descent maximises the cosine between the row and its
decoded vector itself (both sums decompose over sub-spaces).

usage: test/bench/angle_encode_sim.py SET [--etas 1,0.5,0,angle] [--passes 3]
e.g.   test/bench/angle_encode_sim.py glove-100-angular
"""
import argparse
import os

import numpy as np
import faiss

from opq_error_sim import ROOT, load_set  # the shared sets' reader beside it


def found(dist, gt, r):
    top = np.argpartition(dist, r, axis=1)[:, :r]
    return np.mean([len(set(top[i]) & set(gt[i, :10])) / 10 for i in range(len(top))])


def encode(y, u, cb, codes, eta, passes, block=20000):
    """Coordinate descent on |e|^2 + (eta - 1)(e . u)^2 from codes (modified)."""
    m, k, dsub = cb.shape
    cn = (cb ** 2).sum(2)  # (m, k)
    for lo in range(0, len(y), block):
        yb = y[lo:lo + block].reshape(-1, m, dsub)
        ub = u[lo:lo + block].reshape(-1, m, dsub)
        cd = codes[lo:lo + block]
        rows = np.arange(len(yb))
        # each sub-space's error along u with the current codes
        par = np.stack([((cb[j][cd[:, j]] - yb[:, j]) * ub[:, j]).sum(1) for j in range(m)], 1)
        for _ in range(passes):
            for j in range(m):
                others = par.sum(1) - par[:, j]
                cy = yb[:, j] @ cb[j].T            # (b, k)
                l2 = cn[j][None, :] - 2 * cy       # |e_j|^2 less a constant
                p = ub[:, j] @ cb[j].T - (yb[:, j] * ub[:, j]).sum(1, keepdims=True)
                loss = l2 + (eta - 1) * (others[:, None] + p) ** 2
                best = loss.argmin(1)
                cd[:, j] = best
                par[:, j] = p[rows, best]
        codes[lo:lo + block] = cd
    return codes


def encode_angle(y, u, t, cb, codes, passes, block=20000):
    """Coordinate descent on the angle itself: maximise xhat . u / |xhat|,
    xhat = yhat + t (t: the image of the mean, so xhat is uncentred)."""
    m, k, dsub = cb.shape
    cn = (cb ** 2).sum(2)
    ct = np.stack([cb[j] @ t[j * dsub:(j + 1) * dsub] for j in range(m)])  # (m, k)
    tt, = [float(t @ t)]
    for lo in range(0, len(y), block):
        ub = u[lo:lo + block].reshape(-1, m, dsub)
        cd = codes[lo:lo + block]
        rows = np.arange(len(ub))
        cu = np.stack([ub[:, j] @ cb[j].T for j in range(m)], 1)   # (b, m, k)
        dot_t = u[lo:lo + block] @ t
        a = np.stack([cu[rows, j, cd[:, j]] for j in range(m)], 1)  # x . parts
        q = np.stack([cn[j][cd[:, j]] + 2 * ct[j][cd[:, j]] for j in range(m)], 1)
        for _ in range(passes):
            for j in range(m):
                num = (a.sum(1) - a[:, j] + dot_t)[:, None] + cu[:, j]
                den = (q.sum(1) - q[:, j] + tt)[:, None] + (cn[j] + 2 * ct[j])[None, :]
                best = (num / np.sqrt(np.maximum(den, 1e-12))).argmax(1)
                cd[:, j] = best
                a[:, j] = cu[rows, j, best]
                q[:, j] = cn[j][best] + 2 * ct[j][best]
        codes[lo:lo + block] = cd
    return codes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("set")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--sample", type=int, default=50000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--etas", default="1,0.75,0.5,0.25,0")
    ap.add_argument("--passes", type=int, default=3)
    a = ap.parse_args()
    xb, xq, gt, cosine = load_set(os.path.join(a.data, a.set), a.queries)
    if not cosine:
        raise SystemExit("a cosine set, please: under l2 the distance is the loss already")
    n, d = xb.shape
    mean = xb[:a.sample].mean(0)
    pdim = min(256, -(-d // a.m) * a.m)
    if d > pdim:
        pca = faiss.PCAMatrix(d, pdim)
        pca.train(xb[:a.sample] - mean)
        proj = lambda x: pca.apply_py(x)
        back = lambda y: pca.reverse_transform(y)
    else:
        proj = lambda x: np.hstack([x, np.zeros((len(x), pdim - d), np.float32)])
        back = lambda y: y[:, :d]
    opq = faiss.OPQMatrix(pdim, a.m)
    opq.train(proj(xb[:a.sample] - mean))
    pq = faiss.ProductQuantizer(pdim, a.m, 8)
    pq.train(opq.apply_py(proj(xb[:a.sample] - mean)))
    cb = faiss.vector_to_array(pq.centroids).reshape(a.m, pq.ksub, pq.dsub)
    y = opq.apply_py(proj(xb - mean))
    # the row's own direction, uncentred, in the same rotated coordinates
    o = opq.apply_py(proj(-mean[None, :]))
    u = y - o
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    print(f"{a.set}: {n} rows x {d}, OPQ{a.m}x8 on {min(n, a.sample)}, "
          f"{a.passes} passes of coordinate descent")
    print("| eta | 10-recall@10 | top 10 in 40 | in 100 | in 133 | mean |e|^2 | mean angle error (deg) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    l2codes = pq.compute_codes(y).astype(np.int64)
    for eta in a.etas.split(","):
        codes = l2codes.copy()
        if eta == "angle":
            codes = encode_angle(y, u, -o[0], cb, codes, a.passes)
        elif float(eta) != 1:
            codes = encode(y, u, cb, codes, float(eta), a.passes)
        yhat = np.concatenate([cb[j][codes[:, j]] for j in range(a.m)], 1)
        err = ((yhat - y) ** 2).sum(1).mean()
        xhat = back(opq.reverse_transform(yhat.astype(np.float32))) + mean
        xhat /= np.linalg.norm(xhat, axis=1, keepdims=True)
        ang = np.degrees(np.arccos(np.clip((xhat * xb).sum(1) /
                                           np.linalg.norm(xb, axis=1), -1, 1))).mean()
        dist = 1 - xq @ xhat.T
        cells = " | ".join(f"{found(dist, gt, r):.4f}" for r in (10, 40, 100, 133))
        print(f"| {eta} | {cells} | {err:.5f} | {ang:.3f} |", flush=True)


if __name__ == "__main__":
    main()
