#!/usr/bin/python3
"""VACUUM's repair after a mass delete against a rebuild: ROWS rows of
glove-100-angular (cosine; another set with --data and --metric) in table
vr, one opq compressor trained on them (vr_c), then for each M: CREATE
INDEX at m M (ef_construction EF), DELETE of every row whose id is not a
multiple of KEEP, VACUUM (vacuum_cost_delay 0), and 10-recall@10 of the
first QUERIES queries of the set against the exact top 10 of the rows left
at each ef_search:rerank pair; then REINDEX and the same recall.  One line
per M with the seconds of the build, the VACUUM and the REINDEX, the
unreachable nodes VACUUM left (quantumdb.index_info), and the recall after
each.  libpq's PG* variables name the server; the table and compressor are
made anew.

  test/bench/vacuum_repair.py [--rows 20000] [--m 16,48] [--ef 100]
                              [--keep 4] [--queries 200] [--pairs 40:0,40:40]
                              [--data DIR --metric cosine|l2]
"""
import argparse
import os

from index import connect, copy_vectors, new_table, read_vecs, seconds
from vacuum_churn import recall

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--m", default="16,48")
    ap.add_argument("--ef", type=int, default=100)
    ap.add_argument("--keep", type=int, default=4, help="keep the rows whose id is a multiple of this")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--pairs", default="40:0,40:40")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "glove-100-angular"))
    ap.add_argument("--metric", choices=("cosine", "l2"), default="cosine")
    a = ap.parse_args()
    x = read_vecs(os.path.join(a.data, "base.fvecs"), count=a.rows)
    q = read_vecs(os.path.join(a.data, "query.fvecs"), count=a.queries)
    cur = connect().cursor()
    cur.execute("SET vacuum_cost_delay = 0")
    for m in (int(s) for s in a.m.split(",")):
        new_table(cur, "vr", "id int, emb real[]", "WITH (autovacuum_enabled = off)")
        copy_vectors(cur, "vr", x)
        cur.execute("SELECT quantumdb.drop_compressor('vr_c') FROM quantumdb.compressors WHERE name = 'vr_c'")
        cur.execute("SELECT quantumdb.train('vr_c', 'vr', 'emb', kind => 'opq', metric => %s)", (a.metric,))
        build = seconds(cur, "CREATE INDEX vr_i ON vr USING quantumdb (emb real_%s_ops) "
                      "WITH (compressor = 'vr_c', m = %d, ef_construction = %d)" % (a.metric, m, a.ef))
        cur.execute("DELETE FROM vr WHERE id %% %d <> 0" % a.keep)
        vac = seconds(cur, "VACUUM vr")
        cur.execute("SELECT unreachable_nodes FROM quantumdb.index_info('vr_i')")
        unreached = cur.fetchone()[0]
        after_vacuum = recall(cur, q, a.pairs, "vr", a.metric)
        reindex = seconds(cur, "REINDEX INDEX vr_i")
        fresh = recall(cur, q, a.pairs, "vr", a.metric)
        print("m %d: build %.1f s, VACUUM %.1f s (unreachable %d), REINDEX %.1f s; 10-recall@10 %s"
              % (m, build, vac, unreached, reindex,
                 ", ".join("%s %.3f / %.3f" % (p, after_vacuum[p], fresh[p]) for p in a.pairs.split(","))),
              flush=True)
    print("(recall: after VACUUM / after REINDEX, at ef_search:rerank)")


if __name__ == "__main__":
    main()
