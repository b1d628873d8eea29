#!/usr/bin/env python3
"""Times reading, counting and deleting items by ids or filter against a running vectord.

Creates an index of N seeded vectors (dim 32, metadata {"g": i % 100, "n": i}), then prints,
each the best of 3 runs: get of 1,000 ids, a page of 1,000 items, count by a 1 % filter,
count by a 1 % range, get of a 1 % filter's items, and a delete by a 1 % filter (one change).
Needs only the standard library.

    target/release/vectord --ephemeral --bind 127.0.0.1:3299 &
    bench/items_bench.py http://127.0.0.1:3299 100000
"""
import json
import random
import sys
import time
import urllib.request


def call(base, path, body=None, method=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method or ("POST" if data else "GET"))
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req) as resp:
        text = resp.read()
        return json.loads(text) if text else None


def best_of(runs, work):
    times = []
    out = None
    for _ in range(runs):
        started = time.perf_counter()
        out = work()
        times.append(time.perf_counter() - started)
    return min(times) * 1000, out


def main():
    base = sys.argv[1].rstrip("/")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    name = "items-bench"
    try:
        call(base, f"/vectors/index/{name}", method="DELETE")
    except urllib.error.HTTPError:
        pass
    call(base, "/vectors/index", {"name": name, "dim": 32, "distance": "l2"})
    rng = random.Random(7)
    for start in range(0, n, 2000):
        items = [
            {"id": f"i{i}", "vector": [rng.random() for _ in range(32)], "metadata": {"g": i % 100, "n": i}}
            for i in range(start, min(n, start + 2000))
        ]
        call(base, f"/vectors/index/{name}/add", {"items": items})
    ids = [f"i{rng.randrange(n)}" for _ in range(1000)]
    rows = []
    ms, out = best_of(3, lambda: call(base, f"/vectors/index/{name}/get", {"ids": ids}))
    rows.append(("get of 1,000 ids", ms, len(out["items"])))
    ms, out = best_of(3, lambda: call(base, f"/vectors/index/{name}/get", {"limit": 1000}))
    rows.append(("first page of 1,000 items (id order)", ms, len(out["items"])))
    ms, out = best_of(3, lambda: call(base, f"/vectors/index/{name}/count", {"filter": {"g": 7}}))
    rows.append(("count by a 1 % filter ({\"g\": 7})", ms, out["count"]))
    ms, out = best_of(3, lambda: call(base, f"/vectors/index/{name}/count",
                                          {"filter": {"n": {"$gte": n // 2, "$lt": n // 2 + n // 100}}}))
    rows.append(("count by a 1 % range on n", ms, out["count"]))
    ms, out = best_of(3, lambda: call(base, f"/vectors/index/{name}/get", {"filter": {"g": 7}, "limit": 10000}))
    rows.append(("get of a 1 % filter's items", ms, len(out["items"])))
    ms, out = best_of(1, lambda: call(base, f"/vectors/index/{name}/delete", {"filter": {"g": 3}}))
    rows.append(("delete by a 1 % filter (one change)", ms, out["deleted"]))
    print(f"## items by ids or filter: {n} items, dim 32")
    print("| operation | ms (best of 3; delete once) | items |")
    print("|---|---|---|")
    for what, ms, count in rows:
        print(f"| {what} | {ms:.1f} | {count} |")
    call(base, f"/vectors/index/{name}", method="DELETE")


if __name__ == "__main__":
    main()
