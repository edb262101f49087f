"""How the page orders the best results it got: as ranked, or by the files' dates."""

from __future__ import annotations

import os
from enum import StrEnum

from mmsearch.query.ranking import Hit


class Order(StrEnum):
    """How the page orders the best results it got."""

    RELEVANCE = "relevance"
    NEWEST = "newest"  # by the file's modification time
    OLDEST = "oldest"


def ordered(hits: list[Hit], order: Order) -> list[Hit]:
    if order == Order.RELEVANCE:
        return hits

    def mtime(hit: Hit) -> float:
        try:
            return os.stat(hit.path).st_mtime
        except OSError:
            return 0.0

    return sorted(hits, key=mtime, reverse=order == Order.NEWEST)
