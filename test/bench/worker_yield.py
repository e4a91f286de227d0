#!/usr/bin/python3
"""How long a statement waits for the background train worker: a table of
ROWS rows of sift-photos-128 whose index was built while it had 99 rows
(no compressor, train_after_rows 5000), a VACUUM that starts the worker,
then after DELAY seconds the statement (default: ALTER TABLE ... ADD
COLUMN); prints the seconds it waited.  The server log says what the worker
did (gave way, or a deadlock and a failure).  libpq's PG* variables name
the server, which needs quantumdb.train_retry_delay = 0 to repeat runs
on one table name quickly (each run makes the table anew).

  test/bench/worker_yield.py [--rows N] [--delay S] [--statement SQL]
"""
import argparse
import os
import time

from index import connect, copy_vectors, new_table, read_vecs

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=9000)
    ap.add_argument("--delay", type=float, default=1.0)
    ap.add_argument("--statement", default="ALTER TABLE wy ADD COLUMN extra int")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "sift-photos-128"))
    a = ap.parse_args()
    x = read_vecs(os.path.join(a.data, "base.fvecs"), count=a.rows)
    cur = connect().cursor()
    new_table(cur, "wy", "id int PRIMARY KEY, v real[]", "WITH (autovacuum_enabled = off)")
    copy_vectors(cur, "wy", x, 0, 99)
    cur.execute("CREATE INDEX wy_i ON wy USING quantumdb (v) WITH (train_after_rows = 5000)")
    copy_vectors(cur, "wy", x, 99)
    cur.execute("VACUUM wy")
    time.sleep(a.delay)
    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'quantumdb train'")
    workers = cur.fetchone()[0]
    t = time.time()
    cur.execute(a.statement)
    print("workers running: %d; %s waited %.2f s" % (workers, a.statement.split()[0], time.time() - t),
          flush=True)


if __name__ == "__main__":
    main()
