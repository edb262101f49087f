"""The warm path: one process per store keeps the model loaded and the index open, and
answers searches over a Unix socket that only its user can reach.

Quiet and bounded: every request is read by one thread, off the workers, with a size cap
and a deadline for the whole request (a client trickling bytes holds a socket for at most
READ_TIMEOUT seconds, never a worker), and validated before anything runs; only models
the store holds are served; a fixed pool of workers answers requests read whole; a
connection beyond what the server holds at once, in all or from one client process, or
beyond what the pool's short queue holds, is told the server is busy; a client that goes
away costs at most one log line a minute. The socket is owned through a
lock taken atomically (flock), never by "is anyone there? then unlink and bind"."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import queue
import selectors
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
from mmsearch.core.errors import MmsearchError, NotPrivate, StoreBusy, explain, one_line
from mmsearch.core.private import owned_folder, private_folder, private_umask
from mmsearch.doors.client import RUN, VERSION, cache_folder, relevant_env, socket_path
from mmsearch.doors.protocol import SearchRequest, error_reply, hits_reply

if TYPE_CHECKING:
    from mmsearch.library import Library
    from mmsearch.query.ranking import Hit

MAX_REQUEST = 1 << 20  # bytes: a query is words and a few paths
WORKERS = 4  # searches at once; the model and the index are shared by all
WAITING = 16  # requests read whole that may wait for a worker; more are told "busy"
MAX_CONNECTIONS = 64  # connections held at once (being read, waiting, answered)
PER_PEER = 8  # of those, from one client process: slow clients cannot take them all
READ_TIMEOUT = 10.0  # seconds a client has to send its whole request
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
        line, status = explain(e)
        return {"v": VERSION, "error": line, "exit_code": status}


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
        line, status = explain(e)
        ran = status, "", f"mmsearch: {line}\n"
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


def _reply_to(library: Library, line: bytes) -> dict[str, Any]:
    """The reply to one request line, as read."""
    if len(line) > MAX_REQUEST:
        return error_reply(MmsearchError(f"request too large (over {MAX_REQUEST >> 10} KiB)"))
    try:
        request = json.loads(line)
    except ValueError as e:
        return {"v": VERSION, "error": f"bad request: {one_line(e)}", "exit_code": 2}
    return answer(library, request)


@dataclasses.dataclass
class _Reading:
    """A connection whose request is still coming in."""

    peer: int | None
    deadline: float  # the whole request by then, however slowly it trickles in
    data: bytearray = dataclasses.field(default_factory=bytearray)
    draining: bool = False  # told busy: its unread request is read and dropped


class _Reader(threading.Thread):
    """Every connection's request is read here, by one thread and one selector, not by a
    worker: a client that sends slowly (or not at all) holds a socket, never a worker, and
    for at most READ_TIMEOUT seconds for its whole request. A request read whole goes to
    the pool; a late one is dropped with a line that says so."""

    def __init__(self, server: _Server):
        super().__init__(name="mmsearch-serve-read", daemon=True)
        self.server = server
        self.selector = selectors.DefaultSelector()
        self.wake, self._waker = socket.socketpair()
        self.wake.setblocking(False)
        self.selector.register(self.wake, selectors.EVENT_READ)
        self.incoming: queue.SimpleQueue[tuple[socket.socket, _Reading]] = queue.SimpleQueue()
        self.reading: dict[socket.socket, _Reading] = {}
        self.stopped = False

    def add(self, conn: socket.socket, peer: int | None, draining: bool = False) -> None:
        wait = 0.5 if draining else self.server.read_timeout
        self.incoming.put((conn, _Reading(peer, time.monotonic() + wait, draining=draining)))
        with contextlib.suppress(OSError):
            self._waker.send(b"\0")

    def stop(self) -> None:
        self.stopped = True
        with contextlib.suppress(OSError):
            self._waker.send(b"\0")

    def run(self) -> None:
        try:
            while not self.stopped:
                now = time.monotonic()
                soonest = min((r.deadline for r in self.reading.values()), default=now + 1)
                for key, _ in self.selector.select(max(0.0, soonest - now)):
                    if key.fileobj is self.wake:
                        self._take_new()
                    else:
                        self._read(key.fileobj)  # type: ignore[arg-type]
                now = time.monotonic()
                for conn, reading in list(self.reading.items()):
                    if now >= reading.deadline:
                        self._late(conn, reading)
        finally:
            for conn, reading in list(self.reading.items()):
                self._drop(conn, reading)
            self.selector.close()
            self.wake.close()
            self._waker.close()

    def _take_new(self) -> None:
        with contextlib.suppress(OSError):
            while self.wake.recv(4096):
                pass
        while not self.incoming.empty():
            conn, reading = self.incoming.get()
            conn.setblocking(False)
            self.reading[conn] = reading
            self.selector.register(conn, selectors.EVENT_READ)

    def _read(self, conn: socket.socket) -> None:
        reading = self.reading[conn]
        try:
            chunk = conn.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if reading.draining:
            if not chunk:
                self._drop(conn, reading)
            return
        reading.data += chunk
        done = not chunk or b"\n" in chunk or len(reading.data) > MAX_REQUEST
        if not done:
            return
        self.selector.unregister(conn)
        del self.reading[conn]
        if not reading.data:  # hung up without asking
            self.server.went_away(reading.peer, conn)
            return
        line = bytes(reading.data).split(b"\n", 1)[0]
        self.server.dispatch(conn, line[: MAX_REQUEST + 1], reading.peer)

    def _late(self, conn: socket.socket, reading: _Reading) -> None:
        if not reading.draining:
            seconds = self.server.read_timeout
            said = MmsearchError(f"no whole request within {seconds:g} s: the server moved on")
            with contextlib.suppress(OSError):
                conn.send(json.dumps(error_reply(said)).encode())
            self.server.count_gone()
        self._drop(conn, reading)

    def _drop(self, conn: socket.socket, reading: _Reading) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        self.reading.pop(conn, None)
        self.server.close_connection(conn, reading.peer)


class _Server(socketserver.UnixStreamServer):
    """A Unix-socket server: one thread reads every request (`_Reader`), a fixed pool of
    workers answers those read whole. A connection beyond what it holds at once (in all,
    or from one client process) is told the server is busy."""

    request_queue_size = 64

    def __init__(self, path: str, library: Library, on_notice: Notice):
        self.library = library
        self.on_notice = on_notice
        self.read_timeout = READ_TIMEOUT
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="mmsearch-serve")
        self.slots = threading.BoundedSemaphore(WORKERS + WAITING)
        self.held: dict[int | None, int] = {}  # connections held, by client process
        self.held_lock = threading.Lock()
        self.gone = 0  # clients that went away since the last line about them
        self.said_at = -LOG_EVERY
        self.log_lock = threading.Lock()
        super().__init__(path, socketserver.BaseRequestHandler)
        self.reader = _Reader(self)
        self.reader.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        uid, pid = _peer(request)
        if uid not in (None, os.getuid()):
            self.shutdown_request(request)  # the folder's mode keeps others out; belt and braces
            return
        with self.held_lock:
            total = sum(self.held.values())
            mine = self.held.get(pid, 0)
            admitted = total < MAX_CONNECTIONS and (pid is None or mine < PER_PEER)
            if admitted:
                self.held[pid] = mine + 1
        if not admitted:
            self._busy(request)
            return
        self.reader.add(request, pid)

    def dispatch(self, conn: socket.socket, line: bytes, peer: int | None) -> None:
        """A request read whole: to a worker, or told busy when WAITING are queued."""
        if not self.slots.acquire(blocking=False):
            self._release(peer)
            self._busy(conn)
            return
        self.pool.submit(self._work, conn, line, peer)

    def _work(self, conn: socket.socket, line: bytes, peer: int | None) -> None:
        try:
            reply = _reply_to(self.library, line)
            conn.setblocking(True)
            conn.settimeout(self.read_timeout)  # a client that never reads its answer
            conn.sendall(json.dumps(reply).encode())
        except Exception:
            self.count_gone()
        finally:
            self.close_connection(conn, peer)
            self.slots.release()

    def _busy(self, conn: socket.socket) -> None:
        """Say busy at once, without waiting on the client: the reader drops its unread
        request (closing on it would reset the connection, reply and all)."""
        reply = error_reply(StoreBusy("the server is busy with other queries: try again"))
        try:
            conn.setblocking(False)
            conn.send(json.dumps(reply).encode())
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            self.shutdown_request(conn)
            return
        with self.held_lock:
            self.held[None] = self.held.get(None, 0) + 1  # draining counts against the total
        self.reader.add(conn, None, draining=True)

    def went_away(self, peer: int | None, conn: socket.socket) -> None:
        self.count_gone()
        self.close_connection(conn, peer)

    def close_connection(self, conn: socket.socket, peer: int | None) -> None:
        self.shutdown_request(conn)
        self._release(peer)

    def _release(self, peer: int | None) -> None:
        with self.held_lock:
            left = self.held.get(peer, 0) - 1
            if left > 0:
                self.held[peer] = left
            else:
                self.held.pop(peer, None)

    def count_gone(self) -> None:
        """A client that hung up (or never sent its request) is no one's problem: counted,
        and said at most once a minute, never as a traceback."""
        with self.log_lock:
            self.gone += 1
            now = time.monotonic()
            if now - self.said_at < LOG_EVERY:
                return
            gone, self.gone, self.said_at = self.gone, 0, now
        self.on_notice(f"{gone} client(s) went away before their answer")

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.count_gone()

    def server_close(self) -> None:
        super().server_close()
        self.reader.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)


def _peer(conn: socket.socket) -> tuple[int | None, int | None]:
    """The uid and pid of the process at the other end (None, None where the system does
    not say)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None, None
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return uid, pid


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
    """Walk every road a first query takes before saying ready: a word query through the
    search as a client's runs (the snapshot or the store and its full-text indexes, the
    calibration's sample and null queries, the text tower), and one picture through the
    image tower (`similar`)."""
    from PIL import Image

    from mmsearch.query.filters import Filters

    with contextlib.suppress(MmsearchError):  # nothing indexed yet: the first query says so
        library.search_here(library.request("warm up", top=1, filters=Filters(min_score=0.0)))
    embedder = library.embedder()
    embedder.embed_images([embedder.preprocess(Image.new("RGB", (64, 64), (128, 128, 128)))])
