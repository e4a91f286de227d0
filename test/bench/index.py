#!/usr/bin/python3
"""Index benchmark: the quantumdb index access method against pgvector's HNSW
(when pgvector is installed) and the exact sequential scan, on one set from
../shared/data loaded into one table, in one run.  Run it through index.sh,
which starts the throwaway cluster and sets PGHOST, PGPORT, PGUSER and
PGDATABASE.

Table items(id int primary key, emb real[], vec vector(D) when pgvector is
there); id is the 0-based row of base.fvecs.  The quantumdb index is built on
emb (a compressor trained first with quantumdb.train unless --qdb-train
build), pgvector's on vec (m 16, ef_construction 200 by default).  For every
quantumdb (ef_search, rerank) pair and every pgvector hnsw.ef_search the
queries run through a prepared statement (ORDER BY ... LIMIT 10) and the
benchmark reports 10-recall@10 against the exact ground truth (the set's
gt_ip.ivecs for cosine, gt.ivecs for l2 when every base row is loaded; a
numpy brute force over the loaded rows otherwise), QPS with each client count
(the queries split over that many connections), p50/p99 latency of the first
client count, and shared buffers (hit + read, and read alone) per query
from EXPLAIN (ANALYZE, BUFFERS) on a subset.  Build memory: what training and
CREATE INDEX, each in a fresh backend, added to it and its parallel workers
at the peak (procmem.py).  Writes
test/bench/out/index-SET[-TAG].{md,json,png}.

Hooks (index.sh --mem-limit uses them): --after-build runs a shell command
once the indexes are built (restarting the server confined); --before-run
runs one before each timed run, i.e. each setting and client count
(dropping the page cache).
"""
import argparse
import io
import json
import os
import platform
import subprocess
import sys
import threading
import time

import numpy as np
import psycopg2

from procmem import PeakMemory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QDB_TRAIN = os.path.join(ROOT, "trainer", "qdb-train")
K = 10

# per metric: quantumdb opclass and operator, pgvector opclass and operator,
# ground-truth file
METRICS = {
    "cosine": ("real_cosine_ops", "<=>", "vector_cosine_ops", "<=>", "gt_ip.ivecs"),
    "l2": ("real_l2_ops", "<~>", "vector_l2_ops", "<->", "gt.ivecs"),
    "ip": ("real_ip_ops", "<#>", "vector_ip_ops", "<#>", "gt_ip.ivecs"),
}
# size targets of the issue (quantumdb index / pgvector index)
SIZE_TARGETS = {"glove-100-angular": 1 / 3, "fashion-mnist-784": 1 / 12}
# server settings the report names
SETTINGS = ("shared_buffers", "maintenance_work_mem", "max_parallel_maintenance_workers",
            "max_parallel_workers_per_gather")


def log(msg):
    print("== " + msg, file=sys.stderr, flush=True)


def ints(s):
    return [int(x) for x in s.split(",") if x.strip()]


ORDERS = {"strict": "strict_order", "relaxed": "relaxed_order", "off": "off"}


def parse_pair(p):
    """EF:RERANK[:ORDER] of --qdb-pairs: (ef_search, rerank, iterative_scan or None)."""
    f = p.strip().split(":")
    if len(f) not in (2, 3) or (len(f) == 3 and f[2] not in ORDERS):
        raise SystemExit("--qdb-pairs: %r is not EF:RERANK[:strict|relaxed|off]" % p)
    return int(f[0]), int(f[1]), ORDERS[f[2]] if len(f) == 3 else None


def read_vecs(path, dtype=np.float32, count=0):
    a = np.fromfile(path, dtype=np.int32)
    d = a[0]
    a = a.reshape(-1, d + 1)
    if count:
        a = a[:count]
    return a[:, 1:].view(dtype).copy()


def connect():
    conn = psycopg2.connect("")
    conn.autocommit = True
    return conn


def copy_vectors(cur, table, x, first=0, last=None):
    """COPY rows first .. last - 1 of x into table as (id, real[]): id is the row's number."""
    last = len(x) if last is None else last
    cur.copy_expert("COPY %s FROM STDIN" % table,
                    io.StringIO("".join("%d\t{%s}\n" % (i, ",".join("%.6g" % f for f in x[i]))
                                        for i in range(first, last))))


def new_table(cur, name, columns, options=""):
    """The extension if missing, then table name made anew with columns (SQL)."""
    cur.execute("CREATE EXTENSION IF NOT EXISTS quantumdb")
    cur.execute("DROP TABLE IF EXISTS %s" % name)
    cur.execute("CREATE TABLE %s (%s) %s" % (name, columns, options))


def array_literal(v):
    """A real[] literal of vector v ('{...}', 6 significant digits)."""
    return "{" + ",".join("%.6g" % f for f in v) + "}"


def seconds(cur, sql):
    """Seconds cur takes to run sql."""
    t = time.monotonic()
    cur.execute(sql)
    return time.monotonic() - t


def one(cur, sql, args=None):
    cur.execute(sql, args)
    return cur.fetchone()[0]


def exact_truth(base, query, metric):
    """Exact K nearest rows of base for each query (numpy, float64 sums)."""
    b = base.astype(np.float64)
    q = query.astype(np.float64)
    if metric == "cosine":
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    out = np.empty((len(q), K), dtype=np.int64)
    bn = (b * b).sum(axis=1)
    for s in range(0, len(q), 256):
        dots = q[s:s + 256] @ b.T
        d = bn[None, :] - 2 * dots if metric == "l2" else -dots
        part = np.argpartition(d, K, axis=1)[:, :K]
        order = np.take_along_axis(d, part, axis=1).argsort(axis=1, kind="stable")
        out[s:s + 256] = np.take_along_axis(part, order, axis=1)
    return out


