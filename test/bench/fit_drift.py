#!/usr/bin/python3
"""Rows that move away from those a compressor was trained on, the table's
size the same: does the index notice, and what does it give?

Two tables of the same rows in the database the usual PG* environment
variables name (quantumdb installed; autovacuum off on them): fd_on, its
index built WITH (train_after_rows = 1000), and fd_off, WITH
(train_after_rows = 0), which no worker ever trains again (the behaviour
before session 64, the reference).  Each round deletes --frac of the rows
at random and inserts as many new ones, then VACUUMs each table twice (the
first VACUUM starts the calibration worker, which measures the
compressor's fit; the second starts the train worker when the fit went
stale), waiting for the workers between.  After each round: 10-recall@10 of
the set's first --queries queries (moved as the rows were) against the
exact top 10 of the rows left, at the defaults and at rerank 0, each
table, and whether fd_on's compressor changed.

  --set sift-photos-128 --move 0.4   new rows are later base rows moved by
                                     round x 0.4 of each dimension's standard
                                     deviation (l2; queries moved alike)
  --set glove-100-angular --move 0   new rows are later base rows: the file
                                     is in word-frequency order, so rarer
                                     words (cosine)

With --ratios instead: no index; a compressor trained (quantumdb.train) on
the first --rows rows, then the mean squared distance of rows to the
reconstructions of their codes (quantumdb.encode / decode; rows of unit
length under cosine), for 500 of its training rows and 500 rows from
further in the file (and moved rows with --move), as ratios to the first:
the measure calibrate_worker.c compares with the build's.
"""
import argparse
import io
import os
import time

import numpy as np
from index import K, array_literal, connect, copy_vectors, exact_truth, read_vecs

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def fit_of(cur, name, x, cosine):
    """Mean squared distance of rows x to their codes' reconstructions."""
    total = 0.0
    for v in x:
        cur.execute("SELECT quantumdb.decode(%s, quantumdb.encode(%s, %s::real[]))",
                    (name, name, array_literal(v)))
        xh = np.array(cur.fetchone()[0], dtype=np.float64)
        u = v.astype(np.float64)
        if cosine:
            u = u / np.linalg.norm(u)
        total += float(((u - xh) ** 2).sum())
    return total / len(x)


def ratios(a, base, cosine, std):
    conn = connect()
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION IF NOT EXISTS quantumdb")
    cur.execute("DROP TABLE IF EXISTS fd_train")
    cur.execute("CREATE TABLE fd_train (id int, v real[])")
    copy_vectors(cur, "fd_train", base, 0, a.rows)
    cur.execute("SELECT count(*) FROM quantumdb.compressors WHERE name = 'fd_c'")
    if cur.fetchone()[0]:
        cur.execute("SELECT quantumdb.drop_compressor('fd_c')")
    cur.execute("SELECT quantumdb.train('fd_c', 'fd_train', 'v', metric => %s)",
                ("cosine" if cosine else "l2",))
    f0 = fit_of(cur, "fd_c", base[:500], cosine)
    print("%s, compressor of the first %d rows: training rows' fit %.4g" % (a.set, a.rows, f0))
    for s in (a.rows, 2 * a.rows, 4 * a.rows, 6 * a.rows):
        if s + 500 <= len(base):
            print("  rows %d to %d: %.3f" % (s, s + 500, fit_of(cur, "fd_c", base[s:s + 500], cosine) / f0))
    if a.move > 0:
        for r in range(1, 4):
            x = base[a.rows:a.rows + 500] + r * a.move * std
            print("  rows %d to %d moved by %.1f std: %.3f"
                  % (a.rows, a.rows + 500, r * a.move, fit_of(cur, "fd_c", x, cosine) / f0))
    cur.execute("SELECT quantumdb.drop_compressor('fd_c')")
    cur.execute("DROP TABLE fd_train")


