#!/usr/bin/python3
"""A backend's index caches over many partitions (quantumdb.index_cache_size):
a table of PARTS hash partitions (150 rows of sift-photos-128 each) with a
quantumdb index, then in a new connection one scan over all partitions, one
single-row INSERT into each, and three more scans; after each step the
memory contexts named "quantumdb index cache" (how many, kB).  The setting
comes from libpq's PGOPTIONS (e.g. PGOPTIONS='-c
quantumdb.index_cache_size=32MB'); the PG* variables name the server.

  test/bench/partition_caches.py [--parts N]
"""
import argparse
import os

from index import connect, copy_vectors, read_vecs

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", type=int, default=60)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "sift-photos-128"))
    a = ap.parse_args()
    rows = a.parts * 150
    x = read_vecs(os.path.join(a.data, "base.fvecs"), count=rows + a.parts)
    lit = ["{" + ",".join("%.6g" % f for f in v) + "}" for v in x]
    cur = connect().cursor()
    cur.execute("CREATE EXTENSION IF NOT EXISTS quantumdb")
    cur.execute("DROP TABLE IF EXISTS pc")
    cur.execute("CREATE TABLE pc (id int, emb real[]) PARTITION BY HASH (id)")
    for i in range(a.parts):
        cur.execute("CREATE TABLE pc%d PARTITION OF pc FOR VALUES WITH (MODULUS %d, REMAINDER %d)"
                    % (i, a.parts, i))
    copy_vectors(cur, "pc", x, 0, rows)
    cur.execute("SELECT quantumdb.drop_compressor('pc_c') FROM quantumdb.compressors WHERE name = 'pc_c'")
    cur.execute("SELECT compressor FROM quantumdb.train('pc_c', 'pc', 'emb')")
    cur.execute("CREATE INDEX pc_i ON pc USING quantumdb (emb) WITH (compressor = 'pc_c', calibration_queries = 0)")

    bc = connect().cursor()
    bc.execute("LOAD 'quantumdb'")
    bc.execute("SHOW quantumdb.index_cache_size")
    print("quantumdb.index_cache_size", bc.fetchone()[0])

    def caches(step):
        bc.execute("SELECT count(*), coalesce(sum(total_bytes), 0)::bigint / 1024 "
                   "FROM pg_backend_memory_contexts WHERE name = 'quantumdb index cache'")
        n, kb = bc.fetchone()
        print("%-36s %3d caches %8d kB" % (step, n, kb), flush=True)

    bc.execute("SET enable_seqscan = off")
    q = "SELECT id FROM pc ORDER BY emb <~> %s::real[] LIMIT 10"
    bc.execute(q, (lit[1],))
    caches("after one scan over all partitions")
    for i in range(a.parts):
        bc.execute("INSERT INTO pc VALUES (%s, %s::real[])", (1000000 + i, lit[rows + i]))
    caches("after one insert per partition")
    for i in range(3):
        bc.execute(q, (lit[5 + i],))
    caches("after three scans")
    cur.execute("DROP TABLE pc")
    cur.execute("SELECT quantumdb.drop_compressor('pc_c')")


if __name__ == "__main__":
    main()
