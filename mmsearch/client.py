"""Ask a running `mmsearch serve` (or `watch`) instead of loading the model here.

Light on imports: this is the fast path of every query."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

from mmsearch.errors import MmsearchError
from mmsearch.protocol import VERSION as PROTOCOL

CONNECT_TIMEOUT = 0.5  # a live server accepts at once; anything slower is not worth waiting on
ANSWER_TIMEOUT = 120.0  # the first query may load a model


def socket_path(db: str) -> Path:
    """One socket per store, in a folder only this user can enter."""
    base = os.environ.get("XDG_RUNTIME_DIR") or _temp_folder()
    name = hashlib.sha1(db.encode()).hexdigest()[:16] + ".sock"
    return Path(base) / f"mmsearch-{os.getuid()}" / name


def _temp_folder() -> str:
    """tempfile.gettempdir()'s answer on a usual system, without importing tempfile (3 ms of a
    warm query): the first of $TMPDIR, $TEMP, $TMP that is a folder, else /tmp."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        value = os.environ.get(name, "")
        if value and os.path.isdir(value):
            return os.path.abspath(value)
    return "/tmp"


def ask(db: str, request: dict[str, Any]) -> dict[str, Any] | None:
    """The server's answer, or None when no server of ours is listening for this store, or
    it speaks another protocol (nothing ran there: the caller answers by itself).

    Once a server has the request, its outcome is the answer: a server that then fails,
    hangs up or outlives ANSWER_TIMEOUT is an error, never a second run here."""
    if os.environ.get("MMSEARCH_NO_SERVER"):
        return None
    path = socket_path(db)
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
                conn.sendall(json.dumps({"v": PROTOCOL, "db": db, **request}).encode() + b"\n")
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
    if not isinstance(reply, dict) or reply.get("v") != PROTOCOL or "refused" in reply:
        return None  # another version of mmsearch: it ran nothing
    return reply


def _no_answer(db: str, why: str) -> MmsearchError:
    return MmsearchError(
        f"the server for {db} did not answer ({why}); stop it, or set MMSEARCH_NO_SERVER=1 "
        "to search without it"
    )
