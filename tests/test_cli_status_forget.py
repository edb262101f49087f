"""`mmsearch status` and `mmsearch forget`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import file_rows, item_paths, run


def status() -> dict:
    result = run("status", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_status_json_reports_counts_failures_and_model(photos: Path, tiny_model: str) -> None:
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    run("index", "-q", str(photos))
    s = status()
    assert s["files_indexed"] == 7 and s["items"] == 7 and s["items_by_kind"] == {"image": 7}
    assert s["files_failed"] == 1
    reason = "not a readable image (corrupt, or not what its name says)"
    assert s["failures"] == [{"path": str(photos / "broken.jpg"), "reason": reason}]
    assert s["model"] == tiny_model
    assert s["roots"] == [str(photos)]
    assert s["size_bytes"] > 0 and s["last_update"]


def test_status_text_lists_failed_files_with_reasons(photos: Path) -> None:
    (photos / "text.png").write_text("not a picture")
    (photos / "empty.png").write_bytes(b"")
    run("index", "-q", str(photos))
    out = run("status").stdout
    assert f"{photos / 'text.png'}: not a readable image" in out
    assert "7 indexed (image 7), 1 failed, 1 empty" in out
    assert "empty.png" not in out  # empty is an outcome, not a failure


def test_status_before_any_index_says_so() -> None:
    result = run("status")
    assert result.exit_code == 0
    assert "nothing indexed" in result.stdout
    assert status()["indexed"] is False


def test_forget_removes_a_subtree(photos: Path) -> None:
    run("index", "-q", str(photos))
    result = run("forget", str(photos / "trips"))
    assert result.exit_code == 0
    assert "forgot 3 files (3 items)" in result.stderr
    assert not any("/trips/" in p for p in [*file_rows(), *item_paths()])
    assert status()["files_indexed"] == 4


def test_forget_a_root_removes_it_from_status(photos: Path) -> None:
    run("index", "-q", str(photos))
    run("forget", str(photos))
    s = status()
    assert (s["roots"], s["files_indexed"], s["items"]) == ([], 0, 0)


def test_forget_leaves_files_on_disk(photos: Path) -> None:
    run("index", "-q", str(photos))
    run("forget", str(photos))
    assert len([p for p in photos.rglob("*") if p.is_file()]) == 7


def test_a_forgotten_subtree_stays_out_of_later_runs_over_its_root(photos: Path) -> None:
    run("index", "-q", str(photos))
    run("forget", str(photos / "trips"))
    assert run("index", "-q", str(photos)).exit_code == 0
    assert not any("/trips/" in p for p in [*file_rows(), *item_paths()])
    s = status()
    assert s["excluded"] == [str(photos / "trips")] and s["files_indexed"] == 4
    assert str(photos / "trips") in run("status").stdout


def test_indexing_a_forgotten_subtree_by_name_brings_it_back(photos: Path) -> None:
    run("index", "-q", str(photos))
    run("forget", str(photos / "trips"))
    assert run("index", "-q", str(photos / "trips")).exit_code == 0
    assert run("index", "-q", str(photos)).exit_code == 0  # and it stays back
    s = status()
    assert (s["excluded"], s["files_indexed"]) == ([], 7)


def test_status_reads_the_registry_without_importing_lancedb(photos: Path) -> None:
    import subprocess
    import sys

    run("index", "-q", str(photos))
    code = (
        "import sys; from mmsearch.doors.cli import main\n"
        "sys.argv = ['mmsearch', 'status', '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'lancedb' not in sys.modules, 'lancedb imported'\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'pyarrow' not in sys.modules, 'pyarrow imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["files_indexed"] == 7


def test_status_text_shows_paths_under_home_with_a_tilde(
    photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (photos / "text.png").write_text("not a picture")
    run("index", "-q", str(photos))
    monkeypatch.setenv("HOME", str(photos.parent))
    out = run("status").stdout
    assert f"roots    ~/{photos.name}\n" in out
    assert f"  ~/{photos.name}/text.png: not a readable image" in out
