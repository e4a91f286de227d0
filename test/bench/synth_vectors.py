#!/usr/bin/python3
"""Synthetic embeddings for timing the trainer (test/bench/train_time.sh).

usage: test/bench/synth_vectors.py N D OUT.fvecs [--seed S] [--alpha A] [--clusters C]

How the data is made: a random orthonormal basis Q (QR of a Gaussian D x D
matrix) and a power-law spectrum, variance lambda_j = (j + 1)^-alpha along
the j-th basis vector (alpha 0.8 by default: a few strong directions and a
long tail, as in sentence-embedding models).  Each row is a common offset
(embeddings share a mean direction) plus one of C cluster centres plus
noise; centres and noise are Gaussian with that spectrum, the centres
carrying 40% of the variance and the noise 60%.  Rows are written in
chunks as float32 .fvecs (per row: int32 D, then D floats).  The same
arguments give the same file.  Only for timing: its recall means nothing.
"""
import argparse

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("d", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--alpha", type=float, default=0.8)
    ap.add_argument("--clusters", type=int, default=100)
    args = ap.parse_args()
    n, d = args.n, args.d
    rng = np.random.default_rng(args.seed)

    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scale = np.sqrt((np.arange(d) + 1.0) ** -args.alpha)
    scale /= np.sqrt(np.sum(scale ** 2))          # total variance 1
    basis = (scale[:, None] * q.T).astype(np.float32)  # row j: sqrt(lambda_j) q_j
    offset = (rng.standard_normal(d) / np.sqrt(d)).astype(np.float32)
    centres = np.sqrt(0.4) * rng.standard_normal((args.clusters, d)).astype(np.float32) @ basis

    with open(args.out, "wb") as f:
        for i0 in range(0, n, 10000):
            b = min(10000, n - i0)
            x = np.sqrt(0.6) * rng.standard_normal((b, d)).astype(np.float32) @ basis
            x += offset + centres[rng.integers(0, args.clusters, b)]
            rows = np.empty((b, d + 1), dtype=np.int32)
            rows[:, 0] = d
            rows[:, 1:] = x.astype(np.float32).view(np.int32)
            rows.tofile(f)


if __name__ == "__main__":
    main()
