"""The warm path's client (mmsearch.warm): while a server answers for the store, `mmsearch
query` and `similar` answer without loading the CLI or numpy, and say exactly what the full
CLI would say, in every format and for every error."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from helpers import env_settings, run

from mmsearch import warm
from mmsearch.cli import app
from mmsearch.library import Library
from mmsearch.serve import serving

HEAVY = ("typer", "click", "rich", "pydantic", "numpy", "pyarrow", "lancedb", "onnxruntime")
NOT_READ = {"--explain", "--preview"}  # these always go to the full CLI


@pytest.fixture
def served(photos: Path) -> Iterator[Path]:
    """The photos, indexed, with a server answering for their store."""
    assert run("index", "-q", str(photos)).exit_code == 0
    with serving(Library(env_settings())):
        yield photos


def mmsearch(*args: str, full_cli: bool = False) -> subprocess.CompletedProcess[str]:
    """`mmsearch ARGS` as installed (the warm path first), or straight into the full CLI."""
    if full_cli:
        command = [sys.executable, "-c", "from mmsearch.cli import main; main()", *args]
    else:
        command = [sys.executable, "-m", "mmsearch", *args]
    return subprocess.run(
        command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
    )


def test_an_answered_query_imports_neither_the_cli_nor_numpy(served: Path) -> None:
    traced = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mmsearch", "query", "red car", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert traced.returncode == 0 and traced.stdout.startswith("["), traced.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in traced.stderr.splitlines()}
    assert not {m for m in imported if m.split(".")[0] in HEAVY}


CASES = {
    "json": ["query", "red car", "--json", "-n", "3"],
    "jsonl, folder filter": ["query", "red", "car", "--jsonl", "--in", "{photos}/trips"],
    "paths, kind, sort": ["query", "red car", "--paths", "--type", "image", "--sort=-date"],
    "nul, attached count": ["query", "x", "-0", "-n5"],
    "plain, mode": ["query", "x", "--mode", "vector", "--min-score=0.01"],
    "after a double dash": ["query", "--json", "--", "-x"],
    "similar with words": ["similar", "{photo}", "--plus", "red", "--minus", "car", "--json"],
    "unknown mode": ["query", "x", "--mode", "bogus"],
    "bad date": ["query", "x", "--after", "2024-13", "--json"],
    "two formats": ["query", "x", "--json", "--paths"],
    "count below one": ["query", "x", "-n", "0", "--json"],
    "unknown option": ["query", "x", "--colour", "red"],
    "explain": ["query", "x", "--explain", "--json"],
    "a model the store lacks": ["query", "x", "--model", "ViT-B-32", "--pretrained", "openai"],
    "similar of nothing": ["similar", "{photos}/missing.jpg", "--json"],
    "similar of a folder": ["similar", "{photos}", "--json"],
}


@pytest.mark.parametrize("case", CASES)
def test_the_warm_path_says_what_the_full_cli_says(served: Path, case: str) -> None:
    photo = next(served.glob("*.jpg"))
    args = [a.format(photos=served, photo=photo) for a in CASES[case]]
    quick, full = mmsearch(*args), mmsearch(*args, full_cli=True)
    assert (quick.returncode, quick.stdout, quick.stderr) == (
        full.returncode,
        full.stdout,
        full.stderr,
    )


def test_a_query_with_answers_is_answered_by_the_warm_path(served: Path) -> None:
    assert warm.answer(["query", "red car", "--json"]) == 0


def test_without_a_server_the_full_cli_answers(photos: Path) -> None:
    assert run("index", "-q", str(photos)).exit_code == 0
    assert warm.answer(["query", "red car", "--json"]) is None
    assert mmsearch("query", "red car", "--json").stdout.startswith("[")


def test_a_terminal_gets_the_full_clis_table(served: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert warm.answer(["query", "red car"]) is None


def test_no_server_set_sends_every_query_to_the_full_cli(
    served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMSEARCH_NO_SERVER", "1")
    assert warm.answer(["query", "red car", "--json"]) is None


@pytest.mark.parametrize("command", sorted(warm.COMMANDS))
def test_the_warm_path_reads_the_clis_options_as_the_cli_does(command: str) -> None:
    """Same names, the same flags and repeatable options: a difference would let the warm
    path read a command line otherwise than the CLI."""
    cli = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    declared = {}
    for param in cli.params:
        if param.param_type_name != "option":
            continue
        takes = (
            warm.Takes.FLAG
            if param.is_flag
            else warm.Takes.VALUES
            if param.multiple
            else warm.Takes.VALUE
        )
        for name in [*param.opts, *param.secondary_opts]:
            declared[name] = takes
    read = {name: takes for name, (_, takes) in warm.COMMANDS[command].items()}
    assert read == {n: t for n, t in declared.items() if n not in NOT_READ}
