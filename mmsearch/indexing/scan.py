"""Walk the roots: which files are media, and what each looks like on disk (size, mtime).

Links: a folder link is never followed (no loops). A file link is indexed at its own path
when it points inside the root it lies in (links resolved on both sides); one that leaves
the root (`photos/x.jpg -> /etc/…`) is skipped and counted, unless `follow_links` asks for
it (`--follow-links`): a link is someone's say about where a file lives, and what lies
outside the folders you named should not enter the index, its snippets or the web UI
behind your back. A path named on the command line is what it names, link or not."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from mmsearch.core.errors import one_line
from mmsearch.core.formats import kind_of_file
from mmsearch.core.paths import display_path, is_within, normalize, outermost
from mmsearch.core.vocab import Kind
from mmsearch.indexing import ignore


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str
    size: int
    mtime_ns: int
    kind: Kind = Kind.IMAGE


@dataclass
class ScanResult:
    files: list[FileEntry] = field(default_factory=list)
    unsupported: int = 0
    links_out: int = 0  # file links that leave their root, skipped (not follow_links)
    # Paths that could not be looked at (unreadable folders, unencodable names): recorded as
    # failures, and nothing already indexed beneath them is treated as vanished.
    problems: list[tuple[str, str]] = field(default_factory=list)

    def problem(self, path: str, error: BaseException) -> None:
        self.problems.append((display_path(path), _reason(error)))


def scan(
    paths: Iterable[str],
    excludes: Iterable[str] = (),
    skip: Iterable[str] = (),
    roots: Iterable[str] = (),
    follow_links: bool = False,
) -> ScanResult:
    """Collect the media files at or under `paths`, honouring junk rules, `--exclude` globs
    and `.mmsearchignore` files; `skip` names folders never to enter (the store itself).

    A path inside one of `roots` (a watched folder) obeys the rules of the folders between
    that root and it, as if the whole root had been walked. A path that does not exist
    holds nothing. A file link leaving its root is skipped unless `follow_links`.
    """
    result = ScanResult()
    globs = list(excludes)
    skip_set = {normalize(s) for s in skip}
    outer = [normalize(r) for r in roots]
    below: dict[str, ignore.RulesBelow] = {}
    for start in outermost(map(normalize, paths)):
        root = next((r for r in outer if is_within(start, r)), start)
        if root not in below:
            top = ignore.from_globs(root, globs)
            below[root] = ignore.RulesBelow(root, top, skip_set, result.problem)
        rules = below[root].at(start)
        if rules is None:
            continue
        inside = None if follow_links else os.path.realpath(root)
        for path, st in _walk(start, rules, skip_set, result, inside, named=start == root):
            kind = kind_of_file(path)
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


def _walk(
    root: str,
    rules: ignore.Rules,
    skip: set[str],
    result: ScanResult,
    inside: str | None = None,
    named: bool = True,
) -> Iterator[tuple[str, os.stat_result]]:
    """Yield (path, stat) of the regular files under root: a folder's files by name, then
    its subfolders by name, depth first; file links that leave `inside` (a real path) are
    counted and skipped, but a `named` root is what it names."""
    try:
        st = os.stat(root)
    except FileNotFoundError:
        return
    except OSError as e:
        result.problem(root, e)
        return
    if not stat.S_ISDIR(st.st_mode):
        if stat.S_ISREG(st.st_mode):
            if not named and _leaves(root, inside):
                result.links_out += 1
                return
            yield root, st
        return
    stack = [(root, rules)]
    while stack:
        folder, rules = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            result.problem(folder, e)
            continue
        rules = ignore.with_ignore_file(folder, rules, result.problem)
        subdirs = []
        for entry in entries:
            if ignore.is_junk(entry.name) or entry.path in skip:
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                if ignore.ignored(entry.path, is_dir, rules):
                    continue
                if is_dir:
                    subdirs.append(entry.path)
                    continue
                st = entry.stat()  # follows file symlinks; dangling ones raise
            except OSError:
                continue  # dangling symlink or vanished since listing: nothing to index
            if not stat.S_ISREG(st.st_mode):
                continue
            if inside is not None and entry.is_symlink() and _leaves(entry.path, inside):
                result.links_out += 1
                continue
            yield entry.path, st
        stack.extend((d, rules) for d in reversed(subdirs))


def _leaves(path: str, inside: str | None) -> bool:
    """Whether `path`, its links resolved, lies outside the real folder `inside`."""
    return inside is not None and not is_within(os.path.realpath(path), inside)


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return one_line(e)
