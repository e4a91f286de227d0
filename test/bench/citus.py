#!/usr/bin/env python3
"""QuantumDB on a Citus distributed table against the same index on one node.

Run by test/bench/citus.sh, which starts a Citus coordinator and two workers
(one host, unix sockets) and sets PGHOST/PGPORT to the coordinator.  Loads one
set from ../shared/data twice on the coordinator: `plain`, a local table, and
`dist`, a distributed table of --shards shards on the workers; trains one
compressor (quantumdb.train on `plain`, which reaches the workers by itself),
builds the index on both with it (m, ef_construction as given), then runs the
set's queries (ORDER BY emb <=> q LIMIT 10, one client) at each
ef_search:rerank pair on both: 10-recall@10 against the set's exact ground
truth and QPS.  The settings reach the shards as SET LOCAL inside one
transaction per run with citus.propagate_set_commands = 'local' (README
"Citus").  Writes out/citus-SET.md and .json.
"""
import argparse
import io
import json
import os
import sys
import time

import numpy as np
import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from index import K, log, read_vecs, recall  # noqa: E402


def literal(v):
    return "{" + ",".join(repr(float(x)) for x in v) + "}"


def load(cur, table, base):
    buf = io.StringIO()
    for i, v in enumerate(base):
        buf.write("%d\t%s\n" % (i, literal(v)))
    buf.seek(0)
    cur.copy_expert("COPY %s (id, emb) FROM STDIN" % table, buf)


def timed(cur, sql):
    t = time.time()
    cur.execute(sql)
    return time.time() - t


def run(conn, table, queries, ef, rerank):
    """Every query once in one transaction; ids per query and seconds."""
    cur = conn.cursor()
    cur.execute("BEGIN")
    cur.execute("SET LOCAL enable_seqscan = off")
    cur.execute("SET LOCAL quantumdb.ef_search = %d" % ef)
    cur.execute("SET LOCAL quantumdb.rerank = %d" % rerank)
    sql = "SELECT id FROM %s ORDER BY emb <=> %%s::real[] LIMIT %d" % (table, K)
    ids = []
    t = time.time()
    for q in queries:
        cur.execute(sql, (q,))
        ids.append([r[0] for r in cur.fetchall()])
    seconds = time.time() - t
    cur.execute("COMMIT")
    return ids, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../../shared/data"))
    ap.add_argument("--set", default="glove-100-angular")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--pairs", default="10:20,20:40,40:40,40:100,100:200")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    a = ap.parse_args()

    d = os.path.join(a.data, a.set)
    base = read_vecs(os.path.join(d, "base.fvecs"))
    queries = [literal(q) for q in read_vecs(os.path.join(d, "query.fvecs"), count=a.queries)]
    truth = read_vecs(os.path.join(d, "gt_ip.ivecs"), dtype=np.int32, count=a.queries)
    pairs = [tuple(int(x) for x in p.split(":")) for p in a.pairs.split(",")]

    conn = psycopg2.connect("")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SET client_min_messages = warning")
    cur.execute("SET citus.propagate_set_commands = 'local'")
    cur.execute("SELECT count(*) FROM pg_dist_node WHERE groupid <> 0")
    workers = cur.fetchone()[0]
    cur.execute("DROP TABLE IF EXISTS plain, dist")
    cur.execute("SELECT quantumdb.drop_compressor('bench_citus', true)")
    cur.execute("CREATE TABLE plain (id int, emb real[])")
    cur.execute("CREATE TABLE dist (id int, emb real[])")
    cur.execute("SELECT create_distributed_table('dist', 'id', shard_count => %d)" % a.shards)
    log("loading %d rows twice" % len(base))
    load(cur, "plain", base)
    load(cur, "dist", base)
    cur.execute("VACUUM ANALYZE plain")
    cur.execute("VACUUM ANALYZE dist")

    log("training")
    train_s = timed(cur, "SELECT quantumdb.train('bench_citus', 'plain', 'emb', metric => 'cosine')")
    opts = "compressor = 'bench_citus', m = %d, ef_construction = %d" % (a.m, a.ef_construction)
    log("building the index on plain")
    build_plain = timed(cur, "CREATE INDEX plain_q ON plain USING quantumdb (emb real_cosine_ops) WITH (%s)" % opts)
    log("building the index on dist")
    build_dist = timed(cur, "CREATE INDEX dist_q ON dist USING quantumdb (emb real_cosine_ops) WITH (%s)" % opts)
    cur.execute("SELECT sum((info->>'nodes')::bigint), sum(cardinality(problems)) "
                "FROM quantumdb.shard_index_info('dist_q')")
    nodes, problems = (int(x) for x in cur.fetchone())

    rows = []
    for ef, rerank in pairs:
        for table in ("plain", "dist"):
            run(conn, table, queries[:50], ef, rerank)  # warm up
            ids, seconds = run(conn, table, queries, ef, rerank)
            r = recall(ids, truth)
            rows.append({"table": table, "ef_search": ef, "rerank": rerank,
                         "recall": r, "qps": len(queries) / seconds})
            log("%s %d:%d recall %.3f, %.0f QPS" % (table, ef, rerank, r, len(queries) / seconds))

    os.makedirs(a.out, exist_ok=True)
    report = {"set": a.set, "rows": len(base), "queries": len(queries), "shards": a.shards,
              "workers": workers, "m": a.m, "ef_construction": a.ef_construction,
              "train_seconds": train_s, "build_plain_seconds": build_plain,
              "build_dist_seconds": build_dist, "shard_index_nodes": nodes,
              "shard_index_problems": problems, "runs": rows}
    stem = os.path.join(a.out, "citus-%s" % a.set)
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write("# %s: %d rows, %d queries; one node vs %d shards on %d workers (one host)\n\n"
                % (a.set, len(base), len(queries), a.shards, workers))
        f.write("quantumdb.train %.1f s; CREATE INDEX (m %d, ef_construction %d): one node %.1f s, "
                "distributed %.1f s (%d nodes in the shard indexes, %d problems by verify)\n\n"
                % (train_s, a.m, a.ef_construction, build_plain, build_dist, nodes, problems))
        f.write("| ef_search:rerank | one node: recall | one node: QPS | distributed: recall "
                "| distributed: QPS | QPS distributed / one node |\n|---|---:|---:|---:|---:|---:|\n")
        for ef, rerank in pairs:
            p = next(r for r in rows if r["table"] == "plain" and r["ef_search"] == ef and r["rerank"] == rerank)
            q = next(r for r in rows if r["table"] == "dist" and r["ef_search"] == ef and r["rerank"] == rerank)
            f.write("| %d:%d | %.3f | %.0f | %.3f | %.0f | %.2f |\n"
                    % (ef, rerank, p["recall"], p["qps"], q["recall"], q["qps"], q["qps"] / p["qps"]))
        for table, label in (("plain", "one node"), ("dist", "distributed")):
            ok = [r for r in rows if r["table"] == table and r["recall"] >= 0.95]
            if ok:
                b = max(ok, key=lambda r: r["qps"])
                f.write("\nfastest %s setting at 10-recall@10 >= 0.95: %d:%d, recall %.3f, %.0f QPS"
                        % (label, b["ef_search"], b["rerank"], b["recall"], b["qps"]))
            else:
                f.write("\nno %s setting reached 10-recall@10 0.95" % label)
        f.write("\n")
    log("wrote %s.md" % stem)


if __name__ == "__main__":
    main()
