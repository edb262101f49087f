#!/usr/bin/env python3
"""Measure mmsearch on this machine: indexing images/s end to end against the model's
forward-only ceiling, cold one-shot query latency, and peak memory.

    python bench/bench.py                    # 200 photo-sized JPEGs, default architecture
    python bench/bench.py --images 50 --dir /tmp/photos --pretrained my.ckpt

With no --pretrained, a random-weight checkpoint of the model's architecture is made
(speed does not depend on the weight values; no download needed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent


def photo_like(args: tuple[str, int, int, int]) -> None:
    """A seeded 'photo': gradient, shapes, blur and sensor noise, saved as JPEG q90."""
    out, i, w, h = args
    rng = np.random.default_rng(1000 + i)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None] * rng.uniform(0.3, 1)
    t = t + np.linspace(0, 1, h, dtype=np.float32)[:, None, None] * rng.uniform(0, 0.7)
    img = Image.fromarray(np.clip(c0 + (c1 - c0) * t, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(8, 30))):
        x, y = int(rng.integers(-300, w)), int(rng.integers(-300, h))
        bw, bh = (int(v) for v in rng.integers(80, 1200, 2))
        draw.ellipse([x, y, x + bw, y + bh], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(1, 4))))
    noisy = np.asarray(img, dtype=np.int16) + rng.normal(0, 6, (h, w, 3)).astype(np.int16)
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(
        f"{out}/photo_{i:04d}.jpg", quality=90
    )


def make_photos(folder: Path, n: int, w: int, h: int) -> None:
    have = len(list(folder.glob("photo_*.jpg")))
    if have >= n:
        return
    folder.mkdir(parents=True, exist_ok=True)
    with Pool(os.cpu_count() or 1) as pool:
        pool.map(photo_like, [(str(folder), i, w, h) for i in range(have, n)])


def random_checkpoint(model: str) -> str:
    path = HERE / "out" / f"{model}-random.safetensors"
    if not path.exists():
        import open_clip
        import torch
        from safetensors.torch import save_file

        torch.manual_seed(0)
        net = open_clip.create_model(model, pretrained=None)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return str(path)


VIDEO_SOURCES = ("testsrc2", "smptehdbars", "mandelbrot", "rgbtestsrc", "zoneplate", "life")


def make_video(path: Path, seconds: int) -> None:
    """1080p30 H.264 with a 1 s GOP (like a phone's), cut between test patterns."""
    if path.exists():
        return
    from mmsearch.extract.video import ffmpeg_binary

    part = seconds / len(VIDEO_SOURCES)
    inputs: list[str] = []
    for src in VIDEO_SOURCES:
        inputs += ["-f", "lavfi", "-i", f"{src}=s=1920x1080:r=30"]
    trims = "".join(
        f"[{i}]trim=duration={part},setpts=PTS-STARTPTS[v{i}];" for i in range(len(VIDEO_SOURCES))
    )
    joined = "".join(f"[v{i}]" for i in range(len(VIDEO_SOURCES)))
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            ffmpeg_binary(),
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            *inputs,
            "-filter_complex",
            f"{trims}{joined}concat=n={len(VIDEO_SOURCES)}:v=1:a=0",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "30",
            str(path),
        ],
        check=True,
    )


def keyframe_cost(path: Path, seconds: int, size: int) -> tuple[float, float]:
    """(CPU seconds per hour of video, frames kept per minute) of frame extraction."""
    from mmsearch.config import VideoOptions
    from mmsearch.extract.video import keyframes

    before = os.times()
    frames = keyframes(str(path), size, VideoOptions())
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return cpu / seconds * 3600, len(frames) / seconds * 60


def startup_latency(env: dict[str, str], runs: int = 5) -> tuple[float, float]:
    """Median wall seconds of `mmsearch --help` and of one shell-completion request."""
    cli = [sys.executable, "-m", "mmsearch"]
    complete = {
        **env,
        "_MMSEARCH_COMPLETE": "complete_bash",
        "COMP_WORDS": "mmsearch qu",
        "COMP_CWORD": "1",
    }
    helps = [timed([*cli, "--help"], env)[0] for _ in range(runs)]
    completions = [timed(cli, complete)[0] for _ in range(runs)]
    return statistics.median(helps), statistics.median(completions)


WORDS = [
    "garden",
    "rain",
    "bridge",
    "history",
    "river",
    "city",
    "market",
    "winter",
    "summer",
    "train",
    "station",
    "letter",
    "museum",
    "harbour",
    "festival",
    "mountain",
    "forest",
    "library",
    "quarter",
    "budget",
    "meeting",
]


def make_documents(folder: Path, pages: int, files: int) -> Path:
    """A `pages`-page PDF of paragraphs, plus `files` DOCX and `files` TXT documents."""
    from fpdf import FPDF

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for _ in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 6, " ".join(rng.choice(WORDS, 350)))
    pdf.output(str(folder / "long.pdf"))
    import docx

    texts = folder / "texts"
    texts.mkdir(exist_ok=True)
    for i in range(files):
        document = docx.Document()
        for _ in range(5):
            document.add_paragraph(" ".join(rng.choice(WORDS, 60)))
        document.save(texts / f"note {i}.docx")
        (texts / f"note {i}.txt").write_text(" ".join(rng.choice(WORDS, 300)))
    return folder


