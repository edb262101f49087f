#!/usr/bin/env python3
"""Beyond one machine: a store on S3 (moto_server on loopback) against a local one, and the
Ray engine against the local engine on the same cores.

    python bench/bench_dist.py                      # every section
    python bench/bench_dist.py --sections scan,ray  # a subset

Sections: scan (the driver's scan and change detection over N unchanged files, per 100k),
remote (index throughput into a local folder and into s3://, and one-shot query latency:
no snapshot on this machine yet, a cached snapshot, and through `mmsearch serve`, over a
synthetic store of --items vectors), ray (photos per second indexed by the local engine and
by the Ray engine with 1 and 2 actors on a local Ray of --cpus CPUs; Ray's fixed cost per job
measured on a one-photo job). The model is ViT-B-32-256 with random weights (speed does not
depend on them). Results: one JSON object on stdout, a table on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_search import build, serve  # noqa: E402

from bench import make_photos, random_checkpoint  # noqa: E402

OUT = HERE / "out" / "dist"
MODEL = "ViT-B-32-256"


def moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    for _ in range(150):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    import boto3

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=url,
        AWS_ALLOW_HTTP="true",
    )
    boto3.client("s3").create_bucket(Bucket="bench")
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def settings_for(db: str, pretrained: str) -> Any:
    from mmsearch.core.config import Settings

    return Settings(db=db, model=MODEL, pretrained=pretrained)


def bench_scan(n: int) -> dict[str, float]:
    """Scan and diff of `n` unchanged files (the driver's share of every run)."""
    from mmsearch.indexing.index import IndexOptions, index_paths
    from mmsearch.indexing.scan import scan
    from mmsearch.storage.store import Store

    root = OUT / f"tree-{n}"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        for i in range(n):
            folder = root / f"{i // 1000:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:06d}.jpg").write_bytes(b"\xff\xd8")
        (root / "done").write_text("")
    db = OUT / f"scan-store-{n}"
    shutil.rmtree(db, ignore_errors=True)
    settings = settings_for(str(db), "bench-tag")  # never loaded: nothing changes
    found = scan([str(root)], [])
    store = Store(str(db))
    with store.writer_lock():
        coll = store.create_collection(settings, 512)
        for s in range(0, len(found.files), 20_000):
            rows = [
                {
                    "path": e.path,
                    "kind": str(e.kind),
                    "size": e.size,
                    "mtime_ns": e.mtime_ns,
                    "content_hash": f"{i:x}",
                    "status": "ok",
                    "reason": "",
                    "items": 0,
                    "ocr": "none",
                }
                for i, e in enumerate(found.files[s : s + 20_000], s)
            ]
            coll.write([], rows)
        coll.optimize()
    started = time.perf_counter()
    scan([str(root)], [])
    scan_s = time.perf_counter() - started
    started = time.perf_counter()
    coll.records_under([str(root)])
    diff_s = time.perf_counter() - started
    started = time.perf_counter()
    report = index_paths(settings, [str(root)], IndexOptions(ocr="never"))
    run_s = time.perf_counter() - started
    assert report.unchanged == n, report
    per = 100_000 / n
    return {
        "files": n,
        "scan_s_per_100k": scan_s * per,
        "diff_s_per_100k": diff_s * per,
        "unchanged_run_s_per_100k": run_s * per,
    }


def cli_seconds(args: list[str], env: dict[str, str], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "mmsearch", *args], env=env, capture_output=True, text=True
        )
        times.append(time.perf_counter() - started)
        if done.returncode:
            sys.exit(f"mmsearch {' '.join(args)} failed: {done.stderr[-500:]}")
    return statistics.median(times)


