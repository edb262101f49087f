"""What the store holds for one model: roots, counts, failures, size, freshness, and which
other models it holds."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

from mmsearch.core.config import Settings, describe_row
from mmsearch.core.errors import StoreError


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
    excluded: list[str] = field(default_factory=list)  # forgotten subtrees kept out of roots


def status(settings: Settings, problem: str | None = None) -> StatusReport:
    """Read-only and model-free: never imports torch, and not LanceDB either while the
    store's registry file is current. A damaged store gives what could be read and the
    `problem`, never an exception."""
    settings = settings.concrete()
    report = StatusReport(settings.db, settings.model, settings.pretrained, indexed=False)
    report.ocr_available = importlib.util.find_spec("rapidocr") is not None  # as ocr.available
    try:
        if not _fill_remembered(report, settings):
            _fill(report, settings)
    except StoreError as e:
        report.problem = str(e)
    report.problem = problem or report.problem
    return report


def _fill_remembered(report: StatusReport, settings: Settings) -> bool:
    """From the registry file alone, when it and the summary it keeps are current."""
    from mmsearch.storage.registry import (
        SCHEMA_VERSION,
        folder_size,
        read_registry,
        remembered_summary,
        row_of,
    )

    registry = read_registry(settings.db)
    if registry is None:
        return False
    mine = row_of(registry["models"], settings)
    summary = remembered_summary(settings.db, mine["key"]) if mine else None
    if mine is not None and summary is None:
        return False
    report.size_bytes = folder_size(settings.db)
    report.schema_version = SCHEMA_VERSION
    report.other_models = [describe_row(m) for m in registry["models"] if m is not mine]
    if mine is not None and summary is not None:
        _show(report, mine, summary)
    return True


def _fill(report: StatusReport, settings: Settings) -> None:
    from mmsearch.storage.store import Store

    store = Store(settings.db)
    report.size_bytes = store.size_bytes()
    if not store.exists():
        return
    report.schema_version = store.schema_version()  # shown even when newer than this code
    coll = store.collection(settings)  # refuses a newer layout, upgrades an older one
    report.schema_version = store.schema_version()
    mine = coll.key if coll is not None else None
    report.other_models = [describe_row(m) for m in store.models() if m["key"] != mine]
    if coll is None:
        return
    _show(report, coll.info, coll.summary())


def _show(report: StatusReport, info: dict[str, Any], summary: dict[str, Any]) -> None:
    report.indexed = True
    report.roots = list(info["roots"] or [])
    report.excluded = list(info.get("excluded") or [])
    report.files_indexed = summary["files_indexed"]
    report.items = summary["items"]
    report.items_by_kind = summary["items_by_kind"]
    report.files_by_kind = summary["files_by_kind"]
    report.files_empty = summary.get("files_empty", 0)
    report.failures = summary["failures"]
    report.files_failed = len(report.failures)
    report.last_update = info["updated"]
    report.ocr = summary["ocr"]
