#!/usr/bin/python3
"""How cost grows with the rows (index.sh --growth): reads the index.py
reports (.json) of one set at several row counts and writes a table and a
log-log plot of build time (with quantumdb's training), build memory, index
size and QPS at the fastest setting reaching 10-recall@10 >= 0.95, for
quantumdb and pgvector, against rows.

usage: growth.py --out STEM REPORT.json...   (writes STEM.md and STEM.png)
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from index import best_at, fmt_mb  # noqa: E402

METHODS = (("quantumdb", "quantumdb"), ("pgvector", "pgvector hnsw"))   # builds key, results name
# (title, unit, value of one build / best row)
PANELS = (
    ("build time (with training)", "s", lambda b, r: b["build_s"]),
    ("build memory (peak)", "MB", lambda b, r: b["mem"] / 1048576.0),
    ("index size", "MB", lambda b, r: b["size"] / 1048576.0),
    ("QPS at 10-recall@10 >= 0.95", "queries/s", lambda b, r: r["qps"][CLIENT] if r else None),
)
CLIENT = "1"


def points(reports):
    """{method: [(rows, build, best row or None)]} ordered by rows."""
    out = {}
    for rep in sorted(reports, key=lambda r: r["rows"]):
        for key, name in METHODS:
            if key in rep["builds"]:
                out.setdefault(key, []).append((rep["rows"], rep["builds"][key],
                                                best_at(rep["results"], name, CLIENT)))
    return out


def table(reports, pts):
    r0 = reports[0]
    out = ["# How cost grows: %s\n" % r0["set"],
           "%s, metric %s, %d queries, QPS with %s client at the fastest setting reaching "
           "10-recall@10 >= 0.95 (ground truth: each report's own, exact for its rows).\n"
           % (r0["set"], r0["metric"], r0["queries"], CLIENT),
           "| rows | index | build s | build memory | size | QPS at >= 0.95 | setting (recall) |",
           "|---:|---|---:|---:|---:|---:|---|"]
    rows = sorted({n for p in pts.values() for n, _, _ in p})
    for n in rows:
        for key, _ in METHODS:
            for m, b, r in pts.get(key, []):
                if m == n:
                    out.append("| %d | %s | %.1f | %s | %s | %s | %s |"
                               % (n, key, b["build_s"], fmt_mb(b["mem"]), fmt_mb(b["size"]),
                                  "%.1f" % r["qps"][CLIENT] if r else "n/a",
                                  "%s (%.3f)" % (r["setting"], r["recall"]) if r else "never reached"))
    return "\n".join(out) + "\n"


def plot(path, title, pts):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    for ax, (name, unit, value) in zip(axes.flat, PANELS):
        for i, (key, _) in enumerate(METHODS):
            xy = [(n, value(b, r)) for n, b, r in pts.get(key, [])]
            xy = [(x, y) for x, y in xy if y]
            if xy:
                ax.plot(*zip(*xy), marker="o", color="C%d" % i, label=key)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows (log)")
        ax.set_ylabel("%s (log)" % unit)
        ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output stem (STEM.md, STEM.png)")
    ap.add_argument("reports", nargs="+", help="index.py .json reports")
    a = ap.parse_args()
    reports = []
    for p in a.reports:
        with open(p) as f:
            reports.append(json.load(f))
    pts = points(reports)
    text = table(reports, pts)
    print(text)
    with open(a.out + ".md", "w") as f:
        f.write(text)
    plot(a.out + ".png", "%s: cost against rows" % reports[0]["set"], pts)
    print("== wrote %s.md, .png" % a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
