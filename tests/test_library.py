"""The library object: the Python API page's example runs, and bad vocabulary is refused."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mmsearch import Filters, IndexOptions, Library, Mode, Settings, UsageError

API_PAGE = Path(__file__).parent.parent / "docs" / "reference" / "python-api.md"


def test_the_python_api_page_example_runs(photos: Path, capsys: pytest.CaptureFixture) -> None:
    block = re.search(r"# Python API.*?```python\n(.*?)```", API_PAGE.read_text(), re.S)
    assert block
    code = (
        block[1]
        .replace("~/Pictures/beach.jpg", str(photos / "chelsea.jpg"))
        .replace("~/Pictures", str(photos))
        .replace(
            "Settings()",
            f"Settings(db={os.environ['MMSEARCH_DB']!r}, model={os.environ['MMSEARCH_MODEL']!r})",
        )
    )
    exec(compile(code, "python-api.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5 + 3 + 1 and out[-1].endswith(" items")


def test_a_search_mode_outside_the_vocabulary_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="auto, vector, text, hybrid"):
        Library(Settings(db="/nonexistent")).search("x", mode="bogus")


def test_an_ocr_mode_outside_the_vocabulary_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="auto, always, never"):
        IndexOptions(ocr="sometimes")


def test_a_kind_outside_the_vocabulary_is_a_usage_error_with_a_hint() -> None:
    with pytest.raises(UsageError, match=r"did you mean image\?"):
        Filters(kinds=["imag"])


def test_modes_are_an_enum_shared_with_the_cli() -> None:
    assert Mode("hybrid") is Mode.HYBRID


@pytest.mark.parametrize(
    ("given", "means"),
    [
        ("jpeg", {".jpg", ".jpeg", ".jpe", ".jfif"}),
        ("jpg", {".jpg", ".jpeg", ".jpe", ".jfif"}),
        (".TIF", {".tif", ".tiff"}),
        ("htm", {".html", ".htm"}),
    ],
)
def test_every_spelling_of_an_extension_means_the_same_files(given: str, means: set) -> None:
    assert set(Filters(exts=[given]).exts) == means


def test_an_extension_mmsearch_never_indexes_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"\.xyz"):
        Filters(exts=["xyz"])


@pytest.mark.parametrize(
    ("args", "listed"),
    [
        (["--type", "photo"], "image, video, document (did you mean image?)"),
        (["--type", "images"], "did you mean image?"),
        (["--type", "movie"], "did you mean video?"),
        (["--type", "pdf"], "did you mean document?"),
        (["--mode", "bogus"], "auto, vector, text, hybrid"),
        (["--ext", "jpgg"], ".jpgg"),
    ],
)
def test_cli_values_outside_a_vocabulary_exit_2_naming_the_valid_ones(
    args: list[str], listed: str
) -> None:
    from helpers import run

    result = run("query", "x", *args)
    assert result.exit_code == 2 and listed in result.stderr


def test_a_long_lived_library_keeps_its_store_open_and_sees_every_commit(tmp_path: Path) -> None:
    """A server's searches reuse the collection they opened while the store is unchanged,
    and find what an index run committed since."""
    from mmsearch.storage.store import search_collection

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("the zebra crossing near the old bridge")
    library = Library(Settings(db=os.environ["MMSEARCH_DB"], model=os.environ["MMSEARCH_MODEL"]))
    library.index([str(docs)])
    first = [h.path for h in library.search("zebra", mode=Mode.TEXT)]
    assert first == [str(docs / "a.txt")]
    assert search_collection(library.settings) is search_collection(library.settings)
    (docs / "b.txt").write_text("a zebra in the garden")
    Library(library.settings).index([str(docs)])  # another writer, as watch or index would be
    later = {h.path for h in library.search("zebra", mode=Mode.TEXT)}
    assert later == {str(docs / "a.txt"), str(docs / "b.txt")}
