"""A reader that goes away (`| head`, `| true`) ends every command quietly with exit 0, in
every format, even in the middle of more output than a pipe buffer holds (README: exit
codes), so `set -o pipefail` scripts keep working."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_image, run

PIPE_BUFFER = 64 << 10


@pytest.fixture(scope="module")
def long_names(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 pictures under ~1,000-character paths: any listing of them outgrows a pipe."""
    root = tmp_path_factory.mktemp("pipes")
    deep = root.joinpath(*[f"{'folder' * 30}{i}" for i in range(4)])
    for i in range(120):
        make_image(deep / f"{'name' * 50}{i:03d}.png", seed=i, size=(16, 16))
    return root


@pytest.fixture
def indexed(long_names: Path) -> Path:
    assert run("index", "-q", str(long_names)).exit_code == 0
    return long_names


def piped(args: list[str], reader: str) -> subprocess.CompletedProcess[str]:
    command = shlex.join([sys.executable, "-m", "mmsearch", *args])
    return subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command} | {reader}"],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=300,
    )


def test_the_output_is_larger_than_a_pipe_buffer(indexed: Path) -> None:
    assert len(run("query", "x", "-n", "120", "--paths").stdout) > PIPE_BUFFER


@pytest.mark.parametrize("fmt", [[], ["--json"], ["--jsonl"], ["--paths"], ["-0"]])
def test_query_into_a_closed_pipe_exits_0_quietly(indexed: Path, fmt: list[str]) -> None:
    result = piped(["query", "x", "-n", "120", *fmt], "head -c 100 >/dev/null")
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize(
    "args",
    [
        ["similar", "IMAGE", "-n", "120", "--jsonl"],
        ["status", "--json"],
        ["status"],
        ["dupes", "--json", "--threshold", "0"],
        ["--help"],
    ],
)
def test_every_command_into_a_closed_pipe_exits_0_quietly(indexed: Path, args: list[str]) -> None:
    image = str(next(indexed.rglob("*.png")))
    result = piped([image if a == "IMAGE" else a for a in args], "true")
    assert (result.returncode, result.stderr) == (0, "")
