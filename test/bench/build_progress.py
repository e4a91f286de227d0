#!/usr/bin/python3
"""What pg_stat_progress_create_index shows while CREATE INDEX runs: one
session builds an index on TABLE's COLUMN (WITH options as given, none by
default: the build trains its compressor), another polls the view every
50 ms; each distinct row (phase, blocks_total, blocks_done, tuples_total,
tuples_done) is printed once, in order.  libpq's PG* variables name the
server.

  test/bench/build_progress.py TABLE COLUMN ["WITH (...)"]
"""
import sys
import threading
import time

import psycopg2


def main():
    table, column = sys.argv[1], sys.argv[2]
    opts = sys.argv[3] if len(sys.argv) > 3 else ""
    err = []

    def build():
        c = psycopg2.connect("")
        c.autocommit = True
        cur = c.cursor()
        try:
            cur.execute("DROP INDEX IF EXISTS build_progress_idx")
            cur.execute("CREATE INDEX build_progress_idx ON %s USING quantumdb (%s) %s"
                        % (table, column, opts))
            cur.execute("DROP INDEX build_progress_idx")
        except psycopg2.Error as e:
            err.append(e)

    t = threading.Thread(target=build)
    t.start()
    m = psycopg2.connect("")
    m.autocommit = True
    cur = m.cursor()
    last = None
    while t.is_alive():
        cur.execute("SELECT phase, blocks_total, blocks_done, tuples_total, tuples_done "
                    "FROM pg_stat_progress_create_index")
        r = cur.fetchone()
        if r and r != last:
            print(r, flush=True)
            last = r
        time.sleep(0.05)
    t.join()
    if err:
        print("ERROR:", err[0], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