def bench_remote(args: Any, pretrained: str, photos: Path) -> dict[str, Any]:
    server, _ = moto()
    try:
        env = {**os.environ, "MMSEARCH_MODEL": MODEL, "MMSEARCH_PRETRAINED": pretrained}
        env["MMSEARCH_NO_SERVER"] = "1"
        rows: dict[str, Any] = {}
        for name, db in (("local", str(OUT / "remote-local")), ("s3", "s3://bench/photos")):
            if name == "local":
                shutil.rmtree(db, ignore_errors=True)
            rows[f"index_{name}_photos_per_s"] = args.photos / cli_seconds(
                ["index", str(photos), "--db", db, "-q", "--ocr", "never"], env, runs=1
            )
        # Queries over a synthetic store of --items vectors, built locally and copied up.
        local = OUT / f"synthetic-{args.items}"
        settings = settings_for(str(local), pretrained)
        build(local, settings, args.items)
        from mmsearch.storage import snapshot
        from mmsearch.storage.store import open_collection

        snapshot.write(open_collection(settings))  # as an indexing run leaves it
        import boto3

        s3 = boto3.client("s3")
        for path in local.rglob("*"):
            if path.is_file() and "snapshots" not in path.parts and path.name != "built":
                key = f"synthetic/{path.relative_to(local)}"
                s3.upload_file(str(path), "bench", key)
        query = ["query", "a red car at night", "--json", "-n", "10"]
        for name, db in (("local", str(local)), ("s3", "s3://bench/synthetic")):
            q = [*query, "--db", db]
            cli_seconds(q, env, runs=1)  # the query vector cached, a snapshot made
            if name == "s3":
                from mmsearch.storage.remote import cache_folder

                def no_snapshot(db: str = db) -> None:
                    shutil.rmtree(cache_folder(db), ignore_errors=True)

                cold = []
                for _ in range(3):
                    no_snapshot()
                    cold.append(cli_seconds(q, env, runs=1))
                rows["query_s3_no_snapshot_s"] = statistics.median(cold)
            rows[f"query_{name}_one_shot_s"] = cli_seconds(q, env)
            served = {**env, "MMSEARCH_DB": db}
            served.pop("MMSEARCH_NO_SERVER")
            proc = serve(served)
            try:
                rows[f"query_{name}_served_s"] = cli_seconds(q, served)
            finally:
                stop(proc)
        rows["items"] = args.items
        return rows
    finally:
        stop(server)


def bench_ray(args: Any, pretrained: str, photos: Path) -> dict[str, Any]:
    import ray

    from mmsearch.indexing.index import IndexOptions
    from mmsearch.library import Library

    one = OUT / "one-photo"
    one.mkdir(parents=True, exist_ok=True)
    shutil.copy(next(photos.glob("*.jpg")), one / "one.jpg")

    def run(engine: str, folder: Path, **options: Any) -> float:
        db = OUT / "ray-store"
        shutil.rmtree(db, ignore_errors=True)
        lib = Library(settings_for(str(db), pretrained), ask_server=False)
        started = time.perf_counter()
        lib.index([str(folder)], IndexOptions(engine=engine, ocr="never", **options))
        return time.perf_counter() - started

    run("local", one)  # the model loaded and exported once, outside every timing
    rows: dict[str, Any] = {"photos": args.photos, "cpus": args.cpus}
    rows["local_photos_per_s"] = args.photos / run("local", photos)
    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    rows["ray_init_s"] = time.perf_counter() - started
    for workers in (1, 2):
        fixed = run("ray", one, ray_workers=workers)
        seconds = run("ray", photos, ray_workers=workers)
        rows[f"ray{workers}_job_fixed_s"] = fixed
        rows[f"ray{workers}_photos_per_s"] = args.photos / seconds
        rows[f"ray{workers}_steady_photos_per_s"] = (args.photos - 1) / max(seconds - fixed, 1e-9)
    ray.shutdown()
    return rows


SECTIONS = ("ray", "scan", "remote")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--files", type=int, default=100_000, help="files for the scan row")
    ap.add_argument("--photos", type=int, default=120, help="photos for the index rows")
    ap.add_argument("--size", default="1600x1200")
    ap.add_argument("--items", type=int, default=50_000, help="vectors for the query rows")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MMSEARCH_CACHE", str(HERE / "out" / "cache"))
    w, h = (int(v) for v in args.size.split("x"))
    photos = OUT / f"photos-{args.photos}-{args.size}"
    pretrained = random_checkpoint(MODEL)
    results: dict[str, Any] = {}
    sections = args.sections.split(",")
    if "remote" in sections or "ray" in sections:
        make_photos(photos, args.photos, w, h)
    runs = {
        "scan": lambda: bench_scan(args.files),
        "remote": lambda: bench_remote(args, pretrained, photos),
        "ray": lambda: bench_ray(args, pretrained, photos),
    }
    for section in SECTIONS:
        if section not in sections:
            continue
        results[section] = rows = runs[section]()
        for key, value in rows.items():  # shown as each section ends: a later one may fail
            shown = f"{value:.3f}" if isinstance(value, float) else value
            print(f"{section:7} {key:32} {shown}", file=sys.stderr, flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
