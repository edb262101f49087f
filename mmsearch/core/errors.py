"""Domain errors, and the one mapper from any exception to what a door shows: the library
raises, and every door (CLI, fast path, client, server, web UI, MCP) calls `explain` to get
one line and an `ExitStatus`, then renders them its own way (stderr and an exit code, a
reply, an HTTP status, an MCP error).

Every message is redacted where it is made (`mmsearch.core.redact`): an error, a reason or
an internal error cannot carry a password or a secret key to any door."""

import os
from enum import IntEnum

from mmsearch.core.redact import redact


class ExitStatus(IntEnum):
    """The documented exit codes (README: exit codes)."""

    OK = 0
    ERROR = 1  # something went wrong: the message says what
    USAGE = 2  # the command was asked something it cannot mean
    BUSY = 3  # another process writes to the store, or serves it
    INTERRUPTED = 130  # Ctrl-C


class MmsearchError(Exception):
    """A problem the user can act on; its message is one line that says how (redacted)."""

    exit_code: int = ExitStatus.ERROR

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class UsageError(MmsearchError):
    """The command was asked something it cannot mean."""

    exit_code = ExitStatus.USAGE


class StoreError(MmsearchError):
    """The store cannot be opened, read or written."""


class StoreBusy(StoreError):
    """Another process holds the store's writer lock."""

    exit_code = ExitStatus.BUSY


class NotPrivate(MmsearchError):
    """A folder mmsearch must hold alone (where its sockets live) is a link, another user's,
    or open to others: refused before anything is written in it."""


class NoIndex(MmsearchError):
    """There is nothing indexed for this model yet."""


class ModelUnavailable(MmsearchError):
    """The model or its weights cannot be loaded."""


class ModelMismatch(MmsearchError):
    """The loaded model does not match what the index recorded for it."""


class EngineError(MmsearchError):
    """The distributed engine (Ray) failed as a whole: not one file, the job."""


class ExtractError(Exception):
    """One file could not be turned into pixels; recorded as that file's failure reason."""


class NothingInside(ExtractError):
    """The file is fine but holds nothing to index (no bytes, no text, no pictures): its
    outcome is "empty", not a failure, and it is not read again until it changes."""


def one_line(e: BaseException) -> str:
    """An exception's message folded onto one line of at most 200 characters, redacted: the
    form every reason and error takes."""
    text = redact(" ".join(str(e).split())) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


INTERRUPTED = "interrupted (run the same command again to finish)"


def internal_error(e: BaseException) -> str:
    """The line for a bug: what broke, and how to see and report it."""
    from mmsearch.core.sanitise import terminal

    return (
        f"internal error: {type(e).__name__}: {terminal(one_line(e))} "
        "(set MMSEARCH_TRACEBACK=1 for details and report it)"
    )


def explain(e: BaseException) -> tuple[str, ExitStatus]:
    """What a door shows for an exception that reached it (after its own name, as in
    `mmsearch: <line>`), and the status a process ends with: a domain error says what to do,
    Ctrl-C how to finish, a bug what broke; with MMSEARCH_TRACEBACK set, a bug's traceback
    follows its line, in every door."""
    from mmsearch.core.sanitise import terminal

    if isinstance(e, MmsearchError):
        return f"error: {terminal(str(e))}", _status(e.exit_code)
    if isinstance(e, KeyboardInterrupt):
        return INTERRUPTED, ExitStatus.INTERRUPTED
    line = internal_error(e)
    if os.environ.get("MMSEARCH_TRACEBACK"):
        import traceback

        line += "\n" + "".join(traceback.format_exception(e)).rstrip()
    return line, ExitStatus.ERROR


def _status(code: int) -> ExitStatus:
    try:
        return ExitStatus(code)
    except ValueError:  # a code sent by another version of a server
        return ExitStatus.ERROR
