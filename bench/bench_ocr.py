#!/usr/bin/env python3
"""Measure the OCR pass: pictures/s of `--ocr auto` on a mixed folder (photos without text,
screenshots, scanned pages), the share the selector sends to OCR, and the hit rate of word
queries for words the benchmark itself rendered.

    python bench/bench_ocr.py [--photos 30] [--screens 20] [--scans 10]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import photo_like, random_checkpoint

WORDS = (
    "harbour",
    "lantern",
    "quartz",
    "meadow",
    "falcon",
    "walnut",
    "ember",
    "glacier",
    "saffron",
    "cobalt",
    "juniper",
    "thimble",
    "mosaic",
    "pylon",
    "velvet",
    "orchid",
)


def render_text(words: str, size: tuple[int, int], dark: bool, font_size: int) -> Image.Image:
    background, ink = ((30, 30, 30), (225, 225, 225)) if dark else ((248, 248, 248), (15, 15, 15))
    img = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=font_size)
    y = 40
    for line in words.split("\n"):
        draw.text((40, y), line, fill=ink, font=font)
        y += int(font_size * 1.5)
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=30)
    ap.add_argument("--screens", type=int, default=20)
    ap.add_argument("--scans", type=int, default=10)
    args = ap.parse_args()
    rng = random.Random(3)
    work = Path(tempfile.mkdtemp(prefix="mmsearch-ocr-bench-"))
    try:
        folder = work / "mixed"
        folder.mkdir()
        for i in range(args.photos):
            photo_like((str(folder), i, 1600, 1200))
        truth: dict[str, str] = {}  # unique word → file
        for i in range(args.screens):
            word = f"{rng.choice(WORDS)}{i}"
            text = f"Error {i}: cannot open {word}\nPress OK to continue"
            render_text(text, (1280, 720), dark=i % 3 == 0, font_size=34).save(
                folder / f"screen {i}.png"
            )
            truth[word] = str(folder / f"screen {i}.png")
        for i in range(args.scans):
            word = f"{rng.choice(WORDS)}scan{i}"
            body = "\n".join(
                f"Line {k} of the letter mentions {word if k == 5 else 'nothing'}"
                for k in range(12)
            )
            page = render_text(body, (1240, 1754), dark=False, font_size=30)
            noisy = np.asarray(page, np.int16) + np.random.default_rng(i).normal(
                0, 8, (1754, 1240, 3)
            )
            Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).convert("L").save(
                folder / f"scan {i}.jpg", quality=85
            )
            truth[word] = str(folder / f"scan {i}.jpg")

        from mmsearch import IndexOptions, Library, Settings

        settings = Settings(
            db=str(work / "store"),
            model="ViT-B-32-256",
            pretrained=random_checkpoint("ViT-B-32-256"),
        )
        lib = Library(settings, ask_server=False)
        report = lib.index([str(folder)], IndexOptions(ocr="auto"))
        o = report.ocr
        total = args.photos + args.screens + args.scans
        hits = sum(
            1
            for word, path in truth.items()
            if [h.path for h in lib.search(word, top=1, mode="text")] == [path]
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    read = o.text + o.none + o.failed
    print(
        f"{total} pictures: {args.photos} photos (1600x1200), {args.screens} screenshots "
        f"(1280x720, a third dark), {args.scans} scanned letters (1240x1754, noisy)"
    )
    print(
        f"selector sent {read} of {total} to OCR ({read / total:.0%}); "
        f"{o.skipped} skipped; words found in {o.text}, none in {o.none}, {o.failed} failed"
    )
    print(
        f"OCR pass: {o.seconds:.1f} s, {total / o.seconds:.2f} pictures/s over the folder, "
        f"{o.seconds / max(read, 1):.2f} s per picture read"
    )
    print(
        f"word queries (--mode text): {hits} of {len(truth)} found their file first "
        f"({hits / len(truth):.0%})"
    )


if __name__ == "__main__":
    main()
