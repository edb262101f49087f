"""The README's usage block and the commands' --help agree, and help keeps its examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import run

README = Path(__file__).parent.parent / "README.md"
COMMANDS = [
    *("index", "query", "similar", "dupes", "open", "watch", "serve", "status", "forget"),
    *("ui", "mcp"),
]
EVERY_COMMAND = {"--db", "--model", "--pretrained", "--help"}  # said once, under the block


def usage_block() -> dict[str, str]:
    block = re.search(r"## Usage\n\n```\n(.*?)```", README.read_text(), re.S)
    assert block
    entries: dict[str, str] = {}
    for line in block[1].splitlines():
        if m := re.match(r"mmsearch (\w+)", line):
            current = m[1]
        entries[current] = entries.get(current, "") + line + "\n"
    return entries


def help_options(command: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", run(command, "--help").stdout))


@pytest.mark.parametrize("command", COMMANDS)
def test_the_readme_usage_block_lists_each_commands_options(command: str) -> None:
    entry = usage_block()[command]
    documented = set(re.findall(r"(--[a-z][a-z0-9-]*)", entry))
    shown = help_options(command) - EVERY_COMMAND
    if "same result options as query" in entry:
        documented |= help_options("query") - EVERY_COMMAND
    assert documented == shown


@pytest.mark.parametrize("command", COMMANDS)
def test_the_usage_line_names_arguments_and_examples_keep_their_lines(command: str) -> None:
    text = run(command, "--help").stdout
    usage = text.splitlines()[0]
    assert "{" not in usage and "<" not in text.split("Options:")[0]
    examples = re.search(r"Examples?:\n((?:    mmsearch .*\n)+)", text)
    assert examples, text
    readme_line = usage_block()[command].split()[1]
    assert readme_line == command
