"""The warm path: one process per store keeps the model loaded and the index open, and
answers searches over a Unix socket that only its user can reach.

Quiet and bounded: a request is read with a size cap and a deadline and validated before
anything runs; only models the store holds are served; a fixed pool of workers answers,
and a connection beyond what the pool and its short queue hold is told the server is busy;
a client that goes away costs at most one log line a minute. The socket is owned through a
lock taken atomically (flock), never by "is anyone there? then unlink and bind"."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import socketserver
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.core.bounds import MAX_LIST
from mmsearch.core.errors import MmsearchError, NotPrivate, StoreBusy, internal_error, one_line
from mmsearch.core.private import owned_folder, private_folder, private_umask
from mmsearch.doors.client import RUN, VERSION, cache_folder, relevant_env, socket_path
from mmsearch.doors.protocol import SearchRequest, error_reply, hits_reply

if TYPE_CHECKING:
    from mmsearch.library import Library
    from mmsearch.query.ranking import Hit

MAX_REQUEST = 1 << 20  # bytes: a query is words and a few paths
WORKERS = 4  # searches at once; the model and the index are shared by all
WAITING = 16  # accepted connections that may wait for a worker; more are told "busy"
READ_TIMEOUT = 10.0  # seconds a client has to send its request
LOG_EVERY = 60.0  # seconds between two lines about clients that went away
MAX_ARGV = 4 * MAX_LIST  # words of a handed-over command line (more: the client runs it)

Notice = Callable[[str], None]


def answer(library: Library, request: Any) -> dict[str, Any]:
    """What `ask` gets back: hits, or the error a one-shot run would have raised; for a
    handed-over command line, what `hand_over` prints."""
    if isinstance(request, dict) and request.get("v") == RUN:
        return _run(library, request)
    if (
        not isinstance(request, dict)
        or request.get("v") != VERSION
        or request.get("db") != library.settings.db
    ):
        return {"v": VERSION, "refused": "another protocol or store"}
    if request.get("ping"):
        return {"v": VERSION, "pid": os.getpid()}
    try:
        search = SearchRequest.from_wire(request)
        _check_model(library, search)
        return hits_reply(library.search_here(search))
    except MmsearchError as e:
        return error_reply(e)
    except Exception as e:  # a bug here must reach the user as one line, as one-shot would
        return error_reply(MmsearchError(f"internal error: {type(e).__name__}: {one_line(e)}"))


def _run(library: Library, request: dict[str, Any]) -> dict[str, Any]:
    """Run a client's `query`/`similar` command line as the client would have run it, or
    refuse (the client then runs it itself): a malformed request, an environment other
    than this process's, or anything `quick.answer_handed` will not run here."""
    from mmsearch.doors.quick import answer_handed

    argv, cwd, env, tty = (request.get(k) for k in ("argv", "cwd", "env", "tty"))
    if not (
        isinstance(argv, list)
        and len(argv) <= MAX_ARGV
        and all(isinstance(a, str) for a in argv)
        and isinstance(cwd, str)
        and os.path.isabs(cwd)
        and isinstance(tty, bool)
        and env == relevant_env(os.environ)
        and not any("$" in value for value in env.values())  # may name variables not sent
    ):
        return {"v": RUN, "refused": "another environment, or not a command line"}

    def search(wanted: SearchRequest) -> list[Hit]:
        _check_model(library, wanted)
        return library.search_here(wanted)

    try:
        ran = answer_handed(argv, cwd, tty, library.settings.db, search)
    except Exception as e:  # a bug here must reach the user as one line, as one-shot would
        ran = 1, "", f"mmsearch: {internal_error(e)}\n"
    if ran is None:
        return {"v": RUN, "refused": "the client runs this command line itself"}
    status, out, err = ran
    return {"v": RUN, "exit_code": status, "stdout": out, "stderr": err}


