"""`query` and `similar` without the CLI: the command line is read here, the search runs
(asking a running server first, as every search does) and the results are printed, without
importing typer, click or pydantic; a server's answer needs no numpy either. That is most
of a one-shot query's start-up, and nearly all of a warm one's.

It takes only command lines it reads exactly as the CLI would. Anything else (--explain,
--preview, --help, a value spelled in a way the CLI might refuse) goes to the full CLI,
which gives the same answer through the same `show`, only later; nothing has run by then.

A server runs the same code for a client that handed its command line over
(`answer_handed`): in the client's folder, for the client's terminal, into buffers."""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Callable, Mapping
from enum import Enum
from typing import IO, TYPE_CHECKING, Any

from mmsearch.core import timings
from mmsearch.core.bounds import MAX_TOP
from mmsearch.core.errors import ExitStatus, explain

if TYPE_CHECKING:
    from mmsearch.doors.protocol import SearchRequest
    from mmsearch.query.ranking import Hit


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


class Caller:
    """Whom a command line is answered for. By default this process: its folder, its
    terminal, its output, asking a server first. For a server running a client's command
    line: the client's folder and terminal, buffers, the server's store and its search."""

    def __init__(
        self,
        cwd: str | None = None,
        tty: bool | None = None,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
        store: str | None = None,
        search: Callable[[SearchRequest], list[Hit]] | None = None,
    ):
        self.cwd = cwd  # None: this process's own
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.out = out
        self.err = err or sys.stderr
        self.store = store
        self.search = search


class Refused(Exception):
    """A server cannot answer a handed-over command line exactly as its client would (a
    table to draw, another store, paths it would read from another folder): the client
    runs it itself."""


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
        return _answer(argv[0], read, Caller())
    finally:
        timings.report()


def answer_handed(
    argv: list[str],
    cwd: str,
    tty: bool,
    store: str,
    search: Callable[[SearchRequest], list[Hit]],
) -> tuple[int, str, str] | None:
    """(exit status, stdout, stderr) of `mmsearch ARGV` as a client in `cwd` would have it,
    answered in a server for `store` with its `search`; None when the client must run it."""
    if not argv or argv[0] not in COMMANDS:
        return None
    read = _read(argv[0], argv[1:], cwd)
    if read is None:
        return None
    out, err = io.StringIO(), io.StringIO()
    try:
        status = _answer(argv[0], read, Caller(cwd, tty, out, err, store, search))
    except Refused:
        return None
    return status, out.getvalue(), err.getvalue()


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
    caller: Caller | None = None,
) -> None:
    """Search, keep the results for `open N`, print them: for the CLI and for `answer`."""
    from mmsearch.doors.opener import remember

    caller = caller or Caller()
    request = library.request(
        parts, top=top, filters=filters, moments=moments, mode=mode, sort=sort
    )
    if caller.search is not None:
        hits = caller.search(request)
    else:
        hits = library.ask(request) if library.ask_server else None
        if hits is None:
            quiet_libraries()  # what loads here (ONNX Runtime, LanceDB, even torch) may talk
            hits = library.search_here(request)
    with timings.phase("render"):
        remember(hits)
        if not hits and (fmt == "table" or caller.err.isatty()):
            from mmsearch.query.ranking import no_good_match

            see_all = "--min-score 0 shows the closest anyway"
            print(f"mmsearch: {no_good_match(filters.min_score, see_all)}", file=caller.err)
        if fmt == "table":
            from mmsearch.doors import render

            render.hits(hits, fmt, preview=preview)
        else:
            from mmsearch.doors.output import write_hits

            write_hits(hits, fmt, caller.out)


def _answer(command: str, read: dict[str, Any], caller: Caller) -> int:
    from mmsearch.core.private import take_notices
    from mmsearch.core.sanitise import terminal
    from mmsearch.doors.output import reader_gone

    try:
        _search(command, read, caller)
        return 0
    except Refused:
        raise
    except (Exception, KeyboardInterrupt) as e:
        if isinstance(e, BrokenPipeError) and caller.out is None:  # our reader left
            reader_gone()
            return ExitStatus.OK
        line, status = explain(e)  # a broken pipe in a server's search is a bug there
        print(f"mmsearch: {line}", file=caller.err)
        return status
    finally:
        for notice in take_notices(this_thread=caller.search is not None):
            print(f"mmsearch: {terminal(notice)}", file=caller.err)


