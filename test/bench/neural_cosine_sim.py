#!/usr/bin/python3
"""Kind neural under cosine: which table-friendly distance could its start use?

Kinds pq, opq and rq score the angle to the decoded vector under cosine,
1 - q . xhat / ||xhat|| with xhat = mean + A^T c (trainer/adc.c); kind
neural keeps ||z_q - c||^2 / 2 in its latent space (z = f(x - mean)), so its
opq start searches worse than opq itself.  A neural encoder has no
orthonormal A to decode through, so the choice is among distances in the
latent space.  This script compares, on an opq model (Faiss OPQ16x8 with
112 output dims, the latent space of a neural start), by exhaustive search
over every row against the set's ground truth:

  latent L2/2     ||z_q - c||^2 / 2           (kind neural now)
  latent angle    1 - z_q . c / (|z_q| |c|)   (the angle about the mean)
  decoded angle   1 - q . xhat / |xhat|       (kinds pq, opq, rq)

  test/bench/neural_cosine_sim.py [--set glove-100-angular] [--rows 25000] [--queries 1000]
"""
import argparse
import os

import faiss
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def vecs(path, dtype):
    a = np.fromfile(path, dtype=np.int32)
    return a.reshape(-1, a[0] + 1)[:, 1:].view(dtype).copy()


def recall(scores, gt):
    top = np.argsort(scores, axis=1)[:, :10]
    return np.mean([len(set(top[i]) & set(gt[i])) / 10 for i in range(len(gt))])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--set", default="glove-100-angular")
    ap.add_argument("--rows", type=int, default=25000, help="training rows (a seeded sample)")
    ap.add_argument("--queries", type=int, default=1000)
    a = ap.parse_args()
    ds = os.path.join(a.data, a.set)
    xb = vecs(os.path.join(ds, "base.fvecs"), np.float32)
    xq = vecs(os.path.join(ds, "query.fvecs"), np.float32)[:a.queries]
    gt = vecs(os.path.join(ds, "gt_ip.ivecs"), np.int32)[:a.queries, :10]
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    d = xb.shape[1]
    dout = -(-d // 16) * 16
    tr = xb[np.random.default_rng(1).choice(len(xb), a.rows, replace=False)]
    mean = tr.mean(0)
    opq = faiss.OPQMatrix(d, 16, dout)
    opq.niter = 25
    opq.train(tr - mean)
    A = faiss.vector_to_array(opq.A).reshape(dout, d)
    pq = faiss.ProductQuantizer(dout, 16, 8)
    pq.train((tr - mean) @ A.T)
    chat = pq.decode(pq.compute_codes((xb - mean) @ A.T))
    zq = (xq - mean) @ A.T
    xhat = mean + chat @ A
    l2 = ((zq ** 2).sum(1)[:, None] + (chat ** 2).sum(1)[None, :] - 2 * zq @ chat.T) / 2
    lat = 1 - (zq @ chat.T) / (np.linalg.norm(zq, axis=1)[:, None] * np.linalg.norm(chat, axis=1)[None, :])
    ang = 1 - (xq @ xhat.T) / np.linalg.norm(xhat, axis=1)[None, :]
    print("%s: %d training rows, %d queries; ||mean|| %.3f" % (a.set, a.rows, len(xq), np.linalg.norm(mean)))
    print("10-recall@10  latent L2/2 %.4f  latent angle %.4f  decoded angle %.4f"
          % (recall(l2, gt), recall(lat, gt), recall(ang, gt)))


if __name__ == "__main__":
    main()
