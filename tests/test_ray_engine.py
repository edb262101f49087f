"""`mmsearch index --engine ray`: the same store as the local engine, built by a Ray Data
actor pool on a real local Ray (2 CPUs, started once for this module)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import lancedb
import numpy as np
import pytest
from helpers import make_image, make_pdf, make_video, run

from mmsearch.core.config import Settings
from mmsearch.indexing.index import IndexOptions
from mmsearch.library import Library


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def mixed(photos: Path) -> Path:
    """Photos, a copy of one, a video, a PDF with text and a picture, a text note and a
    broken file."""
    shutil.copy(photos / "chelsea.jpg", photos / "chelsea-copy.jpg")
    make_video(photos / "clips" / "patterns.mp4", seconds=2)
    make_pdf(photos / "docs" / "paper.pdf", ["a red bicycle", "notes"], {2: photos / "chelsea.jpg"})
    (photos / "docs" / "note.txt").write_text("a walk by the river at dawn\n" * 3)
    (photos / "broken.jpg").write_bytes(b"not a jpeg at all")
    return photos


def _index(db: Path, folder: Path, engine: str, **options: object) -> object:
    lib = Library(Settings(db=str(db), model=os.environ["MMSEARCH_MODEL"]), ask_server=False)
    return lib.index([str(folder)], IndexOptions(engine=engine, ocr="never", **options))


def _contents(db: Path) -> tuple[list[tuple], list[tuple], np.ndarray]:
    """The files rows, the item rows (with their locators) and their vectors, in one order."""
    store = lancedb.connect(str(db))
    names = store.list_tables().tables
    files = store.open_table(next(n for n in names if n.startswith("files_"))).to_arrow()
    items = store.open_table(next(n for n in names if n.startswith("items_"))).to_arrow()
    file_rows = sorted(
        (r["path"], r["kind"], r["status"], r["reason"], r["items"], r["content_hash"])
        for r in files.to_pylist()
    )
    keys = ("path", "kind", "t", "t_end", "page", "text", "origin", "ext", "content_hash")
    rows = [tuple(r[k] for k in keys) for r in items.select(list(keys)).to_pylist()]
    order = sorted(range(len(rows)), key=lambda i: tuple(map(repr, rows[i])))
    vectors = np.asarray(items["vector"].to_pylist(), np.float32)
    return file_rows, [rows[i] for i in order], vectors[order]


def _same_vectors(a: np.ndarray, b: np.ndarray) -> None:
    """Equal within the model's float tolerance: the int8 export quantizes activations per
    batch, so a file embedded in a differently composed batch moves by ~0.005."""
    assert a.shape == b.shape
    cosine = np.sum(a * b, axis=1)
    assert cosine.min() > 0.999, cosine.min()


def test_both_engines_build_the_same_store(local_ray: None, mixed: Path, tmp_path: Path) -> None:
    local = _index(tmp_path / "local", mixed, "local")
    on_ray = _index(tmp_path / "ray", mixed, "ray", ray_workers=2)
    assert (on_ray.new, on_ray.reused, on_ray.failed) == (local.new, local.reused, local.failed)
    assert on_ray.failures == local.failures
    files_l, items_l, vectors_l = _contents(tmp_path / "local")
    files_r, items_r, vectors_r = _contents(tmp_path / "ray")
    assert files_r == files_l
    assert items_r == items_l
    assert {r[1] for r in items_r} == {"image", "video", "document"}
    _same_vectors(vectors_r, vectors_l)


def test_the_ray_engine_reuses_vectors_by_content_and_records_failures(
    local_ray: None, photos: Path
) -> None:
    assert run("index", str(photos), "--engine", "ray", "-q").exit_code == 0
    shutil.copy(photos / "chelsea.jpg", photos / "moved.jpg")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 cut short")
    result = run("index", str(photos), "--engine", "ray")
    assert result.exit_code == 0, result.stderr
    assert "1 reused" in result.stderr and "1 failed" in result.stderr
    assert "broken.jpg" in result.stderr


def test_ray_options_without_engine_ray_are_a_usage_error(photos: Path) -> None:
    result = run("index", str(photos), "--ray-address", "auto")
    assert result.exit_code == 2
    assert "need --engine ray" in result.stderr


def test_an_unknown_engine_is_a_usage_error(photos: Path) -> None:
    result = run("index", str(photos), "--engine", "spark")
    assert result.exit_code == 2
    assert "local, ray" in result.stderr


def test_ray_is_never_imported_without_engine_ray(photos: Path) -> None:
    code = (
        "import sys\n"
        "from mmsearch.doors.cli import main\n"
        f"sys.argv = ['mmsearch', 'index', {str(photos)!r}, '-q']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_ray_job_killed_mid_run_converges_on_the_next_run(
    local_ray: None, tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    for i in range(48):
        make_image(folder / f"img{i:02}.png", seed=i)
    db = tmp_path / "killed"
    env = {**os.environ, "MMSEARCH_DB": str(db)}
    args = ["index", str(folder), "--engine", "ray", "--batch-size", "2", "-q"]
    job = subprocess.Popen(
        [sys.executable, "-m", "mmsearch", *args],
        env=env,
        start_new_session=True,  # its own local Ray lives in its process group
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and job.poll() is None:
            if _files_count(db) > 0:
                break
            time.sleep(0.2)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
    assert job.returncode == -signal.SIGKILL, "the job finished before it could be killed"
    written = _files_count(db)
    assert 0 < written < 48
    report = _index(db, folder, "ray")
    assert report.new + report.unchanged == 48
    _index(tmp_path / "clean", folder, "local")
    files_k, items_k, vectors_k = _contents(db)
    files_c, items_c, vectors_c = _contents(tmp_path / "clean")
    assert files_k == files_c and items_k == items_c
    _same_vectors(vectors_k, vectors_c)


def _files_count(db: Path) -> int:
    try:
        store = lancedb.connect(str(db))
        names = [n for n in store.list_tables().tables if n.startswith("files_")]
        return store.open_table(names[0]).count_rows() if names else 0
    except Exception:
        return 0
