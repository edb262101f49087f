"""Behaviours no other test guarded: each of these tests fails when its behaviour is broken
on purpose (see the report of issue 15)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import env_settings, file_rows, item_paths, make_image, run
from test_bad_input import as_nobody  # noqa: F401  (a fixture)

from mmsearch.indexing.index import IndexOptions
from mmsearch.library import Library


def index(folder: Path) -> str:
    result = run("index", str(folder))
    assert result.exit_code == 0, result.stderr
    return result.stderr


def test_a_same_size_edit_with_a_new_mtime_is_read_again(tmp_path: Path) -> None:
    notes = tmp_path / "docs" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("alpha bravo charlie")
    index(notes.parent)
    before = os.stat(notes)
    notes.write_text("delta echoes foxtro")  # the same number of bytes
    os.utime(notes, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert "1 updated" in index(notes.parent)
    hits = run("query", "echoes", "--mode", "text", "--json").stdout
    assert "notes.txt" in hits


def test_the_orphan_sweep_removes_items_whose_file_row_is_gone(photos: Path) -> None:
    """As a run killed between an item batch and its file rows leaves them."""
    from mmsearch.storage.store import open_collection

    index(photos)
    victim = str(photos / "chelsea.jpg")
    coll = open_collection(env_settings())
    coll.files.delete(f"path = '{victim}'")  # the item rows stay
    os.unlink(victim)
    assert victim in item_paths() and victim not in file_rows()
    index(photos)
    assert victim not in item_paths()


def test_ctrl_c_commits_what_was_already_embedded(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    for i in range(12):
        make_image(folder / f"p{i:02d}.png", seed=i, size=(32, 32))

    class StopAfterThree:
        done = 0

        def start(self, total: int, label: str = "indexing") -> None:
            pass

        def advance(self, n: int = 1, embedded: bool = False) -> None:
            self.done += n
            if self.done == 3:
                raise KeyboardInterrupt

        def step(self, label: str) -> contextlib.AbstractContextManager[None]:
            return contextlib.nullcontext()

    options = IndexOptions(batch_size=64, workers=1)  # nothing reaches the store by itself
    with pytest.raises(KeyboardInterrupt):
        Library(env_settings()).index([str(folder)], options, StopAfterThree())
    assert len(file_rows()) >= 3
    assert set(item_paths()) == set(file_rows())


def test_similar_of_an_indexed_unchanged_image_loads_no_model(photos: Path) -> None:
    from mmsearch.model import embed

    index(photos)
    embed._cache.clear()
    lib = Library(env_settings(), ask_server=False)
    hits = lib.similar(str(photos / "chelsea.jpg"))
    assert hits and embed._cache == {}  # the stored vector answered


@contextmanager
def as_user(uid: int) -> Iterator[None]:
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def nobody_library(as_nobody: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """A store, model and photos that uid 65534 can use, as in test_bad_input."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    model = shutil.copytree(tiny_model.removeprefix("local-dir:"), as_nobody / "model")
    for p in [model, *model.iterdir()]:
        p.chmod(0o755)
    photos = as_nobody / "photos"
    make_image(photos / "ok.jpg", seed=1)
    make_image(photos / "locked.jpg", seed=2)
    make_image(photos / "private" / "inside.jpg", seed=3)
    for p in [photos, photos / "private", *photos.rglob("*.jpg")]:
        p.chmod(0o777 if p.is_dir() else 0o644)
    monkeypatch.setenv("MMSEARCH_DB", str(as_nobody / "store"))
    monkeypatch.setenv("MMSEARCH_MODEL", f"local-dir:{model}")
    monkeypatch.setenv("MMSEARCH_CACHE", str(as_nobody / "cache"))
    return photos


def test_an_unreadable_file_is_retried_on_the_next_run(nobody_library: Path) -> None:
    locked = nobody_library / "locked.jpg"
    locked.chmod(0o000)
    with as_user(65534):
        index(nobody_library)
    assert file_rows()[str(locked)]["status"] != "ok"
    locked.chmod(0o644)  # readable again, same size and mtime
    with as_user(65534):
        index(nobody_library)
    assert file_rows()[str(locked)]["status"] == "ok"


def test_nothing_beneath_an_unreadable_folder_is_dropped(nobody_library: Path) -> None:
    inside = str(nobody_library / "private" / "inside.jpg")
    with as_user(65534):
        index(nobody_library)
    assert inside in file_rows()
    (nobody_library / "private").chmod(0o000)
    with as_user(65534):
        index(nobody_library)
    (nobody_library / "private").chmod(0o777)
    assert file_rows()[inside]["status"] == "ok" and inside in item_paths()
