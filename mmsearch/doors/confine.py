"""What the doors others can knock on (the web UI, reached through a browser, and the MCP
server, driven by an agent that reads whatever the data says) may read of this machine:
files of the library, and nothing that tells what lies outside it.

A picture a query names there must lie inside a folder indexed into the store, its links
resolved (`Library.holds`); anywhere else the answer is one line that is the same whether
something is there or not. Inside, each reason a picture cannot be used is a refusal with
an HTTP status of its own (a user's error is never a 500). The command line and `serve`
(reached by this user alone) read any picture the user names."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mmsearch.core.errors import MmsearchError, NoIndex
from mmsearch.core.formats import kind_of
from mmsearch.core.vocab import Kind
from mmsearch.query.grammar import OUTSIDE_LIBRARY

if TYPE_CHECKING:
    from mmsearch.library import Library


class Refused(MmsearchError):
    """A request a door turns away: an HTTP status (the web UI's) and one line."""

    exit_code = 2

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def query_picture(library: Library, path: str) -> None:
    """Refuse the picture at `path` as a query unless it is a regular file of the library
    within the query caps."""
    from mmsearch.indexing.reading import MAX_FILE_BYTES

    if not library.holds(path):  # first: nothing below may tell what is outside
        raise Refused(400, f"{path}: {OUTSIDE_LIBRARY}")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise Refused(400, f"no such image: {path}") from None
    except OSError as e:
        raise Refused(403, f"cannot read {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise Refused(415, f"{path} is not a picture: not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        size, limit = st.st_size >> 20, MAX_FILE_BYTES >> 20
        raise Refused(413, f"{path} is too large for a query ({size} MiB > {limit} MiB)")
    if kind_of(path) == Kind.DOCUMENT:
        raise Refused(415, f"{path} is a document, not a picture")


def status_of(error: MmsearchError, pictures: Sequence[str] = ()) -> int:
    """The HTTP status of an error, here or from a server (where only its exit code and
    message cross the socket): a refusal's own, 400 for a usage error, 404 for nothing
    indexed, 415 for a query picture that would not decode (its message starts with its
    path), 503 for a busy store; 500 only for what is not the user's doing."""
    if isinstance(error, Refused):
        return error.status
    if error.exit_code == 2:
        return 400
    if error.exit_code == 3:
        return 503
    message = str(error)
    if isinstance(error, NoIndex) or message.startswith("nothing indexed"):
        return 404
    if any(message.startswith(p) for p in pictures):
        return 415
    return 500
