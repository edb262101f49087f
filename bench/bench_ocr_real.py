#!/usr/bin/env python3
"""What `--ocr auto` costs on real photos without words, and what it finds on pictures with
words.

    python bench/bench_ocr_real.py [--photos 96] [--runs 3]

Photos: every photograph scikit-image ships (astronaut, coffee, coins, the moon, a
silhouette of a horse, ...), mirrored, cropped and turned, resized to 4000x3000 JPEGs (q90).
Pictures with words, made here: signs drawn on those photos, screenshots (light and dark),
slides (one on dark blue), phone-camera scans (small print, noise, turned 1 to 1.5°), and
scikit-image's scanned page and photo of a wall with words.

1. The selector, picture by picture: how many photos it sends to the OCR engine (false
   positives), how many pictures with words (recall), and the time of each stage (the first
   look, the detector's look, the reading), medians.
2. The words found: for each picture with words, whether `auto` reads its key words.
3. End to end: `mmsearch index --ocr auto` against `--ocr never` on the photos (the OCR
   extra installed; a random ViT-B-32-256 embeds), runs interleaved, medians of `--runs`.

Works on older trees too (where `ocr.worth_reading` did not exist, the first look was all).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_ocr_cost import compare  # noqa: E402

from bench import random_checkpoint  # noqa: E402

PHOTOS = (
    *("astronaut", "brick", "camera", "cat", "cell", "chelsea", "clock", "coffee", "coins"),
    *("colorwheel", "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry"),
    *("logo", "microaneurysms", "moon", "retina", "rocket", "motorcycle"),
)
SIGNS = (
    *("EXIT", "MAIN STREET", "PHARMACY", "Bakery open daily", "NO PARKING", "Platform 4"),
    *("Harbour Road", "Library"),
)


def skimage_photo(name: str) -> Image.Image:
    from skimage import data

    pixels = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    pixels = pixels.astype(np.float32)
    low, high = float(pixels.min()), float(pixels.max())
    return Image.fromarray((255 * (pixels - low) / max(high - low, 1e-9)).astype(np.uint8)).convert(
        "RGB"
    )


def photos(n: int, size: tuple[int, int]) -> Iterator[tuple[str, Image.Image]]:
    base = [skimage_photo(p) for p in PHOTOS]
    for i in range(n):
        im, variant = base[i % len(base)], (i // len(base)) % 4
        w, h = im.size
        if variant == 1:
            im = ImageOps.mirror(im)
        elif variant == 2:
            im = im.crop((w // 8, h // 8, w - w // 8, h - h // 8))
        elif variant == 3:
            im = ImageOps.autocontrast(im.rotate(90, expand=True))
        yield f"photo {i:03d} {PHOTOS[i % len(base)]}", im.resize(size, Image.LANCZOS)


def font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


def with_words(size: tuple[int, int]) -> list[tuple[str, Image.Image, str]]:
    """(name, picture, a word it holds)."""
    rng = random.Random(2)
    out: list[tuple[str, Image.Image, str]] = []
    bases = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle", "brick", "grass", "retina")
    for base, sign in zip(bases, SIGNS, strict=True):
        im = skimage_photo(base).resize(size, Image.LANCZOS)
        draw = ImageDraw.Draw(im)
        f = font(rng.choice([160, 220, 300]))
        box = draw.textbbox((0, 0), sign, font=f)
        x, y = rng.randint(100, 600), rng.randint(100, 1500)
        plate = rng.choice([(20, 90, 40), (250, 250, 250), (30, 40, 140)])
        draw.rectangle((x - 40, y - 40, x + box[2] + 40, y + box[3] + 40), fill=plate)
        ink = (0, 0, 0) if plate == (250, 250, 250) else (255, 255, 255)
        draw.text((x, y), sign, font=f, fill=ink)
        out.append((f"sign {sign}", im, sign.split()[0]))
    for i in range(4):
        dark = i % 2 == 1
        im = Image.new("RGB", (1920, 1080), (30, 30, 34) if dark else (250, 250, 250))
        draw = ImageDraw.Draw(im)
        draw.rectangle((0, 0, 1920, 60), fill=(60, 110, 200))
        draw.text((20, 14), f"Settings window {i}", font=font(28), fill=(255, 255, 255))
        for r in range(20):
            line = f"Line {r}: the quick brown fox jumps over the lazy dog, item {r * 7}"
            draw.text(
                (40, 90 + 45 * r), line, font=font(22), fill=(220,) * 3 if dark else (20,) * 3
            )
        out.append((f"screen {i}", im, "quick"))
    for i, background in enumerate([(255, 255, 255), (240, 235, 220), (20, 50, 90), (0, 0, 0)]):
        im = Image.new("RGB", (1920, 1080), background)
        draw = ImageDraw.Draw(im)
        ink = (0, 0, 0) if background[0] > 128 else (255, 255, 255)
        draw.text((120, 100), f"Budget review {2020 + i}", font=font(80), fill=ink)
        for r in range(4):
            draw.text(
                (160, 320 + 110 * r), f"- Point {r + 1} on travel costs", font=font(48), fill=ink
            )
        out.append((f"slide {i}", im, "Budget"))
    for i in range(4):
        im = Image.new("L", (2480, 3508), 245)
        draw = ImageDraw.Draw(im)
        for r in range(40):
            line = "The tenant agrees to pay the rent on the first day of each month."
            draw.text((200, 250 + 75 * r), line, font=font(40), fill=30)
        noise = np.random.default_rng(i).normal(0, 8, (3508, 2480))
        page = Image.fromarray((np.asarray(im, np.float32) + noise).clip(0, 255).astype(np.uint8))
        out.append((f"scan {i}", page.rotate(rng.uniform(-1.5, 1.5), fillcolor=245), "tenant"))
    out.append(("scikit-image page", skimage_photo("page").resize((1600, 1200)), "segmentation"))
    out.append(("scikit-image text", skimage_photo("text").resize((2000, 1200)), "chemistry"))
    return out


def jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def judge(data: bytes) -> dict[str, float | bool | str]:
    """One picture through `auto`'s stages as the indexer runs them, each timed."""
    from mmsearch.indexing import ocr
    from mmsearch.indexing.extract.image import load_image

    row: dict[str, float | bool | str] = {}
    started = time.perf_counter()
    first = ocr.looks_like_text(load_image(data, ocr.SELECTOR_SIDE))
    row["first_look_s"], row["first"] = time.perf_counter() - started, first
    picture = load_image(data, ocr.MAX_SIDE) if first else None
    selected = first
    if first and hasattr(ocr, "holds_text"):
        started = time.perf_counter()
        selected = ocr.holds_text(picture)
        row["detector_s"] = time.perf_counter() - started
    row["selected"] = selected
    if selected:
        started = time.perf_counter()
        read = ocr.read_lines(picture) if hasattr(ocr, "read_lines") else None
        row["words"] = " ".join(t for t, _ in read) if read is not None else ocr.read_words(picture)
        row["read_s"] = time.perf_counter() - started
    return row


