"""mmsearch: search your own photos, videos and documents with CLIP, from Python or the
`mmsearch` command. Everything the command does is a method of `Library`:

    from mmsearch import Library
    lib = Library()
    lib.index(["~/Photos"])
    for hit in lib.search("red car at night", top=5):
        print(f"{hit.score:.3f} {hit.path}")

Names are imported on first use, so `import mmsearch` stays cheap.
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False  # importing typing would cost every `mmsearch` command 3 ms
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Library": "mmsearch.library",
    "Settings": "mmsearch.core.config",
    "VideoOptions": "mmsearch.core.config",
    "DocumentOptions": "mmsearch.core.config",
    "IndexOptions": "mmsearch.indexing.index",
    "IndexReport": "mmsearch.indexing.index",
    "WatchOptions": "mmsearch.indexing.watch",
    "Filters": "mmsearch.query.filters",
    "Hit": "mmsearch.query.ranking",
    "Part": "mmsearch.query.grammar",
    "parse": "mmsearch.query.grammar",
    "StatusReport": "mmsearch.query.status",
    "Kind": "mmsearch.core.vocab",
    "Mode": "mmsearch.core.vocab",
    "OcrMode": "mmsearch.core.vocab",
    "FileStatus": "mmsearch.core.vocab",
    "Runtime": "mmsearch.core.vocab",
    "Precision": "mmsearch.core.vocab",
    "MmsearchError": "mmsearch.core.errors",
    "UsageError": "mmsearch.core.errors",
    "StoreBusy": "mmsearch.core.errors",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mmsearch' has no attribute {name!r}")
