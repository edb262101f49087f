#!/usr/bin/env python3
"""Measure `mmsearch watch`: after a burst of N new photos (then N renames), how long from the
last file operation until the index is exact, and what one small change batch costs.

    python bench/bench_watch.py [--images 500] [--model ViT-B-32-256] [--pretrained CKPT]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lancedb
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import random_checkpoint


def make_photos(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        blocks = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = Image.fromarray(blocks).resize((800, 600), Image.BILINEAR)
        paths.append(folder / f"photo {i:04d}.jpg")
        img.save(paths[-1], quality=90)
    return paths


def ok_paths(db: str) -> set[str]:
    conn = lancedb.connect(db)
    names = [t for t in conn.list_tables().tables if t.startswith("files_")]
    if not names:
        return set()
    rows = conn.open_table(names[0]).to_arrow().to_pylist()
    return {r["path"] for r in rows if r["status"] == "ok"}


def wait_for(db: str, want: set[str], timeout: float = 900) -> float:
    while True:
        if ok_paths(db) == want:
            return time.monotonic()
        if timeout <= 0:
            sys.exit("the index never matched the folder")
        time.sleep(0.1)
        timeout -= 0.1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--model", default="ViT-B-32-256")
    ap.add_argument("--pretrained", default=None)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mmsearch-watch-bench-"))
    try:
        sources = make_photos(work / "src", args.images + 1)
        watched = work / "watched"
        watched.mkdir()
        shutil.copy(sources[-1], watched / "seed.jpg")  # loads the model before the burst
        db = str(work / "store")
        env = {
            **os.environ,
            "MMSEARCH_DB": db,
            "MMSEARCH_MODEL": args.model,
            "MMSEARCH_PRETRAINED": args.pretrained or random_checkpoint(args.model),
        }
        log = (work / "watch.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "mmsearch", "watch", str(watched)],
            env=env,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        wait_for(db, {str(watched / "seed.jpg")})

        burst_start = time.monotonic()
        for src in sources[:-1]:
            shutil.copy(src, watched / src.name)
        last_op = time.monotonic()
        want = {str(p) for p in watched.iterdir()}
        exact = wait_for(db, want)
        new_lag, burst = exact - last_op, last_op - burst_start

        rename_start = time.monotonic()
        for p in sorted(watched.glob("photo *.jpg")):
            p.rename(p.with_name("renamed " + p.name))
        last_op = time.monotonic()
        want = {str(p) for p in watched.iterdir()}
        rename_lag, rename_burst = wait_for(db, want) - last_op, last_op - rename_start

        time.sleep(1)
        (watched / "seed.jpg").unlink()
        last_op = time.monotonic()
        one_lag = wait_for(db, want - {str(watched / "seed.jpg")}) - last_op
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        lines = (work / "watch.log").read_text().splitlines()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    batches = [float(m[1]) for line in lines if (m := re.search(r"\((\d+\.\d) s\)$", line))]
    print(
        f"burst of {args.images} new photos (800x600 JPEG) copied in {burst:.1f} s; "
        f"index exact {new_lag:.1f} s after the last copy "
        f"({args.images / (burst + new_lag):.1f} photos/s overall)"
    )
    print(
        f"burst of {args.images} renames in {rename_burst:.1f} s; index exact "
        f"{rename_lag:.1f} s after the last rename (no re-embedding)"
    )
    print(
        f"one deletion: index exact {one_lag:.2f} s after it "
        f"(settle 0.5 s, twice, plus the write; that batch itself took {batches[-1]:.1f} s)"
    )
    print(f"{len(lines)} change batches logged; batch times (s): {batches}")


if __name__ == "__main__":
    main()
