"""The warm path: one process per store keeps the model loaded and the index open, and
answers searches over a Unix socket that only its user can reach."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mmsearch.client import ask, socket_path
from mmsearch.errors import MmsearchError, StoreBusy
from mmsearch.protocol import VERSION, SearchRequest, error_reply, hits_reply

if TYPE_CHECKING:
    from mmsearch.library import Library

MAX_REQUEST = 1 << 20


def answer(library: Library, request: dict[str, Any]) -> dict[str, Any]:
    """What `ask` gets back: hits, or the error a one-shot run would have raised."""
    if request.get("v") != VERSION or request.get("db") != library.settings.db:
        return {"v": VERSION, "refused": "another protocol or store"}
    if request.get("ping"):
        return {"v": VERSION, "pid": os.getpid()}
    try:
        return hits_reply(library.search_here(SearchRequest.from_wire(request)))
    except MmsearchError as e:
        return error_reply(e)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        if _peer_uid(self.connection) not in (None, os.getuid()):
            return  # the folder's mode already keeps others out; this is belt and braces
        line = self.rfile.readline(MAX_REQUEST)
        try:
            request = json.loads(line)
            reply = answer(self.server.library, request)
        except (ValueError, KeyError, TypeError) as e:
            reply = {"v": VERSION, "refused": f"bad request: {e}"}
        except Exception as e:  # one bad query must not take the server down
            reply = {"v": VERSION, "refused": f"{type(e).__name__}: {e}"}
        self.wfile.write(json.dumps(reply).encode())


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, library: Library):
        self.library = library
        super().__init__(path, _Handler)


def _peer_uid(conn: socket.socket) -> int | None:
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


@contextlib.contextmanager
def serving(library: Library) -> Iterator[str]:
    """Listen for the library's store in a background thread until the block ends; yields
    the socket path. Fails with StoreBusy when another live server already answers."""
    from mmsearch.library import Library

    db = library.settings.db
    local = Library(library.settings, ask_server=False)  # a server never asks itself
    path = socket_path(db)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    running = ask(db, {"ping": True})
    if running is not None:
        raise StoreBusy(f"mmsearch (pid {running.get('pid')}) already answers queries for {db}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a server that was killed
    old_umask = os.umask(0o177)
    try:
        server = _Server(str(path), local)
    finally:
        os.umask(old_umask)
    thread = threading.Thread(target=server.serve_forever, name="mmsearch-serve", daemon=True)
    thread.start()
    try:
        yield str(path)
    finally:
        server.shutdown()
        server.server_close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def warm_up(library: Library) -> None:
    """Load what the first query would: the text tower and the index."""
    from mmsearch.snapshot import open_fresh

    library.embedder().embed_texts(["warm up"])
    open_fresh(library.settings.db, library.settings.model_key)