def churn(a, base, queries0, cosine, std):
    conn = connect()
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION IF NOT EXISTS quantumdb")
    op, opclass = ("<=>", "real_cosine_ops") if cosine else ("<~>", "real_l2_ops")
    rows = {i: base[i] for i in range(a.rows)}
    for t, after in (("fd_on", 1000), ("fd_off", 0)):
        cur.execute("DROP TABLE IF EXISTS %s" % t)
        cur.execute("CREATE TABLE %s (id int PRIMARY KEY, v real[]) WITH (autovacuum_enabled = off)" % t)
        copy_vectors(cur, t, base, 0, a.rows)
        cur.execute("CREATE INDEX %s_idx ON %s USING quantumdb (v %s) WITH (train_after_rows = %d)"
                    % (t, t, opclass, after))
    rng = np.random.default_rng(a.seed)
    nextrow = a.rows

    def checksum():
        cur.execute("SELECT compressor_checksum FROM quantumdb.index_info('fd_on_idx')")
        return cur.fetchone()[0]

    def measure(rnd, moved):
        ids = np.array(sorted(rows))
        mat = np.stack([rows[i] for i in ids])
        q = queries0[:a.queries] + moved
        truth = ids[exact_truth(mat, q, "cosine" if cosine else "l2")]
        out = []
        for t in ("fd_on", "fd_off"):
            for rerank in (None, 0):
                cur.execute("RESET quantumdb.rerank" if rerank is None else "SET quantumdb.rerank = 0")
                hits = 0
                for j, v in enumerate(q):
                    cur.execute("SELECT id FROM %s ORDER BY v %s %%s::real[] LIMIT %d" % (t, op, K),
                                (array_literal(v),))
                    hits += len({r[0] for r in cur.fetchall()} & set(truth[j].tolist()))
                out.append(hits / (K * len(q)))
        cur.execute("RESET quantumdb.rerank")
        print("round %d: 10-recall@10 fd_on %.3f (rerank 0: %.3f), fd_off %.3f (%.3f); fd_on's compressor %s"
              % (rnd, out[0], out[1], out[2], out[3], checksum()), flush=True)

    def wait_workers():
        for _ in range(600):
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'quantumdb%'")
            if cur.fetchone()[0] == 0:
                return
            time.sleep(0.5)

    measure(0, 0 * std)
    for rnd in range(1, a.rounds + 1):
        moved = rnd * a.move * std
        gone = rng.choice(sorted(rows), int(a.frac * len(rows)), replace=False).tolist()
        new = base[nextrow:nextrow + len(gone)] + moved
        lines = "".join("%d\t%s\n" % (nextrow + j, array_literal(v)) for j, v in enumerate(new))
        for t in ("fd_on", "fd_off"):
            cur.execute("DELETE FROM %s WHERE id = ANY(%%s)" % t, (gone,))
            cur.copy_expert("COPY %s FROM STDIN" % t, io.StringIO(lines))
        for i in gone:
            del rows[i]
        for j in range(len(gone)):
            rows[nextrow + j] = new[j]
        nextrow += len(gone)
        for _ in range(2):
            for t in ("fd_on", "fd_off"):
                cur.execute("VACUUM %s" % t)
            time.sleep(1)
            wait_workers()
        measure(rnd, moved)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="sift-photos-128")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--frac", type=float, default=0.6, help="share of the rows replaced each round")
    ap.add_argument("--move", type=float, default=0.4,
                    help="each round moves new rows by this many standard deviations more (0: none)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ratios", action="store_true", help="the fit ratios only (no index)")
    a = ap.parse_args()
    d = os.path.join(a.data, a.set)
    with open(os.path.join(d, "info.json")) as f:
        cosine = "angular" in a.set or "cosine" in f.read()
    base = read_vecs(os.path.join(d, "base.fvecs"))
    queries = read_vecs(os.path.join(d, "query.fvecs"))
    std = base[:20000].std(axis=0)
    if a.ratios:
        ratios(a, base, cosine, std)
    else:
        churn(a, base, queries, cosine, std)


if __name__ == "__main__":
    main()
