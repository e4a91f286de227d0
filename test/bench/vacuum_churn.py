#!/usr/bin/python3
"""Churn, then VACUUM: how many live nodes VACUUM's reachability repair
leaves unreached (quantumdb.index_info's unreachable_nodes) after a table
of glove-100-angular rows (cosine) takes rounds of inserts (a share of them
copies of one vector), deletes of random rows and VACUUMs cut short by a
statement_timeout, then two whole VACUUMs.  The table g and compressor gc
are made again in the database the usual PG* environment variables name
(the server needs quantumdb installed).  One line: seed, (nodes, deleted
nodes, unreachable nodes).  Session 57 ran it on the system's server and on
a copy of it, old and new repair (test/bench/RESULTS.md, "VACUUM's
reachability repair after churn").

With --recall, also the graph's quality after the churn: 10-recall@10 of
the set's first --queries queries against the exact top 10 of the rows
left (cosine, computed here), at each --pairs ef_search:rerank, then the
same after a REINDEX (a fresh build of the same rows): a second line per
pair, churned and fresh.

  test/bench/vacuum_churn.py [--seed S] [--rounds N] [--rows N] [--copies F]
                             [--recall] [--queries N] [--pairs EF:RR,...]
"""
import argparse
import os
import random

import numpy as np
import psycopg2

from index import array_literal

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--rows", type=int, default=3000, help="rows before the index is built")
    ap.add_argument("--copies", type=float, default=0.15,
                    help="share of the churn's inserts that copy one vector (the first rows: 0.1)")
    ap.add_argument("--recall", action="store_true",
                    help="measure 10-recall@10 after the churn and after a REINDEX")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--pairs", default="40:0,40:40,100:100")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "glove-100-angular"))
    a = ap.parse_args()
    rng = random.Random(a.seed)
    raw = np.fromfile(os.path.join(a.data, "base.fvecs"), dtype=np.int32)
    x = raw.reshape(-1, raw[0] + 1)[:, 1:].view(np.float32)[:20000]

    c = psycopg2.connect("")
    c.autocommit = True
    cur = c.cursor()
    nxt = [0]

    def insert(n, share):
        rows = []
        for _ in range(n):
            rows.append(array_literal(x[42]) if rng.random() < share else array_literal(x[nxt[0] % len(x)]))
            nxt[0] += 1
        cur.execute("INSERT INTO g (emb) SELECT unnest(%s::text[])::real[]", (rows,))

    cur.execute("CREATE EXTENSION IF NOT EXISTS quantumdb")
    cur.execute("DROP TABLE IF EXISTS g")
    cur.execute("CREATE TABLE g (id serial, emb real[])")
    insert(a.rows, 0.1)
    cur.execute("SELECT quantumdb.drop_compressor('gc') FROM quantumdb.compressors WHERE name = 'gc'")
    cur.execute("SELECT compressor FROM quantumdb.train('gc', 'g', 'emb', metric => 'cosine')")
    cur.execute("CREATE INDEX gi ON g USING quantumdb (emb real_cosine_ops) "
                "WITH (compressor = 'gc', m = 16, ef_construction = 101, inline_codes = on)")
    for it in range(a.rounds):
        insert(rng.randint(50, 150), a.copies)
        cur.execute("DELETE FROM g WHERE id IN (SELECT id FROM g ORDER BY random() LIMIT %s)",
                    (rng.randint(50, 160),))
        if it % 4 == 3:
            cur.execute("SET statement_timeout = %s", (rng.randint(20, 300),))
            try:
                cur.execute("VACUUM g")
            except psycopg2.Error:
                pass
            cur.execute("SET statement_timeout = 0")
    cur.execute("VACUUM g")
    cur.execute("VACUUM g")
    cur.execute("SELECT nodes, deleted_nodes, unreachable_nodes FROM quantumdb.index_info('gi')")
    print("seed", a.seed, cur.fetchone(), flush=True)
    if a.recall:
        q = np.fromfile(os.path.join(a.data, "query.fvecs"), dtype=np.int32)
        q = q.reshape(-1, q[0] + 1)[:, 1:].view(np.float32)[:a.queries]
        churned = recall(cur, q, a.pairs)
        cur.execute("REINDEX INDEX gi")
        fresh = recall(cur, q, a.pairs)
        for pair in a.pairs.split(","):
            print("ef_search:rerank %s  10-recall@10 churned %.4f  fresh %.4f"
                  % (pair, churned[pair], fresh[pair]), flush=True)


def recall(cur, q, pairs, table="g", metric="cosine"):
    """10-recall@10 of the index on table at each pair against the exact top 10 (cosine or l2)."""
    cur.execute("SELECT id, emb FROM %s" % table)
    got = cur.fetchall()
    ids = np.array([r[0] for r in got])
    x = np.array([r[1] for r in got], dtype=np.float32)
    if metric == "cosine":
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        truth = [set(ids[np.argsort(-(x @ v), kind="stable")[:10]].tolist()) for v in qn]
    else:
        xx = (x.astype(np.float64) ** 2).sum(axis=1)
        truth = [set(ids[np.argsort(xx - 2 * (x @ v), kind="stable")[:10]].tolist()) for v in q]
    op = "<=>" if metric == "cosine" else "<~>"
    out = {}
    for pair in pairs.split(","):
        ef, rr = pair.split(":")
        cur.execute("SET enable_seqscan = off; SET quantumdb.ef_search = %s; SET quantumdb.rerank = %s"
                    % (int(ef), int(rr)))
        hit = 0
        for v, t in zip(q, truth):
            cur.execute("SELECT id FROM %s ORDER BY emb %s %%s::real[] LIMIT 10" % (table, op), (array_literal(v),))
            hit += len(t & {r[0] for r in cur.fetchall()})
        out[pair] = hit / (10.0 * len(q))
    cur.execute("RESET enable_seqscan; RESET quantumdb.ef_search; RESET quantumdb.rerank")
    return out


if __name__ == "__main__":
    main()
