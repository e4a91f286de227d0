#!/usr/bin/python3
"""Would a lazy rerank read fewer rows?  A simulation in numpy and Faiss.

The index re-scores a query's first `rerank` candidates (in ADC order) with
exact distances from the heap, then returns them in exact order.  A lazy
rerank would score them one at a time and return a scored row as soon as no
unscored candidate can beat it: when its exact distance is at most the next
candidate's ADC distance less a margin (a quantile of ADC's overestimate,
ADC - exact, over all candidates).  With LIMIT 10 it stops after the 10th
row returned.  This script counts the rows such a rerank would score and its
10-recall@10, against the full rerank of the same candidates.

Candidates are approximated by exhaustive ADC's first R (150 under cosine,
40 under l2: the depths at which the index reaches 0.95 on glove and
fashion-mnist), with a Faiss OPQ16x8 (cosine: the angle to the decoded
vector, as the index's ADC) or PCA-256 + PQ16x8 (l2 over 256 dims) trained on
25,000 rows; the quantiles come from the very candidates they are applied
to, which flatters the lazy rerank.

  test/bench/lazy_rerank_sim.py glove-100-angular cos
  test/bench/lazy_rerank_sim.py fashion-mnist-784 l2
"""
import os
import sys

import faiss
import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../shared/data')


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:, 1:].view(dtype)


def candidates(name, metric, nq=500):
    d = os.path.join(DATA, name)
    xb = read_vecs(os.path.join(d, 'base.fvecs'), np.float32)
    xq = read_vecs(os.path.join(d, 'query.fvecs'), np.float32)[:nq]
    gt = read_vecs(os.path.join(d, 'gt_ip.ivecs' if metric == 'cos' else 'gt.ivecs'),
                   np.int32)[:nq, :10]
    if metric == 'cos':
        xb = xb / np.linalg.norm(xb, axis=1, keepdims=True)
        xq = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    dim = xb.shape[1]
    sample = xb[np.random.default_rng(0).choice(len(xb), min(25000, len(xb)), replace=False)]
    if metric == 'l2' and dim > 256:
        pre, dp = faiss.PCAMatrix(dim, 256), 256
    else:
        dp = (dim + 15) // 16 * 16
        pre = faiss.OPQMatrix(dim, 16, dp)
    pq = faiss.ProductQuantizer(dp, 16, 8)
    pre.train(sample)
    pq.train(pre.apply_py(sample))
    xh = pre.reverse_transform(pq.decode(pq.compute_codes(pre.apply_py(xb))))
    depth = 150 if metric == 'cos' else 40
    out = []
    for i in range(len(xq)):
        if metric == 'cos':
            adc = 1 - (xh @ xq[i]) / np.linalg.norm(xh, axis=1)
        else:
            adc = np.sqrt(((xh - xq[i]) ** 2).sum(1))
        top = np.argpartition(adc, depth)[:depth]
        top = top[np.argsort(adc[top])]
        if metric == 'cos':
            exact = 1 - xb[top] @ xq[i]
        else:
            exact = np.sqrt(((xb[top] - xq[i]) ** 2).sum(1))
        out.append((top, adc[top], exact))
    return out, gt, depth


def lazy(top, adc, exact, margin, k=10):
    """Rows scored until k are returned, and the rows returned."""
    returned, pool, n = [], [], 0
    while len(returned) < k:
        bound = adc[n] - margin if n < len(top) else np.inf
        pool.sort()
        while pool and len(returned) < k and pool[0][0] <= bound:
            returned.append(pool.pop(0)[1])
        if len(returned) >= k or n >= len(top):
            break
        pool.append((exact[n], top[n]))
        n += 1
    return n, returned


def main():
    name, metric = sys.argv[1], sys.argv[2]
    cands, gt, depth = candidates(name, metric)
    over = np.concatenate([a - e for _, a, e in cands])
    full = sum(len(set(t[np.argsort(e)][:10]) & set(gt[i])) for i, (t, _, e) in enumerate(cands))
    print('# %s (%s): %d queries, rerank %d; full rerank 10-recall@10 %.4f'
          % (name, metric, len(cands), depth, full / 10 / len(cands)))
    print('| margin (quantile of ADC - exact) | rows scored, mean | median | 10-recall@10 |')
    print('|---|---:|---:|---:|')
    for qt in (0.9, 0.99, 0.999, 1.0):
        margin = float(np.quantile(over, qt))
        scored, hits = [], 0
        for i, (t, a, e) in enumerate(cands):
            n, got = lazy(t, a, e, margin)
            scored.append(n)
            hits += len(set(got) & set(gt[i]))
        print('| %.3f (%.4g) | %.1f | %.0f | %.4f |'
              % (qt, margin, np.mean(scored), np.median(scored), hits / 10 / len(cands)))


if __name__ == '__main__':
    main()
