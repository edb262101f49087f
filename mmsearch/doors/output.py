"""Results for pipelines and scripts: plain lines, JSON, bare paths. Written without rich, so
the warm path (mmsearch.warm) prints them without loading the CLI; the table for people is
in mmsearch.doors.render."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TextIO

from mmsearch.core.errors import UsageError

if TYPE_CHECKING:
    from mmsearch.query.ranking import Hit

FLAGS = (("--json", "json"), ("--jsonl", "jsonl"), ("--paths", "paths"), ("-0", "nul"))


def output_format(chosen: dict[str, bool], tty: bool) -> str:
    """The format the flags ask for (`chosen`: flag -> given), else a table on a terminal and
    plain lines anywhere else."""
    given = [(flag, fmt) for flag, fmt in FLAGS if chosen.get(flag)]
    if len(given) > 1:
        raise UsageError(f"choose one output format, not {' and '.join(f for f, _ in given)}")
    if given:
        return given[0][1]
    return "table" if tty else "plain"


def write_hits(results: Sequence[Hit], fmt: str, out: TextIO | None = None) -> None:
    """Every format but the table."""
    out = out or sys.stdout
    if fmt == "json":
        out.write(json.dumps([hit_json(h) for h in results], ensure_ascii=False, indent=2) + "\n")
    elif fmt == "jsonl":
        out.writelines(json.dumps(hit_json(h), ensure_ascii=False) + "\n" for h in results)
    elif fmt == "paths":
        out.writelines(h.path + "\n" for h in results)
    elif fmt == "nul":
        out.writelines(h.path + "\0" for h in results)
    else:
        out.writelines(_plain(h) for h in results)
    out.flush()


def hit_json(hit: Hit) -> dict[str, Any]:
    """The documented result object (schema/result.schema.json)."""
    return asdict(hit)


def _plain(hit: Hit) -> str:
    """`score<TAB>path`, plus `<TAB>seconds` for a video moment (to feed a player)."""
    moment = f"\t{hit.t:.3f}" if hit.t is not None else ""
    return f"{hit.score:.4f}\t{hit.path}{moment}\n"


def reader_gone() -> None:
    """The reader of our output went away (`| head`, `| true`): it read all it wanted, so the
    command ends quietly with exit 0 (README: exit codes). Later writes, and Python's final
    flush, go to /dev/null instead of raising again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
