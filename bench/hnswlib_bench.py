#!/usr/bin/env python3
"""hnswlib on the same data as vectord-bench, for the ratio in docs/benchmarks.md.

Builds an hnswlib index (M 16, ef_construction 200, all cores) over base.fvecs of a data set
directory (e.g. ../shared/data/minilm-dev), then runs every query of query.fvecs on one
thread at each ef, and prints (or writes) recall@10 and queries/s as JSON. Queries go to
hnswlib in one call per ef with num_threads=1, so no Python overhead is counted per query.

    pip install hnswlib numpy
    python3 bench/hnswlib_bench.py --data ../shared/data/minilm-dev --json out.json

Not part of `cargo test`: vectord-bench runs it when given --hnswlib.
"""
import argparse
import json
import os
import sys
import time


def installed_version():
    """The installed hnswlib's version (the module itself does not say it)."""
    try:
        import importlib.metadata

        return importlib.metadata.version("hnswlib")
    except Exception:
        return "?"


def read_vecs(path, dtype):
    import numpy as np

    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    rows = raw.reshape(-1, dim + 1)[:, 1:]
    return rows.view(dtype) if dtype != np.int32 else rows


def main():
    import numpy as np
    import hnswlib

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--ef", default="16,24,32,48,64,96,128,256")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--space", default="cosine", choices=["cosine", "l2", "ip"])
    ap.add_argument("--json")
    args = ap.parse_args()

    base = np.ascontiguousarray(read_vecs(os.path.join(args.data, "base.fvecs"), np.float32))
    queries = np.ascontiguousarray(
        read_vecs(os.path.join(args.data, "query.fvecs"), np.float32)[: args.queries]
    )
    truth_file = "groundtruth.cosine.ivecs" if args.space == "cosine" else "groundtruth.ivecs"
    truth = read_vecs(os.path.join(args.data, truth_file), np.int32)[
        : len(queries), : args.k
    ]
    n, dim = base.shape
    index = hnswlib.Index(space=args.space, dim=dim)
    index.init_index(max_elements=n, M=16, ef_construction=200, random_seed=100)
    started = time.perf_counter()
    index.add_items(base, np.arange(n), num_threads=os.cpu_count())
    build_s = time.perf_counter() - started

    rows = []
    for ef in [int(e) for e in args.ef.split(",")]:
        index.set_ef(max(ef, args.k))
        index.knn_query(queries[:50], k=args.k, num_threads=1)  # warm up
        best = 0.0
        labels = None
        for _ in range(3):
            started = time.perf_counter()
            labels, _ = index.knn_query(queries, k=args.k, num_threads=1)
            best = max(best, len(queries) / (time.perf_counter() - started))
        hits = sum(len(set(l) & set(t)) for l, t in zip(labels.tolist(), truth.tolist()))
        rows.append(
            {"ef": ef, "recall_at_10": hits / (len(queries) * args.k), "qps_1_thread": best}
        )
    report = {
        "library": "hnswlib " + installed_version(),
        "vectors": n,
        "dim": dim,
        "m": 16,
        "ef_construction": 200,
        "build_vectors_per_s": n / build_s,
        "search": rows,
    }
    text = json.dumps(report, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    try:
        main()
    except ImportError as e:
        print(f"hnswlib_bench: {e}; install with: pip install hnswlib numpy", file=sys.stderr)
        sys.exit(2)
