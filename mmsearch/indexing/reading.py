"""Read one file, bounded, and name its content: the bytes an image decoder gets, and the
hash that lets a moved or copied file reuse its vectors."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from mmsearch.core.errors import MmsearchError, one_line
from mmsearch.core.vocab import Kind

if TYPE_CHECKING:
    from mmsearch.indexing.scan import FileEntry


def content_hash(data: bytes) -> str:
    """Identity of a file's bytes, so renamed and copied files reuse their vectors."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


SAMPLE = 1 << 20


def sampled_hash(f: BinaryIO, size: int) -> str:
    """Identity of a large file from its size and three 1 MiB samples (start, middle, end):
    a video is recognised after a move without reading gigabytes."""
    h = hashlib.blake2b(f"{size}:".encode(), digest_size=16)
    for offset in sorted({0, max(0, size // 2 - SAMPLE // 2), max(0, size - SAMPLE)}):
        f.seek(offset)
        h.update(f.read(SAMPLE))
    return "s" + h.hexdigest()


MAX_FILE_BYTES = 512 << 20


@dataclass(frozen=True, slots=True)
class FileRead:
    """What reading one file gave: its bytes (images only), its content hash, or why not.

    A reason with a hash means the file itself is bad; a reason without one means it could
    not be read (permissions, vanished) and is worth retrying.
    """

    data: bytes | None = None
    digest: str = ""
    error: str = ""
    empty: bool = False  # no bytes at all: the outcome "empty", not a failure


def read_file(entry: FileEntry) -> FileRead:
    """Read and hash one file; never blocks on a FIFO, never loads a video into memory."""
    try:
        fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return FileRead(error="not a regular file")
            if st.st_size == 0:
                return FileRead(digest=content_hash(b""), error="empty file (0 bytes)", empty=True)
            if entry.kind == Kind.VIDEO:
                return FileRead(digest=sampled_hash(f, st.st_size))
            if st.st_size > MAX_FILE_BYTES:
                limit = MAX_FILE_BYTES >> 20
                reason = f"file too large ({st.st_size >> 20} MiB > {limit} MiB)"
                return FileRead(digest=f"size:{st.st_size}", error=reason)
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return FileRead(error="vanished before it could be read")
    except PermissionError:
        return FileRead(error="permission denied")
    except OSError as e:
        return FileRead(error=f"cannot read: {one_line(e)}")
    return FileRead(data, content_hash(data))


_NOT_REGULAR = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISSOCK, "a socket"),
)


def query_file(path: str) -> os.stat_result:
    """The status of a file a query names, which must be a regular file within the indexing
    size cap: a FIFO would block, a device never ends, a socket is no picture. Checked with
    `stat`, so nothing is opened that is not a plain file."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise MmsearchError(f"cannot read {path}: {e.strerror or one_line(e)}") from None
    _check_query(path, st)
    return st


def read_query_file(path: str) -> bytes:
    """The bytes of a query picture, bounded like an indexed file's (MAX_FILE_BYTES). Opened
    non-blocking and checked again once open, so a file swapped for a FIFO meanwhile cannot
    block the reader."""
    query_file(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            _check_query(path, os.fstat(f.fileno()))
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise MmsearchError(f"cannot read {path}: {e.strerror or one_line(e)}") from None
    if len(data) > MAX_FILE_BYTES:
        raise MmsearchError(f"{path} is too large for a query (over {MAX_FILE_BYTES >> 20} MiB)")
    return data


def _check_query(path: str, st: os.stat_result) -> None:
    for test, what in _NOT_REGULAR:
        if test(st.st_mode):
            raise MmsearchError(f"{path} is {what}, not a file: a query reads only files")
    if not stat.S_ISREG(st.st_mode):
        raise MmsearchError(f"{path} is not a regular file: a query reads only files")
    if st.st_size > MAX_FILE_BYTES:
        size, limit = st.st_size >> 20, MAX_FILE_BYTES >> 20
        raise MmsearchError(f"{path} is too large for a query ({size} MiB > {limit} MiB)")