def document_rates(folder: Path, model: str, pretrained: str, batch: int) -> dict[str, float]:
    """Pages/s of PDF text extraction, and of page rendering plus image embedding."""
    from mmsearch.config import DocumentOptions, Settings
    from mmsearch.embed import load_embedder
    from mmsearch.extract.document import load_document

    data = (folder / "long.pdf").read_bytes()
    embedder = load_embedder(Settings(db="unused", model=model, pretrained=pretrained))
    started = time.perf_counter()
    pages = load_document(
        "long.pdf", data, embedder.image_size, DocumentOptions(render_pages=False)
    )
    text_rate = len(pages) / (time.perf_counter() - started)
    started = time.perf_counter()
    pages = load_document("long.pdf", data, embedder.image_size, DocumentOptions())
    pixels = [embedder.preprocess(p.image) for p in pages]
    for i in range(0, len(pixels), batch):
        embedder.embed_images(pixels[i : i + batch])
    return {
        "pdf_text_pages_per_s": round(text_rate, 1),
        "pdf_render_embed_pages_per_s": round(len(pages) / (time.perf_counter() - started), 2),
    }


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stderr) of one process."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stderr = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{stderr}")
    return wall, usage.ru_maxrss / 1024, stderr


def forward_ceiling(model: str, pretrained: str, batch: int, seconds: float = 20) -> float:
    """Images/s of the image tower alone on ready tensors: what indexing can at best reach."""
    import torch

    from mmsearch.config import Settings
    from mmsearch.embed import load_embedder

    embedder = load_embedder(Settings(db="unused", model=model, pretrained=pretrained))
    pixels = [torch.randn(3, embedder.image_size, embedder.image_size) for _ in range(batch)]
    embedder.embed_images(pixels)  # warm up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        embedder.embed_images(pixels)
        done += batch
    return done / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--size", default="4000x3000", help="WxH of generated photos")
    ap.add_argument("--dir", type=Path, default=HERE / "out" / "photos")
    ap.add_argument("--model", default="ViT-B-32-256")
    ap.add_argument("--pretrained", default=None, help="tag or checkpoint (default: random)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--queries", type=int, default=3, help="cold query repetitions")
    ap.add_argument("--video-seconds", type=int, default=60, help="length of the 1080p video")
    ap.add_argument("--pdf-pages", type=int, default=200)
    ap.add_argument("--text-files", type=int, default=100, help="DOCX and TXT files each")
    ap.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = ap.parse_args()

    w, h = (int(v) for v in args.size.split("x"))
    make_photos(args.dir, args.images, w, h)
    photos = sorted(args.dir.glob("photo_*.jpg"))[: args.images]
    folder = Path(tempfile.mkdtemp(prefix="mmsearch-bench-"))
    try:
        corpus = folder / "photos"
        corpus.mkdir()
        for p in photos:
            os.link(p, corpus / p.name) if p.stat().st_dev == corpus.stat().st_dev else shutil.copy(
                p, corpus / p.name
            )
        pretrained = args.pretrained or random_checkpoint(args.model)
        env = {
            **os.environ,
            "MMSEARCH_DB": str(folder / "store"),
            "MMSEARCH_MODEL": args.model,
            "MMSEARCH_PRETRAINED": pretrained,
        }
        cli = [sys.executable, "-m", "mmsearch"]
        index_cmd = [*cli, "index", str(corpus), "--batch-size", str(args.batch_size)]
        if args.workers:
            index_cmd += ["--workers", str(args.workers)]
        index_wall, index_rss, summary = timed(index_cmd, env)
        queries = [
            timed([*cli, "query", "a red car at night", "-n", "10"], env)
            for _ in range(args.queries)
        ]
        outside = folder / "outside.jpg"
        shutil.copy(photos[0], outside)
        similars = [
            timed([*cli, "similar", str(outside), "-n", "10"], env) for _ in range(args.queries)
        ]
        help_s, complete_s = startup_latency(env)
        ceiling = forward_ceiling(args.model, pretrained, args.batch_size)
        video = HERE / "out" / f"video-1080p-{args.video_seconds}s.mp4"
        make_video(video, args.video_seconds)
        video_cpu, video_fpm = keyframe_cost(video, args.video_seconds, 256)
        docs = make_documents(folder / "docs", args.pdf_pages, args.text_files)
        doc_rates = document_rates(docs, args.model, pretrained, args.batch_size)
        doc_env = {**env, "MMSEARCH_DB": str(folder / "doc-store")}
        docs_wall, _, docs_summary = timed([*cli, "index", str(docs / "texts")], doc_env)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    n = len(photos)
    result = {
        "images": n,
        "size": args.size,
        "model": args.model,
        "cpu_threads": os.cpu_count(),
        "index_wall_s": round(index_wall, 2),
        "index_images_per_s": round(n / index_wall, 2),
        "index_peak_rss_mib": round(index_rss),
        "index_summary": summary.strip().splitlines()[-1] if summary.strip() else "",
        "forward_only_images_per_s": round(ceiling, 2),
        "index_vs_ceiling": round(n / index_wall / ceiling, 3),
        "cold_text_query_s": round(statistics.median(q[0] for q in queries), 2),
        "cold_text_query_peak_rss_mib": round(max(q[1] for q in queries)),
        "cold_image_query_s": round(statistics.median(s[0] for s in similars), 2),
        "help_s": round(help_s, 3),
        "completion_s": round(complete_s, 3),
        "video_keyframe_cpu_s_per_hour_1080p": round(video_cpu, 1),
        "video_frames_kept_per_minute": round(video_fpm, 1),
        **doc_rates,
        "docx_txt_index_wall_s": round(docs_wall, 2),
        "docx_txt_docs_per_s": round(2 * args.text_files / docs_wall, 2),
        "docx_txt_summary": docs_summary.strip().splitlines()[-1] if docs_summary else "",
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        width = max(map(len, result))
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
