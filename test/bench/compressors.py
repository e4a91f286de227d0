#!/usr/bin/python3
"""Compressor benchmark: quantumdb pq, opq, rq and neural (trainer/qdb-train,
the same core the SQL functions use) against Faiss PQ16x8, OPQ16x8, RQ15x8
with a norm byte (for rq) and LSQ16x8
(Debian's python3-faiss), trained on the same sample of each dataset in
../shared/data, judged by exhaustive search of the codes on the dataset's
queries against its exact ground truth (gt_ip.ivecs, i.e. cosine, where
present; gt.ivecs, L2, otherwise).  quantumdb and Faiss PQ/OPQ search by
ADC; Faiss LSQ (IndexLocalSearchQuantizer) by its default, the distance to
each decoded vector.  The neural row's Faiss column is LSQ16x8; the targets
table puts neural beside LSQ16x8 and beside Faiss OPQ16x8 + 0.05.

usage: test/bench/compressors.py [--data DIR] [--sample N] [--kinds pq,opq,neural]
                                 [--epochs N] [--rq-beam B] [--rq-eta E] [--rq-refits R]
                                 [--out DIR]
                                 [--no-faiss] [SET ...]
--faiss-kinds K,... runs Faiss for those kinds only (e.g. opq, for the
Faiss OPQ16x8 reference beside rq).
--rq-beam, --rq-eta and --rq-refits are kind rq's beam, eta and refits
(quantumdb.train's); eta applies to the cosine sets only (l2 has no use for it).
--no-faiss leaves the Faiss columns empty (quantumdb alone, e.g. before and
after a trainer change).
Prints markdown tables; ratios are quantumdb / Faiss for the row's pair.
"""
import argparse
import multiprocessing
import os
import re
import subprocess
import sys
import time

import numpy as np
import faiss

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QDB_TRAIN = os.environ.get("QDB_TRAIN", os.path.join(ROOT, "trainer", "qdb-train"))
M = 16


def read_vecs(path, dtype=np.float32):
    a = np.fromfile(path, dtype=np.int32)
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].view(dtype).copy()


def write_fvecs(path, x):
    n, d = x.shape
    out = np.empty((n, d + 1), dtype=np.int32)
    out[:, 0] = d
    out[:, 1:] = x.astype(np.float32).view(np.int32)
    out.tofile(path)


def recalls(ids, gt):
    """10-recall@10, 1-recall@10 from result ids (nq x >=10) and gt."""
    r10 = np.mean([len(set(ids[i, :10]) & set(gt[i, :10])) / 10.0 for i in range(len(gt))])
    r1 = np.mean([gt[i, 0] in ids[i, :10] for i in range(len(gt))])
    return r10, r1


def faiss_run(kind, sample, base, query, gt):
    d = base.shape[1]
    dpad = (d + M - 1) // M * M
    if kind == "neural":
        spec = "LSQ%dx8" % M
        index = faiss.IndexLocalSearchQuantizer(d, M, 8)
    elif kind == "pq":
        # zero padding, as in shared/data/README's reference numbers
        pad = lambda x: np.hstack([x, np.zeros((len(x), dpad - d), np.float32)])
        index = faiss.index_factory(dpad, "PQ%dx8" % M)
        sample, base, query = pad(sample), pad(base), pad(query)
        spec = "PQ%dx8" % M + ("" if d == dpad else " (zero-padded to %d)" % dpad)
    elif kind == "rq":
        # residual quantizer with beam 8 and M - 1 codebooks plus a norm
        # byte, as quantumdb's rq under l2 and cosine (Faiss gets cosine
        # sets normalised, so its L2 order is the cosine order)
        index = faiss.IndexResidualQuantizer(d, M - 1, 8, faiss.METRIC_L2,
                                             faiss.AdditiveQuantizer.ST_norm_qint8)
        index.rq.max_beam_size = 8
        spec = "RQ%dx8_Nqint8 (beam 8)" % (M - 1)
    else:
        spec = "OPQ%d%s,PQ%dx8" % (M, "" if d == dpad else "_%d" % dpad, M)
        index = faiss.index_factory(d, spec)
    t = time.perf_counter()
    index.train(np.ascontiguousarray(sample))
    train_s = time.perf_counter() - t
    index.add(np.ascontiguousarray(base))
    _, ids = index.search(np.ascontiguousarray(query), 100)
    return spec, train_s, recalls(ids, gt)


