"""`mmsearch similar`: image → similar items; the query image never answers itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run


@pytest.fixture
def indexed(photos: Path) -> Path:
    assert run("index", "-q", str(photos)).exit_code == 0
    return photos


def similar(*args: str) -> list[dict]:
    result = run("similar", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_similar_finds_the_indexed_original_of_an_outside_copy(
    indexed: Path, tmp_path: Path
) -> None:
    outside = shutil.copy(indexed / "chelsea.jpg", tmp_path / "query.jpg")
    best = similar(str(outside))[0]
    assert best["path"] == str(indexed / "chelsea.jpg")
    assert best["score"] == pytest.approx(1.0, abs=1e-3)  # int8 ranges per batch


def test_similar_leaves_out_the_query_file(indexed: Path) -> None:
    query = str(indexed / "chelsea.jpg")
    results = similar(query, "-n", "100")
    assert query not in [r["path"] for r in results]
    assert len(results) == 6


def test_similar_finds_a_copy_inside_the_index(indexed: Path) -> None:
    shutil.copy(indexed / "chelsea.jpg", indexed / "trips" / "copy.jpg")
    run("index", "-q", str(indexed))
    assert similar(str(indexed / "chelsea.jpg"))[0]["path"] == str(indexed / "trips" / "copy.jpg")


def test_similar_of_an_indexed_image_does_not_load_the_model(indexed: Path) -> None:
    code = (
        "import os, sys; from mmsearch import Library, Settings; "
        "s = Settings(db=os.environ['MMSEARCH_DB'], model=os.environ['MMSEARCH_MODEL']); "
        f"hits = Library(s).similar({str(indexed / 'chelsea.jpg')!r}); "
        "assert hits; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True
    )
    assert out.stdout.strip() == "False"


def test_similar_of_a_broken_image_fails_in_one_line(indexed: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    result = run("similar", str(bad))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "bad.jpg" in result.stderr


@pytest.mark.parametrize(
    ("name", "said"),
    [("folder", "is a folder, not a file"), ("missing.jpg", "cannot read")],
)
def test_similar_of_a_folder_or_a_missing_file_is_one_line(
    indexed: Path, tmp_path: Path, name: str, said: str
) -> None:
    """As `query FILE` answers it (exit 1, a query file that is not a regular file): one
    line, not click's usage screen."""
    (tmp_path / "folder").mkdir()
    result = run("similar", str(tmp_path / name))
    assert result.exit_code == 1 and said in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Usage:" not in result.stderr
