"""Exit codes are interface: one mapper (`errors.explain`) turns any exception into the line a
door shows and its `ExitStatus` (0 ok, 1 error, 2 usage, 3 busy, 130 interrupted), and
MMSEARCH_TRACEBACK adds a bug's traceback in every door that calls it."""

from __future__ import annotations

import os

import pytest
from helpers import env_settings, run

from mmsearch.core.errors import (
    ExitStatus,
    MmsearchError,
    NoIndex,
    StoreBusy,
    UsageError,
    explain,
)
from mmsearch.doors import client, quick
from mmsearch.doors.serve import answer
from mmsearch.library import Library


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NoIndex("nothing indexed"), ExitStatus.ERROR),
        (UsageError("--top must be positive"), ExitStatus.USAGE),
        (StoreBusy("another index runs"), ExitStatus.BUSY),
        (KeyboardInterrupt(), ExitStatus.INTERRUPTED),
        (RuntimeError("a bug"), ExitStatus.ERROR),
    ],
)
def test_each_exception_maps_to_its_documented_status(error: BaseException, status: int) -> None:
    assert explain(error)[1] == status


def test_a_users_error_is_one_sanitised_line_that_says_error() -> None:
    assert explain(MmsearchError("no such file: a\x1b[2Jb")) == (
        "error: no such file: a\\x1b[2Jb",
        ExitStatus.ERROR,
    )


def test_a_bug_is_one_line_unless_a_traceback_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    line, _ = explain(RuntimeError("a bug\nover two lines"))
    assert line == (
        "internal error: RuntimeError: a bug over two lines "
        "(set MMSEARCH_TRACEBACK=1 for details and report it)"
    )
    monkeypatch.setenv("MMSEARCH_TRACEBACK", "1")
    try:
        raise RuntimeError("a bug")
    except RuntimeError as e:
        line, _ = explain(e)
    assert line.splitlines()[1] == "Traceback (most recent call last):"
    assert line.endswith("RuntimeError: a bug")


def _broken(*args: object, **kwargs: object) -> None:
    raise RuntimeError("a bug")


def test_the_cli_shows_a_bugs_traceback_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Library, "status", _broken)
    monkeypatch.setenv("MMSEARCH_TRACEBACK", "1")
    result = run("status")
    assert result.exit_code == ExitStatus.ERROR
    assert "Traceback (most recent call last):" in result.stderr
    assert result.stderr.startswith("mmsearch: internal error: RuntimeError: a bug")


def test_the_fast_path_shows_a_bugs_traceback_when_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(quick, "_search", _broken)
    monkeypatch.setenv("MMSEARCH_TRACEBACK", "1")
    monkeypatch.setenv("MMSEARCH_NO_SERVER", "1")
    assert quick.answer(["query", "red"]) == ExitStatus.ERROR
    assert "Traceback (most recent call last):" in capsys.readouterr().err


def test_a_server_running_a_command_line_shows_a_bugs_traceback_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(quick, "_read", _broken)
    monkeypatch.setenv("MMSEARCH_TRACEBACK", "1")
    env = client.relevant_env(os.environ)
    request = {"v": client.RUN, "argv": ["query", "red"], "cwd": os.getcwd(), "env": env}
    reply = answer(Library(env_settings()), {**request, "tty": False})
    assert reply["exit_code"] == ExitStatus.ERROR
    assert "Traceback (most recent call last):" in reply["stderr"]