def _lsq_child(conn, sample, base, query, gt):
    conn.send(faiss_run("neural", sample, base, query, gt))


def faiss_lsq(sample, base, query, gt, limit):
    """Faiss LSQ16x8 in a spawned process (fork is unsafe after OpenMP ran);
    (spec, None, (nan, nan)) when it does not finish within limit seconds."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_lsq_child, args=(child, sample, base, query, gt))
    t = time.perf_counter()
    proc.start()
    if parent.poll(limit):
        out = parent.recv()
        proc.join()
        return out
    proc.terminate()
    proc.join()
    return ("LSQ%dx8 (not done in %.0f s)" % (M, time.perf_counter() - t), None,
            (float("nan"), float("nan")))


def qdb_run(kind, metric, sample_path, ds, gt_name, out, extra, rq_extra):
    model = os.path.join(out, "%s-%s.safetensors" % (os.path.basename(ds), kind))
    r = subprocess.run([QDB_TRAIN, "train", "--quiet", "--input", sample_path, "--kind", kind,
                        "--metric", metric, "--subvectors", str(M), "--out", model]
                       + (extra if kind == "neural" else [])
                       + (rq_extra if kind == "rq" else []),
                       check=True, capture_output=True, text=True)
    train_s = float(re.search(r"seconds=([0-9.]+)", r.stdout).group(1))
    r = subprocess.run([QDB_TRAIN, "eval", "--model", model, "--base", ds + "/base.fvecs",
                        "--query", ds + "/query.fvecs", "--gt", ds + "/" + gt_name],
                       check=True, capture_output=True, text=True)
    r10 = float(re.search(r"recall10@10=([0-9.]+)", r.stdout).group(1))
    r1 = float(re.search(r"recall1@10=([0-9.]+)", r.stdout).group(1))
    return train_s, (r10, r1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    # the rows quantumdb.train samples by default (its `sample` argument), so
    # that the table measures the compressor a user gets; Faiss trains on the
    # same rows
    ap.add_argument("--sample", type=int, default=50000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "bench", "out"))
    ap.add_argument("--kinds", default="pq,opq,neural")
    ap.add_argument("--epochs", type=int, default=None, help="neural epochs (default: the trainer's)")
    ap.add_argument("--lsq-seconds", type=float, default=600,
                    help="time limit of Faiss LSQ16x8's training, adding and search per set")
    ap.add_argument("--rq-beam", type=int, default=None, help="kind rq's beam (default: 8)")
    ap.add_argument("--rq-refits", type=int, default=None, help="kind rq's refits (default: 16)")
    ap.add_argument("--rq-eta", type=float, default=None,
                    help="kind rq's eta on the cosine sets (default: 1)")
    ap.add_argument("--no-faiss", action="store_true", help="quantumdb only")
    ap.add_argument("--faiss-kinds", default=None,
                    help="the kinds Faiss runs for (default: every kind, unless --no-faiss)")
    ap.add_argument("sets", nargs="*")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    sets = args.sets or sorted(s for s in os.listdir(args.data)
                               if os.path.exists(os.path.join(args.data, s, "base.fvecs")))
    print("faiss %s, %d threads; sample %d vectors per set (seed %d); M=%d x 8 bits"
          % (faiss.__version__, faiss.omp_get_max_threads(), args.sample, args.seed, M))
    rows = []
    for name in sets:
        ds = os.path.join(args.data, name)
        cosine = os.path.exists(ds + "/gt_ip.ivecs")
        gt_name = "gt_ip.ivecs" if cosine else "gt.ivecs"
        base = read_vecs(ds + "/base.fvecs")
        query = read_vecs(ds + "/query.fvecs")
        gt = read_vecs(ds + "/" + gt_name, np.int32)
        rng = np.random.default_rng(args.seed)
        idx = rng.permutation(len(base))[:min(args.sample, len(base))]
        sample = base[idx]
        sample_path = os.path.join(args.out, name + "-sample.fvecs")
        write_fvecs(sample_path, sample)
        if cosine:  # Faiss gets normalised vectors; quantumdb normalises itself
            nrm = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
            fs, fb, fq = nrm(sample), nrm(base), nrm(query)
        else:
            fs, fb, fq = sample, base, query
        metric = "cosine" if cosine else "l2"
        extra = ["--epochs", str(args.epochs)] if args.epochs is not None else []
        rq_extra = (["--rq-beam", str(args.rq_beam)] if args.rq_beam is not None else []) + \
            (["--rq-refits", str(args.rq_refits)] if args.rq_refits is not None else []) + \
            (["--rq-eta", str(args.rq_eta)] if args.rq_eta is not None and cosine else [])
        for kind in args.kinds.split(","):
            if args.no_faiss or (args.faiss_kinds is not None
                                 and kind not in args.faiss_kinds.split(",")):
                spec, f_s, (f10, f1) = "-", None, (float("nan"), float("nan"))
            elif kind == "neural":
                spec, f_s, (f10, f1) = faiss_lsq(fs, fb, fq, gt, args.lsq_seconds)
            else:
                spec, f_s, (f10, f1) = faiss_run(kind, fs, fb, fq, gt)
            q_s, (q10, q1) = qdb_run(kind, metric, sample_path, ds, gt_name, args.out, extra,
                                     rq_extra)
            rows.append((name, metric, len(sample), kind, q10, q1, q_s, spec, f10, f1, f_s))
            print("%s %s: quantumdb %.4f/%.4f in %.2fs; faiss %s %.4f/%.4f in %s"
                  % (name, kind, q10, q1, q_s, spec, f10, f1,
                     "-" if f_s is None else "%.2fs" % f_s), file=sys.stderr, flush=True)
    print()
    print("| set | metric | sample | kind | quantumdb 10-recall@10 | 1-recall@10 | train s "
          "| Faiss | 10-recall@10 | 1-recall@10 | train s | recall diff | time ratio |")
    print("|---|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for (name, metric, n, kind, q10, q1, q_s, spec, f10, f1, f_s) in rows:
        fs_txt = "-" if f_s is None else "%.2f" % f_s
        ratio = "-" if f_s is None else "%.2f" % (q_s / f_s)
        print("| %s | %s | %d | %s | %.4f | %.4f | %.2f | %s | %.4f | %.4f | %s | %+.4f | %s |"
              % (name, metric, n, kind, q10, q1, q_s, spec, f10, f1, fs_txt, q10 - f10, ratio))
    by = {(r[0], r[3]): r for r in rows}
    names = [r[0] for r in rows if r[3] == "neural"]
    if names:
        print()
        print("| set | neural 10-recall@10 | Faiss LSQ16x8 | neural - LSQ | Faiss OPQ16x8 + 0.05 "
              "| neural - (OPQ + 0.05) | quantumdb opq | neural - opq |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name in names:
            n10, lsq = by[(name, "neural")][4], by[(name, "neural")][8]
            fopq = by[(name, "opq")][8] if (name, "opq") in by else float("nan")
            qopq = by[(name, "opq")][4] if (name, "opq") in by else float("nan")
            print("| %s | %.4f | %.4f | %+.4f | %.4f | %+.4f | %.4f | %+.4f |"
                  % (name, n10, lsq, n10 - lsq, fopq + 0.05, n10 - fopq - 0.05, qopq, n10 - qopq))


if __name__ == "__main__":
    main()
