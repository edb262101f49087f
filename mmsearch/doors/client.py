"""Ask a running `mmsearch serve` (or `watch`) instead of loading the model here: a search
(`ask`), or a whole `query`/`similar` command line (`hand_over`), which the server reads,
runs and prints as this process would have, from the client's folder and environment.

Light on imports: this is the fast path of every query. A handed-over command line needs
nothing else of mmsearch here, not even its settings or the command line's grammar."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import sys
from pathlib import Path

from mmsearch.core.errors import MmsearchError, explain

try:
    from _sha1 import sha1  # CPython's own: hashlib sets up OpenSSL, 3 ms of a warm query
except ImportError:  # another Python
    from hashlib import sha1

TYPE_CHECKING = False  # typing itself is 3 ms of a warm query; type checkers read it as True
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

VERSION = 1  # of a search request (mmsearch.doors.protocol); another version is refused, unrun
RUN = "run/1"  # of a handed-over command line; a server that does not know it refuses it
CONNECT_TIMEOUT = 0.5  # a live server accepts at once; anything slower is not worth waiting on
ANSWER_TIMEOUT = 120.0  # the first query may load a model


def socket_path(db: str) -> Path:
    """One socket per store, in this user's runtime folder."""
    return runtime_folder() / (sha1(db.encode()).hexdigest()[:16] + ".sock")


def runtime_folder() -> Path:
    """Where this user's sockets live: `mmsearch-UID` in $XDG_RUNTIME_DIR when that is a
    folder of this user's that no one else may write in, else `run` in mmsearch's cache
    folder; never a name in the shared temporary folder, which another user can take
    first. The server makes it 0700 and checks that it is this user's alone before it
    writes anything there (`core.private.owned_folder`); a client only connects to a
    socket of its own uid in it."""
    base = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(base):
        try:
            st = os.stat(base)
        except OSError:
            pass
        else:
            if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022:
                return Path(base, f"mmsearch-{os.getuid()}")
    return Path(cache_folder(), "run")


def cache_folder() -> str:
    """config.cache_root()'s answer, absolute, without importing platformdirs on Linux:
    $MMSEARCH_CACHE, else an absolute $XDG_CACHE_HOME or ~/.cache, then mmsearch."""
    given = os.environ.get("MMSEARCH_CACHE", "")
    if given:
        return os.path.abspath(os.path.expanduser(given))
    if not sys.platform.startswith("linux"):
        from mmsearch.core.config import cache_root

        return str(cache_root().absolute())
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.expanduser("~/.cache")
    return os.path.join(base, "mmsearch")


def ask(db: str, request: dict[str, Any]) -> dict[str, Any] | None:
    """The server's answer, or None when no server of ours is listening for this store, or
    it speaks another protocol (nothing ran there: the caller answers by itself).

    Once a server has the request, its outcome is the answer: a server that then fails,
    hangs up or outlives ANSWER_TIMEOUT is an error, never a second run here."""
    if os.environ.get("MMSEARCH_NO_SERVER"):
        return None
    return _exchange(db, socket_path(db), {"v": VERSION, "db": db, **request})


