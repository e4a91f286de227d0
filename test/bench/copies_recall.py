#!/usr/bin/python3
"""Copies of one vector and what queries elsewhere get: the first ROWS rows
of a set (l2), every EVERY-th of them set to one vector (the rows' mean,
or row COPY), an index built on them with the defaults (it trains its own
compressor), then the set's first QUERIES queries at the defaults.  A
query is wrong when the index's nearest row is farther than the exact 10th
(distances from numpy on the same rows); recall counts the index's rows
no farther than the exact 10th, so copies at one distance tie fairly.
libpq's PG* variables name the server; the table cr is made anew.

  test/bench/copies_recall.py [--set sift-photos-128] [--rows 3000]
                              [--every 7] [--copy mean|N] [--queries 200]
                              [--base-queries OFFSET] [--copies-last]
"""
import argparse
import io
import os

import numpy as np

from index import array_literal, connect, copy_vectors, new_table, read_vecs

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", default="sift-photos-128")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--every", type=int, default=7)
    ap.add_argument("--copy", default="mean", help="mean, or the number of the row copied")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--copies-last", action="store_true",
                    help="the copies come after the other rows in the table (as an UPDATE leaves them)")
    ap.add_argument("--base-queries", type=int, metavar="OFFSET",
                    help="the queries are base rows from OFFSET on, not the set's queries")
    a = ap.parse_args()

    x = read_vecs(os.path.join(a.data, a.set, "base.fvecs"), count=a.rows)
    if a.base_queries is None:
        q = read_vecs(os.path.join(a.data, a.set, "query.fvecs"), count=a.queries)
    else:
        q = read_vecs(os.path.join(a.data, a.set, "base.fvecs"),
                      count=a.base_queries + a.queries)[a.base_queries:]
    v = x.mean(axis=0) if a.copy == "mean" else x[int(a.copy)].copy()
    x[::a.every] = v
    ncopies = len(x[::a.every])

    conn = connect()
    cur = conn.cursor()
    cur.execute("SET client_min_messages = warning")
    cur.execute("SET maintenance_work_mem = '256MB'")
    new_table(cur, "cr", "id int, emb real[]")
    if a.copies_last:
        keep = np.arange(len(x)) % a.every != 0
        cur.copy_expert("COPY cr FROM STDIN", io.StringIO("".join(
            "%d\t%s\n" % (i, array_literal(x[i])) for i in list(np.flatnonzero(keep)) +
            list(np.flatnonzero(~keep)))))
    else:
        copy_vectors(cur, "cr", x)
    cur.execute("CREATE INDEX cr_i ON cr USING quantumdb (emb real_l2_ops)")
    cur.execute("SET enable_seqscan = off")

    xd = x.astype(np.float64)
    wrong = 0
    found = 0
    for qv in q:
        exact = np.sqrt(((xd - qv.astype(np.float64)) ** 2).sum(axis=1))
        tenth = np.sort(exact)[9]
        cur.execute("SELECT id FROM cr ORDER BY emb <~> %s::real[] LIMIT 10", (array_literal(qv),))
        d = exact[[r[0] for r in cur.fetchall()]]
        wrong += d.min() > tenth * (1 + 1e-5)
        found += int((d <= tenth * (1 + 1e-5)).sum())
    cur.execute("SELECT unreachable_nodes FROM quantumdb.index_info('cr_i')")
    print("%s, %d rows, %d copies of %s%s: %d of %d queries wrong, recall %.3f, %d nodes unreachable"
          % (a.set, a.rows, ncopies, "the mean" if a.copy == "mean" else "row " + a.copy,
             " (last)" if a.copies_last else "",
             wrong, len(q), found / (10.0 * len(q)), cur.fetchone()[0]))
    cur.execute("DROP TABLE cr")


if __name__ == "__main__":
    main()
