"""Walk the roots: which files are media, which are ignored, and what each looks like on disk."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import pathspec

IMAGE_EXTS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
    | {".heic", ".heif", ".hif", ".avif"}
)
VIDEO_EXTS = frozenset(
    {".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m2v", ".ts"}
    | {".mts", ".m2ts", ".3gp", ".3g2", ".wmv", ".asf", ".flv", ".f4v", ".ogv", ".vob", ".mxf"}
    | {".divx", ".dv"}
)
DOCUMENT_EXTS = frozenset(
    {".pdf", ".docx", ".txt", ".text", ".md", ".markdown", ".rst", ".html", ".htm"}
)
JUNK_NAMES = frozenset(
    {"Thumbs.db", "desktop.ini", "@eaDir", "node_modules", "$RECYCLE.BIN", "__pycache__"}
)
IGNORE_FILE = ".mmsearchignore"


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str
    size: int
    mtime_ns: int
    kind: str = "image"


@dataclass
class ScanResult:
    files: list[FileEntry] = field(default_factory=list)
    unsupported: int = 0
    # Paths that could not be looked at (unreadable folders, unencodable names): recorded as
    # failures, and nothing already indexed beneath them is treated as vanished.
    problems: list[tuple[str, str]] = field(default_factory=list)


def normalize(path: str | os.PathLike[str]) -> str:
    """Absolute, lexically normalised, symlinks kept: the path the user sees is the key."""
    return os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(path))))


def is_within(path: str, root: str) -> bool:
    """`path` is `root` or lies beneath it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def outermost(paths: Iterable[str]) -> list[str]:
    """The given paths minus those inside another of them, sorted."""
    kept: list[str] = []
    for p in sorted(set(paths), key=len):
        if not any(is_within(p, k) for k in kept):
            kept.append(p)
    return sorted(kept)


def display_path(path: str) -> str:
    """A path that can be stored as UTF-8 even when the name on disk is not."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def ext_of(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def kind_of(path: str) -> str | None:
    """The kind of media at `path` by its extension: image, video, document, or None."""
    ext = ext_of(path)
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    if ext in DOCUMENT_EXTS:
        return "document"
    return None


def scan(
    paths: Iterable[str],
    excludes: Iterable[str] = (),
    skip: Iterable[str] = (),
    roots: Iterable[str] = (),
) -> ScanResult:
    """Collect the media files at or under `paths`, honouring junk rules, `--exclude` globs
    and `.mmsearchignore` files; `skip` names folders never to enter (the store itself).

    A path inside one of `roots` (a watched folder) obeys the rules of the folders between
    that root and it, as if the whole root had been walked. A path that does not exist
    holds nothing.
    """
    result = ScanResult()
    exclude_spec = pathspec.GitIgnoreSpec.from_lines(list(excludes))
    skip_set = {normalize(s) for s in skip}
    outer = [normalize(r) for r in roots]
    for start in outermost(map(normalize, paths)):
        root = next((r for r in outer if is_within(start, r)), start)
        rules = _rules_down_to(start, root, [(root, exclude_spec)], skip_set, result)
        if rules is None:
            continue
        for path, st in _walk(start, rules, skip_set, result):
            kind = kind_of(path)
            if kind is None:
                result.unsupported += 1
                continue
            try:
                path.encode("utf-8")
            except UnicodeEncodeError:
                result.problems.append((display_path(path), "file name is not valid UTF-8"))
                continue
            result.files.append(FileEntry(path, st.st_size, st.st_mtime_ns, kind))
    return result


Rules = list[tuple[str, pathspec.GitIgnoreSpec]]


def _walk(
    root: str, rules: Rules, skip: set[str], result: ScanResult
) -> Iterator[tuple[str, os.stat_result]]:
    """Yield (path, stat) of the regular files under root: a folder's files by name, then
    its subfolders by name, depth first."""
    try:
        st = os.stat(root)
    except FileNotFoundError:
        return
    except OSError as e:
        result.problems.append((display_path(root), _reason(e)))
        return
    if not stat.S_ISDIR(st.st_mode):
        if stat.S_ISREG(st.st_mode):
            yield root, st
        return
    stack = [(root, rules)]
    while stack:
        folder, rules = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            result.problems.append((display_path(folder), _reason(e)))
            continue
        rules = _with_ignore_file(folder, rules, result)
        subdirs = []
        for entry in entries:
            if _is_junk(entry.name) or entry.path in skip:
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                if _ignored(entry.path, is_dir, rules):
                    continue
                if is_dir:
                    subdirs.append(entry.path)
                    continue
                st = entry.stat()  # follows file symlinks; dangling ones raise
            except OSError:
                continue  # dangling symlink or vanished since listing: nothing to index
            if stat.S_ISREG(st.st_mode):
                yield entry.path, st
        stack.extend((d, rules) for d in reversed(subdirs))


def _rules_down_to(
    path: str, root: str, rules: Rules, skip: set[str], result: ScanResult
) -> Rules | None:
    """The ignore rules in force at `path` below `root`, or None if something on the way
    down (a junk or ignored folder, the store) hides it."""
    if path == root:
        return rules
    folder = root
    parts = os.path.relpath(path, root).split(os.sep)
    for i, name in enumerate(parts):
        rules = _with_ignore_file(folder, rules, result)
        folder = os.path.join(folder, name)
        is_dir = i < len(parts) - 1 or os.path.isdir(folder)
        if _is_junk(name) or folder in skip or _ignored(folder, is_dir, rules):
            return None
    return rules


def _is_junk(name: str) -> bool:
    """Hidden files, system clutter, and the partial or lock files of downloads and editors."""
    return (
        name.startswith((".", "~$"))
        or name.endswith(("~", ".part", ".crdownload", ".download", ".partial", ".tmp", ".swp"))
        or name in JUNK_NAMES
    )


def _with_ignore_file(folder: str, rules: Rules, result: ScanResult) -> Rules:
    path = os.path.join(folder, IGNORE_FILE)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            spec = pathspec.GitIgnoreSpec.from_lines(f.read().splitlines())
    except FileNotFoundError:
        return rules
    except (OSError, ValueError) as e:
        result.problems.append((display_path(path), _reason(e)))
        return rules
    return [*rules, (folder, spec)]


def _ignored(path: str, is_dir: bool, rules: Rules) -> bool:
    for base, spec in rules:
        rel = os.path.relpath(path, base)
        if spec.match_file(rel + "/" if is_dir else rel):
            return True
    return False


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return one_line(e)


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


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


def read_file(entry: FileEntry) -> FileRead:
    """Read and hash one file; never blocks on a FIFO, never loads a video into memory."""
    try:
        fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return FileRead(error="not a regular file")
            if st.st_size == 0:
                return FileRead(digest=content_hash(b""), error="empty file (0 bytes)")
            if entry.kind == "video":
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