def recall(ids, truth):
    return float(np.mean([len(set(r[:K]) & set(t[:K])) / K for r, t in zip(ids, truth)]))


def plan_nodes(plan):
    yield plan
    for p in plan.get("Plans", []):
        yield from plan_nodes(p)


def explain_json(cur, sql):
    cur.execute(sql)
    r = cur.fetchone()[0]
    return (json.loads(r) if isinstance(r, str) else r)[0]


class Method:
    """One way of running the query: a prepared statement, the settings to
    sweep, the index its plan must use (None: a sequential scan)."""

    def __init__(self, name, column, op, argtype, literals, index, settings, fixed=(), hide=None,
                 floor=False):
        self.name = name
        self.hide = hide            # another index on the column, kept from the planner
        self.stmt = "bench_knn"
        self.prepare = ("PREPARE bench_knn(%s) AS SELECT id FROM items ORDER BY %s %s $1 LIMIT %d"
                        % (argtype, column, op, K))
        self.floor = floor
        if floor:
            # the same parameter and K result rows, no distance at all: what a
            # query costs before any index work (client, protocol, parsing the
            # vector, planning, executor start, result rows)
            self.prepare = ("PREPARE bench_knn(%s) AS SELECT id FROM items WHERE $1 IS NOT NULL LIMIT %d"
                            % (argtype, K))
        self.literals = literals
        self.index = index
        self.settings = settings    # list of (label, [(guc, value), ...])
        self.fixed = list(fixed)    # GUCs set once per connection
        self.forced = False         # enable_seqscan = off was needed


def open_conns(method, n, warmup):
    conns = []
    for _ in range(n):
        c = connect()
        cur = c.cursor()
        for g, v in method.fixed:
            cur.execute("SET %s = %s" % (g, v))
        cur.execute(method.prepare)
        # per-backend caches (plans, compressors) before anything is timed
        for lit in method.literals[:warmup]:
            cur.execute("EXECUTE bench_knn(%s)", (lit,))
            cur.fetchall()
        conns.append(c)
    return conns


def plan_ok(conn, method):
    cur = conn.cursor()
    plan = explain_json(cur, cur.mogrify("EXPLAIN (FORMAT JSON) EXECUTE bench_knn(%s)",
                                         (method.literals[0],)).decode())["Plan"]
    if method.floor:
        return True, plan       # any plan: the primary key's or a sequential scan
    nodes = list(plan_nodes(plan))
    used = [n.get("Index Name") for n in nodes if n["Node Type"] in ("Index Scan", "Index Only Scan")]
    if method.index is None:
        return not used and any(n["Node Type"] == "Seq Scan" for n in nodes), plan
    return method.index in used, plan


def open_checked(method, n, warmup):
    """Connections whose plan is the method's, or an exit.  An index the
    planner costs above a sequential scan (small tables, TOASTed vectors) is
    forced with enable_seqscan = off, set before PREPARE since a cached
    generic plan ignores later settings; that is reported."""
    conns = open_conns(method, n, warmup)
    ok, plan = plan_ok(conns[0], method)
    if not ok and method.index is not None:
        kinds = [x["Node Type"] for x in plan_nodes(plan)]
        log("%s: the planner prefers %s to %s; running with enable_seqscan = off"
            % (method.name, "a sequential scan" if "Seq Scan" in kinds else " / ".join(kinds),
               method.index))
        for c in conns:
            c.close()
        method.forced = True
        method.fixed.append(("enable_seqscan", "off"))
        conns = open_conns(method, n, warmup)
        ok, plan = plan_ok(conns[0], method)
    if not ok:
        sys.exit("%s: the planner does not use %s; plan:\n%s"
                 % (method.name, "index " + method.index if method.index else "a sequential scan",
                    json.dumps(plan, indent=1)))
    return conns


