"""Shared fixtures: a tiny random-weight open_clip model, a store per test, real photos.

Random weights make semantic asserts meaningless, so tests check mechanics: an image finds
its own copy, counts, ordering, failure records and exit codes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

TINY_MODEL_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    # vocab_size must stay 49408: the bundled tokenizer emits ids up to it.
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "cat", "motorcycle_left")


def write_tiny_model(folder: Path, seed: int = 0) -> Path:
    """An open_clip `local-dir:` model folder: config plus random safetensors weights."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY_MODEL_CFG, "preprocess_cfg": {}})
    )
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_MODEL_CFG)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return "local-dir:" + str(write_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(autouse=True)
def isolated_env(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Every test gets its own store, the tiny model and no network or user caches."""
    monkeypatch.setenv("MMSEARCH_DB", str(tmp_path / "store"))
    monkeypatch.setenv("MMSEARCH_MODEL", tiny_model)
    monkeypatch.delenv("MMSEARCH_PRETRAINED", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    yield


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def run(*args: str) -> Result:
    """Invoke the real CLI in-process; stdout and stderr kept apart."""
    from mmsearch.cli import app

    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="session")
def photo_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos from scikit-image, as JPEG and PNG, plus a nested folder. Copy before changing."""
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    (root / "trips" / "2024").mkdir(parents=True)
    for i, name in enumerate(SKIMAGE_PHOTOS):
        pixels = getattr(data, name)()
        img = Image.fromarray(pixels).convert("RGB")
        folder = root / "trips" / "2024" if i % 2 else root
        img.save(folder / f"{name}.jpg" if i % 3 else folder / f"{name}.png")
    return root


@pytest.fixture
def photos(photo_library: Path, tmp_path: Path) -> Path:
    """A private copy of the photo library that a test may change."""
    return Path(shutil.copytree(photo_library, tmp_path / "photos"))


def make_image(path: Path, seed: int, size: tuple[int, int] = (96, 80)) -> Path:
    """A distinct synthetic picture: random blocks of colour."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(blocks).resize(size, Image.NEAREST).save(path)
    return path


def files_in_index() -> dict[str, str]:
    """path → status of every file row, read straight from the store."""
    import lancedb

    db = lancedb.connect(os.environ["MMSEARCH_DB"])
    name = next(t for t in db.list_tables().tables if t.startswith("files_"))
    rows = db.open_table(name).to_arrow().to_pylist()
    return {r["path"]: r["status"] for r in rows}


def item_paths() -> list[str]:
    """The path of every item row (duplicates included), straight from the store."""
    import lancedb

    db = lancedb.connect(os.environ["MMSEARCH_DB"])
    name = next(t for t in db.list_tables().tables if t.startswith("items_"))
    return sorted(db.open_table(name).to_arrow()["path"].to_pylist())
