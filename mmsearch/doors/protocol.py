"""The wire form of a search between a client and `mmsearch serve`: both halves in one
place, so a request the client writes is exactly what the server reads."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from mmsearch.core.bounds import MAX_PARTS, MAX_TOP, check_list, check_text
from mmsearch.core.errors import MmsearchError, UsageError
from mmsearch.core.vocab import Mode, Sort, choose
from mmsearch.doors.client import VERSION
from mmsearch.query.filters import Filters
from mmsearch.query.grammar import Part
from mmsearch.query.ranking import Hit


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
        """The request a client sent, checked field by field: a malformed one is a
        UsageError that names the field, before anything runs."""
        try:
            parts = _field(data, "parts", list)
            if not 1 <= len(parts) <= MAX_PARTS:
                raise UsageError(f"a query has 1 to {MAX_PARTS} parts, not {len(parts)}")
            pretrained = data.get("pretrained")
            if pretrained is not None and not isinstance(pretrained, str):
                raise UsageError("bad request: pretrained must be a string or null")
            check_text(_field(data, "model", str), "bad request: model")
            check_text(pretrained or "", "bad request: pretrained")
            filters = _field(data, "filters", dict)
            for name in ("within", "kinds", "exts"):
                values = filters.get(name, [])
                if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                    raise UsageError(f"bad request: filters.{name} must be a list of strings")
                check_list(values, f"bad request: filters.{name}")
            sort = data.get("sort", Sort.SCORE)
            if not isinstance(sort, str):
                raise UsageError("bad request: sort has the wrong type")
            top = _field(data, "top", int)
            if not 1 <= top <= MAX_TOP:
                raise UsageError(f"bad request: top must be 1 to {MAX_TOP}, not {top}")
            return cls(
                model=_field(data, "model", str),
                pretrained=pretrained,
                parts=tuple(_part(p) for p in parts),
                top=top,
                filters=Filters(**filters),
                moments=_field(data, "moments", bool),
                mode=choose(Mode, _field(data, "mode", str), "--mode"),
                sort=choose(Sort, sort, "--sort"),
            )
        except TypeError as e:  # an unknown or missing field of Part or Filters
            raise UsageError(f"bad request: {e}") from None


_PART_FIELDS = {"kind": str, "value": str, "weight": (int, float), "at": (int, float, type(None))}


def _field(data: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(data, dict) or name not in data:
        raise UsageError(f"bad request: {name} is missing")
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, float))):
        raise UsageError(f"bad request: {name} has the wrong type")
    return value


def _part(data: Any) -> Part:
    for name, kind in _PART_FIELDS.items():
        if name in data or name != "at":
            _field(data, name, kind)
    if data["kind"] not in ("text", "image"):
        raise UsageError("bad request: a part is text or image")
    check_text(data["value"], "bad request: a part's value")
    if not math.isfinite(data["weight"]) or (data.get("at") is not None and data["at"] < 0):
        raise UsageError("bad request: a part's weight must be finite and its time positive")
    return Part(**data)


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