def run_clients(conns, literals, nclients):
    """Runs literals split over nclients connections; wall seconds, per-query
    latencies (ms, in literal order) and result ids."""
    ids = [None] * len(literals)
    lat = [0.0] * len(literals)
    errors = []
    barrier = threading.Barrier(nclients + 1)

    def worker(ci):
        cur = conns[ci].cursor()
        barrier.wait()
        try:
            for i in range(ci, len(literals), nclients):
                t = time.perf_counter()
                cur.execute("EXECUTE bench_knn(%s)", (literals[i],))
                rows = cur.fetchall()
                lat[i] = (time.perf_counter() - t) * 1000
                ids[i] = [r[0] for r in rows]
        except Exception as e:  # reported by the caller
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(ci,)) for ci in range(nclients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return wall, lat, ids


def explain_analyze(cur, lit):
    return explain_json(cur, cur.mogrify(
        "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) EXECUTE bench_knn(%s)", (lit,)).decode())


def buffers_per_query(conn, literals):
    """Shared buffers (hit + read) and shared reads per query, and the
    server's execution time per query in ms (EXPLAIN ANALYZE's Execution
    Time without per-node timing: the index's own work, without the client,
    the protocol and the parsing of the query's vector)."""
    cur = conn.cursor()
    hit = read = 0
    for lit in literals:     # the first EXPLAIN of a prepared statement plans it
        explain_analyze(cur, lit)
        break
    exec_ms = []
    for lit in literals:
        e = explain_analyze(cur, lit)
        hit += e["Plan"].get("Shared Hit Blocks", 0)
        read += e["Plan"].get("Shared Read Blocks", 0)
        exec_ms.append(e.get("Execution Time", 0.0))
    n = max(len(literals), 1)
    return (hit + read) / n, read / n, float(np.median(exec_ms)) if exec_ms else 0.0


def run_hook(cmd):
    if cmd:
        subprocess.run(cmd, shell=True, check=True)


def bench_method(method, truth, clients, warmup, nexplain, before_run=None):
    log("%s: %d queries, settings %s" % (method.name, len(method.literals),
                                          ", ".join(s[0] for s in method.settings)))
    conns = open_checked(method, max(clients), warmup)
    # a misspelt or missing GUC would be a silent placeholder
    cur = conns[0].cursor()
    for g in sorted({g for _, gucs in method.settings for g, _ in gucs}):
        if one(cur, "SELECT count(*) FROM pg_settings WHERE name = %s", (g,)) == 0:
            sys.exit("%s: setting %s does not exist on the server" % (method.name, g))
    rows = []
    for label, gucs in method.settings:
        for c in conns:
            cur = c.cursor()
            for g, v in gucs:
                cur.execute("SET %s = %s" % (g, v))
        row = {"method": method.name, "setting": label, "gucs": dict(gucs), "qps": {},
               "enable_seqscan_off": method.forced}
        lat = None
        for n in clients:
            run_hook(before_run)
            wall, l, ids = run_clients(conns, method.literals, n)
            row["qps"][str(n)] = len(method.literals) / wall
            if lat is None:
                lat = np.array(l)
                row["recall"] = recall(ids, truth)
        row["p50_ms"] = float(np.percentile(lat, 50))
        row["p99_ms"] = float(np.percentile(lat, 99))
        row["buffers"], row["buffers_read"], row["exec_ms"] = buffers_per_query(
            conns[0], method.literals[:nexplain])
        rows.append(row)
        log("  %-24s recall %.4f  qps %s  p50 %.3f ms  server %.3f ms  buffers %.1f (read %.1f)"
            % (label, row["recall"], " / ".join("%.0f" % q for q in row["qps"].values()),
               row["p50_ms"], row["exec_ms"], row["buffers"], row["buffers_read"]))
    for c in conns:
        c.close()
    return rows


def timed(sql, args=None):
    """Runs sql in a fresh backend: (seconds, memory it added, its first row
    as a dict or None, notices).  Memory: the peak of the backend and its
    workers less the idle backend's (procmem.py)."""
    conn = connect()
    try:
        cur = conn.cursor()
        with PeakMemory(one(cur, "SELECT pg_backend_pid()")) as m:
            t = time.perf_counter()
            cur.execute(sql, args)
            secs = time.perf_counter() - t
        row = None
        if cur.description:
            row = dict(zip([d[0] for d in cur.description],
                           [x if isinstance(x, (int, float, type(None))) else str(x) for x in cur.fetchone()]))
        notices = [n.strip() for n in conn.notices]
    finally:
        conn.close()
    mem = m.peak - m.start
    log("  %.1f s; memory %s (peak %s less %s at the start), %d parallel workers, dynamic shared memory %s"
        % (secs, fmt_mb(mem), fmt_mb(m.peak), fmt_mb(m.start), m.workers, fmt_mb(m.dsm)))
    return secs, mem, row, notices


def build_index(cur, name, sql):
    """(seconds, size, memory, notices) of CREATE INDEX."""
    log("building " + name)
    secs, mem, _, notices = timed(sql)
    size = one(cur, "SELECT pg_relation_size(%s::regclass)", (name,))
    for n in notices:
        log("  " + n)
    log("  size %s" % fmt_mb(size))
    return secs, size, mem, notices


class CopyStream:
    """base rows as COPY text, read lazily from `qdb-train dump`: with
    pgvector the same digits again as a vector literal in a third column."""

    def __init__(self, path, rows, vector):
        self.proc = subprocess.Popen([QDB_TRAIN, "dump", "--input", path, "--count", str(rows)],
                                     stdout=subprocess.PIPE, text=True)
        self.vector = vector
        self.buf = ""

    def read(self, size=65536):
        while len(self.buf) < size:
            ln = self.proc.stdout.readline()
            if not ln:
                break
            ln = ln.rstrip("\n")
            self.buf += ("%s\t[%s]\n" % (ln, ln[ln.index("{") + 1:-1])) if self.vector else ln + "\n"
        out, self.buf = self.buf[:size], self.buf[size:]
        return out

    def close(self):
        self.proc.stdout.close()
        if self.proc.wait() != 0:
            sys.exit("qdb-train dump failed")


def cgroup_stats(path):
    """The memory cgroup's counters (index.sh --mem-limit)."""
    out = {}
    for f in ("limit_in_bytes", "usage_in_bytes", "max_usage_in_bytes", "failcnt"):
        with open(os.path.join(path, "memory." + f)) as fh:
            out[f] = int(fh.read())
    with open(os.path.join(path, "memory.oom_control")) as fh:
        out.update({k: int(v) for k, v in (ln.split() for ln in fh) if k == "oom_kill"})
    return out


def best_at(rows, method, client, target=0.95):
    """The fastest setting of method reaching the recall target."""
    ok = [r for r in rows if r["method"] == method and r["recall"] >= target]
    return max(ok, key=lambda r: r["qps"][client]) if ok else None


def pareto(points):
    """Points (recall, qps) no other point beats on both, by recall."""
    out = []
    for r, q in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not out or q > out[-1][1]:
            out.append((r, q))
    return sorted(out)


def plot(path, rows, title, client):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, m in enumerate(dict.fromkeys(r["method"] for r in rows)):
        color = "C%d" % i
        pts = [(r["recall"], r["qps"][client]) for r in rows if r["method"] == m]
        if m.startswith("floor"):
            # no recall to speak of: a line at its QPS, the ceiling of any index
            ax.axhline(pts[0][1], color=color, lw=1, ls="--", label=m + ": no distance work")
            continue
        if m.startswith("exact"):
            ax.scatter(*zip(*pts), marker="x", s=60, color=color, label=m)
            continue
        if len(pts) > len(pareto(pts)):
            # a grid of settings: every point faint, the best ones joined
            ax.scatter(*zip(*pts), s=10, alpha=0.35, color=color)
            line = pareto(pts)
            lbl = m + " (Pareto front)"
        else:
            line = sorted(pts)
            lbl = m
        ax.plot(*zip(*line), marker="o", color=color, label=lbl)
    ax.set_yscale("log")
    ax.set_xlabel("10-recall@10")
    ax.set_ylabel("queries per second, %s client%s (log)" % (client, "" if client == "1" else "s"))
    ax.set_title(title)
    ax.axvline(0.95, color="grey", lw=0.8, ls=":")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fmt_mb(b):
    return "%.1f MB" % (b / 1048576.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="glove-100-angular", help="folder name under --data")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--metric", choices=sorted(METRICS),
                    help="default: cosine when the set has gt_ip.ivecs, l2 otherwise")
    ap.add_argument("--rows", type=int, default=0, help="first N base rows (default all)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--ef-search", default="10,20,40,80,160,320", help="quantumdb.ef_search list")
    ap.add_argument("--rerank", default="0,50,100,200", help="quantumdb.rerank list")
    ap.add_argument("--qdb-pairs", help="explicit quantumdb EF:RERANK[:ORDER] list (e.g. "
                    "80:80,160:100,40:30:relaxed) instead of the --ef-search x --rerank grid; "
                    "ORDER (strict, relaxed or off) sets quantumdb.iterative_scan for that pair "
                    "(default: the server's, strict_order)")
    ap.add_argument("--pgv-ef-search", default="10,20,40,80,160,320", help="hnsw.ef_search list")
    ap.add_argument("--clients", default="1,2", help="client counts for QPS")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--qdb-train", choices=("sql", "build"), default="sql",
                    help="sql: quantumdb.train() first, its time counted in the build; "
                         "build: CREATE INDEX trains its own compressor")
    ap.add_argument("--qdb-kind", default="opq", help="compressor kind for quantumdb.train")
    ap.add_argument("--qdb-subvectors", type=int, default=None,
                    help="quantumdb.train's subvectors (code bytes; default the function's, 16)")
    ap.add_argument("--qdb-beam", type=int, default=8, help="kind rq: quantumdb.train's beam")
    ap.add_argument("--qdb-eta", type=float, default=1.0, help="kind rq: quantumdb.train's eta")
    ap.add_argument("--qdb-refits", type=int, default=None,
                    help="kind rq: quantumdb.train's refits (default: the server's, 16 since 0.8.0)")
    ap.add_argument("--qdb-column", choices=("emb", "vec"), default="emb",
                    help="the column quantumdb indexes: emb (real[], its own operator classes) or "
                    "vec (pgvector's vector, through quantumdb_pgvector, beside pgvector's HNSW on "
                    "the same column)")
    ap.add_argument("--qdb-inline-codes", action="store_true",
                    help="build the quantumdb index WITH (inline_codes = on)")
    ap.add_argument("--tag", default="", help="suffix of the output files (index-SET[-TAG].md)")
    ap.add_argument("--exact-queries", type=int, default=20, help="queries for the exact scan")
    ap.add_argument("--explain-queries", type=int, default=50,
                    help="queries run under EXPLAIN (ANALYZE, BUFFERS) per setting")
    ap.add_argument("--warmup", type=int, default=50, help="untimed queries per connection")
    ap.add_argument("--emb-storage", choices=("plain", "external", "extended", "main"),
                    help="ALTER TABLE items ALTER emb SET STORAGE (default: left as is)")
    ap.add_argument("--emb-compression", choices=("pglz", "lz4"),
                    help="ALTER TABLE items ALTER emb SET COMPRESSION, before the load "
                         "(default: default_toast_compression, pglz unless set)")
    ap.add_argument("--no-pgvector", action="store_true", help="skip pgvector even when installed")
    ap.add_argument("--no-quantumdb", action="store_true", help="skip the quantumdb index")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the floor: the same prepared query with no distance work")
    ap.add_argument("--build-only", action="store_true",
                    help="load and build, report build time, memory and size; no queries")
    ap.add_argument("--no-prewarm", action="store_true", help="no pg_prewarm before the queries")
    ap.add_argument("--after-build", metavar="CMD", help="shell command run once the indexes are built")
    ap.add_argument("--before-run", metavar="CMD", help="shell command run before each timed run")
    ap.add_argument("--cgroup", metavar="DIR", help="memory cgroup of the server, reported at the end")
    ap.add_argument("--qps-target", type=float, default=2.0,
                    help="QPS ratio quantumdb / pgvector the report checks (default 2)")
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "bench", "out"))
    a = ap.parse_args()
    t_start = time.perf_counter()

    ds = os.path.join(a.data, a.set)
    if not os.path.isfile(os.path.join(ds, "base.fvecs")):
        sys.exit("no %s/base.fvecs" % ds)
    metric = a.metric or ("cosine" if os.path.isfile(os.path.join(ds, "gt_ip.ivecs")) else "l2")
    qdb_ops, qdb_op, pgv_ops, pgv_op, gt_name = METRICS[metric]
    emb_op = qdb_op                 # real[]'s operator, whichever column quantumdb indexes
    qdb_col, qdb_type = "emb", "real[]"
    clients = ints(a.clients)
    if a.qdb_pairs:
        pairs = [parse_pair(p) for p in a.qdb_pairs.split(",") if p.strip()]
    else:
        pairs = [(ef, rr, None) for ef in ints(a.ef_search) for rr in ints(a.rerank)]
    load_start = os.getloadavg()
    c0 = str(clients[0])

    base = read_vecs(os.path.join(ds, "base.fvecs"))
    nbase, dim = base.shape
    rows = min(a.rows, nbase) if a.rows > 0 else nbase
    base = base[:rows]
    query = read_vecs(os.path.join(ds, "query.fvecs"))[:a.queries]
    nq = len(query)
    if rows == nbase and os.path.isfile(os.path.join(ds, gt_name)):
        truth = read_vecs(os.path.join(ds, gt_name), np.int32)[:nq, :K]
        truth_src = gt_name
    else:
        t = time.perf_counter()
        truth = exact_truth(base, query, metric)
        truth_src = "numpy brute force over the %d loaded rows (%.1f s)" % (rows, time.perf_counter() - t)
    log("%s: %d of %d rows, %d dims, %s, %d queries; truth: %s"
        % (a.set, rows, nbase, dim, metric, nq, truth_src))

    conn = connect()
    cur = conn.cursor()
    server = one(cur, "SHOW server_version")
    pgv_version = None
    if not a.no_pgvector:
        pgv_version = one(cur, "SELECT max(default_version) FROM pg_available_extensions WHERE name = 'vector'")
        if pgv_version is None:
            log("pgvector is not installed on this machine: skipping pgvector's HNSW")
    have_prewarm = one(cur, "SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_prewarm'") > 0

    cur.execute("CREATE EXTENSION IF NOT EXISTS quantumdb")
    if pgv_version:
        cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
    if have_prewarm:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    cur.execute("DROP TABLE IF EXISTS items")
    # a run before this one in the same cluster (index.sh --growth) left its compressor
    cur.execute("SELECT quantumdb.drop_compressor('bench_c', true)")
    cur.execute("CREATE TABLE items (id int PRIMARY KEY, emb real[]%s)"
                % (", vec vector(%d)" % dim if pgv_version else ""))
    if a.emb_storage:
        cur.execute("ALTER TABLE items ALTER emb SET STORAGE %s" % a.emb_storage)
    if a.emb_compression:
        cur.execute("ALTER TABLE items ALTER emb SET COMPRESSION %s" % a.emb_compression)

    log("loading %d rows (COPY)" % rows)
    t = time.perf_counter()
    stream = CopyStream(os.path.join(ds, "base.fvecs"), rows, bool(pgv_version))
    cur.copy_expert("COPY items FROM STDIN", stream, size=65536)
    stream.close()
    cur.execute("VACUUM ANALYZE items")
    load_s = time.perf_counter() - t
    table_bytes = one(cur, "SELECT pg_table_size('items')")
    emb_bytes = one(cur, "SELECT avg(pg_column_size(emb))::float8 FROM items")
    log("loaded in %.1f s; table %s (with TOAST), emb %.0f bytes per row"
        % (load_s, fmt_mb(table_bytes), emb_bytes))

    def literal(v, brackets):
        s = ",".join("%.9g" % x for x in v)
        return brackets[0] + s + brackets[1]

    qlits = [literal(v, "{}") for v in query]
    vlits = [literal(v, "[]") for v in query]
    builds = {}
    methods = []

    # quantumdb
    qdb_skip = None
    if a.no_quantumdb:
        qdb_skip = "--no-quantumdb"
    elif one(cur, "SELECT count(*) FROM pg_am WHERE amname = 'quantumdb'") == 0:
        qdb_skip = "the quantumdb index access method does not exist (no 'quantumdb' in pg_am)"
    elif a.qdb_column == "vec" and not pgv_version:
        qdb_skip = "--qdb-column vec needs pgvector"
    if qdb_skip is None and a.qdb_column == "vec":
        # pgvector's column, operator and operator class name, for quantumdb
        cur.execute("CREATE EXTENSION IF NOT EXISTS quantumdb_pgvector")
        qdb_ops, qdb_op, qdb_col, qdb_type = pgv_ops, pgv_op, "vec", "vector"
    if qdb_skip is None:
        # the operator classes live in the extension's schema, whichever it is
        cur.execute("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.opcname) FROM pg_opclass c "
                    "JOIN pg_am a ON a.oid = c.opcmethod JOIN pg_namespace n ON n.oid = c.opcnamespace "
                    "WHERE a.amname = 'quantumdb' AND c.opcname = %s", (qdb_ops,))
        r = cur.fetchone()
        qdb_ops = r[0] if r else qdb_ops
        b = {"train_s": 0.0}
        opts = "m = %d, ef_construction = %d" % (a.m, a.ef_construction)
        if a.qdb_inline_codes:
            opts += ", inline_codes = on"
        try:
            if a.qdb_train == "sql":
                log("training the compressor (quantumdb.train, kind %s, metric %s)" % (a.qdb_kind, metric))
                # beam, eta and refits only when set: a server of before 0.7.0 has none
                rq_args = ""
                if a.qdb_beam != 8 or a.qdb_eta != 1.0 or a.qdb_refits is not None:
                    rq_args = ", beam => %d, eta => %g" % (a.qdb_beam, a.qdb_eta)
                    if a.qdb_refits is not None:
                        rq_args += ", refits => %d" % a.qdb_refits
                if a.qdb_subvectors is not None:
                    rq_args += ", subvectors => %d" % a.qdb_subvectors
                b["train_s"], b["train_mem"], b["train"], _ = timed(
                    "SELECT * FROM quantumdb.train('bench_c', 'items'::regclass, %s, "
                    "kind => %s, metric => %s" + rq_args + ")", (qdb_col, a.qdb_kind, metric))
                opts += ", compressor = 'bench_c'"
            b["index_s"], b["size"], b["index_mem"], b["notices"] = build_index(
                cur, "items_emb_qdb",
                "CREATE INDEX items_emb_qdb ON items USING quantumdb (%s %s) WITH (%s)"
                % (qdb_col, qdb_ops, opts))
            b["build_s"] = b["train_s"] + b["index_s"]
            b["mem"] = max(b.get("train_mem", 0), b["index_mem"])
            b["options"] = "%s %s; %s" % (qdb_col, qdb_ops, opts)
            try:
                cur.execute("SELECT * FROM quantumdb.index_info('items_emb_qdb'::regclass)")
                cols = [d[0] for d in cur.description]
                b["index_info"] = [dict(zip(cols, [x if isinstance(x, (int, float, type(None))) else str(x)
                                                   for x in r])) for r in cur.fetchall()]
            except psycopg2.Error as e:
                b["index_info"] = "quantumdb.index_info failed: %s" % str(e).strip()
            builds["quantumdb"] = b
            methods.append(Method(
                "quantumdb", qdb_col, qdb_op, qdb_type, vlits if qdb_col == "vec" else qlits,
                "items_emb_qdb", hide=("items_vec_hnsw" if qdb_col == "vec" and pgv_version else None),
                settings=
                [("ef_search=%d rerank=%d" % (ef, rr) + (" " + order if order else ""),
                  [("quantumdb.ef_search", ef), ("quantumdb.rerank", rr)] +
                  # a pair without an order gets the default back (SET stays)
                  ([("quantumdb.iterative_scan", order or "DEFAULT")]
                   if any(p[2] for p in pairs) else []))
                 for ef, rr, order in pairs]))
        except psycopg2.Error as e:
            qdb_skip = "building the quantumdb index failed: %s" % str(e).strip().replace("\n", " | ")
    if qdb_skip:
        log("skipping quantumdb: " + qdb_skip)

    # pgvector
    if pgv_version:
        b = {"train_s": 0.0, "options": "m = %d, ef_construction = %d" % (a.m, a.ef_construction)}
        b["index_s"], b["size"], b["index_mem"], b["notices"] = build_index(
            cur, "items_vec_hnsw",
            "CREATE INDEX items_vec_hnsw ON items USING hnsw (vec %s) WITH (%s)" % (pgv_ops, b["options"]))
        b["build_s"] = b["index_s"]
        b["mem"] = b["index_mem"]
        builds["pgvector"] = b
        methods.append(Method(
            "pgvector hnsw", "vec", pgv_op, "vector", vlits, "items_vec_hnsw",
            hide="items_emb_qdb" if a.qdb_column == "vec" and "quantumdb" in builds else None,
            settings=
            [("ef_search=%d" % ef, [("hnsw.ef_search", ef)]) for ef in ints(a.pgv_ef_search)]))

    # the exact reference: a sequential scan and a sort, on a few queries
    ne = 0 if a.build_only else min(a.exact_queries, nq)
    nofix = [("enable_indexscan", "off"), ("enable_bitmapscan", "off")]
    if ne > 0:
        methods.append(Method("exact (real[] %s)" % emb_op, "emb", emb_op, "real[]", qlits[:ne], None,
                              [("seq scan, %d queries" % ne, [])], nofix))
    if pgv_version and ne > 0:
        methods.append(Method("exact (vector %s)" % pgv_op, "vec", pgv_op, "vector", vlits[:ne], None,
                              [("seq scan, %d queries" % ne, [])], nofix))
    # the floor: what the same query costs with no distance work at all
    if not a.no_floor:
        methods.append(Method("floor (real[])", "emb", emb_op, "real[]", qlits, None,
                              [("no distance, %d rows" % K, [])], floor=True))
        if pgv_version:
            methods.append(Method("floor (vector)", "vec", pgv_op, "vector", vlits, None,
                                  [("no distance, %d rows" % K, [])], floor=True))
    if a.build_only:
        methods = []

    build_settings = {g: one(cur, "SHOW " + g) for g in SETTINGS}
    if a.after_build:
        conn.close()
        log("after the builds: " + a.after_build)
        run_hook(a.after_build)
        conn = connect()
        cur = conn.cursor()
    if not methods:
        warmup = 0
    elif a.no_prewarm:
        log("no pg_prewarm (--no-prewarm); %d untimed queries per connection" % a.warmup)
        warmup = a.warmup
    elif have_prewarm:
        log("pg_prewarm: the table, its TOAST table and every index")
        cur.execute("SELECT pg_prewarm(c.oid) FROM pg_class c WHERE c.oid = 'items'::regclass "
                    "OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'items'::regclass) "
                    "OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN "
                    "('items'::regclass, (SELECT reltoastrelid FROM pg_class WHERE oid = 'items'::regclass)))")
        warmup = a.warmup
    else:
        log("no pg_prewarm: warming with %d queries per connection" % max(a.warmup, 300))
        warmup = max(a.warmup, 300)

    def set_valid(index, valid):
        # both indexes on vec use the same operator: the planner would pick
        # one for both, so the other is marked invalid (still maintained)
        # while a method runs
        cur.execute("UPDATE pg_index SET indisvalid = %s WHERE indexrelid = %s::regclass",
                    (valid, index))

    results = []
    for m in methods:
        if m.hide:
            log("%s: index %s marked invalid for the run" % (m.name, m.hide))
            set_valid(m.hide, False)
        results += bench_method(m, truth[:len(m.literals)], clients, warmup, a.explain_queries,
                                a.before_run)
        if m.hide:
            set_valid(m.hide, True)
    cgroup = cgroup_stats(a.cgroup) if a.cgroup else None

    settings = {g: one(cur, "SHOW " + g) for g in SETTINGS}
    conn.close()

    # ratios quantumdb / pgvector
    ratios = {}
    if "quantumdb" in builds and "pgvector" in builds:
        q, p = builds["quantumdb"], builds["pgvector"]
        ratios["size"] = q["size"] / p["size"]
        ratios["build"] = q["build_s"] / p["build_s"]
        ratios["build_mem"] = q["mem"] / p["mem"] if p["mem"] else None
        for c in map(str, clients):
            bq, bp = best_at(results, "quantumdb", c), best_at(results, "pgvector hnsw", c)
            ratios["qps_%s" % c] = bq["qps"][c] / bp["qps"][c] if bq and bp else None
            ratios["at_%s" % c] = (bq["setting"] if bq else None, bp["setting"] if bp else None)
            ratios["read_%s" % c] = (bq["buffers_read"] if bq else None, bp["buffers_read"] if bp else None)
            ratios["server_%s" % c] = bp["exec_ms"] / bq["exec_ms"] if bq and bp and bq["exec_ms"] else None
            fl = [r for r in results if r["method"].startswith("floor")]
            ratios["floor_%s" % c] = (min(r["qps"][c] for r in fl) / bp["qps"][c]) if fl and bp else None

    # report
    total_s = time.perf_counter() - t_start
    out = []
    out.append("# Index benchmark: %s\n" % a.set)
    out.append("%d of %d base rows, %d dims, metric %s, %d queries (exact scan: %d), k = %d; "
               "ground truth: %s.  PostgreSQL %s, pgvector %s, %s, %d CPUs; shared_buffers %s, "
               "maintenance_work_mem %s, max_parallel_maintenance_workers %s.  "
               "Table %s, emb %.0f bytes per row%s; load (COPY) %.1f s; whole run %.0f s.  "
               "Load average (1 min) %.2f at the start, %.2f at the end%s.\n"
               % (rows, nbase, dim, metric, nq, ne, K, truth_src, server, pgv_version or "not installed",
                  platform.processor() or platform.machine(), os.cpu_count(), settings["shared_buffers"],
                  settings["maintenance_work_mem"], settings["max_parallel_maintenance_workers"],
                  fmt_mb(table_bytes), emb_bytes,
                  (" (STORAGE %s)" % a.emb_storage.upper() if a.emb_storage else "") +
                  (" (COMPRESSION %s)" % a.emb_compression if a.emb_compression else ""),
                  load_s, total_s, load_start[0], os.getloadavg()[0],
                  ": other work shared the CPUs, so the timings are noisy"
                  if max(load_start[0], os.getloadavg()[0]) > (os.cpu_count() or 1) else ""))
    if build_settings != settings:
        out.append("Loading and building ran with shared_buffers %s, maintenance_work_mem %s; "
                   "the queries with the settings above (the server was restarted in between: %s).\n"
                   % (build_settings["shared_buffers"], build_settings["maintenance_work_mem"],
                      a.after_build))
    if cgroup:
        out.append("Queries run with the whole server in a memory cgroup (v1): limit %s, peak usage %s "
                   "(page cache included), usage at the end %s, failcnt %d, oom_kill %s; loading and "
                   "building ran outside it.%s\n"
                   % (fmt_mb(cgroup["limit_in_bytes"]), fmt_mb(cgroup["max_usage_in_bytes"]),
                      fmt_mb(cgroup["usage_in_bytes"]), cgroup["failcnt"], cgroup.get("oom_kill", "?"),
                      "  Before each timed run (each setting and client count): `%s`." % a.before_run
                      if a.before_run else ""))
    if qdb_skip:
        out.append("quantumdb skipped: %s.\n" % qdb_skip)
    if builds:
        out.append("| index | options | build s | (train s) | build memory | size |")
        out.append("|---|---|---:|---:|---:|---:|")
        for name, b in builds.items():
            out.append("| %s | %s | %.1f | %.1f | %s | %s |"
                       % (name, b["options"], b["build_s"], b["train_s"], fmt_mb(b["mem"]),
                          fmt_mb(b["size"])))
        out.append("\nBuild memory: what the statement added to a fresh backend: the peak of its "
                   "private memory and its parallel workers' plus their dynamic shared memory, "
                   "sampled every 0.1 s, less the idle backend's (procmem.py); quantumdb: the "
                   "larger of quantumdb.train and CREATE INDEX.\n")
    cl = ["QPS %s client%s" % (c, "" if c == 1 else "s") for c in clients]
    if results:
        out.append("| method | setting | 10-recall@10 | %s | p50 ms | p99 ms | server ms | buffers/query | read/query |"
                   % " | ".join(cl))
        out.append("|---|---|---:|%s---:|---:|---:|---:|---:|" % ("---:|" * len(clients)))
    for r in results:
        out.append("| %s | %s | %s | %s | %.3f | %.3f | %.3f | %.1f | %.1f |"
                   % (r["method"], r["setting"] + (" *" if r["enable_seqscan_off"] else ""),
                      "-" if r["method"].startswith("floor") else "%.4f" % r["recall"],
                      " | ".join("%.1f" % r["qps"][str(c)] for c in clients),
                      r["p50_ms"], r["p99_ms"], r.get("exec_ms", 0.0), r["buffers"], r["buffers_read"]))
    if results:
        out.append("\nserver ms: the median Execution Time of EXPLAIN (ANALYZE, TIMING OFF) over the "
                   "first %d queries, without the client, the protocol and the parsing of the vector. "
                   "floor: the same prepared statement and parameter returning %d rows with no distance "
                   "(`WHERE $1 IS NOT NULL LIMIT %d`).\n" % (a.explain_queries, K, K))
    if any(r["enable_seqscan_off"] for r in results):
        out.append("\n\\* the planner preferred a sequential scan; run with enable_seqscan = off.")
    out.append("")
    if ratios:
        st = SIZE_TARGETS.get(a.set)
        out.append("quantumdb / pgvector:\n")
        out.append("- index size %.3f (%s)" % (ratios["size"],
                   "target <= %.3f: %s" % (st, "met" if ratios["size"] <= st else "NOT met") if st else "no target"))
        out.append("- build time %.3f (target <= 0.5: %s)"
                   % (ratios["build"], "met" if ratios["build"] <= 1 / 2 else "NOT met"))
        if ratios["build_mem"] is not None:
            out.append("- build memory %.3f" % ratios["build_mem"])
        qt = a.qps_target
        for c in map(str, clients) if results else []:
            r = ratios["qps_%s" % c]
            s = ratios["at_%s" % c]
            rd = ratios["read_%s" % c]
            out.append("- QPS with %s client%s at 10-recall@10 >= 0.95 (fastest such setting each: %s / %s): %s"
                       % (c, "" if c == "1" else "s", s[0], s[1],
                          "%.2f (target >= %g: %s); shared reads per query there %.1f / %.1f"
                          % (r, qt, "met" if r >= qt else "NOT met", rd[0], rd[1]) if r is not None
                          else "n/a (a method never reaches 0.95)"))
            if ratios["server_%s" % c] is not None and c == c0:
                out.append("  - server execution time per query there (EXPLAIN ANALYZE, median of %d "
                           "queries): pgvector / quantumdb %.2f" % (a.explain_queries, ratios["server_%s" % c]))
            if ratios["floor_%s" % c] is not None:
                f = ratios["floor_%s" % c]
                out.append("  - the floor (the same query with no distance work, the slower of its "
                           "real[] and vector forms) runs at %.2fx pgvector's QPS there: %s"
                           % (f, "no index can reach %gx in this run" % qt if f < qt
                              else "%gx is not excluded by the fixed costs" % qt))
        out.append("")
    for name, b in builds.items():
        if b.get("index_info") is not None:
            out.append("%s index_info: %s\n" % (name, json.dumps(b["index_info"])))
    report = "\n".join(out)
    print(report)

    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, "index-%s%s" % (a.set, "-" + a.tag if a.tag else ""))
    with open(stem + ".md", "w") as f:
        f.write(report)
    with open(stem + ".json", "w") as f:
        json.dump({"set": a.set, "rows": rows, "base_rows": nbase, "dims": dim, "metric": metric,
                   "queries": nq, "exact_queries": ne, "truth": truth_src, "server": server,
                   "pgvector": pgv_version, "settings": settings, "args": vars(a),
                   "load_s": load_s, "table_bytes": table_bytes, "emb_bytes": emb_bytes,
                   "quantumdb_skipped": qdb_skip, "builds": builds, "results": results,
                   "ratios": ratios, "total_s": total_s, "build_settings": build_settings,
                   "cgroup": cgroup,
                   "loadavg": [load_start[0], os.getloadavg()[0]]}, f, indent=1)
    if results:
        title = "%s, %d rows, %s" % (a.set, rows, metric)
        if cgroup:
            title += ", server confined to %s" % fmt_mb(cgroup["limit_in_bytes"])
        plot(stem + ".png", results, title, c0)
    log("wrote %s.md, .json%s (%.0f s)" % (stem, ", .png" if results else "", total_s))


if __name__ == "__main__":
    main()
