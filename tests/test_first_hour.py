"""A newcomer's first run: a missing folder is one line; progress tells loading the model
apart from embedding, and its rate counts only files the model embedded; the summary's time
is the whole run with the model's share on its own; `watch` says what it watches at once."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest
from helpers import run
from rich.console import Console

from mmsearch.doors.cli import _progress
from mmsearch.doors.render import index_summary
from mmsearch.indexing.index import IndexReport


@pytest.mark.parametrize("command", ["index", "watch"])
def test_a_missing_folder_is_one_line_that_says_what_to_do(command: str, tmp_path: Path) -> None:
    result = run(command, str(tmp_path / "Pictures"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert f"{tmp_path / 'Pictures'} does not exist: give `mmsearch {command}` a folder" in (
        result.stderr
    )


def terminal() -> tuple[io.StringIO, Console]:
    out = io.StringIO()
    return out, Console(file=out, force_terminal=True, width=120)


def test_the_rate_counts_only_files_the_model_embedded() -> None:
    out, console = terminal()
    with _progress(enabled=True, console=console) as bar:
        assert bar is not None
        bar.start(100)
        bar.advance(40)  # reused or unchanged: no model time, no rate
        bar.bar.refresh()
        assert "files/s" not in out.getvalue()
        for _ in range(3):
            bar.advance(embedded=True)
            time.sleep(0.1)
        bar.bar.refresh()
    text = out.getvalue()
    assert "43/100" in text and "files/s embedded" in text and "ETA" in text
    rate = float(text.rsplit("files/s embedded", 1)[0].split()[-1])
    assert 5 < rate < 40  # 2 files in ~0.2 s, not 43 files over the run


def test_loading_the_model_is_a_step_of_its_own() -> None:
    out, console = terminal()
    with _progress(enabled=True, console=console) as bar:
        assert bar is not None
        with bar.step("preparing the model for this CPU (once, about half a minute)"):
            bar.bar.refresh()
    assert "preparing the model for this CPU" in out.getvalue()


def test_the_summary_counts_the_whole_run_and_the_model_apart() -> None:
    out = io.StringIO()
    report = IndexReport(new=10, seconds=4.0, model_seconds=2.0, model_prepared=True)
    index_summary(report, Console(file=out, width=200), total=5.5)
    line = out.getvalue()
    assert "in 5.5 s (model prepared once in 2.0 s, 5.0 files/s embedded)" in line


def test_an_index_run_reports_its_embedding_rate(photos: Path) -> None:
    result = run("index", str(photos))
    assert result.exit_code == 0
    assert "files/s embedded" in result.stderr  # the model is cached in this process


def test_watch_says_at_once_what_it_watches(photos: Path, tiny_model: str) -> None:
    from mmsearch.core.config import Settings
    from mmsearch.library import Library

    lines: list[str] = []
    stop = threading.Event()
    stop.set()  # catch up once, then stop
    Library(Settings(db=os.environ["MMSEARCH_DB"], model=tiny_model)).watch(
        [str(photos)], stop, on_start=lines.append
    )
    assert lines == [
        f"watching {photos} into {os.environ['MMSEARCH_DB']} with {tiny_model}; "
        "answering queries meanwhile"
    ]
