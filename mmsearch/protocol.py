"""The wire form of a search between a client and `mmsearch serve`: both halves in one
place, so a request the client writes is exactly what the server reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from mmsearch.errors import MmsearchError
from mmsearch.filters import Filters
from mmsearch.grammar import Part
from mmsearch.ranking import Hit
from mmsearch.vocab import Mode, Sort, choose

VERSION = 1


@dataclasses.dataclass(frozen=True)
class SearchRequest:
    """Everything a search needs besides the store: which model, the query and its knobs."""

    model: str
    pretrained: str | None
    parts: tuple[Part, ...]
    top: int
    filters: Filters
    moments: bool
    mode: Mode
    sort: Sort = Sort.SCORE

    def to_wire(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "pretrained": self.pretrained,
            "parts": [dataclasses.asdict(p) for p in self.parts],
            "filters": self.filters.as_dict(),
            "top": self.top,
            "moments": self.moments,
            "mode": str(self.mode),
            "sort": str(self.sort),
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> SearchRequest:
        """Raises KeyError, TypeError or ValueError (a malformed request) or UsageError."""
        return cls(
            model=str(data["model"]),
            pretrained=None if data.get("pretrained") is None else str(data["pretrained"]),
            parts=tuple(Part(**p) for p in data["parts"]),
            top=int(data["top"]),
            filters=Filters(**data["filters"]),
            moments=bool(data["moments"]),
            mode=choose(Mode, str(data["mode"]), "--mode"),
            sort=choose(Sort, str(data.get("sort", Sort.SCORE)), "--sort"),
        )


def hits_reply(hits: Sequence[Hit]) -> dict[str, Any]:
    return {"v": VERSION, "hits": [dataclasses.asdict(h) for h in hits]}


def error_reply(error: MmsearchError) -> dict[str, Any]:
    return {"v": VERSION, "error": str(error), "exit_code": error.exit_code}


def hits_from(reply: dict[str, Any]) -> list[Hit]:
    """The hits of a server's reply, or the error it reports raised here as it was there."""
    if "error" in reply:
        error = MmsearchError(str(reply["error"]))
        error.exit_code = int(reply.get("exit_code", 1))
        raise error
    return [Hit(**h) for h in reply["hits"]]
