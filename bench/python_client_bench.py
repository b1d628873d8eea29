#!/usr/bin/env python3
"""The Python client against a running vectord: add and search with vectors as JSON numbers
and as base64, end to end (client encoding, HTTP, server decoding), one client.

Reads a .fvecs file (e.g. ../shared/data/minilm-dev/base.fvecs: 20,000 x 384), adds it in
batches of 500 into a fresh index, once per encoding, then searches the first 1,000 vectors
(k 10) with each encoding, once the items are indexed. Prints documents/s, queries/s and p50, and the time the client
spends only encoding the add bodies. Needs the `vectord` package (clients/python) and numpy.

    target/release/vectord --ephemeral --bind 127.0.0.1:3299 &
    bench/python_client_bench.py http://127.0.0.1:3299 ../shared/data/minilm-dev/base.fvecs
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

from vectord import Client, NotFound
from vectord import _requests as rq


def read_fvecs(path: Path) -> np.ndarray:
    raw = np.fromfile(path, dtype="<i4")
    if raw.size == 0:
        raise SystemExit(f"{path}: empty")
    dim = int(raw[0])
    return raw.reshape(-1, dim + 1)[:, 1:].view("<f4").copy()


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    url, path = sys.argv[1], Path(sys.argv[2])
    if not path.exists():
        raise SystemExit(f"{path} not found: give the path of a .fvecs file (see the data's README)")
    vectors = read_fvecs(path)
    n, dim = vectors.shape
    ids = [f"doc-{i}" for i in range(n)]
    metas = [{"n": i} for i in range(n)]
    queries = vectors[:1000]
    rows = []
    for base64 in (False, True):
        name = f"pybench-{'b64' if base64 else 'json'}"
        client = Client(url, base64_vectors=base64)
        try:
            client.delete_index(name)
        except NotFound:
            pass
        client.create_index(name, dim, "cosine")
        # The client's own cost: encoding every add body, without sending it.
        started = time.perf_counter()
        for part in rq.chunks(n, 500):
            wire = client._wire_vectors(vectors[part.start : part.stop])
            json.dumps(rq.add_batch(name, ids[part.start : part.stop], wire, metas[part.start : part.stop]).body)
        encode_s = time.perf_counter() - started
        started = time.perf_counter()
        client.add(name, ids, vectors, metas, batch_size=500)
        add_s = time.perf_counter() - started
        # Searches run once the items are indexed (sealed), as they would in steady use.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            info = client.get_index(name)
            if info["unsealed_count"] == 0 and not info["indexing"]:
                break
            time.sleep(0.2)
        lat = []
        started = time.perf_counter()
        for q in queries:
            t = time.perf_counter()
            client.search(name, q, k=10)
            lat.append(time.perf_counter() - t)
        search_s = time.perf_counter() - started
        lat.sort()
        rows.append(
            (
                "base64" if base64 else "JSON numbers",
                n / add_s,
                n / encode_s,
                len(queries) / search_s,
                lat[len(lat) // 2] * 1000,
            )
        )
        client.delete_index(name)
        client.close()
    print(f"## Python client: {n} x {dim}, batches of 500, one client; {len(queries)} searches, k 10")
    print("| vectors as | add documents/s | encoding only, documents/s | search queries/s | search p50 ms |")
    print("|---|---|---|---|---|")
    for what, add, enc, qps, p50 in rows:
        print(f"| {what} | {add:,.0f} | {enc:,.0f} | {qps:,.0f} | {p50:.2f} |")
    print(f"base64 / JSON: add {rows[1][1] / rows[0][1]:.2f}x, search {rows[1][3] / rows[0][3]:.2f}x")


if __name__ == "__main__":
    main()
