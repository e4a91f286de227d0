#!/usr/bin/env python3
"""quantumdb.target_recall against held-out queries: for each target, the
pair the index's calibration chose (measured on the table's own rows), the
10-recall@10 it gives on the data set's query vectors (not in the table)
against their exact ground truth, and its QPS beside the cheapest pair of
the calibration grid that reached the target on those queries (what tuning
by hand on the real queries would pick).

Needs a table loaded by index.py (`--build-only`, table items, column emb,
quantumdb index items_emb_qdb) in the database of the libpq environment
(PGHOST, PGPORT, PGUSER, PGDATABASE).  One client; the queries of each
setting run twice and the second run is timed.

  test/bench/target_recall.py --set fashion-mnist-784 [--calibrate] \\
      [--targets 0.8,0.9,0.95,0.98,0.99] [--queries 1000] [--out DIR]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from index import METRICS, K, connect, read_vecs, recall, exact_truth  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(cur, literals):
    """Ids of each query's 10 nearest through the index, and seconds for all."""
    sql = "EXECUTE tr_knn(%s)"
    for lit in literals:             # untimed: pages and caches
        cur.execute(sql, (lit,))
        cur.fetchall()
    ids = []
    t0 = time.perf_counter()
    for lit in literals:
        cur.execute(sql, (lit,))
        ids.append([r[0] for r in cur.fetchall()])
    return ids, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="fashion-mnist-784")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--metric", choices=sorted(METRICS),
                    help="default: cosine for *-angular sets, else l2")
    ap.add_argument("--index", default="items_emb_qdb")
    ap.add_argument("--table", default="items")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--targets", default="0.8,0.9,0.95,0.98,0.99")
    ap.add_argument("--calibrate", action="store_true",
                    help="run quantumdb.calibrate first (else the build's calibration)")
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "bench", "out"))
    args = ap.parse_args()
    metric = args.metric or ("cosine" if "angular" in args.set else "l2")
    _, op, _, _, gt_name = METRICS[metric]

    conn = connect()
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM %s" % args.table)
    rows = cur.fetchone()[0]
    d = os.path.join(args.data, args.set)
    query = read_vecs(os.path.join(d, "query.fvecs"), count=args.queries)
    base_rows = os.path.getsize(os.path.join(d, "base.fvecs")) // (4 * (query.shape[1] + 1))
    if rows == base_rows and os.path.exists(os.path.join(d, gt_name)):
        truth = read_vecs(os.path.join(d, gt_name), dtype=np.int32, count=args.queries)
    else:
        truth = exact_truth(read_vecs(os.path.join(d, "base.fvecs"), count=rows), query, metric)
    literals = ["{" + ",".join("%.9g" % v for v in q) + "}" for q in query]
    cur.execute("PREPARE tr_knn(real[]) AS SELECT id FROM %s ORDER BY emb %s $1 LIMIT %d"
                % (args.table, op, K))

    if args.calibrate:
        t0 = time.perf_counter()
        cur.execute("SELECT count(*) FROM quantumdb.calibrate(%s)", (args.index,))
        print("calibrate: %.1f s" % (time.perf_counter() - t0), file=sys.stderr)
    cur.execute("SELECT ef_search, rerank, recall, ms_per_query, queries, rows "
                "FROM quantumdb.calibration(%s) ORDER BY ef_search, rerank", (args.index,))
    grid = cur.fetchall()
    if not grid:
        sys.exit("index %s has no calibration (run with --calibrate)" % args.index)

    # every calibrated pair on the held-out queries
    held = {}
    for ef, rr, cal_r, _, _, _ in grid:
        cur.execute("SET quantumdb.ef_search = %d; SET quantumdb.rerank = %d" % (ef, rr))
        ids, secs = run(cur, literals)
        held[(ef, rr)] = (recall(ids, truth), len(literals) / secs, cal_r)
        print("  ef_search %4d rerank %4d: calibrated %.4f, held-out %.4f, %.0f QPS"
              % (ef, rr, cal_r, held[(ef, rr)][0], held[(ef, rr)][1]), file=sys.stderr)
    cur.execute("RESET quantumdb.ef_search; RESET quantumdb.rerank")

    lines = ["# test/bench/target_recall.py --set %s%s (%d rows, %d held-out queries, "
             "calibration of %d table rows)" % (args.set, " --calibrate" if args.calibrate else "",
                                                rows, len(literals), grid[0][4]),
             "",
             "| target | chosen ef_search / rerank | recall on table rows (calibration) "
             "| recall on held-out queries | below target by | QPS under the target "
             "| QPS of that pair in the grid pass | cheapest pair reaching it on held-out "
             "| its QPS (grid pass) | QPS ratio chosen / cheapest (grid pass) |",
             "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for target in [float(t) for t in args.targets.split(",")]:
        cur.execute("SET quantumdb.target_recall = %s", (target,))
        cur.execute("SELECT ef_search, rerank, chosen_by FROM quantumdb.scan_settings(%s)",
                    (args.index,))
        ef, rr, by = cur.fetchone()
        ids, secs = run(cur, literals)
        got, qps = recall(ids, truth), len(literals) / secs
        ok = [(v[1], k) for k, v in held.items() if v[0] >= target]
        if ok:
            best_qps, best = max(ok)
            cheapest = "%d / %d" % best
            # both from the grid's one pass: the same pair gives exactly 1
            ratio = "%.2f" % (held[(ef, rr)][1] / best_qps)
            best_qps = "%.0f" % best_qps
        else:
            cheapest, best_qps, ratio = "none in the grid", "-", "-"
        lines.append("| %.2f | %d / %d (%s) | %.4f | %.4f | %s | %.0f | %.0f | %s | %s | %s |"
                     % (target, ef, rr, by, held[(ef, rr)][2], got,
                        "%.4f" % (target - got) if got < target else "-", qps,
                        held[(ef, rr)][1], cheapest, best_qps, ratio))
    cur.execute("RESET quantumdb.target_recall")
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "target-recall-%s.md" % args.set), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
