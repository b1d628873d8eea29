#!/usr/bin/env python3
"""vectord against PostgreSQL + pgvector, both from Python, on the same data and machine:
build time, then recall@10 and queries/s at each ef, one client and two.

vectord is driven by its Python client (`vectord`, base64 vectors), PostgreSQL by psycopg
3 with pgvector's adapter (vectors sent in binary, statements prepared). Both build an HNSW
graph with m 16 and ef_construction 200 under cosine distance; a search asks for the 10
nearest with `ef` (`hnsw.ef_search` in PostgreSQL). Recall is against the data set's exact
top-10. Two clients are two processes splitting the queries. At the end, the queries/s of
each at equal recall (interpolated along the other's curve) are compared.

Needs a running vectord and a PostgreSQL with the `vector` extension available (pgvector
0.5 or later, for HNSW), and, besides the `vectord` package and numpy, `psycopg[binary]`
and `pgvector` from PyPI:

    target/release/vectord --ephemeral --bind 127.0.0.1:3299 &
    pip install ./clients/python "psycopg[binary]" pgvector
    bench/pgvector_bench.py http://127.0.0.1:3299 "host=127.0.0.1 port=5432 user=postgres" \\
        ../shared/data/minilm-dev

The data directory holds `base.fvecs`, `query.fvecs` and `groundtruth.cosine.ivecs`
(../shared/data/minilm-dev; its README says what they are).
"""
from __future__ import annotations

import multiprocessing
import sys
import time
from pathlib import Path
from typing import Callable, List, Sequence, Tuple

import numpy as np

from vectord import Client, NotFound

INDEX = "pgvector-bench"
TABLE = "vectord_bench_items"
EFS = (16, 24, 32, 48, 64, 96, 128, 192, 256)
K = 10


def read_vecs(path: Path, dtype: str) -> np.ndarray:
    raw = np.fromfile(path, dtype="<i4")
    if raw.size == 0:
        raise SystemExit(f"{path}: empty")
    dim = int(raw[0])
    return raw.reshape(-1, dim + 1)[:, 1:].view(dtype).copy()


