"""The search snapshot answers one-shot vector queries without LanceDB, exactly as LanceDB
would, and only while it shows the index as it is; past its size an ANN index takes over."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import env_settings, item_paths, make_image, make_pdf, make_video, query_json, run

from mmsearch.query.filters import Filters
from mmsearch.storage import snapshot, store


def assert_same_answers(fast: list[dict], slow: list[dict]) -> None:
    """The same results field for field; scores as LanceDB's arithmetic rounds them."""
    assert [{**r, "score": 0} for r in fast] == [{**r, "score": 0} for r in slow]
    assert np.allclose([r["score"] for r in fast], [r["score"] for r in slow], atol=1e-5)


def snapshot_dir() -> Path:
    (folder,) = (Path(os.environ["MMSEARCH_DB"]) / "snapshots").iterdir()
    return folder


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "lib"
    for i in range(12):
        make_image(folder / ("a" if i % 2 else "b") / f"p{i:02d}.{'png' if i % 3 else 'jpg'}", i)
    make_video(folder / "clip.mp4", seconds=2)
    assert run("index", "-q", str(folder)).exit_code == 0
    return folder


def test_index_leaves_a_snapshot_of_every_item(library: Path) -> None:
    meta = json.loads((snapshot_dir() / "meta.json").read_text())
    assert meta["count"] == len(item_paths()) > 12 and meta["has_text"] is False


def loaded_after(statement: str) -> tuple[str, set[str]]:
    """What `statement` printed, run in a fresh process, and which of pyarrow and lancedb it
    imported."""
    code = (
        f"import sys\n{statement}\n"
        "print(*{'pyarrow', 'lancedb'} & set(sys.modules), file=sys.stderr)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True
    )
    return out.stdout, set(out.stderr.splitlines()[-1].split())  # its last line, maybe empty


def test_a_query_answered_by_the_snapshot_never_imports_lancedb(library: Path) -> None:
    call = (
        "from mmsearch.doors.cli import app; app(['query', 'x', '--json'], standalone_mode=False)"
    )
    assert "lancedb" not in loaded_after(call)[1]


def test_importing_the_snapshot_loads_no_lancedb() -> None:
    code = "import sys, mmsearch.storage.snapshot; print('lancedb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_snapshot_of_an_older_schema_is_not_used(library: Path) -> None:
    settings = env_settings()
    assert snapshot.open_fresh(settings.db, settings.model_key) is not None
    meta_file = snapshot_dir() / "meta.json"
    meta = json.loads(meta_file.read_text())
    assert (meta["table"], meta["schema"]) == (settings.model_key, store.SCHEMA_VERSION)
    meta_file.write_text(json.dumps({**meta, "schema": 1}))
    snapshot._opened.clear()
    assert snapshot.open_fresh(settings.db, settings.model_key) is None


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--type", "video"],
        ["--ext", "PNG"],
        ["--in", "{lib}/a"],
        ["--in", "{lib}/b/p00.jpg", "--in", "{lib}/clip.mp4"],
        ["--after", "2000-01-01", "--before", "2100-01-01"],
        ["--after", "2100-01-01"],
        ["--moments", "--min-score", "-1"],
        ["--mode", "vector", "-n", "3"],
    ],
)
def test_snapshot_and_lancedb_give_the_same_answers(library: Path, args: list[str]) -> None:
    args = [a.replace("{lib}", str(library)) for a in args]
    fast = query_json("red", "-n", "20", *args)
    shutil.rmtree(snapshot_dir())
    slow = query_json("red", "-n", "20", *args)
    assert_same_answers(fast, slow)


def test_an_unfiltered_query_reads_its_rows_without_pyarrow(library: Path) -> None:
    call = "from mmsearch.doors.quick import answer; assert answer(['query', 'x', '--json']) == 0"
    printed, loaded = loaded_after(call)
    assert len(json.loads(printed)) == 10 and loaded == set()


def test_a_held_snapshot_keeps_answering_from_its_own_rows_when_a_newer_one_replaces_it(
    library: Path,
) -> None:
    settings = env_settings()
    held = snapshot.open_fresh(settings.db, settings.model_key)
    assert held is not None
    vector = np.array(held.vectors[0])
    before = held.search(vector, 3, None)
    shutil.rmtree(library / "b")  # the next run's snapshot holds other rows in other places
    assert run("index", "-q", str(library)).exit_code == 0
    assert held.search(vector, 3, None) == before
    videos = held.allowed(Filters.from_options(None, ["video"], None, None, None, None))
    assert {r["kind"] for r in held.search(vector, 50, videos)} == {"video"}


