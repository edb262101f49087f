"""The warm path: one process per store keeps the model loaded and the index open, and
answers `query`/`similar` over a Unix socket that only its user can reach."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from typing import Any

from mmsearch.client import PROTOCOL, ask, socket_path
from mmsearch.config import Settings
from mmsearch.errors import MmsearchError, StoreBusy
from mmsearch.grammar import Part
from mmsearch.query import Filters, search

MAX_REQUEST = 1 << 20


def answer(settings: Settings, request: dict[str, Any]) -> dict[str, Any]:
    """What `ask` gets back: hits, or the error a one-shot run would have raised."""
    if request.get("v") != PROTOCOL or request.get("db") != settings.db:
        return {"v": PROTOCOL, "refused": "another protocol or store"}
    if request.get("ping"):
        return {"v": PROTOCOL, "pid": os.getpid()}
    try:
        asked = dataclasses.replace(
            settings, model=request["model"], pretrained=request.get("pretrained")
        )
        hits = search(
            asked,
            [Part(**p) for p in request["parts"]],
            top=int(request["top"]),
            filters=Filters(**request["filters"]),
            moments=bool(request["moments"]),
            mode=str(request["mode"]),
        )
    except MmsearchError as e:
        return {"v": PROTOCOL, "error": str(e), "exit_code": e.exit_code}
    return {"v": PROTOCOL, "hits": [dataclasses.asdict(h) for h in hits]}


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        if _peer_uid(self.connection) not in (None, os.getuid()):
            return  # the folder's mode already keeps others out; this is belt and braces
        line = self.rfile.readline(MAX_REQUEST)
        try:
            request = json.loads(line)
            reply = answer(self.server.settings, request)
        except (ValueError, KeyError, TypeError) as e:
            reply = {"v": PROTOCOL, "refused": f"bad request: {e}"}
        except Exception as e:  # one bad query must not take the server down
            reply = {"v": PROTOCOL, "refused": f"{type(e).__name__}: {e}"}
        self.wfile.write(json.dumps(reply).encode())


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, settings: Settings):
        self.settings = settings
        super().__init__(path, _Handler)


def _peer_uid(conn: socket.socket) -> int | None:
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """Listen for this store in a background thread until the block ends; yields the socket
    path. Fails with StoreBusy when another live server already answers for the store."""
    path = socket_path(settings.db)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    running = ask(settings.db, {"ping": True})
    if running is not None:
        raise StoreBusy(
            f"mmsearch (pid {running.get('pid')}) already answers queries for {settings.db}"
        )
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a server that was killed
    old_umask = os.umask(0o177)
    try:
        server = _Server(str(path), settings)
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


def warm_up(settings: Settings) -> None:
    """Load what the first query would: the text tower and the index."""
    from mmsearch.embed import load_embedder
    from mmsearch.snapshot import open_fresh

    load_embedder(settings).embed_texts(["warm up"])
    open_fresh(settings.db, settings.model_key)