def recall(found: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    hits = sum(len(set(f) & set(truth[i, :K].tolist())) for i, f in enumerate(found))
    return hits / (len(found) * K)


# -- the two systems, each as a search function for one client ------------------------


def vectord_searcher(url: str, ef: int) -> Callable[[np.ndarray], List[int]]:
    client = Client(url)

    def search(q: np.ndarray) -> List[int]:
        return [int(h.id) for h in client.search(INDEX, q, k=K, ef=ef)]

    return search


def pg_searcher(dsn: str, ef: int) -> Callable[[np.ndarray], List[int]]:
    import psycopg
    from pgvector.psycopg import register_vector

    conn = psycopg.connect(dsn, autocommit=True)
    register_vector(conn)
    conn.execute(f"SET hnsw.ef_search = {int(ef)}")
    sql = f"SELECT id FROM {TABLE} ORDER BY embedding <=> %s LIMIT {K}"

    def search(q: np.ndarray) -> List[int]:
        rows = conn.execute(sql, (q,), prepare=True, binary=True).fetchall()
        return [r[0] for r in rows]

    return search


def run_client(args: Tuple[str, str, int, np.ndarray]) -> Tuple[List[List[int]], List[float], float]:
    """One client: its share of the queries, each timed; its results in order."""
    system, target, ef, queries = args
    search = vectord_searcher(target, ef) if system == "vectord" else pg_searcher(target, ef)
    for q in queries[:20]:  # warm the connection (and PostgreSQL's prepared plan)
        search(q)
    found, lat = [], []
    started = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        found.append(search(q))
        lat.append(time.perf_counter() - t)
    return found, lat, time.perf_counter() - started


def measure(system: str, target: str, ef: int, queries: np.ndarray, clients: int, pool) -> Tuple[List[List[int]], float, float]:
    """Results in query order, queries/s over all clients, p50 latency in ms."""
    parts = np.array_split(queries, clients)
    answers = pool.map(run_client, [(system, target, ef, p) for p in parts])
    found = [f for part in answers for f in part[0]]
    lat = sorted(x for part in answers for x in part[1])
    # queries/s: from the clients' own timed loops (start-up of the workers left out)
    qps = sum(len(p) for p in parts) / max(part[2] for part in answers)
    return found, qps, lat[len(lat) // 2] * 1000


# -- loading --------------------------------------------------------------------------


def load_vectord(url: str, base: np.ndarray) -> float:
    """Seconds from the first add to a fully indexed index."""
    client = Client(url)
    try:
        client.delete_index(INDEX)
    except NotFound:
        pass
    client.create_index(INDEX, base.shape[1], "cosine", m=16, ef_construction=200)
    started = time.perf_counter()
    client.add(INDEX, [str(i) for i in range(len(base))], base, batch_size=500)
    client.flush(INDEX)
    while True:
        info = client.get_index(INDEX)
        if info["unsealed_count"] == 0 and not info["indexing"]:
            break
        time.sleep(0.05)
    return time.perf_counter() - started


def load_pg(dsn: str, base: np.ndarray) -> float:
    """Seconds to copy the rows in and build the HNSW index."""
    import psycopg
    from pgvector.psycopg import register_vector

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, embedding vector({base.shape[1]}))")
        started = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy(f"COPY {TABLE} (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["integer", "vector"])
                for i, v in enumerate(base):
                    copy.write_row((i, v))
        conn.execute(
            f"CREATE INDEX ON {TABLE} USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 200)"
        )
        conn.execute(f"VACUUM ANALYZE {TABLE}")
        return time.perf_counter() - started


# -- comparing ------------------------------------------------------------------------


def qps_at(curve: List[Tuple[float, float]], target: float) -> float | None:
    """Queries/s at recall `target` along a curve of (recall, qps) points, interpolated
    between the two points around it (None when the curve never reaches it)."""
    points = sorted(curve)
    for (r0, q0), (r1, q1) in zip(points, points[1:]):
        if r0 <= target <= r1:
            if r1 == r0:
                return max(q0, q1)
            return q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    if points and points[0][0] >= target:
        return points[0][1]  # even the fastest point is past it: at least that fast
    return None


def main() -> None:
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    url, dsn, data = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    needed = [data / "base.fvecs", data / "query.fvecs", data / "groundtruth.cosine.ivecs"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise SystemExit(f"skipped: {', '.join(missing)} not found (give the minilm-dev directory)")
    base = read_vecs(needed[0], "<f4")
    queries = read_vecs(needed[1], "<f4")
    truth = read_vecs(needed[2], "<i4")
    print(f"## vectord against PostgreSQL + pgvector from Python: {len(base)} x {base.shape[1]}, "
          f"{len(queries)} queries, k {K}, m 16, ef_construction 200, cosine")
    built_v = load_vectord(url, base)
    built_p = load_pg(dsn, base)
    print(f"build: vectord {built_v:.1f} s (add to fully indexed), "
          f"pgvector {built_p:.1f} s (COPY + CREATE INDEX)\n")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        for clients in (1, 2):
            curves = {"vectord": [], "pgvector": []}
            print(f"### {clients} client{'s' if clients > 1 else ''}")
            print("| ef | vectord recall@10 | vectord q/s | vectord p50 ms | pgvector recall@10 | pgvector q/s | pgvector p50 ms |")
            print("|---|---|---|---|---|---|---|")
            for ef in EFS:
                row = [str(ef)]
                for system, target in (("vectord", url), ("pgvector", dsn)):
                    found, qps, p50 = measure(system, target, ef, queries, clients, pool)
                    r = recall(found, truth)
                    curves[system].append((r, qps))
                    row += [f"{r:.4f}", f"{qps:,.0f}", f"{p50:.2f}"]
                print("| " + " | ".join(row) + " |")
            for target in (0.95, 0.98, 0.99):
                v, p = qps_at(curves["vectord"], target), qps_at(curves["pgvector"], target)
                if v is None or p is None:
                    print(f"recall {target}: not reached by {'vectord' if v is None else 'pgvector'}")
                else:
                    print(f"recall {target}: vectord {v:,.0f} q/s, pgvector {p:,.0f} q/s: {v / p:.2f}x")
            print()


if __name__ == "__main__":
    main()