def _check_model(library: Library, request: SearchRequest) -> None:
    """Serve only the models the store holds: a client cannot make the server load (and
    keep) whatever model it names, nor hash whatever file it calls a checkpoint."""
    if (request.model, request.pretrained) == (library.settings.model, library.settings.pretrained):
        return
    held = {(m["model"], m["pretrained"]) for m in library.store.models()}
    if (request.model, request.pretrained) not in held:
        from mmsearch.storage.store import no_index

        settings = library.with_model(request.model, request.pretrained).settings
        raise no_index(settings, library.store)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server
    timeout = READ_TIMEOUT

    def handle(self) -> None:
        if _peer_uid(self.connection) not in (None, os.getuid()):
            return  # the folder's mode already keeps others out; this is belt and braces
        line = self.rfile.readline(MAX_REQUEST + 1)
        if len(line) > MAX_REQUEST:
            reply: dict[str, Any] = error_reply(
                MmsearchError(f"request too large (over {MAX_REQUEST >> 10} KiB)")
            )
        else:
            try:
                request = json.loads(line)
            except ValueError as e:
                reply = {"v": VERSION, "error": f"bad request: {one_line(e)}", "exit_code": 2}
            else:
                reply = answer(self.server.library, request)
        self.wfile.write(json.dumps(reply).encode())


class _Server(socketserver.UnixStreamServer):
    """A Unix-socket server with a fixed pool of workers instead of a thread per client."""

    request_queue_size = 64

    def __init__(self, path: str, library: Library, on_notice: Notice):
        self.library = library
        self.on_notice = on_notice
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="mmsearch-serve")
        self.slots = threading.BoundedSemaphore(WORKERS + WAITING)
        self.gone = 0  # clients that went away since the last line about them
        self.said_at = -LOG_EVERY
        self.log_lock = threading.Lock()
        super().__init__(path, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self._busy(request)
            return
        self.pool.submit(self._work, request, client_address)

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self.slots.release()

    def _busy(self, request: Any) -> None:
        reply = error_reply(StoreBusy("the server is busy with other queries: try again"))
        with contextlib.suppress(OSError):
            request.settimeout(0.2)
            request.sendall(json.dumps(reply).encode())
            request.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline and request.recv(1 << 16):
                pass  # closing on an unread request would reset the connection, reply and all
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (or never sent its request) is no one's problem: counted,
        and said at most once a minute, never as a traceback."""
        with self.log_lock:
            self.gone += 1
            now = time.monotonic()
            if now - self.said_at < LOG_EVERY:
                return
            gone, self.gone, self.said_at = self.gone, 0, now
        self.on_notice(f"{gone} client(s) went away before their answer")

    def server_close(self) -> None:
        super().server_close()
        self.pool.shutdown(wait=False, cancel_futures=True)


def _peer_uid(conn: socket.socket) -> int | None:
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


@contextlib.contextmanager
def _owning(path: str, db: str) -> Iterator[None]:
    """Hold the socket's lock for the block: taken atomically, so of two servers started at
    the same instant exactly one owns the socket, and the other fails with StoreBusy. The
    lock dies with its process, so a killed server's socket is simply taken over."""
    lock_path = path + ".lock"
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with private_umask():
            fd = os.open(lock_path, flags, 0o600)  # never through a link
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise NotPrivate(f"cannot use the lock {lock_path}: {e.strerror or e}") from None
        fd = -1
    st = os.fstat(fd) if fd >= 0 else None
    if st is None or not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        if fd >= 0:
            os.close(fd)
        raise NotPrivate(
            f"{lock_path} is not a file of yours (a link, or another user's): mmsearch will "
            "not use it; remove it"
        )
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise StoreBusy(f"mmsearch (pid {owner}) already answers queries for {db}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def serving(library: Library, on_notice: Notice = lambda message: None) -> Iterator[str]:
    """Listen for the library's store in a background thread until the block ends; yields
    the socket path. Fails with StoreBusy when another server owns the socket. Only
    clients heed MMSEARCH_NO_SERVER."""
    from mmsearch.library import Library

    db = library.settings.db
    local = Library(library.settings, ask_server=False)  # a server never asks itself
    path = socket_path(db)
    if path.parent.parent == Path(cache_folder()):
        private_folder(path.parent.parent)  # the cache folder, made or tightened
    owned_folder(path.parent)  # this user's alone, or refused before anything is written
    with _owning(str(path), db):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a server that was killed: we own the lock now
        with private_umask():
            server = _Server(str(path), local, on_notice)
        path.chmod(0o600)  # read and write are all a client needs
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
    from mmsearch.storage.snapshot import open_fresh

    library.embedder().embed_texts(["warm up"])
    open_fresh(library.settings.db, library.settings.model_key)
