"""Fault injection: kill -9 at random moments, writers racing, a damaged store."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import file_rows, item_paths, make_image, run

KILL_TRIALS = int(os.environ.get("MMSEARCH_KILL_TRIALS", "20"))  # a longer seeded run: raise it


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kill")
    for i in range(200):
        make_image(root / f"d{i % 5}" / f"p{i:03d}.png", seed=i, size=(160, 120))
    return root


def index_process(folder: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mmsearch", "index", "--batch-size", "8", str(folder)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def assert_exact(folder: Path) -> None:
    on_disk = sorted(str(p) for p in folder.rglob("*.png"))
    assert sorted(file_rows()) == on_disk  # nothing missing, nothing stale
    assert item_paths() == on_disk  # and no duplicate rows


def test_kill_9_at_random_moments_then_a_normal_run_gives_an_exact_index(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(1234)
    monkeypatch.setenv("MMSEARCH_DB", str(tmp_path / "uncut"))
    started = time.monotonic()
    assert index_process(folder, dict(os.environ)).wait() == 0
    whole = time.monotonic() - started  # kills land across the run, however fast it is
    cut_short = 0
    for trial in range(KILL_TRIALS):
        monkeypatch.setenv("MMSEARCH_DB", str(tmp_path / f"store{trial}"))
        proc = index_process(folder, dict(os.environ))
        time.sleep(rng.uniform(0.1, 0.9) * whole)
        proc.kill()
        proc.wait()
        try:
            committed = len(file_rows())
        except (AssertionError, ValueError, OSError, StopIteration):
            committed = 0  # killed before the tables existed
        cut_short += committed < 200
        result = run("index", str(folder))
        assert result.exit_code == 0, result.stderr
        assert_exact(folder)
    print(f"{KILL_TRIALS} kills, {cut_short} mid-run, 0 rows lost, 0 duplicates")
    assert cut_short >= KILL_TRIALS // 2  # the kills really did land mid-run


def test_two_index_runs_started_at_once_leave_one_exact_index(folder: Path) -> None:
    procs = [index_process(folder, dict(os.environ)) for _ in range(2)]
    outcomes = sorted(
        ((p.wait(timeout=300), p.stderr.read().decode(), p) for p in procs), key=lambda o: o[0]
    )
    (code_a, err_a, winner), (code_b, err_b, _) = outcomes
    if code_b == 3:  # refused while the other wrote: it names the writer
        assert code_a == 0 and f"mmsearch index (pid {winner.pid})" in err_b
    else:  # the lock was free again: the first had finished and left nothing to do
        assert (code_a, code_b) == (0, 0) and ("0 new" in err_a or "0 new" in err_b)
    assert_exact(folder)


def damage(store: Path, what: str) -> None:
    shutil.rmtree(store / "snapshots")  # it would answer queries by itself: LanceDB must here
    items = next(store.glob("items_*.lance"))
    if what == "data file":
        next((items / "data").glob("*.lance")).unlink()
    else:
        manifest = max((items / "_versions").glob("*.manifest"), key=lambda p: p.stat().st_mtime)
        manifest.write_bytes(manifest.read_bytes()[:40])


@pytest.mark.parametrize("what", ["data file", "manifest"])
def test_a_damaged_store_gives_one_clear_line_and_status_still_runs(
    tmp_path: Path, what: str
) -> None:
    photos = tmp_path / "p"
    for i in range(3):
        make_image(photos / f"{i}.png", seed=i)
    run("index", str(photos))
    store = Path(os.environ["MMSEARCH_DB"])
    damage(store, what)
    result = run("query", "x")
    assert result.exit_code == 1
    assert result.stderr.startswith("mmsearch: error: the store")
    assert str(store) in result.stderr and "rebuild" in result.stderr
    assert "Traceback" not in result.stderr
    # An incremental run that reads nothing damaged may pass; it never shows a traceback.
    result = run("index", str(photos))
    assert "Traceback" not in result.stderr and result.exit_code in (0, 1)
    status = run("status", "--json")
    assert status.exit_code == 1
    assert "damaged" in json.loads(status.stdout)["problem"]


@pytest.mark.parametrize("table", ["models", "schema"])
def test_a_table_a_killed_run_began_but_never_committed_does_not_stop_the_next(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    """A kill while LanceDB creates a table leaves its folder with data but no version."""
    store = tmp_path / "store"
    (store / f"{table}.lance" / "data").mkdir(parents=True)
    (store / f"{table}.lance" / "data" / "0.lance").write_bytes(b"cut short")
    monkeypatch.setenv("MMSEARCH_DB", str(store))
    result = run("index", str(folder))
    assert result.exit_code == 0, result.stderr
    assert len(file_rows()) == 200
