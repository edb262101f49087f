"""Private by default: the store, the cache and the last results are readable by their owner
only, whatever the umask; a store left open to others is closed on its next write."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import make_image, run
from test_bad_input import as_nobody  # noqa: F401  (a fixture)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o002)  # group-writable, world-readable: the loosest common umask
    yield
    os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """path → permission bits of everything under `root` (links left out)."""
    found = {str(root): stat.S_IMODE(root.stat().st_mode)}
    for p in root.rglob("*"):
        if not p.is_symlink():
            found[str(p)] = stat.S_IMODE(p.stat().st_mode)
    return found


def loose(root: Path) -> dict[str, str]:
    return {p: oct(m) for p, m in modes(root).items() if m & 0o077}


def test_store_cache_and_last_results_are_private_whatever_the_umask(
    photos: Path, tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "fresh-cache"
    monkeypatch.setenv("MMSEARCH_CACHE", str(cache))
    store = Path(os.environ["MMSEARCH_DB"])
    assert run("index", "-q", str(photos)).exit_code == 0
    assert run("query", "x").exit_code == 0
    assert len(modes(store)) > 20 and loose(store) == {}
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert loose(cache) == {}
    assert list((cache / "queries").rglob("*.npy"))  # the query vector was kept, privately
    last = cache / "last-results.json"  # follows MMSEARCH_CACHE
    assert json.loads(last.read_text()) and stat.S_IMODE(last.stat().st_mode) == 0o600
    assert os.umask(0o002) == 0o002  # the user's umask is back


def test_the_exported_model_is_private_whatever_the_umask(
    tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import env_settings

    from mmsearch.model.embed import onnx_folder
    from mmsearch.model.onnx_export import export

    cache = tmp_path / "fresh-cache"
    monkeypatch.setenv("MMSEARCH_CACHE", str(cache))
    export(env_settings(), onnx_folder(env_settings()))
    assert list((cache / "onnx").rglob("*.onnx")) and loose(cache) == {}


def test_a_store_open_to_others_is_made_private_on_the_next_write_and_said_once(
    photos: Path,
) -> None:
    store = Path(os.environ["MMSEARCH_DB"])
    assert run("index", "-q", str(photos)).exit_code == 0
    for p in modes(store):
        os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)  # as an older mmsearch left it
    assert run("status").exit_code == 0 and loose(store) != {}  # reading changes nothing
    first = run("index", "-q", str(photos))
    assert first.exit_code == 0 and loose(store) == {}
    assert first.stderr.count("private") == 1 and str(store) in first.stderr
    assert "private" not in run("index", "-q", str(photos)).stderr


def test_another_user_can_read_nothing_of_the_store(
    as_nobody: Path,  # noqa: F811
    photos: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = as_nobody / "store"  # in a folder everyone may enter
    cache = as_nobody / "cache"
    monkeypatch.setenv("MMSEARCH_DB", str(store))
    make_image(photos / "x.png", seed=9)
    assert run("index", "-q", str(photos)).exit_code == 0
    monkeypatch.setenv("MMSEARCH_CACHE", str(cache))
    assert run("query", "x").exit_code == 0
    files = [p for p in [*store.rglob("*"), *cache.rglob("*")] if p.is_file()]
    assert len(files) > 10
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    os.seteuid(65534)
    try:
        readable = []
        for p in files:
            try:
                open(p, "rb").close()
                readable.append(str(p))
            except PermissionError:
                pass
        for folder in (store, cache):
            try:
                os.listdir(folder)
                readable.append(str(folder))
            except PermissionError:
                pass
    finally:
        os.seteuid(0)
    assert readable == []
