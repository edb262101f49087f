"""Private by default: what mmsearch keeps about a person's files (paths, document text,
vectors, the last results) is readable by that person only, whatever their umask.

Folders are 0700 and files 0600: the store, and every folder and file of the cache
(exported models, query vectors, pictures, uploads, snapshots of remote stores, the last
results, what buckets were probed). LanceDB creates its files itself, so every write to the
store happens under a 0077 umask (`private_umask`), and a store left looser by an older
version is tightened on its next write (`tighten`), which is said once (`take_notices`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

FOLDER_MODE, FILE_MODE = 0o700, 0o600
_LOOSE = 0o077  # any bit for the group or others

_umask_lock = threading.Lock()
_umask_holders = 0
_umask_before = 0
_notices: list[tuple[int, str]] = []  # (the thread that did it, what it says)
_notices_lock = threading.Lock()


def private_folder(path: Path) -> Path:
    """`path` as a folder only its owner can enter: created 0700 (with any missing parents),
    tightened if looser."""
    with private_umask():
        path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & _LOOSE:
        path.chmod(FOLDER_MODE)
    return path


def owned_folder(path: Path) -> Path:
    """`path` as a folder that is this user's alone, checked before anything is written in
    it: created 0700 if absent (its parent must exist); refused with NotPrivate, in one
    line, if it is a link, not a folder, another user's, or writable by others (something
    may have been planted in it); tightened to 0700 if it is only readable by others. Never
    followed, never chmod-ed when it is not ours."""
    from mmsearch.core.errors import NotPrivate

    with contextlib.suppress(FileExistsError):
        os.mkdir(path, FOLDER_MODE)
    st = os.lstat(path)
    me = os.getuid()
    if stat.S_ISLNK(st.st_mode):
        why = "it is a symbolic link"
    elif not stat.S_ISDIR(st.st_mode):
        why = "it is not a folder"
    elif st.st_uid != me:
        why = f"it belongs to uid {st.st_uid}, not to you (uid {me})"
    elif st.st_mode & 0o022:
        why = f"others may write in it (mode {stat.S_IMODE(st.st_mode):04o})"
    else:
        if st.st_mode & _LOOSE:
            os.chmod(path, FOLDER_MODE)
        return path
    raise NotPrivate(
        f"{path} is not a private folder: {why}; mmsearch will not use it: remove it, or "
        "set XDG_RUNTIME_DIR to a folder of yours"
    )


def cache_root() -> Path:
    """Derived files (exported models, recent query vectors): safe to delete at any time."""
    if os.environ.get("MMSEARCH_CACHE"):
        return Path(os.environ["MMSEARCH_CACHE"]).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path("mmsearch")


def private_cache(*parts: str) -> Path:
    """A folder in mmsearch's cache (MMSEARCH_CACHE, else the user's cache folder), the
    cache folder itself made private first."""
    return private_folder(private_folder(cache_root()).joinpath(*parts))


def write_private(path: Path, data: str | bytes) -> None:
    """Replace `path` with `data` (text is written as UTF-8) atomically (readers never see
    half a file), mode 0600, in a private folder."""
    private_folder(path.parent)
    # named by process and thread, not by tempfile (3 ms of a warm query to import): the
    # folder is this user's alone; a leftover of a killed run under this name goes first,
    # and O_EXCL refuses anything (a link) that appears there meanwhile
    tmp = path.parent / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files and folders created meanwhile, by any thread or library, are 0600/0700. The
    umask belongs to the process: nested and concurrent holders share one setting, and the
    user's umask comes back when the last one leaves."""
    global _umask_holders, _umask_before
    with _umask_lock:
        if _umask_holders == 0:
            _umask_before = os.umask(0o077)
        _umask_holders += 1
    try:
        yield
    finally:
        with _umask_lock:
            _umask_holders -= 1
            if _umask_holders == 0:
                os.umask(_umask_before)


def tighten(root: str) -> int:
    """Make everything of ours under `root` 0700/0600; returns how many entries were looser
    (and says so once, through `take_notices`). Symbolic links are neither changed nor
    followed."""
    changed = 0
    for folder, _dirs, files in os.walk(root):
        entries = [(folder, FOLDER_MODE)] + [(os.path.join(folder, f), FILE_MODE) for f in files]
        for name, mode in entries:
            with contextlib.suppress(OSError):
                st = os.lstat(name)
                if st.st_mode & _LOOSE and not stat.S_ISLNK(st.st_mode):
                    os.chmod(name, mode)
                    changed += 1
    if changed:
        with _notices_lock:
            _notices.append(
                (
                    threading.get_ident(),
                    f"made the store {root} private (readable by you only): {changed} files "
                    "and folders were open to others",
                )
            )
    return changed


def take_notices(this_thread: bool = False) -> list[str]:
    """What was tightened since the last call, for the CLI to say once; `this_thread`: only
    what this thread did (a server's worker, answering one client's command line)."""
    me = threading.get_ident()
    with _notices_lock:
        taken = [said for thread, said in _notices if not this_thread or thread == me]
        _notices[:] = [n for n in _notices if this_thread and n[0] != me]
    return taken
