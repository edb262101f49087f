"""mmsearch: search your own photos, videos and documents with CLIP, from Python or the
`mmsearch` command.

    from mmsearch import Settings, index_paths, search_text
    index_paths(Settings(), ["~/Photos"])
    for hit in search_text(Settings(), "red car at night"):
        print(hit.score, hit.path)

Names are imported on first use, so `import mmsearch` stays cheap.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Settings": "mmsearch.config",
    "index_paths": "mmsearch.index",
    "forget_paths": "mmsearch.index",
    "IndexReport": "mmsearch.index",
    "search": "mmsearch.query",
    "search_text": "mmsearch.query",
    "search_image": "mmsearch.query",
    "Filters": "mmsearch.query",
    "Hit": "mmsearch.query",
    "parse": "mmsearch.grammar",
    "find_dupes": "mmsearch.dupes",
    "watch": "mmsearch.watch",
    "status": "mmsearch.status",
    "StatusReport": "mmsearch.status",
    "MmsearchError": "mmsearch.errors",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mmsearch' has no attribute {name!r}")
