#!/usr/bin/env python3
"""Query latency and recall at scale, on synthetic stores of 10k / 100k / 1M items.

    python bench/bench_search.py --sizes 10000,100000,1000000

Vectors are clustered like CLIP embeddings (2000 centres, each item at cosine ~0.8 to its
centre); the query text is embedded by the real model (random weights). For each size:
build time (snapshot or ANN index), cold one-shot `mmsearch query` (median, with the
MMSEARCH_TIMINGS breakdown, and again with the query vector cached), warm queries through
`mmsearch serve` (p50/p95 in-process client, and a whole client process), the server's RSS,
and recall@10 of the store's search against exact search for 200 data-like queries.
Stores are kept under bench/out/search-N and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import random_checkpoint, timed  # noqa: E402

DIM, CENTRES, CHUNK = 512, 2000, 100_000


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).standard_normal((CENTRES, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, CENTRES, n)] + rng.normal(0, 0.033, (n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(db: Path, settings, n: int) -> tuple[float, np.ndarray]:
    """The store (made once) and all its vectors, for exact search."""
    import pyarrow as pa

    from mmsearch.storage.store import Store, items_schema

    vectors = np.concatenate([clustered(min(CHUNK, n - s), s) for s in range(0, n, CHUNK)])
    if (db / "built").exists():
        return json.loads((db / "built").read_text())["seconds"], vectors
    store = Store(str(db))
    coll = store.create_collection(settings, DIM)
    started = time.perf_counter()
    for s in range(0, n, CHUNK):
        block = vectors[s : s + CHUNK]
        ids = range(s, s + len(block))
        coll.items.add(
            pa.table(
                {
                    "path": [f"/synthetic/{i // 100:05d}/{i:07d}.jpg" for i in ids],
                    "kind": ["image"] * len(block),
                    "t": pa.nulls(len(block), pa.float64()),
                    "t_end": pa.nulls(len(block), pa.float64()),
                    "page": pa.nulls(len(block), pa.int32()),
                    "text": pa.nulls(len(block), pa.string()),
                    "origin": [""] * len(block),
                    "ext": [".jpg"] * len(block),
                    "taken": pa.array([1.6e9 + i for i in ids], pa.float64()),
                    "content_hash": [f"{i:x}" for i in ids],
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(block.ravel()), DIM),
                    "words": pa.nulls(len(block), pa.string()),
                    "grams": pa.nulls(len(block), pa.string()),
                },
                schema=items_schema(DIM),
            )
        )
    coll.optimize()  # the ANN index past its threshold
    seconds = time.perf_counter() - started
    (db / "built").write_text(json.dumps({"seconds": seconds}))
    return seconds, vectors


def recall(settings, vectors: np.ndarray, queries: int = 200) -> tuple[float, float]:
    """(recall@10, median ms) of the path a query takes against exact top 10."""
    from mmsearch.query.filters import Filters
    from mmsearch.storage.snapshot import open_fresh
    from mmsearch.storage.store import open_collection

    probes = clustered(queries, 10**6 + 7)
    snap = open_fresh(settings.db, settings.model_key)
    coll = open_collection(settings)
    found, times = 0, []
    for q in probes:
        exact = set(np.argpartition(-(vectors @ q), 10)[:10].tolist())
        started = time.perf_counter()
        if snap is not None:
            rows = snap.search(q, 10, snap.allowed(Filters()))
        else:
            rows = coll.search(q, 10, None)
        times.append(time.perf_counter() - started)
        got = {int(r["path"].rsplit("/", 1)[1][:-4]) for r in rows}
        found += len(exact & got)
    return found / (10 * queries), statistics.median(times) * 1000


def serve(env: dict[str, str]) -> subprocess.Popen:
    from mmsearch.doors.client import ask

    proc = subprocess.Popen(
        [sys.executable, "-m", "mmsearch", "serve"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while ask(env["MMSEARCH_DB"], {"ping": True}) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"server did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.2)
    return proc


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


CLIENTS = 15  # whole client processes timed against a warm server


def measure(n: int, model: str, pretrained: str, warm_queries: int, cold_runs: int) -> dict:
    from mmsearch.core.config import Settings
    from mmsearch.doors.client import ask
    from mmsearch.storage.snapshot import refresh
    from mmsearch.storage.store import Store

    db = HERE / "out" / f"search-{n}"
    env = {
        **os.environ,
        "MMSEARCH_DB": str(db),
        "MMSEARCH_MODEL": model,
        "MMSEARCH_PRETRAINED": pretrained,
        "MMSEARCH_TIMINGS": "1",
        "MMSEARCH_NO_SERVER": "1",
    }
    settings = Settings(db=str(db), model=model, pretrained=pretrained)
    build_s, vectors = build(db, settings, n)
    store = Store(str(db))  # as an index run leaves it: its registry file and its snapshot
    store.remember()
    refresh(store.collection(settings), changed=False)
    recall10, direct_ms = recall(settings, vectors)
    del vectors

    cli = [sys.executable, "-m", "mmsearch", "query", "-n", "10"]
    stamp = time.time_ns()
    cold, breakdowns = [], []
    for i in range(cold_runs):
        wall, rss, stderr = timed([*cli, f"a red car at night {stamp} {i}"], env)
        cold.append((wall, rss))
        line = next(x for x in stderr.splitlines() if x.startswith("timings: "))
        breakdowns.append(json.loads(line.removeprefix("timings: ")))
    cached = [timed([*cli, f"a red car at night {stamp} 0"], env)[0] for _ in range(cold_runs)]
    phases = {k: statistics.median(b.get(k, 0.0) for b in breakdowns) for k in breakdowns[0]}

    served = {k: v for k, v in env.items() if k not in ("MMSEARCH_NO_SERVER", "MMSEARCH_TIMINGS")}
    server = serve(served)
    try:
        request = {
            "model": model,
            "pretrained": pretrained,
            "filters": {},
            "top": 10,
            "moments": False,
            "mode": "auto",
        }
        warm = []
        for i in range(warm_queries + 3):
            part = {"kind": "text", "value": f"a dog on a beach {stamp} {i}", "weight": 1.0}
            started = time.perf_counter()
            reply = ask(str(db), {**request, "parts": [part]})
            if i >= 3:  # the first few warm the caches
                warm.append(time.perf_counter() - started)
            assert reply and len(reply["hits"]) == 10, reply
        # a whole process is ~0.1 s, where this machine's background shifts a median of 5
        # by 0.03 s from one minute to the next: more runs
        client = [timed([*cli, f"warm client {stamp} {i}"], served)[0] for i in range(CLIENTS)]
        server_rss = peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    warm.sort()
    return {
        "items": n,
        "search": "snapshot (exact)" if (db / "snapshots").exists() else "IVF_FLAT",
        "build_s": round(build_s, 1),
        "recall_at_10": round(recall10, 4),
        "search_only_ms": round(direct_ms, 2),
        "cold_query_s": round(statistics.median(w for w, _ in cold), 3),
        "cold_query_rss_mib": round(max(r for _, r in cold)),
        "cold_breakdown_s": {k: round(v, 3) for k, v in phases.items()},
        "cold_query_cached_vector_s": round(statistics.median(cached), 3),
        "warm_p50_ms": round(warm[len(warm) // 2] * 1000, 1),
        "warm_p95_ms": round(warm[int(len(warm) * 0.95)] * 1000, 1),
        "warm_client_process_s": round(statistics.median(client), 3),
        "server_peak_rss_mib": round(server_rss),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--model", default="ViT-B-32-256")
    ap.add_argument("--pretrained", default=None)
    ap.add_argument("--warm-queries", type=int, default=50)
    ap.add_argument("--cold-runs", type=int, default=5)
    args = ap.parse_args()
    from bench_small import compile_modules

    compile_modules()
    pretrained = args.pretrained or random_checkpoint(args.model)
    for n in (int(s) for s in args.sizes.split(",")):
        print(json.dumps(measure(n, args.model, pretrained, args.warm_queries, args.cold_runs)))


if __name__ == "__main__":
    main()
