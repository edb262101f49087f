"""`query` and `similar` without the CLI: the command line is read here, the search runs
(asking a running server first, as every search does) and the results are printed, without
importing typer, click or pydantic; a server's answer needs no numpy either. That is most
of a one-shot query's start-up, and nearly all of a warm one's.

It takes only command lines it reads exactly as the CLI would. Anything else (--explain,
--preview, --help, a value spelled in a way the CLI might refuse) goes to the full CLI,
which gives the same answer through the same `show`, only later; nothing has run by then."""

from __future__ import annotations

import os
import re
import sys
from enum import Enum
from typing import Any

from mmsearch import timings
from mmsearch.errors import INTERRUPTED, MmsearchError, internal_error


class Takes(Enum):
    """What an option takes from the command line."""

    FLAG = "flag"
    VALUE = "value"  # given twice, the last one counts (as click does)
    VALUES = "values"  # repeatable


# Every option this path reads, and the field it fills; tests/test_quick.py keeps the table
# equal to the CLI's own options (an option missing here only sends the command to the CLI).
SEARCH_OPTIONS: dict[str, tuple[str, Takes]] = {
    "-n": ("top", Takes.VALUE),
    "--top": ("top", Takes.VALUE),
    "--json": ("--json", Takes.FLAG),
    "--jsonl": ("--jsonl", Takes.FLAG),
    "--paths": ("--paths", Takes.FLAG),
    "-0": ("-0", Takes.FLAG),
    "--null": ("-0", Takes.FLAG),
    "--in": ("within", Takes.VALUES),
    "--type": ("kinds", Takes.VALUES),
    "--ext": ("exts", Takes.VALUES),
    "--after": ("after", Takes.VALUE),
    "--before": ("before", Takes.VALUE),
    "--min-score": ("min_score", Takes.VALUE),
    "--moments": ("moments", Takes.FLAG),
    "--mode": ("mode", Takes.VALUE),
    "--sort": ("sort", Takes.VALUE),
    "--db": ("db", Takes.VALUE),
    "--model": ("model", Takes.VALUE),
    "--pretrained": ("pretrained", Takes.VALUE),
}
SIMILAR_OPTIONS: dict[str, tuple[str, Takes]] = {
    "--at": ("at", Takes.VALUE),
    "--plus": ("plus", Takes.VALUES),
    "--minus": ("minus", Takes.VALUES),
}
COMMANDS = {"query": SEARCH_OPTIONS, "similar": SEARCH_OPTIONS | SIMILAR_OPTIONS}
ENV = {"db": "MMSEARCH_DB", "model": "MMSEARCH_MODEL", "pretrained": "MMSEARCH_PRETRAINED"}

_WHOLE = re.compile(r"[0-9]+")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def answer(argv: list[str]) -> int | None:
    """The exit status once `argv` (`query ...` or `similar ...`) has been answered, or None
    when the full CLI must run it."""
    if not argv or argv[0] not in COMMANDS:
        return None
    read = _read(argv[0], argv[1:])
    if read is None:
        return None
    timings.mark_start()
    try:
        return _answer(argv[0], read)
    finally:
        timings.report()


def quiet_libraries() -> None:
    """Library chatter (open_clip's logging, torch/PIL warnings) is not the user's business;
    real problems arrive as exceptions."""
    import logging
    import warnings

    logging.disable(logging.CRITICAL)
    warnings.filterwarnings("ignore")


def show(
    library: Any,
    parts: list[Any],
    fmt: str,
    *,
    top: int,
    filters: Any,
    moments: bool,
    mode: str,
    sort: str,
    preview: bool = False,
) -> None:
    """Search, keep the results for `open N`, print them: for the CLI and for `answer`."""
    from mmsearch.opener import remember

    request = library.request(
        parts, top=top, filters=filters, moments=moments, mode=mode, sort=sort
    )
    hits = library.ask(request) if library.ask_server else None
    if hits is None:
        quiet_libraries()  # what loads here (ONNX Runtime, LanceDB, even torch) may talk
        hits = library.search_here(request)
    with timings.phase("render"):
        remember(hits)
        if fmt == "table":
            from mmsearch import render

            render.hits(hits, fmt, preview=preview)
        else:
            from mmsearch.output import write_hits

            write_hits(hits, fmt)


