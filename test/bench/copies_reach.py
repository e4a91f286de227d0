#!/usr/bin/python3
"""Copies of one vector and the graph's reach: 20,000 glove-100-angular
rows in which a SHARE of the rows (chosen with numpy's seed 1) are copies
of row 42; an opq compressor and an index (m 16, ef_construction 100, cosine)
on the first 15,000, then 2,000 more rows inserted one statement each.  After the
inserts and after a VACUUM it prints the index's unreachable nodes
(quantumdb.index_info: live nodes a level-0 walk from the entry misses)
and what a filtered query costs (WHERE id % 50 = 0 ORDER BY emb <=> q
LIMIT 10 over the set's first 200 queries: milliseconds a query, rows
returned, and the shared buffers the first query touched).  libpq's PG*
variables name the server; the table dp and compressor dp_c are made anew.

  test/bench/copies_reach.py [--share 0.15]
"""
import argparse
import os
import time

import numpy as np

from index import array_literal, connect, copy_vectors, new_table, read_vecs

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def probe(cur, tag, q):
    cur.execute("SELECT unreachable_nodes FROM quantumdb.index_info('dp_i')")
    unreached = cur.fetchone()[0]
    cur.execute("SET enable_seqscan = off")
    sql = "SELECT id FROM dp WHERE id %% 50 = 0 ORDER BY emb <=> %s::real[] LIMIT 10"
    t0 = time.monotonic()
    rows = 0
    for v in q:
        cur.execute(sql, (array_literal(v),))
        rows += len(cur.fetchall())
    ms = (time.monotonic() - t0) * 1000 / len(q)
    cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, (array_literal(q[0]),))
    plan = cur.fetchone()[0][0]["Plan"]
    cur.execute("RESET enable_seqscan")
    print("%s: unreachable nodes %d; filtered LIMIT 10: %.2f ms a query, %d rows, %d buffers (first query)"
          % (tag, unreached, ms, rows, plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--share", type=float, default=0.15)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "glove-100-angular"))
    a = ap.parse_args()
    x = read_vecs(os.path.join(a.data, "base.fvecs"), count=20000).copy()
    q = read_vecs(os.path.join(a.data, "query.fvecs"), count=200)
    x[np.random.default_rng(1).random(len(x)) < a.share] = x[42]
    cur = connect().cursor()
    new_table(cur, "dp", "id int, emb real[]", "WITH (autovacuum_enabled = off)")
    copy_vectors(cur, "dp", x, 0, 15000)
    cur.execute("SELECT quantumdb.drop_compressor('dp_c') FROM quantumdb.compressors WHERE name = 'dp_c'")
    cur.execute("SELECT quantumdb.train('dp_c', 'dp', 'emb', kind => 'opq', metric => 'cosine')")
    cur.execute("CREATE INDEX dp_i ON dp USING quantumdb (emb real_cosine_ops) "
                "WITH (compressor = 'dp_c', m = 16, ef_construction = 100)")
    for i in range(15000, 17000):
        cur.execute("INSERT INTO dp VALUES (%s, %s::real[])", (i, array_literal(x[i])))
    probe(cur, "share %.2f, after 2,000 inserts" % a.share, q)
    cur.execute("VACUUM dp")
    probe(cur, "share %.2f, after VACUUM" % a.share, q)


if __name__ == "__main__":
    main()