def _search(command: str, read: dict[str, Any], caller: Caller) -> None:
    from mmsearch.core.config import Settings
    from mmsearch.core.paths import normalize
    from mmsearch.doors.output import FLAGS, output_format
    from mmsearch.library import Library
    from mmsearch.query.filters import Filters
    from mmsearch.query.grammar import parse, similar_parts

    fmt = output_format({f: read.get(f, False) for f, _ in FLAGS}, caller.tty)
    if fmt == "table" and caller.search is not None:
        raise Refused  # drawn by the client, for its terminal
    named = {k: read[k] if k in read else os.environ.get(v, "") for k, v in ENV.items()}
    if caller.cwd is not None:
        named = _anchored(named, caller.cwd)
    settings = Settings(**named)
    if caller.store is not None and settings.db != caller.store:
        raise Refused
    if command == "query":
        parts = parse(read["args"], caller.cwd)
    else:
        at = read.get("at")
        plus, minus = read.get("plus", []), read.get("minus", [])
        parts = similar_parts(normalize(read["args"][0], caller.cwd), at, plus, minus)
    within = read.get("within")
    filters = Filters.from_options(
        within and [normalize(w, caller.cwd) for w in within],
        read.get("kinds"),
        read.get("exts"),
        read.get("after"),
        read.get("before"),
        read.get("min_score"),
    )
    show(
        Library(settings),
        parts,
        fmt,
        top=read.get("top", 10),
        filters=filters,
        moments=read.get("moments", False),
        mode=read.get("mode", "auto"),
        sort=read.get("sort", "score"),
        caller=caller,
    )


def _anchored(named: dict[str, str], cwd: str) -> dict[str, str]:
    """The settings' paths as a client in `cwd` means them (here, in another folder).
    Refused for a path this process would read from its own folder where it cannot be
    moved without changing a message: a relative checkpoint or model folder, or a relative
    cache, data or temporary folder in the environment."""
    try:
        if os.path.samefile(cwd, os.getcwd()):
            return named
    except (OSError, ValueError):  # a folder gone, or a name no folder has (a NUL byte)
        pass
    db = named["db"]
    if db and "://" not in db:
        named = {**named, "db": os.path.join(cwd, os.path.expanduser(db))}
    pretrained = os.path.expanduser(named["pretrained"])
    model = named["model"]
    folder = ""
    if model.startswith("local-dir:"):
        folder = os.path.expanduser(model.removeprefix("local-dir:"))
    if (
        (folder and not os.path.isabs(folder))
        or any(not os.path.isabs(os.path.expanduser(v)) for v in _folders_named(os.environ))
        or (
            pretrained
            and not os.path.isabs(pretrained)
            and (os.path.exists(pretrained) or os.path.exists(os.path.join(cwd, pretrained)))
        )
    ):
        raise Refused
    return named


def _folders_named(environ: Mapping[str, str]) -> list[str]:
    """The folders the environment names for caches, data and temporary files (a relative
    one is read from this process's folder)."""
    from mmsearch.doors.client import relevant_env

    return [
        value
        for name, value in relevant_env(environ).items()
        if value and (name.endswith(("_HOME", "_CACHE", "_DIR")) or name in _TEMP_NAMES)
    ]


_TEMP_NAMES = ("TMPDIR", "TEMP", "TMP")


def _read(command: str, args: list[str], cwd: str | None = None) -> dict[str, Any] | None:
    """The command line's values by field ("args": the positional ones), or None when any
    part of it is not read here exactly as click reads it (relative paths from `cwd`, when
    not this process's folder)."""
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
    return read if _complete(command, read, cwd) else None


def _convert(field: str, value: str) -> Any:
    """A value as the CLI's type turns it into one, or None where the CLI might refuse it."""
    if field == "top":
        # past 18 digits (Python's int() refuses 4,300 and more), click is left to say so
        if not _WHOLE.fullmatch(value) or len(value) > 18:
            return None
        top = int(value)
        return top if 1 <= top <= MAX_TOP else None
    if field in ("min_score", "at"):
        if not _NUMBER.fullmatch(value) or (field == "at" and value.startswith("-")):
            return None
        return float(value)
    if field == "within":
        from pathlib import Path

        return str(Path(value))
    return value


def _complete(command: str, read: dict[str, Any], cwd: str | None) -> bool:
    """Whether the arguments are what the command needs, as the CLI checks them."""
    args = read["args"]
    if command == "query":
        return bool(args)
    if len(args) != 1:
        return False
    from pathlib import Path

    path = Path(args[0])
    read["args"] = [str(path)]
    where = Path(cwd, path) if cwd is not None else path
    return where.exists() and not where.is_dir()  # the CLI's FILE: exists, not a folder
