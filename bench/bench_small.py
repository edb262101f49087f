#!/usr/bin/env python3
"""Small commands stay small: wall and CPU time (medians of 5 whole processes) of `--help`,
a completion request, `status` on a 100k-item store, a no-op `index` of 10k unchanged files,
and the instant model errors.

    python bench/bench_small.py            # builds its stores under bench/out/small/

The stores are synthetic (random vectors, 1-byte files): these commands never read a
vector or a pixel, only the registry, the file listing and the tables' metadata.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "small"
RUNS = 5


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(args, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def median_of(name: str, args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Medians of RUNS whole processes (after one to warm the caches), printed at once."""
    timed(args, env)
    runs = [timed(args, env) for _ in range(RUNS)]
    result = {
        "wall_s": round(statistics.median(w for w, _ in runs), 3),
        "cpu_s": round(statistics.median(c for _, c in runs), 3),
    }
    print(f"{name:<36} wall {result['wall_s']:6.3f} s   CPU {result['cpu_s']:6.3f} s", flush=True)
    return result


def build_store(db: Path, files: Path, n_files: int, n_items: int) -> None:
    """A store of the default model's key holding `n_files` 1-byte files on disk (so `index`
    over them is a no-op) and `n_items` items with random vectors."""
    from mmsearch.core.config import Settings
    from mmsearch.indexing.index import sync
    from mmsearch.storage.store import Item, Store

    settings = Settings(db=str(db), model="ViT-B-32-256", pretrained="datacomp_s34b_b86k")
    store = Store(str(db))
    with store.writer_lock():
        coll = store.create_collection(settings, 512)
        rng = np.random.default_rng(0)
        files.mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(n_files):
            p = files / f"{i // 1000:02d}" / f"f{i:05d}.jpg"
            p.parent.mkdir(exist_ok=True)
            p.write_bytes(b"x")
            st = p.stat()
            rows.append(
                {
                    "path": str(p),
                    "kind": "image",
                    "size": st.st_size,
                    "mtime_ns": st.st_mtime_ns,
                    "content_hash": f"h{i}",
                    "status": "ok",
                    "reason": None,
                    "items": 1,
                    "ocr": "skipped",
                }
            )
        for start in range(0, n_items, 20_000):
            count = min(20_000, n_items - start)
            vectors = rng.standard_normal((count, 512)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            items = [
                Item(str(files / f"item{start + j}.jpg"), "image", f"h{start + j}", v)
                for j, v in enumerate(vectors)
            ]
            coll.write(items, rows[start : start + count] if start < n_files else [])
        coll.set_roots([str(files)])
        sync(
            store,
            settings,
            [str(files)],
            __import__("mmsearch.indexing.index").index.IndexOptions(),
        )


def compile_modules() -> None:
    """As installed: modules compiled to bytecode once, not on every start (an environment
    with PYTHONDONTWRITEBYTECODE otherwise compiles each edited module in every process)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "mmsearch")], env=env)


def main() -> None:
    env = {**os.environ, "MMSEARCH_NO_SERVER": "1", "HF_HUB_OFFLINE": "1"}
    compile_modules()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("MMSEARCH_MODEL", None)
    env.pop("MMSEARCH_PRETRAINED", None)
    mm = [sys.executable, "-m", "mmsearch"]
    results: dict[str, dict[str, float]] = {}
    results["--help"] = median_of("--help", [*mm, "--help"], env)
    complete = {**env, "_MMSEARCH_COMPLETE": "complete_bash", "COMP_WORDS": "mmsearch in"}
    complete["COMP_CWORD"] = "1"
    results["completion request (bash)"] = median_of("completion request (bash)", mm, complete)
    for name, args in {
        "unknown model name": ["--model", "ViT-B-23"],
        "missing checkpoint": ["--pretrained", "/nowhere/vitb32.pt"],
        "offline tag not cached": ["--model", "ViT-B-32", "--pretrained", "laion2b_s34b_b79k"],
    }.items():
        results[f"error: {name}"] = median_of(f"error: {name}", [*mm, "query", "x", *args], env)
    OUT.mkdir(parents=True, exist_ok=True)
    big = OUT / "store-100k"
    if not (big / "registry.json").exists():
        build_store(big, OUT / "files-100k", 10_000, 100_000)
    store_env = {**env, "MMSEARCH_DB": str(big)}
    results["status, 100k items"] = median_of("status, 100k items", [*mm, "status"], store_env)
    name = "no-op index, 10k unchanged files"
    results[name] = median_of(name, [*mm, "index", str(OUT / "files-100k")], store_env)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
