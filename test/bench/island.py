#!/usr/bin/python3
"""Clusters cut off the graph: ROWS rows of sift-photos-128 in which rows
0..499 are moved +1000 in every dimension and rows 9500..9999 -1000 (two
clusters far from the rest), indexed (pq compressor with 16 sub-quantizers
trained on the table, m 8, inline codes, one build thread), then INSERTS
more rows of the set one statement each.  After the build and after the
inserts it prints the index's unreachable nodes (quantumdb.index_info),
the rows with id < 500 that an index scan ordered by distance to row 5000
returns under LIMIT 5 (the filter keeps only the first cluster) against a
sequential scan's, under each iterative_scan order, and how many rows a
scan without LIMIT returns at rerank 0 (relaxed_order).  With --pgvector the same table
as vector(128) with pgvector's HNSW (m 8; hnsw.iterative_scan
relaxed_order, ef_search 1000) for comparison.  libpq's PG* variables name
the server.

  test/bench/island.py [--rows 10000] [--inserts 140] [--pgvector]
"""
import argparse
import os

from index import connect, copy_vectors, new_table, read_vecs

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
QUERY_ROW = 5000
LIMIT = 5


def literal(v, brackets):
    body = ",".join("%g" % f for f in v)
    return "[" + body + "]" if brackets else "{" + body + "}"


def filtered(cur, table, col, op, q):
    cur.execute("SELECT array_agg(id) FROM (SELECT id FROM %s WHERE id < 500 ORDER BY %s %s %%s LIMIT %d) s"
                % (table, col, op, LIMIT), (q,))
    return cur.fetchone()[0] or []


def probe(cur, tag, x, a):
    q = literal(x[QUERY_ROW], False)
    cur.execute("SELECT unreachable_nodes FROM quantumdb.index_info('isl_idx')")
    unreached = cur.fetchone()[0]
    cur.execute("SET enable_seqscan = on; SET enable_indexscan = off")
    exact = filtered(cur, "isl", "emb", "<~>", q)
    cur.execute("SET enable_seqscan = off; SET enable_indexscan = on")
    out = ["%s: quantumdb unreachable_nodes %d, exact %s" % (tag, unreached, exact)]
    for order in ("strict_order", "relaxed_order"):
        cur.execute("SET quantumdb.iterative_scan = %s", (order,))
        got = filtered(cur, "isl", "emb", "<~>", q)
        out.append("  %s: %s (%d of the exact %d)" % (order, got, len(set(got) & set(exact)), LIMIT))
    cur.execute("SET quantumdb.iterative_scan = relaxed_order; SET quantumdb.rerank = 0")
    cur.execute("SELECT count(*), (SELECT count(*) FROM isl) FROM (SELECT id FROM isl ORDER BY emb <~> %s LIMIT ALL) s",
                (q,))
    out.append("  rows a scan without LIMIT returns at rerank 0: %d of %d" % cur.fetchone())
    cur.execute("RESET quantumdb.iterative_scan; RESET quantumdb.rerank; RESET enable_seqscan; RESET enable_indexscan")
    if a.pgvector:
        pq = literal(x[QUERY_ROW], True)
        cur.execute("SET enable_seqscan = off; SET hnsw.iterative_scan = relaxed_order; SET hnsw.ef_search = 1000")
        got = filtered(cur, "isl_v", "v", "<->", pq)
        cur.execute("SET hnsw.max_scan_tuples = 1000000")
        cur.execute("SELECT count(*) FROM (SELECT id FROM isl_v ORDER BY v <-> %s LIMIT ALL) s", (pq,))
        n = cur.fetchone()[0]
        out.append("  pgvector: %s (%d of the exact %d); rows a scan without LIMIT returns (max_scan_tuples 1000000): %d"
                   % (got, len(set(got) & set(exact)), LIMIT, n))
        cur.execute("RESET enable_seqscan; RESET hnsw.iterative_scan; RESET hnsw.ef_search; RESET hnsw.max_scan_tuples")
    print("\n".join(out), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--inserts", type=int, default=140)
    ap.add_argument("--pgvector", action="store_true")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "sift-photos-128"))
    a = ap.parse_args()
    x = read_vecs(os.path.join(a.data, "base.fvecs"), count=a.rows + a.inserts).copy()
    x[:500] += 1000
    x[a.rows - 500:a.rows] -= 1000
    cur = connect().cursor()
    new_table(cur, "isl", "id int PRIMARY KEY, emb real[]", "WITH (autovacuum_enabled = off)")
    copy_vectors(cur, "isl", x, 0, a.rows)
    cur.execute("SELECT quantumdb.drop_compressor('isl_c') FROM quantumdb.compressors WHERE name = 'isl_c'")
    cur.execute("SELECT quantumdb.train('isl_c', 'isl', 'emb', kind => 'pq', subvectors => 16, "
                "kmeans_iters => 5, validation => 0)")
    cur.execute("SET max_parallel_maintenance_workers = 0")
    cur.execute("CREATE INDEX isl_idx ON isl USING quantumdb (emb) "
                "WITH (compressor = 'isl_c', m = 8, inline_codes = on, calibration_queries = 0)")
    if a.pgvector:
        cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
        new_table(cur, "isl_v", "id int PRIMARY KEY, v vector(%d)" % x.shape[1],
                  "WITH (autovacuum_enabled = off)")
        cur.execute("INSERT INTO isl_v SELECT id, emb::vector FROM isl")
        cur.execute("CREATE INDEX isl_v_idx ON isl_v USING hnsw (v vector_l2_ops) WITH (m = 8)")
    probe(cur, "after the build", x, a)
    for i in range(a.rows, a.rows + a.inserts):
        cur.execute("INSERT INTO isl VALUES (%s, %s)", (i, literal(x[i], False)))
        if a.pgvector:
            cur.execute("INSERT INTO isl_v VALUES (%s, %s)", (i, literal(x[i], True)))
    probe(cur, "after %d inserts" % a.inserts, x, a)


if __name__ == "__main__":
    main()
