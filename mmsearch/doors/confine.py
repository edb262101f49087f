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


def shown_file(library: Library, path: str) -> None:
    """Refuse to show a result's file (a thumbnail, the desktop's viewer) unless it is still
    the library's: inside the indexed folders by its real path, or, for a link the index
    followed out of them (`--follow-links`), the very file the index holds there. A file
    swapped for a link to somewhere else since it was indexed is neither."""
    if library.holds(path):
        return
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is None or not library.unchanged(path, st):
        raise Refused(404, f"{path} is no longer a file of the library (it leads elsewhere)")


def served_file(library: Library, path: str, kind: str) -> tuple[int, os.stat_result, str]:
    """The result's file opened for serving, its status and its media type, or a refusal:
    it must be the very file the index holds (the same size and mtime), found inside the
    indexed folders by its real path (or be a link the index followed), and its first bytes
    must say it is a `kind` (a photo or a video) whatever its name says. The caller serves
    the open descriptor, not the path, and closes it: a swap after the check changes
    nothing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Refused(404, f"{path} no longer exists") from None
    except OSError as e:
        raise Refused(404, f"cannot read {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(404, f"{path} is no longer a file")
        same = library.unchanged(path, st)
        if not library.holds(_real_path(fd, path)) and not (same and os.path.islink(path)):
            raise Refused(404, f"{path} is no longer a file of the library (it leads elsewhere)")
        if not same:
            raise Refused(409, f"{path} changed since it was indexed: index it again to see it")
        media = sniffed_media(os.pread(fd, 3 * 192 + 8, 0))
        if media is None or media.split("/")[0] != kind:
            raise Refused(415, f"{path} is not a {'photo' if kind == Kind.IMAGE else kind}")
    except BaseException:
        os.close(fd)
        raise
    return fd, st, media


def _real_path(fd: int, path: str) -> str:
    """The real path of the file open as `fd` (Linux names it in /proc), else `path`'s."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


_FTYP_BRANDS = {
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"hevc": "image/heic",
    b"heim": "image/heic",
    b"heis": "image/heic",
    b"mif1": "image/heif",
    b"msf1": "image/heif",
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"crx ": "image/x-canon-cr3",
    b"qt  ": "video/quicktime",
}
_MAGIC = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF8", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"IIRO", "image/x-olympus-orf"),
    (0, b"IIRS", "image/x-olympus-orf"),
    (0, b"IIU\x00", "image/x-panasonic-rw2"),
    (0, b"FUJIFILMCCD-RAW", "image/x-fuji-raf"),
    (0, b"8BPS", "image/vnd.adobe.photoshop"),
    (0, b"\x00\x00\x00\x0cjP  ", "image/jp2"),
    (0, b"\xff\x4f\xff\x51", "image/jp2"),
    (0, b"\x1a\x45\xdf\xa3", "video/x-matroska"),
    (0, b"\x00\x00\x01\xba", "video/mpeg"),
    (0, b"\x00\x00\x01\xb3", "video/mpeg"),
    (0, b"\x30\x26\xb2\x75", "video/x-ms-asf"),
    (0, b"FLV", "video/x-flv"),
    (0, b"OggS", "video/ogg"),
    (0, b"\x06\x0e\x2b\x34", "video/mxf"),
    (0, b"\x1f\x07\x00", "video/x-dv"),
    (4, b"moov", "video/quicktime"),
    (4, b"mdat", "video/quicktime"),
    (4, b"wide", "video/quicktime"),
)


def sniffed_media(head: bytes) -> str | None:
    """The media type a file's first bytes say (photos and videos only), whatever its
    name says; None for anything else (text, a document, /etc/passwd)."""
    if head[:4] == b"RIFF":
        return {b"WEBP": "image/webp", b"AVI ": "video/x-msvideo"}.get(head[8:12])
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "video/mp4")
    if head[:4] == b"\x1a\x45\xdf\xa3" and b"webm" in head:
        return "video/webm"
    for offset, magic, media in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return media
    from mmsearch.core.formats import is_transport_stream

    return "video/mp2t" if is_transport_stream(head) else None
