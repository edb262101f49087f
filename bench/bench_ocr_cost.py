#!/usr/bin/env python3
"""Measure what the OCR selection costs where there is nothing to read: a folder of
photo-sized pictures without text, and a PDF of blank pages without a text layer, indexed
end to end with `--ocr auto` (the OCR extra installed) and with `--ocr never`, runs
interleaved, medians reported.

    python bench/bench_ocr_cost.py [--photos 48] [--size 4000x3000] [--pages 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import photo_like, random_checkpoint  # noqa: E402


def blank_pdf(path: Path, pages: int) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    for _ in range(pages):
        pdf.add_page()
    pdf.output(str(path))


def seconds(folder: Path, mode: str, env: dict[str, str], store: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, the index process and its children) of one run:
    on a machine shared with other work the CPU time is the steadier measure."""
    shutil.rmtree(store, ignore_errors=True)
    cmd = [sys.executable, "-m", "mmsearch", "index", str(folder), "--ocr", mode, "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(cmd, env={**env, "MMSEARCH_DB": str(store)}, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compare(folder: Path, env: dict[str, str], work: Path, runs: int) -> dict[str, float]:
    times: dict[str, list[tuple[float, float]]] = {"never": [], "auto": []}
    seconds(folder, "never", env, work / "warm")  # the model's one-time export, not timed
    for _ in range(runs):
        for mode in times:
            times[mode].append(seconds(folder, mode, env, work / "store"))
    result: dict[str, float] = {}
    for unit, at in (("s", 0), ("cpu_s", 1)):
        never, auto = (statistics.median(t[at] for t in times[m]) for m in ("never", "auto"))
        result |= {f"never_{unit}": round(never, 2), f"auto_{unit}": round(auto, 2)}
        result["ratio" if unit == "s" else "cpu_ratio"] = round(auto / never, 2)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=48)
    ap.add_argument("--size", default="4000x3000")
    ap.add_argument("--pages", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "ocr_cost.json")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="mmsearch-ocr-cost-"))
    env = {
        **os.environ,
        "MMSEARCH_MODEL": "ViT-B-32-256",
        "MMSEARCH_PRETRAINED": random_checkpoint("ViT-B-32-256"),
        "MMSEARCH_NO_SERVER": "1",
    }
    try:
        photos, pages = work / "photos", work / "pages"
        photos.mkdir()
        pages.mkdir()
        for i in range(args.photos):
            photo_like((str(photos), i, w, h))
        blank_pdf(pages / "dividers.pdf", args.pages)
        result = {
            "photos": {
                "count": args.photos,
                "size": args.size,
                **compare(photos, env, work, args.runs),
            },
            "blank_pages": {"count": args.pages, **compare(pages, env, work, args.runs)},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    p, b = result["photos"], result["blank_pages"]
    print(
        f"{p['count']} photos {p['size']} without text: --ocr auto {p['auto_s']} s, "
        f"never {p['never_s']} s ({p['ratio']}x)"
    )
    print(
        f"{b['count']} blank PDF pages: --ocr auto {b['auto_s']} s, never {b['never_s']} s "
        f"({b['ratio']}x)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