def test_an_outside_image_is_answered_by_the_snapshot_like_by_lancedb(
    library: Path, tmp_path: Path
) -> None:
    outside = make_image(tmp_path / "outside.png", seed=3)  # same picture as an indexed one
    fast = json.loads(run("similar", str(outside), "--json", "-n", "5").stdout)
    shutil.rmtree(snapshot_dir())
    slow = json.loads(run("similar", str(outside), "--json", "-n", "5").stdout)
    assert [r["path"] for r in fast] == [r["path"] for r in slow]
    assert fast[0]["score"] == pytest.approx(1.0, abs=5e-3)  # the indexed copy is a JPEG


def test_a_change_made_after_the_snapshot_is_seen(library: Path) -> None:
    from mmsearch.storage.store import Store

    settings = env_settings()
    coll = Store(settings.db).collection(settings)
    coll.remove([str(library / "a" / "p01.png")])  # a commit with no snapshot after it
    paths = {r["path"] for r in query_json("x", "-n", "50")}
    assert str(library / "a" / "p01.png") not in paths and len(paths) == 12 - 1 + 1


def test_forget_refreshes_the_snapshot(library: Path) -> None:
    before = len(item_paths())
    run("forget", str(library / "a"))
    meta = json.loads((snapshot_dir() / "meta.json").read_text())
    assert meta["count"] == len(item_paths()) == before - 6


def test_an_unchanged_run_recreates_a_missing_snapshot(library: Path) -> None:
    shutil.rmtree(snapshot_dir())
    assert run("index", "-q", str(library)).exit_code == 0
    assert (snapshot_dir() / "vectors.npy").exists()


def test_a_corrupt_snapshot_is_ignored(library: Path) -> None:
    expected = query_json("x", "-n", "5")
    (snapshot_dir() / "vectors.npy").write_bytes(b"not numpy")
    assert_same_answers(query_json("x", "-n", "5"), expected)


def test_past_the_threshold_an_ann_index_answers_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "ANN_MIN_ITEMS", 300)
    folder = tmp_path / "many"
    for i in range(320):
        make_image(folder / f"{i:03d}.png", seed=i, size=(16, 16))
    shutil.copy(folder / "007.png", folder / "copy.png")
    assert run("index", "-q", str(folder)).exit_code == 0
    assert not (Path(os.environ["MMSEARCH_DB"]) / "snapshots" / env_settings().model_key).exists()
    from mmsearch.storage.store import Store

    coll = Store(env_settings().db).collection(env_settings())
    assert any(i.columns == ["vector"] for i in coll.items.list_indices())
    result = run("similar", str(folder / "007.png"), "-n", "3", "--json")
    found = json.loads(result.stdout)
    assert len(found) == 3 and found[0]["path"] == str(folder / "copy.png")
    assert found[0]["score"] == pytest.approx(1.0, abs=1e-4)


@pytest.fixture
def documents(tmp_path: Path) -> Path:
    """Pictures beside PDF, DOCX and text passages (English, Japanese, one rare word)."""
    import docx

    folder = tmp_path / "docs"
    for i in range(6):
        make_image(folder / f"p{i}.png", i)
    make_pdf(
        folder / "report.pdf",
        ["Gardens and rain in the old town.", "The history of bridges; the kelvaro was noted."],
    )
    paper = docx.Document()
    paper.add_paragraph("Minutes: the bridges were repaired after the rain.")
    paper.save(folder / "minutes.docx")
    (folder / "memo.txt").write_text("今日は図書館の地下室に行きました。\n\nHomogeneous gardens.")
    assert run("index", "-q", "--ocr", "never", str(folder)).exit_code == 0
    return folder


def answers(words: str) -> list[tuple]:
    """The hits of a word query as (score, path), in an order that only equal scores leave
    open: the two engines' BM25 break ties differently, between files and between the pages
    of one file that score alike."""
    hits = query_json(words, "-n", "30", "--min-score", "0.01")
    return sorted((round(h["score"], 5), h["path"]) for h in hits)


@pytest.mark.parametrize(
    "words", ["kelvaro", "bridges rain", '"gardens and rain"', "図書館", "homogeneity"]
)
def test_snapshot_and_lancedb_answer_word_queries_alike(documents: Path, words: str) -> None:
    fast = answers(words)
    assert fast, "every one of these words is in a passage"
    shutil.rmtree(snapshot_dir())
    assert fast == answers(words)


def test_a_word_query_on_a_store_with_passages_never_imports_lancedb(documents: Path) -> None:
    call = (
        "from mmsearch.doors.quick import answer\n"
        "assert answer(['query', 'kelvaro', '--json']) == 0"
    )
    printed, loaded = loaded_after(call)
    assert json.loads(printed)[0]["page"] == 2 and "lancedb" not in loaded