def _exchange(db: str, path: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """Send `request` to the server for `db` at `path`: its reply, or None when no server
    of ours listens or it refused (ran nothing)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        try:
            conn.settimeout(CONNECT_TIMEOUT)
            conn.connect(str(path))
        except OSError:
            return None  # a killed server's socket, or one too busy to accept: nothing ran
        try:
            conn.settimeout(ANSWER_TIMEOUT)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                # a server that refuses at once (busy) answers before reading it all
                conn.sendall(json.dumps(request).encode() + b"\n")
                conn.shutdown(socket.SHUT_WR)
            answer = b"".join(iter(lambda: conn.recv(1 << 16), b""))
        except TimeoutError:
            raise _no_answer(db, f"no answer within {ANSWER_TIMEOUT:g} s") from None
        except OSError as e:
            raise _no_answer(db, e.strerror or str(e)) from None
    try:
        reply = json.loads(answer)
    except ValueError:
        raise _no_answer(db, "it hung up without an answer" if not answer else "garbled") from None
    if not isinstance(reply, dict) or reply.get("v") != request["v"] or "refused" in reply:
        return None  # another version of mmsearch, or a request it will not run: nothing ran
    return reply


def _no_answer(db: str, why: str) -> MmsearchError:
    return MmsearchError(
        f"the server for {db} did not answer ({why}); stop it, or set MMSEARCH_NO_SERVER=1 "
        "to search without it"
    )


# What a handed-over command line may read of the environment besides its own words: the
# settings (MMSEARCH_*), where caches, stores and weights live (HOME, XDG_*, HF_*), the time
# zone of dates, the temporary folder and the proxies the weights check looks at. A server
# runs it only when these are its own, so its answer is the one the client would give.
ENV_NAMES = frozenset(
    {
        "HOME",
        "TZ",
        "TMPDIR",
        "TEMP",
        "TMP",
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "XDG_STATE_HOME",
        "XDG_RUNTIME_DIR",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)
ENV_PREFIXES = ("MMSEARCH_", "HF_", "HUGGINGFACE_")
# Set, they need this process: no server at all, timings of this process, a traceback here.
_HERE_ONLY = ("MMSEARCH_NO_SERVER", "MMSEARCH_TIMINGS", "MMSEARCH_TRACEBACK")
_FORMAT_FLAGS = frozenset({"--json", "--jsonl", "--paths", "-0", "--null"})


def relevant_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of an environment a handed-over command line may depend on."""
    return {k: v for k, v in environ.items() if k in ENV_NAMES or k.startswith(ENV_PREFIXES)}


def hand_over(argv: list[str]) -> int | None:
    """Have the server of the store `argv` (`query ...` or `similar ...`) names run it, and
    print its output here: the exit status, or None when no server took it (none listens,
    another version, another environment, a table for this terminal: nothing ran, the
    caller runs it). Errors in the exchange are said here, as `ask` raises them."""
    if any(os.environ.get(name) for name in _HERE_ONLY):
        return None
    tty = sys.stdout.isatty()
    if tty and not _FORMAT_FLAGS.intersection(argv):
        return None  # a table for a person, drawn here to this terminal's width and colours
    try:
        cwd = os.getcwd()
    except OSError:
        return None  # a folder that was removed: the CLI says so
    try:
        db = store_named(argv)
        path = socket_path(db)
    except Exception:  # `~nobody/db`, a name not in UTF-8: the CLI says what is wrong
        return None
    request = {"v": RUN, "argv": argv, "cwd": cwd, "env": relevant_env(os.environ), "tty": tty}
    try:
        reply = _exchange(db, path, request)
    except (MmsearchError, KeyboardInterrupt) as e:
        line, status = explain(e)
        print(f"mmsearch: {line}", file=sys.stderr)
        return status
    if reply is None:
        return None
    code = reply.get("exit_code")
    try:
        # line by line, as one-shot writes them: a line this stdout cannot encode stops it
        sys.stdout.writelines(str(reply.get("stdout", "")).splitlines(keepends=True))
        sys.stdout.flush()
    except BrokenPipeError:
        from mmsearch.doors.output import reader_gone

        reader_gone()
    except Exception as e:  # a path this terminal's encoding cannot show, as one-shot says
        line, code = explain(e)
        sys.stderr.write(f"mmsearch: {line}\n")
    sys.stderr.write(str(reply.get("stderr", "")))
    return code if isinstance(code, int) and not isinstance(code, bool) else 1


def store_named(argv: list[str]) -> str:
    """The store a command line names (`--db`, else $MMSEARCH_DB, else the default), as
    Settings makes it absolute: where to find its server. Only a guess, the server reads
    the command line itself and refuses one for another store."""
    named = os.environ.get("MMSEARCH_DB", "")
    words = iter(argv)
    for word in words:
        if word == "--":
            break
        if word == "--db":
            named = next(words, named)
        elif word.startswith("--db="):
            named = word.removeprefix("--db=")
    if not named:
        return _default_store()
    if "://" in named:
        return named
    return str(Path(named).expanduser().absolute())


def _default_store() -> str:
    """config.default_db()'s answer without importing platformdirs (and its tempfile) on
    Linux: an absolute $XDG_DATA_HOME, else ~/.local/share; then mmsearch/db."""
    if not sys.platform.startswith("linux"):
        from mmsearch.core.config import default_db

        return default_db()
    data = os.environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(data):
        data = os.path.expanduser("~/.local/share")
    return str(Path(data, "mmsearch", "db"))