def _answer(command: str, read: dict[str, Any]) -> int:
    from mmsearch.output import reader_gone
    from mmsearch.private import take_notices
    from mmsearch.sanitise import terminal

    try:
        _search(command, read)
        return 0
    except MmsearchError as e:
        print(f"mmsearch: error: {terminal(str(e))}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        reader_gone()
        return 0
    except KeyboardInterrupt:
        print(f"mmsearch: {INTERRUPTED}", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("MMSEARCH_TRACEBACK"):
            raise
        print(f"mmsearch: {internal_error(e)}", file=sys.stderr)
        return 1
    finally:
        for notice in take_notices():
            print(f"mmsearch: {terminal(notice)}", file=sys.stderr)


def _search(command: str, read: dict[str, Any]) -> None:
    from mmsearch.config import Settings
    from mmsearch.filters import Filters
    from mmsearch.grammar import parse, similar_parts
    from mmsearch.library import Library
    from mmsearch.output import FLAGS, output_format

    fmt = output_format({f: read.get(f, False) for f, _ in FLAGS}, sys.stdout.isatty())
    named = {k: read[k] if k in read else os.environ.get(v, "") for k, v in ENV.items()}
    if command == "query":
        parts = parse(read["args"])
    else:
        at = read.get("at")
        plus, minus = read.get("plus", []), read.get("minus", [])
        parts = similar_parts(read["args"][0], at, plus, minus)
    filters = Filters.from_options(
        read.get("within"),
        read.get("kinds"),
        read.get("exts"),
        read.get("after"),
        read.get("before"),
        read.get("min_score"),
    )
    show(
        Library(Settings(**named)),
        parts,
        fmt,
        top=read.get("top", 10),
        filters=filters,
        moments=read.get("moments", False),
        mode=read.get("mode", "auto"),
        sort=read.get("sort", "score"),
    )


def _read(command: str, args: list[str]) -> dict[str, Any] | None:
    """The command line's values by field ("args": the positional ones), or None when any
    part of it is not read here exactly as click reads it."""
    options = COMMANDS[command]
    read: dict[str, Any] = {"args": []}
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            read["args"].extend(rest)
            break
        if not arg.startswith("-") or arg == "-":
            read["args"].append(arg)
            continue
        if arg.startswith("--"):
            name, eq, attached = arg.partition("=")
            value: str | None = attached if eq else None
        else:  # -n5, or a cluster of short flags (not read here)
            name, value = arg[:2], arg[2:] or None
        if name not in options:
            return None
        field, takes = options[name]
        if takes is Takes.FLAG:
            if value is not None:
                return None
            read[field] = True
            continue
        if value is None:
            value = next(rest, None)
            if value is None or (value.startswith("-") and value != "-"):
                return None
        converted = _convert(field, value)
        if converted is None:
            return None
        if takes is Takes.VALUES:
            read.setdefault(field, []).append(converted)
        else:
            read[field] = converted
    return read if _complete(command, read) else None


def _convert(field: str, value: str) -> Any:
    """A value as the CLI's type turns it into one, or None where the CLI might refuse it."""
    if field == "top":
        return int(value) if _WHOLE.fullmatch(value) and int(value) >= 1 else None
    if field in ("min_score", "at"):
        if not _NUMBER.fullmatch(value) or (field == "at" and value.startswith("-")):
            return None
        return float(value)
    if field == "within":
        from pathlib import Path

        return str(Path(value))
    return value


def _complete(command: str, read: dict[str, Any]) -> bool:
    """Whether the arguments are what the command needs, as the CLI checks them."""
    args = read["args"]
    if command == "query":
        return bool(args)
    if len(args) != 1:
        return False
    from pathlib import Path

    path = Path(args[0])
    read["args"] = [str(path)]
    return path.exists() and not path.is_dir()  # the CLI's FILE: exists, not a folder
