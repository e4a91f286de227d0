#!/usr/bin/env python3
"""INSERT into quantumdb's index and pgvector's HNSW side by side.

A hook for `test/bench/index.sh --build-only --after-build` (it connects
with the PG* variables the hook is given): on the benchmark's table
`items(id, emb real[], vec vector(D))` with both indexes built, it inserts
rows near the set's base rows (each base row plus Gaussian noise of a
thousandth of the set's per-dimension spread, new noise each round, so
that no inserted vector equals one the index holds: pgvector adds an exact
duplicate to the existing element instead of linking a new one), one
prepared single-row INSERT per row, as a client would send them:

  quantumdb: INSERT INTO items (id, emb) VALUES ($1, $2)     (vec NULL)
  pgvector:  INSERT INTO items (id, vec) VALUES ($1, $2)     (emb NULL)

so that each statement feeds one of the two indexes (neither indexes a
NULL) and the table's primary key.  Each round runs the two methods one
after the other, in the order the round number gives, each in a
transaction that is rolled back (the index entries stay behind as entries
of dead rows, as after any aborted INSERT; each round inserts rows of its
own).  Before the timed rounds each method inserts 50 rows untimed (rolled
back).  It reports rows per second and milliseconds per row of each, the
ratio quantumdb / pgvector, and writes a table to --out.  The rolled-back
rows leave dead entries in both indexes, so run it with --build-only, where
no query is timed after it.

usage: test/bench/index.sh --no-build --set SET --build-only \\
         --after-build 'test/bench/insert.py --set SET [--rows N] [--rounds R]'
"""
import argparse
import os
import re
import sys
import time

import numpy as np
import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from index import ROOT, read_vecs  # noqa: E402

ID_BASE = 100000000


def literals(x, brackets):
    fmt = "[%s]" if brackets else "{%s}"
    return [fmt % ",".join("%.9g" % v for v in row) for row in x]


def noisy(x, rng):
    return (x + rng.standard_normal(x.shape).astype(np.float32) * (1e-3 * x.std(axis=0))).astype(np.float32)


def run(cur, sql, ids, lits):
    cur.execute("BEGIN")
    t = time.perf_counter()
    for i, lit in zip(ids, lits):
        cur.execute(sql, (int(i), lit))
    dt = time.perf_counter() - t
    cur.execute("ROLLBACK")
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", default="glove-100-angular")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--rows", type=int, default=2000, help="rows inserted per method and round")
    ap.add_argument("--warmup", type=int, default=50, help="untimed rows per method first")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "bench", "out"))
    a = ap.parse_args()

    if a.rows < 1 or a.rounds < 1 or (2 * a.rounds + 2) * a.rows >= 2 ** 31 - ID_BASE:
        sys.exit("insert.py: --rows and --rounds must be positive and keep ids within int")
    x = read_vecs(os.path.join(a.data, a.set, "base.fvecs"), count=a.rows)
    rng = np.random.default_rng(7)
    conn = psycopg2.connect("")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
                "WHERE indrelid = 'items'::regclass")
    defs = dict(cur.fetchall())
    if "items_emb_qdb" not in defs or "items_vec_hnsw" not in defs:
        sys.exit("insert.py: items needs both items_emb_qdb and items_vec_hnsw (found %s)"
                 % ", ".join(sorted(defs)))
    if not re.search(r"\(emb[ )]", defs["items_emb_qdb"]) or \
            not re.search(r"\(vec[ )]", defs["items_vec_hnsw"]):
        sys.exit("insert.py: needs quantumdb's index on emb and pgvector's on vec: %s; %s"
                 % (defs["items_emb_qdb"], defs["items_vec_hnsw"]))
    cur.execute("SELECT count(*), coalesce(max(id), 0) FROM items")
    nrows, maxid = cur.fetchone()
    if maxid >= ID_BASE:
        sys.exit("insert.py: items already has ids from %d on" % ID_BASE)
    try:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        cur.execute("SELECT pg_prewarm('items_emb_qdb'), pg_prewarm('items_vec_hnsw'), "
                    "pg_prewarm('items')")
    except psycopg2.Error:
        pass
    methods = {
        "quantumdb": ("PREPARE ins_q(int, real[]) AS INSERT INTO items (id, emb) VALUES ($1, $2)",
                      "EXECUTE ins_q(%s, %s)", False),
        "pgvector": ("PREPARE ins_p(int, vector) AS INSERT INTO items (id, vec) VALUES ($1, $2)",
                     "EXECUTE ins_p(%s, %s)", True),
    }
    for prep, _, _ in methods.values():
        cur.execute(prep)
    warm = noisy(x[:a.warmup], rng)
    for m, (_, sql, brackets) in methods.items():
        first = ID_BASE + (2 * a.rounds + (m == "pgvector")) * a.rows
        run(cur, sql, range(first, first + len(warm)), literals(warm, brackets))
    load = [os.getloadavg()[0]]
    times = {m: [] for m in methods}
    for r in range(a.rounds):
        xr = noisy(x, rng)
        order = list(methods) if r % 2 == 0 else list(reversed(list(methods)))
        for k, m in enumerate(order):
            _, sql, brackets = methods[m]
            lits = literals(xr, brackets)
            first = ID_BASE + (2 * r + k) * a.rows
            dt = run(cur, sql, range(first, first + len(lits)), lits)
            times[m].append(dt)
            print("round %d %-9s %d rows %.2f s (%.3f ms per row)"
                  % (r + 1, m, len(lits), dt, 1000 * dt / len(lits)), flush=True)
    conn.close()
    load.append(os.getloadavg()[0])

    n = len(x)
    mean = {m: sum(t) / len(t) for m, t in times.items()}
    out = ["# INSERT side by side: %s\n" % a.set,
           "%d rows in the table; %d single-row prepared INSERTs per method and round, %d rounds, "
           "each round's methods in alternating order, each in a transaction rolled back "
           "(test/bench/insert.py); rows: the set's first %d base rows plus noise of 1e-3 of "
           "each dimension's spread, new noise each round; load average (1 min) %.2f at the "
           "start, %.2f at the end.\n" % (nrows, n, a.rounds, n, load[0], load[1]),
           "| index | definition | seconds per round | mean ms per row | rows per second |",
           "|---|---|---|---:|---:|"]
    for m, idx in (("quantumdb", "items_emb_qdb"), ("pgvector", "items_vec_hnsw")):
        out.append("| %s | `%s` | %s | %.3f | %.0f |" % (
            m, defs[idx], ", ".join("%.2f" % t for t in times[m]), 1000 * mean[m] / n,
            n / mean[m]))
    out.append("\nquantumdb / pgvector, time per row: %.2f\n" % (mean["quantumdb"] / mean["pgvector"]))
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "insert-%s.md" % a.set)
    with open(path, "w") as f:
        f.write("\n".join(out))
    print("\n".join(out))
    print("wrote %s" % path)


if __name__ == "__main__":
    main()
