#!/usr/bin/env python3
"""quantumdb.autotune against the default settings and a grid run by hand
in the same time, on one set: each trains on the same seeded sample and
reports 10-recall@10 of exhaustive ADC on the same held-out rows (the
validation split quantumdb.train and autotune draw alike for one seed,
sample and validation).

  1. default: quantumdb.train with only name, table, column and metric;
  2. autotune with --budget minutes (the default objective unless
     --quality-only, which scores recall alone);
  3. grid: quantumdb.train over kind x target_dim, in the order a user
     would try them (defaults first), started while the time autotune took
     is not used up; the best recall counts.

Writes DIR/autotune-SET.md (the three side by side, the chosen settings,
the trials per stage) and DIR/autotune-SET.png (score against trial,
coloured by stage).  Needs a table items (id, emb real[]) of the set in the
database of the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE),
as index.py --build-only loads it.

  test/bench/autotune.py --set glove-100-angular --metric cosine \\
      [--budget 10] [--sample 50000] [--out DIR]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from index import connect  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 42
VALIDATION = 500


def train(cur, name, metric, sample, **kw):
    """quantumdb.train with kw; (recall, seconds, wall seconds)."""
    args = "".join(", %s => %%(%s)s" % (k, k) for k in kw)
    cur.execute("SELECT quantumdb.drop_compressor(%(n)s, true)", {"n": name})
    t0 = time.time()
    cur.execute("SELECT validation_recall, training_seconds FROM quantumdb.train("
                "%(n)s, 'items', 'emb', metric => %(metric)s, sample => %(sample)s, "
                "validation => %(val)s, seed => %(seed)s" + args + ")",
                dict(kw, n=name, metric=metric, sample=sample, val=VALIDATION, seed=SEED))
    recall, seconds = cur.fetchone()
    wall = time.time() - t0
    cur.execute("SELECT quantumdb.drop_compressor(%(n)s)", {"n": name})
    return recall, seconds, wall


def grid_points(dim):
    """kind x target_dim as a user would try them: defaults first."""
    pts = [{"kind": k} for k in ("opq", "pq", "rq", "neural")]
    for dps in (8, 4, 32):
        for k in ("opq", "rq", "pq", "neural"):
            if dps * 16 < dim:
                pts.append({"kind": k, "target_dim": dps * 16})
    return pts


def plot(trials, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for stage, colour in ((1, "tab:blue"), (2, "tab:orange"), (3, "tab:green")):
        pts = [(t["trial"], t["score"]) for t in trials
               if t["stage"] == stage and t["score"] is not None]
        if pts:
            ax.scatter(*zip(*pts), c=colour, label="stage %d" % stage, s=18)
        pr = [t["trial"] for t in trials if t["stage"] == stage and t["status"] != "done"]
        if pr:
            lo = min([t["score"] for t in trials if t["score"] is not None] or [0])
            ax.scatter(pr, [lo] * len(pr), marker="x", c=colour, s=18)
    ax.set_xlabel("trial (x: pruned, skipped or over budget)")
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", required=True)
    ap.add_argument("--metric", required=True, choices=("l2", "cosine", "ip"))
    ap.add_argument("--budget", type=float, default=10, help="minutes")
    ap.add_argument("--sample", type=int, default=50000)
    ap.add_argument("--quality-only", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "test/bench/plots"))
    a = ap.parse_args()
    conn = connect()
    cur = conn.cursor()
    cur.execute("SET client_min_messages = warning")
    cur.execute("SELECT array_length(emb, 1) FROM items LIMIT 1")
    dim = cur.fetchone()[0]

    d_recall, d_seconds, d_wall = train(cur, "bench_default", a.metric, a.sample)
    print("default: recall %.4f in %.1f s" % (d_recall, d_wall), flush=True)

    weights = ", w_quality => 1, w_compression => 0, w_speed => 0, w_memory => 0" \
        if a.quality_only else ""
    cur.execute("SELECT quantumdb.drop_compressor('bench_tuned', true)")
    t0 = time.time()
    cur.execute("SELECT run, kind, settings, validation_recall, score, trials, pruned, "
                "skipped, seconds, index_options FROM quantumdb.autotune('bench_tuned', "
                "'items', 'emb', %%(metric)s, budget => %%(budget)s::interval, sample => "
                "%%(sample)s, validation => %%(val)s, seed => %%(seed)s%s)" % weights,
                {"metric": a.metric, "budget": "%g minutes" % a.budget, "sample": a.sample,
                 "val": VALIDATION, "seed": SEED})
    run, kind, settings, t_recall, t_score, ntrials, npruned, nskipped, t_seconds, opts = \
        cur.fetchone()
    t_wall = time.time() - t0
    cur.execute("SELECT quantumdb.drop_compressor('bench_tuned')")
    print("autotune: %s recall %.4f score %.4f in %.1f s" % (kind, t_recall, t_score, t_wall),
          flush=True)
    cur.execute("SELECT trial, stage, kind, settings, training_rows, quality, compression, "
                "speed, memory, score, seconds, status FROM quantumdb.autotune_trials "
                "WHERE run = %s ORDER BY trial", (run,))
    cols = [c.name for c in cur.description]
    trials = [dict(zip(cols, r)) for r in cur.fetchall()]

    grid = []
    g0 = time.time()
    for p in grid_points(dim):
        if time.time() - g0 >= t_wall:
            break
        r, s, w = train(cur, "bench_grid", a.metric, a.sample, **p)
        grid.append((p, r, w))
        print("grid %s: recall %.4f in %.1f s" % (json.dumps(p), r, w), flush=True)
    g_wall = time.time() - g0
    best = max(grid, key=lambda g: g[1])

    os.makedirs(a.out, exist_ok=True)
    name = "autotune-%s%s" % (a.set, "-quality" if a.quality_only else "")
    png = os.path.join(a.out, name + ".png")
    has_plot = plot(trials, png, "%s: autotune trials, %g-minute budget" % (a.set, a.budget))
    with open(os.path.join(a.out, name + ".md"), "w") as f:
        f.write("# quantumdb.autotune on %s (%s, %d dims)\n\n" % (a.set, a.metric, dim))
        f.write("`test/bench/autotune.py --set %s --metric %s --budget %g --sample %d%s`; "
                "seed %d, %d held-out rows; 10-recall@10 of exhaustive ADC on the same "
                "held-out rows for all three.  Objective: %s.\n\n"
                % (a.set, a.metric, a.budget, a.sample,
                   " --quality-only" if a.quality_only else "", SEED, VALIDATION,
                   "quality alone" if a.quality_only else
                   "the default (0.4 quality + 0.1 compression + 0.4 speed - 0.1 memory)"))
        f.write("| what | recall | wall seconds | settings |\n|---|---|---|---|\n")
        f.write("| default `quantumdb.train` | %.4f | %.1f | kind opq |\n" % (d_recall, d_wall))
        f.write("| autotune (score %.4f) | %.4f | %.1f | %s; %s |\n"
                % (t_score, t_recall, t_wall, json.dumps(settings, sort_keys=True), opts))
        f.write("| best of a grid by hand, %d trainings in %.1f s | %.4f | %.1f | %s |\n\n"
                % (len(grid), g_wall, best[1], best[2], json.dumps(best[0])))
        f.write("Ratios: autotune / default recall %.3f, autotune / grid best %.3f.  "
                "Trials: %d (%d pruned, %d skipped).\n\n"
                % (t_recall / d_recall, t_recall / best[1], ntrials, npruned, nskipped))
        if has_plot:
            f.write("![trials](%s)\n\n" % os.path.basename(png))
        f.write("## Trials\n\n| trial | stage | kind | rows | quality | compression | speed | "
                "memory | score | seconds | status | settings |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
        for t in trials:
            num = lambda v: "" if v is None else "%.4f" % v  # noqa: E731
            f.write("| %d | %d | %s | %d | %s | %s | %s | %s | %s | %s | %s | `%s` |\n"
                    % (t["trial"], t["stage"], t["kind"], t["training_rows"], num(t["quality"]),
                       num(t["compression"]), num(t["speed"]), num(t["memory"]),
                       num(t["score"]), num(t["seconds"]), t["status"],
                       json.dumps(t["settings"], sort_keys=True)))
        f.write("\n## Grid\n\n| settings | recall | wall seconds |\n|---|---|---|\n")
        for p, r, w in grid:
            f.write("| `%s` | %.4f | %.1f |\n" % (json.dumps(p), r, w))
    print("wrote", os.path.join(a.out, name + ".md"))


if __name__ == "__main__":
    main()
