#!/usr/bin/python3
"""Makes test/data/glove-2k: a small real sample of glove-100-angular for the
regression tests and for `make demo` when ../shared/data is absent.

2,000 base vectors drawn with a fixed seed from glove-100-angular/base.fvecs,
the first 100 of its queries, and the exact top-100 by cosine (inner product
after L2-normalising) over the 2,000, as gt_ip.ivecs (0-based rows).

usage: make_sample.py SRC_DIR OUT_DIR
"""
import sys
import numpy as np


def read_fvecs(path):
    a = np.fromfile(path, dtype=np.int32)
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].view(np.float32).copy()


def write_vecs(path, x):
    n, d = x.shape
    out = np.empty((n, d + 1), dtype=np.int32)
    out[:, 0] = d
    out[:, 1:] = x.view(np.int32)
    out.tofile(path)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    base = read_fvecs(src + "/base.fvecs")
    query = read_fvecs(src + "/query.fvecs")[:100]
    rows = np.sort(np.random.default_rng(20261129).choice(len(base), 2000, replace=False))
    base = base[rows]
    bn = base / np.linalg.norm(base, axis=1, keepdims=True)
    qn = query / np.linalg.norm(query, axis=1, keepdims=True)
    sims = qn.astype(np.float64) @ bn.astype(np.float64).T
    gt = np.argsort(-sims, axis=1, kind="stable")[:, :100].astype(np.int32)
    write_vecs(dst + "/base.fvecs", base)
    write_vecs(dst + "/query.fvecs", query)
    write_vecs(dst + "/gt_ip.ivecs", gt)
    np.savetxt(dst + "/rows.txt", rows, fmt="%d")


if __name__ == "__main__":
    main()
