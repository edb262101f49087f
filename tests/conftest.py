"""Fixtures: a tiny random-weight open_clip model, a store per test, real photos.

Random weights make semantic asserts meaningless, so tests check mechanics: an image finds
its own copy, counts, ordering, failure records and exit codes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import write_tiny_model
from PIL import Image

SCENE_MODEL = Path(__file__).parent / "scene_model" / "scene-clip"  # trained: see its README
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "camera", "logo")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return "local-dir:" + str(write_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(scope="session")
def model_cache(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session, with the tiny model's ONNX export already in it: the
    export (and its one-line notice) happens here, not inside whichever test runs first."""
    from mmsearch.core.config import Settings
    from mmsearch.model.embed import onnx_folder
    from mmsearch.model.onnx_export import export

    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMSEARCH_CACHE", str(cache))
        settings = Settings(db="/unused", model=tiny_model)
        export(settings, onnx_folder(settings))
    return cache


@pytest.fixture(scope="session")
def scene_model(model_cache: Path) -> str:
    """The small CLIP trained on generated scenes (tests/scene_model), whose vectors mean
    something: exported to ONNX once per session into the session's cache."""
    from mmsearch.core.config import Settings
    from mmsearch.model.embed import onnx_folder
    from mmsearch.model.onnx_export import export

    model = f"local-dir:{SCENE_MODEL}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMSEARCH_CACHE", str(model_cache))
        settings = Settings(db="/unused", model=model)
        export(settings, onnx_folder(settings))
    return model


@pytest.fixture
def with_scene_model(scene_model: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """This test's CLI and library use the scene model instead of the random tiny one, with
    the calibrated default minimum score (what a score means is its business)."""
    monkeypatch.setenv("MMSEARCH_MODEL", scene_model)
    monkeypatch.delenv("MMSEARCH_MIN_SCORE", raising=False)
    return scene_model


@pytest.fixture(autouse=True)
def isolated_env(
    tiny_model: str, model_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test gets its own store, the tiny model and no network or user caches. Random
    weights assert mechanics only: their results are shown whatever they score."""
    monkeypatch.setenv("MMSEARCH_CACHE", str(model_cache))
    monkeypatch.setenv("MMSEARCH_MIN_SCORE", "0")
    for name in ("MMSEARCH_RUNTIME", "MMSEARCH_PRECISION", "MMSEARCH_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MMSEARCH_DB", str(tmp_path / "store"))
    monkeypatch.setenv("MMSEARCH_MODEL", tiny_model)
    monkeypatch.delenv("MMSEARCH_PRETRAINED", raising=False)
    monkeypatch.delenv("MMSEARCH_TRACEBACK", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture(scope="session")
def photo_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos bundled with scikit-image, as JPEG and PNG, some in a nested folder."""
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    nested = root / "trips" / "2024"
    nested.mkdir(parents=True)
    for i, name in enumerate(SKIMAGE_PHOTOS):
        img = Image.fromarray(getattr(data, name)())
        if img.mode == "RGBA":  # keep the alpha channel: PNG only
            img.save(root / f"{name}.png")
            continue
        folder = nested if i % 2 else root
        img.save(folder / (f"{name}.png" if i % 3 == 0 else f"{name}.jpg"), quality=90)
    return root


@pytest.fixture
def photos(photo_library: Path, tmp_path: Path) -> Path:
    """A private copy of the photo library that a test may change."""
    return Path(shutil.copytree(photo_library, tmp_path / "photos"))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 server (moto_server, from the `s3` extra) on a free loopback port, for the
    whole session; its endpoint URL. Stopped by its pid, waited for at most 10 s."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "server.log"
    server = Path(sys.executable).parent / "moto_server"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start: {log.read_text()[-500:]}")
            time.sleep(0.2)
    yield url
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