def median_of(rows: list[dict], key: str) -> float | None:
    values = [float(r[key]) for r in rows if key in r]
    return round(statistics.median(values), 3) if values else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=96)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-index", action="store_true", help="only the selector and the words")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "ocr_real.json")
    args = ap.parse_args()
    size = (4000, 3000)
    work = Path(tempfile.mkdtemp(prefix="mmsearch-ocr-real-"))
    try:
        folder = work / "photos"
        folder.mkdir()
        photo_rows = []
        for name, im in photos(args.photos, size):
            data = jpeg(im)
            (folder / f"{name}.jpg").write_bytes(data)
            photo_rows.append({"name": name, **judge(data)})
        word_rows = []
        for name, im, word in with_words(size):
            row = {"name": name, **judge(jpeg(im))}
            row["found"] = word.lower() in str(row.get("words", "")).lower()
            word_rows.append(row)
        result: dict = {
            "photos": len(photo_rows),
            "photos_first_look": sum(bool(r["first"]) for r in photo_rows),
            "photos_read": sum(bool(r["selected"]) for r in photo_rows),
            "pictures_with_words": len(word_rows),
            "selected": sum(bool(r["selected"]) for r in word_rows),
            "words_found": sum(bool(r["found"]) for r in word_rows),
            "first_look_s": median_of(photo_rows + word_rows, "first_look_s"),
            "detector_s": median_of(photo_rows + word_rows, "detector_s"),
            "read_s": median_of(photo_rows + word_rows, "read_s"),
            "missed": [r["name"] for r in word_rows if not r["found"]],
        }
        if not args.skip_index:
            env = {
                **os.environ,
                "MMSEARCH_MODEL": "ViT-B-32-256",
                "MMSEARCH_PRETRAINED": random_checkpoint("ViT-B-32-256"),
                "MMSEARCH_NO_SERVER": "1",
            }
            result["index"] = compare(folder, env, work, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{result['photos']} real photos 4000x3000 without words: {result['photos_read']} read "
        f"({result['photos_first_look']} past the first look)\n"
        f"{result['pictures_with_words']} pictures with words: {result['selected']} selected, "
        f"words found in {result['words_found']} (missed: {', '.join(result['missed'])})\n"
        f"stages, median per picture: first look {result['first_look_s']} s, detector "
        f"{result['detector_s']} s, reading {result['read_s']} s"
    )
    if "index" in result:
        i = result["index"]
        print(
            f"index: --ocr auto {i['auto_s']} s, never {i['never_s']} s ({i['ratio']}x); CPU "
            f"{i['auto_cpu_s']} s against {i['never_cpu_s']} s ({i['cpu_ratio']}x)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
