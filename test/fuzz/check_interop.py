#!/usr/bin/python3
"""check_interop.py: read QuantumDB model blobs the way a safetensors reader
does, independently of the C code, and check them.

Usage: check_interop.py FILE...   (exit status 1 if any file fails)

For each file: the safetensors rules (u64 little-endian header length, UTF-8
JSON object starting with '{', string-only __metadata__, known dtypes,
data_offsets sorted, contiguous from 0 and ending exactly at the end of the
file, byte counts matching shapes), then QuantumDB's own: header padded with
spaces to a multiple of 8, every metadata key present, shapes matching the
metadata, finite F32 values, and the CRC-32C checksum recomputed in Python.
pattern*.st files must hold i/4 - 3 at every element i.  When the
`safetensors` package is importable, its reader must return the same arrays.
"""
import json
import math
import os
import struct
import sys

import numpy as np

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4,
               "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
META_KEYS = ["format", "format_version", "kind", "metric", "dim", "dim_pq",
             "subvectors", "ksub", "nbits", "checksum", "train.kmeans_iters",
             "train.opq_iters", "train.opq_pq_iters",
             "train.max_points_per_centroid", "train.seed", "train.target_dim"]


def crc32c(data, crc=0):
    """CRC-32C, bit by bit through a table built here (not the C one)."""
    table = crc32c.table
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _table():
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        out.append(c)
    return out


crc32c.table = _table()


def no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate key %r" % k)
        d[k] = v
    return d


def read_safetensors(blob):
    """What a safetensors reader does; returns (metadata, {name: array}, n)."""
    if len(blob) < 8:
        raise ValueError("shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > 100_000_000 or 8 + n > len(blob):
        raise ValueError("bad header length %d" % n)
    text = blob[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        raise ValueError("header does not start with '{'")
    header = json.loads(text, object_pairs_hook=no_duplicates)
    meta = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise ValueError("__metadata__ is not string to string")
    entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"])
    data = blob[8 + n:]
    at = 0
    arrays = {}
    for name, info in entries:
        if set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError("tensor %s has fields %s" % (name, sorted(info)))
        b, e = info["data_offsets"]
        count = math.prod(info["shape"])
        if b != at or e - b != count * DTYPE_BYTES[info["dtype"]]:
            raise ValueError("tensor %s: offsets %s do not follow at %d" % (name, [b, e], at))
        at = e
        if info["dtype"] != "F32":
            raise ValueError("tensor %s is %s" % (name, info["dtype"]))
        arrays[name] = np.frombuffer(data, dtype="<f4", count=count, offset=b).reshape(info["shape"])
    if at != len(data):
        raise ValueError("data section is %d bytes, tensors cover %d" % (len(data), at))
    return meta, arrays, n


def check_quantumdb(path, blob):
    meta, arrays, n = read_safetensors(blob)
    text = blob[8:8 + n].decode("utf-8")
    if n % 8 != 0 or not text.rstrip(" ").endswith("}") or n - len(text.rstrip(" ")) >= 8:
        raise ValueError("header not padded with fewer than 8 spaces to a multiple of 8")
    neural = meta.get("kind") == "neural"
    # kind opq under l2 may keep each row's error in its last code byte
    err = 1 if meta.get("opq.error_byte") == "1" else 0
    # kind rq's settings, each written only when not its 0.6.0 value
    rq_keys = [k for k in ("rq.beam", "rq.eta", "rq.refits") if k in meta and meta["kind"] == "rq"]
    if sorted(meta) != sorted(META_KEYS + (["neural.hidden"] if neural else []) +
                              (["opq.error_byte"] if err else []) + rq_keys):
        raise ValueError("metadata keys %s" % sorted(meta))
    # version 2 is kind rq's (full-width codewords), 1 every other kind's
    version = "2" if meta["kind"] == "rq" else "1"
    if meta["format"] != "quantumdb-compressor" or meta["format_version"] != version:
        raise ValueError("format %s version %s" % (meta["format"], meta["format_version"]))
    dim, dim_pq, m = int(meta["dim"]), int(meta["dim_pq"]), int(meta["subvectors"])
    width = dim_pq if meta["kind"] == "rq" else dim_pq // (m - err)
    want = {"codebooks": (m, 256, width), "mean": (dim,), "linear": (dim_pq, dim)}
    if neural:  # the encoder and decoder (PyTorch's names), no linear map
        h = int(meta["neural.hidden"])
        want.update({"encoder.0.weight": (h, dim), "encoder.0.bias": (h,),
                     "encoder.2.weight": (dim_pq, h), "encoder.2.bias": (dim_pq,),
                     "decoder.weight": (dim, dim_pq), "decoder.bias": (dim,)})
    for name, arr in arrays.items():
        if arr.shape != want[name]:
            raise ValueError("%s has shape %s, metadata says %s" % (name, arr.shape, want[name]))
        if not np.isfinite(arr).all():
            raise ValueError("%s holds non-finite values" % name)
    # The checksum: data, then the header with its 8 hex digits as '0'.
    header = bytearray(blob[8:8 + n])
    field = b'"checksum":"crc32c:'
    at = header.find(field) + len(field)
    stored = header[at:at + 8].decode()
    header[at:at + 8] = b"00000000"
    got = crc32c(header, crc32c(blob[8 + n:]))
    if "%08x" % got != stored:
        raise ValueError("checksum %s, recomputed %08x" % (stored, got))
    if os.path.basename(path).startswith("pattern"):
        for name, arr in arrays.items():
            expect = np.arange(arr.size, dtype=np.float32) / 4 - 3
            if not np.array_equal(arr.ravel(), expect):
                raise ValueError("%s does not hold the pattern" % name)
    try:
        from safetensors.numpy import load
    except ImportError:
        return "own reader"
    theirs = load(bytes(blob))
    if set(theirs) != set(arrays) or not all(np.array_equal(theirs[k], arrays[k]) for k in arrays):
        raise ValueError("the safetensors package reads different arrays")
    return "own reader and the safetensors package"


def main(paths):
    failed = 0
    for path in paths:
        with open(path, "rb") as f:
            blob = f.read()
        try:
            how = check_quantumdb(path, blob)
            print("ok %s (%s)" % (path, how))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            print("FAIL %s: %s" % (path, e))
            failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
