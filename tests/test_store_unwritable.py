"""A store that is whole but cannot be written is never called damaged: a full disk says
"disk full" and what to free, with no source paths; a read-only store says so in one line
and still answers queries; the next run, once there is room, indexes everything.

These mount a small tmpfs (and a read-only bind), so they run where mounting is allowed
(root in a container, as in CI) and are skipped elsewhere."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import make_image, run


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 100 KiB disk for the store: room for its tables, not for 60 pictures' rows."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=100k", "tmpfs", str(disk))
    monkeypatch.setenv("MMSEARCH_DB", str(disk / "store"))
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=True)


@pytest.fixture
def read_only_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A store indexed once, then seen through a read-only bind mount."""
    make_image(tmp_path / "first" / "a.png", seed=1)
    assert run("index", "-q", "--ocr", "never", str(tmp_path / "first")).exit_code == 0
    view = tmp_path / "view"
    view.mkdir()
    mount("--bind", str(tmp_path / "store"), str(view))
    try:
        mount("-o", "remount,bind,ro", str(view))
    except BaseException:
        subprocess.run(["umount", "--lazy", str(view)], check=True)
        raise
    monkeypatch.setenv("MMSEARCH_DB", str(view))
    yield view
    subprocess.run(["umount", "--lazy", str(view)], check=True)  # a query may hold a map


def pictures(folder: Path, n: int) -> Path:
    for i in range(n):
        make_image(folder / f"p{i}.png", seed=i, size=(64, 64))
    return folder


def test_a_full_disk_says_disk_full_and_what_to_free(small_disk: Path, tmp_path: Path) -> None:
    result = run("index", "-q", "--ocr", "never", str(pictures(tmp_path / "lib", 60)))
    assert result.exit_code == 1
    assert "disk full" in result.stderr and "Free space" in result.stderr
    assert "damaged" not in result.stderr and ".cargo" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_after_a_full_disk_the_next_run_with_room_indexes_everything(
    small_disk: Path, tmp_path: Path
) -> None:
    folder = pictures(tmp_path / "lib", 60)
    assert run("index", "-q", "--ocr", "never", str(folder)).exit_code == 1
    mount("-o", "remount,size=4m", str(small_disk))
    assert run("index", "-q", "--ocr", "never", str(folder)).exit_code == 0
    status = run("status", "--json")
    assert '"files_indexed": 60' in status.stdout, status.stdout


def test_a_read_only_store_says_so_in_one_line(read_only_store: Path, tmp_path: Path) -> None:
    result = run("index", "-q", "--ocr", "never", str(pictures(tmp_path / "lib", 2)))
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("is read-only: queries work, indexing cannot write")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_read_only_store_answers_queries(read_only_store: Path, tmp_path: Path) -> None:
    result = run("query", "--paths", "anything")
    assert result.exit_code == 0, result.stderr
    assert str(tmp_path / "first" / "a.png") in result.stdout
