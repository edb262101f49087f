"""`query` and `similar` without the CLI (mmsearch.doors.quick): they answer without loading typer,
click or pydantic (nor numpy when a server answers), and say exactly what the full CLI would
say, in every format and for every error, with a server running and without one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from helpers import env_settings, run

from mmsearch.doors import quick
from mmsearch.doors.cli import app
from mmsearch.doors.serve import serving
from mmsearch.library import Library

CLI = ("typer", "click", "pydantic")
HEAVY = (*CLI, "rich", "numpy", "pyarrow", "lancedb", "onnxruntime")
# What a served query need not load either: milliseconds each, on every warm query.
NEEDLESS = ("tempfile", "difflib", "datetime")
NOT_READ = {"--explain", "--preview"}  # these always go to the full CLI


@pytest.fixture
def indexed(photos: Path) -> Path:
    assert run("index", "-q", str(photos)).exit_code == 0
    return photos


@pytest.fixture
def served(indexed: Path) -> Iterator[Path]:
    """The photos, indexed, with a server answering for their store."""
    with serving(Library(env_settings())):
        yield indexed


def mmsearch(*args: str, full_cli: bool = False) -> subprocess.CompletedProcess[str]:
    """`mmsearch ARGS` as installed (the quick path first), or straight into the full CLI."""
    if full_cli:
        command = [sys.executable, "-c", "from mmsearch.doors.cli import main; main()", *args]
    else:
        command = [sys.executable, "-m", "mmsearch", *args]
    return subprocess.run(
        command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
    )


def imported_by(*args: str) -> set[str]:
    traced = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mmsearch", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert traced.returncode == 0 and traced.stdout.startswith("["), traced.stderr
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in traced.stderr.splitlines()}


def test_a_served_query_imports_neither_the_cli_nor_numpy(served: Path) -> None:
    assert not imported_by("query", "red car", "--json") & {*HEAVY, *NEEDLESS}


def test_a_one_shot_query_imports_no_cli(indexed: Path) -> None:
    assert not imported_by("query", "red car", "--json") & set(CLI)


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
    "count of 5,000 digits": ["query", "x", "-n", "9" * 5000, "--json"],
    "unknown option": ["query", "x", "--colour", "red"],
    "explain": ["query", "x", "--explain", "--json"],
    "a model the store lacks": ["query", "x", "--model", "ViT-B-32", "--pretrained", "openai"],
    "similar of nothing": ["similar", "{photos}/missing.jpg", "--json"],
    "similar of a folder": ["similar", "{photos}", "--json"],
}


def says_what_the_full_cli_says(photos: Path, case: str) -> None:
    photo = next(photos.glob("*.jpg"))
    args = [a.format(photos=photos, photo=photo) for a in CASES[case]]
    quick_, full = mmsearch(*args), mmsearch(*args, full_cli=True)
    assert (quick_.returncode, quick_.stdout, quick_.stderr) == (
        full.returncode,
        full.stdout,
        full.stderr,
    )


@pytest.mark.parametrize("case", CASES)
def test_with_a_server_it_says_what_the_full_cli_says(served: Path, case: str) -> None:
    says_what_the_full_cli_says(served, case)


@pytest.mark.parametrize("case", ["json", "similar with words", "bad date", "two formats"])
def test_alone_it_says_what_the_full_cli_says(indexed: Path, case: str) -> None:
    says_what_the_full_cli_says(indexed, case)


@pytest.mark.parametrize("option", sorted(NOT_READ))
def test_what_it_does_not_read_goes_to_the_full_cli(option: str) -> None:
    assert quick.answer(["query", "x", option]) is None


@pytest.mark.parametrize("command", sorted(quick.COMMANDS))
def test_it_reads_the_clis_options_as_the_cli_does(command: str) -> None:
    """Same names, the same flags and repeatable options: a difference would let the quick
    path read a command line otherwise than the CLI."""
    cli = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    declared = {}
    for param in cli.params:
        if param.param_type_name != "option":
            continue
        takes = (
            quick.Takes.FLAG
            if param.is_flag
            else quick.Takes.VALUES
            if param.multiple
            else quick.Takes.VALUE
        )
        for name in [*param.opts, *param.secondary_opts]:
            declared[name] = takes
    read = {name: takes for name, (_, takes) in quick.COMMANDS[command].items()}
    assert read == {n: t for n, t in declared.items() if n not in NOT_READ}
