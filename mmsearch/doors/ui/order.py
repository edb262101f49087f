"""How the page orders the best results it got: as ranked, or by capture date."""

from __future__ import annotations

from enum import StrEnum

from mmsearch.core.vocab import Sort


class Order(StrEnum):
    """How the page orders the best results it got (the CLI's `--sort`, in the page's words)."""

    RELEVANCE = "relevance"
    NEWEST = "newest"  # by capture date (EXIF, video metadata, else the file's mtime)
    OLDEST = "oldest"

    @property
    def sort(self) -> Sort:
        return {Order.RELEVANCE: Sort.SCORE, Order.NEWEST: Sort.NEWEST, Order.OLDEST: Sort.DATE}[
            self
        ]
