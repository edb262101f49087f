"""What the store holds for one model: roots, counts, failures, size, freshness."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmsearch.config import Settings
from mmsearch.errors import StoreError
from mmsearch.store import Store


@dataclass
class StatusReport:
    db: str
    model: str
    pretrained: str | None
    indexed: bool
    roots: list[str] = field(default_factory=list)
    files_indexed: int = 0
    files_failed: int = 0
    files_empty: int = 0  # read fine, nothing inside to index: not failures
    files_by_kind: dict[str, int] = field(default_factory=dict)
    items: int = 0
    items_by_kind: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    size_bytes: int | None = None
    last_update: float | None = None
    other_models: list[str] = field(default_factory=list)
    ocr: dict[str, int] = field(default_factory=dict)  # files by OCR outcome
    ocr_available: bool = False
    problem: str | None = None  # why the store could not be read in full
    schema_version: int | None = None  # the store's layout (None: no store yet)


def status(settings: Settings) -> StatusReport:
    """Read-only and model-free: never imports torch. A damaged store gives what could be
    read and the `problem`, never an exception."""
    report = StatusReport(settings.db, settings.model, settings.pretrained, indexed=False)
    from mmsearch.ocr import available

    report.ocr_available = available()
    try:
        _fill(report, settings)
    except StoreError as e:
        report.problem = str(e)
    return report


def _fill(report: StatusReport, settings: Settings) -> None:
    store = Store(settings.db)
    report.size_bytes = store.size_bytes()
    if not store.exists():
        return
    report.schema_version = store.schema_version()  # shown even when newer than this code
    coll = store.collection(settings)  # refuses a newer layout, upgrades an older one
    report.schema_version = store.schema_version()
    mine = coll.key if coll is not None else None
    report.other_models = [_describe(m) for m in store.models() if m["key"] != mine]
    if coll is None:
        return
    counts = coll.counts()
    failures = coll.failures()
    report.indexed = True
    report.roots = list(coll.info["roots"])
    report.files_indexed = counts["files_indexed"]
    report.items = counts["items"]
    report.items_by_kind = counts["items_by_kind"]
    report.files_by_kind = counts["files_by_kind"]
    report.files_empty = counts["files_empty"]
    report.failures = failures
    report.files_failed = len(failures)
    report.last_update = coll.info["updated"]
    report.ocr = coll.ocr_counts()


def _describe(info: dict[str, Any]) -> str:
    return f"{info['model']} ({info['pretrained']})" if info["pretrained"] else info["model"]
