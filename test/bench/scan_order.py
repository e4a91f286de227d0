#!/usr/bin/env python3
"""quantumdb.iterative_scan side by side: for each ef_search:rerank pair and
each mode (strict_order, relaxed_order, off), the 10-recall@10, QPS and
order of plain `ORDER BY emb <op> q LIMIT 10` queries and of filtered ones
(`WHERE id % F = 0`, which make a scan walk again), against the exact
answers (the set's ground truth; for the filter a numpy brute force over
the rows it keeps).  "inversions" counts places, over all queries, where a
returned distance is smaller than the one before it.  Shared buffers per
query and the server's median execution time come from EXPLAIN (ANALYZE,
BUFFERS) of the first --explain-queries queries.

Needs a table loaded by index.py (`--build-only`, table items, column emb,
quantumdb index on it) in the database of the libpq environment (PGHOST,
PGPORT, PGUSER, PGDATABASE).  One client; each setting runs its queries
twice and times the second run.

  test/bench/scan_order.py --set glove-100-angular [--pairs 40:100,100:200] \\
      [--filter 10] [--queries 500] [--out DIR]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from index import METRICS, K, connect, read_vecs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODES = ("strict_order", "relaxed_order", "off")


def filtered_truth(base, query, metric, every):
    """Ids of each query's exact K nearest among rows with id % every = 0."""
    ids = np.arange(0, len(base), every)
    b = base[ids]
    if metric == "l2":
        score = (b ** 2).sum(1)[None, :] - 2 * query @ b.T
    elif metric == "cosine":
        bn = b / np.linalg.norm(b, axis=1, keepdims=True)
        score = -(query @ bn.T)
    else:
        score = -(query @ b.T)
    return ids[np.argsort(score, axis=1)[:, :K]]


def load_set(args):
    """(metric, operator, ground-truth path, base rows, the first --queries
    queries) of --set under --data (--metric: by default cosine for
    *-angular sets, else l2)."""
    metric = args.metric or ("cosine" if "angular" in args.set else "l2")
    _, op, _, _, gt_name = METRICS[metric]
    folder = os.path.join(args.data, args.set)
    base = read_vecs(os.path.join(folder, "base.fvecs"))
    query = read_vecs(os.path.join(folder, "query.fvecs"), count=args.queries)
    return metric, op, os.path.join(folder, gt_name), base, query


def run(cur, sql, literals, truth):
    """(10-recall@10, QPS, inversions) of sql over the queries, timed second run."""
    for lit in literals:
        cur.execute(sql, (lit,))
        cur.fetchall()
    hits = inversions = 0
    t0 = time.perf_counter()
    for i, lit in enumerate(literals):
        cur.execute(sql, (lit,))
        rows = cur.fetchall()
        hits += len({r[0] for r in rows} & set(truth[i].tolist()))
        inversions += sum(1 for a, b in zip(rows, rows[1:]) if b[1] < a[1])
    secs = time.perf_counter() - t0
    return hits / (K * len(literals)), len(literals) / secs, inversions


def explain(cur, sql, literals):
    """Shared buffers (hit + read) per query and the median server time (ms,
    EXPLAIN ANALYZE's Execution Time without per-node timing) of sql."""
    bufs, ms = 0, []
    for lit in literals:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) " + sql, (lit,))
        e = cur.fetchone()[0][0]
        bufs += e["Plan"].get("Shared Hit Blocks", 0) + e["Plan"].get("Shared Read Blocks", 0)
        ms.append(e.get("Execution Time", 0.0))
    return bufs / max(len(literals), 1), float(np.median(ms)) if ms else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="glove-100-angular")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--metric", choices=sorted(METRICS),
                    help="default: cosine for *-angular sets, else l2")
    ap.add_argument("--table", default="items")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--pairs", default="40:100,100:200", help="ef_search:rerank list")
    ap.add_argument("--filter", type=int, default=10, help="keep rows with id %% F = 0")
    ap.add_argument("--explain-queries", type=int, default=50,
                    help="queries run under EXPLAIN (ANALYZE, BUFFERS) per setting")
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "bench", "out"))
    args = ap.parse_args()
    metric, op, gt_path, base, query = load_set(args)
    conn = connect()
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM " + args.table)
    if cur.fetchone()[0] != len(base):
        sys.exit("table %s must hold every row of %s" % (args.table, args.set))
    truth = read_vecs(gt_path, dtype=np.int32)[:len(query), :K]
    q = query / np.linalg.norm(query, axis=1, keepdims=True) if metric == "cosine" else query
    ftruth = filtered_truth(base, q, metric, args.filter)
    literals = ["{" + ",".join("%.9g" % x for x in v) + "}" for v in query]
    cur.execute("SET enable_seqscan = off")
    plain = ("SELECT id, emb %s %%s::real[] AS d FROM %s ORDER BY d LIMIT %d"
             % (op, args.table, K))
    filtered = ("SELECT id, emb %s %%s::real[] AS d FROM %s WHERE id %%%% %d = 0 "
                "ORDER BY d LIMIT %d" % (op, args.table, args.filter, K))
    lines = ["# quantumdb.iterative_scan on %s (%d rows, %d queries, %s)"
             % (args.set, len(base), len(query), metric), "",
             "`test/bench/scan_order.py --set %s --pairs %s --filter %d --queries %d`"
             % (args.set, args.pairs, args.filter, len(query)), "",
             "Buffers: shared buffers (hit + read) per query, and server ms the median "
             "Execution Time of EXPLAIN (ANALYZE, BUFFERS, TIMING OFF), over the first %d "
             "queries." % min(args.explain_queries, len(query)), "",
             "| ef_search:rerank | mode | plain recall | plain QPS | plain inversions "
             "| plain buffers | filtered (1/%d) recall | filtered QPS | filtered inversions "
             "| filtered buffers | filtered server ms |" % args.filter,
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for pair in args.pairs.split(","):
        ef, rerank = (int(x) for x in pair.split(":"))
        for mode in MODES:
            cur.execute("SET quantumdb.ef_search = %d; SET quantumdb.rerank = %d; "
                        "SET quantumdb.iterative_scan = %s" % (ef, rerank, mode))
            p = run(cur, plain, literals, truth)
            f = run(cur, filtered, literals, ftruth)
            pb = explain(cur, plain, literals[:args.explain_queries])
            fb = explain(cur, filtered, literals[:args.explain_queries])
            line = ("| %d:%d | %s | %.4f | %.0f | %d | %.1f | %.4f | %.0f | %d | %.1f | %.3f |"
                    % (ef, rerank, mode, p[0], p[1], p[2], pb[0], f[0], f[1], f[2], fb[0], fb[1]))
            print(line, flush=True)
            lines.append(line)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "scan-order-%s.md" % args.set)
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
