"""`MMSEARCH_OPENER`: placeholders filled each on its own, unknown ones a usage error that
names the valid ones; with no opener at all, the error says how to choose one."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_image, run

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
