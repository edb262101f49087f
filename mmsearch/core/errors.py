"""Domain errors: the library raises them, the CLI maps them to one line and an exit code.

Every message is redacted where it is made (`mmsearch.core.redact`): an error, a reason or
an internal error cannot carry a password or a secret key to any door."""

from mmsearch.core.redact import redact


class MmsearchError(Exception):
    """A problem the user can act on; its message is one line that says how (redacted)."""

    exit_code = 1

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class UsageError(MmsearchError):
    """The command was asked something it cannot mean."""

    exit_code = 2


class StoreError(MmsearchError):
    """The store cannot be opened, read or written."""


class StoreBusy(StoreError):
    """Another process holds the store's writer lock."""

    exit_code = 3


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
