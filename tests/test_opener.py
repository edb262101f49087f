"""`MMSEARCH_OPENER`: placeholders filled each on its own, unknown ones a usage error that
names the valid ones; with no opener at all, the error says how to choose one. An opener is a
real process: its output is shown, and one that fails is an error with its message."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_image, make_pdf, run

from mmsearch.core.errors import UsageError
from mmsearch.doors.opener import opener_command

MOMENT = {"path": "/v/clip.mp4", "t": 83.5}


@pytest.mark.parametrize(
    ("opener", "command"),
    [
        ("player --at {t}", ["player", "--at", "83.5", "/v/clip.mp4"]),  # {t} without {path}
        ("player {path}", ["player", "/v/clip.mp4"]),
        ("player --start={t} -- {path}", ["player", "--start=83.5", "--", "/v/clip.mp4"]),
        ("player", ["player", "/v/clip.mp4"]),
    ],
)
def test_placeholders_are_filled_each_on_its_own(
    opener: str, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMSEARCH_OPENER", opener)
    assert opener_command(MOMENT) == command


def test_an_unknown_placeholder_is_a_usage_error_naming_the_valid_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MMSEARCH_OPENER", "player {file}")
    with pytest.raises(UsageError, match=r"\{file\}.*\{path\}, \{t\}"):
        opener_command(MOMENT)


def test_open_with_an_unknown_placeholder_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_image(tmp_path / "p" / "a.png", seed=1)
    run("index", "-q", str(tmp_path / "p"))
    assert run("query", "x", "--json").exit_code == 0
    monkeypatch.setenv("MMSEARCH_OPENER", "player {nope}")
    result = run("open", "1")
    assert result.exit_code == 2 and "{nope}" in result.stderr and "{path}" in result.stderr


def test_a_pdf_hit_gives_the_opener_its_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSEARCH_OPENER", "viewer --page={page} {path}")
    assert opener_command({"path": "/d/a.pdf", "t": None, "page": 3}) == [
        "viewer",
        "--page=3",
        "/d/a.pdf",
    ]


def _script(folder: Path, body: str) -> Path:
    """A real opener program: a shell script that says something and exits as told."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "opener"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return script


def test_open_a_pdf_page_runs_the_opener_at_that_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_pdf(tmp_path / "p" / "report.pdf", ["volcano lava eruption", "quarterly tax figures"])
    run("index", "-q", str(tmp_path / "p"))
    hits = run("query", "quarterly tax figures", "--mode", "text", "--json")
    assert hits.exit_code == 0 and '"page": 2' in hits.stdout
    opener = _script(tmp_path / "bin", 'echo "opening page $1 of $2"')
    monkeypatch.setenv("MMSEARCH_OPENER", f"{opener} {{page}} {{path}}")
    result = run("open", "1")
    assert result.exit_code == 0
    assert f"opening page 2 of {tmp_path / 'p' / 'report.pdf'}" in result.stderr


def test_an_opener_that_fails_is_an_error_with_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_image(tmp_path / "p" / "a.png", seed=1)
    run("index", "-q", str(tmp_path / "p"))
    assert run("query", "x", "--json").exit_code == 0
    says = "echo 'xdg-open: no method available for opening' >&2"
    opener = _script(tmp_path / "bin", says + "\nexit 3")
    monkeypatch.setenv("MMSEARCH_OPENER", str(opener))
    result = run("open", "1")
    assert result.exit_code == 1
    assert "exit status 3" in result.stderr and "no method available" in result.stderr


def test_no_opener_installed_names_mmsearch_opener(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_image(tmp_path / "p" / "a.png", seed=1)
    run("index", "-q", str(tmp_path / "p"))
    assert run("query", "x", "--json").exit_code == 0
    monkeypatch.delenv("MMSEARCH_OPENER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no xdg-open, mpv or vlc
    result = run("open", "1")
    assert result.exit_code == 1 and "MMSEARCH_OPENER" in result.stderr
