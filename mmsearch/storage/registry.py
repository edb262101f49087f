"""The store's registry file: what a local store holds, readable without LanceDB.

A local store's folder holds `registry.json`: the `models` rows and, per model, what `status`
shows, each with the table versions it was read at (from directory listings). Choosing the
model and `status` read it with the standard library alone (no pyarrow, no LanceDB); a stale
or missing file only sends readers to the tables, and the next writer rewrites it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from mmsearch.core.config import Settings, is_local_uri
from mmsearch.core.private import FILE_MODE

MODELS = "models"
SCHEMA = "schema"
# The layout this code writes. 1: `models`, `files_<key>`, `items_<key>` (no `schema` table).
# 2: the `schema` record; `models` gains `weights` and `checkpoint` (the key of a checkpoint
# on disk comes from its whole content, no longer from its first MiB). 3: `models` gains
# `excluded` (subtrees `forget` dropped, kept out of later runs over their roots); `items`
# gains `words` (the passage again, for a full-text index of exact, unstemmed words with ICU
# word breaks: CJK too) and `grams` (its CJK runs, for a bigram index). 4: `items` gains
# `confidence` (the OCR engine's, for a passage read off a picture).
SCHEMA_VERSION = 4
REGISTRY = "registry.json"


def _manifests(db: str, table: str) -> list[str]:
    """The table's manifests with their sizes, and its data files: any commit adds a
    manifest, and a cut manifest or a lost data file (a damaged store) shows as well."""
    folder = Path(db) / f"{table}.lance"
    try:
        with os.scandir(folder / "_versions") as entries:
            manifests = [
                f"{e.name}:{e.stat().st_size}" for e in entries if e.name.endswith(".manifest")
            ]
    except OSError:
        return []
    try:
        data = os.listdir(folder / "data")
    except OSError:
        data = []
    return sorted(manifests) + sorted(data)


def tables_token(db: str, tables: Sequence[str]) -> str | None:
    """Names the current versions of these tables (directory listings only); None when the
    store is not on local disk."""
    if not is_local_uri(db):
        return None
    parts = [f"{t}\0{chr(0).join(_manifests(db, t))}" for t in tables]
    return hashlib.sha1("\1".join(parts).encode()).hexdigest()


def version_token(db: str, key: str) -> str | None:
    """Names the current version of collection `key`'s items table and of the layout record,
    from two directory listings (no LanceDB import: one-shot queries stay cheap). Any commit
    adds a manifest, so any change to the items or to the schema shows. For a remote store,
    the two tables' version numbers (one manifest read each). None when there is no table."""
    if not is_local_uri(db):
        return _remote_version_token(db, key)
    try:
        items = sorted(os.listdir(Path(db) / f"items_{key}.lance" / "_versions"))
    except OSError:
        return None
    try:
        layout = sorted(os.listdir(Path(db) / f"{SCHEMA}.lance" / "_versions"))
    except OSError:
        layout = []
    names = [n for n in items if n.endswith(".manifest")]
    names += ["schema"] + [n for n in layout if n.endswith(".manifest")]
    return hashlib.sha1("\0".join(names).encode()).hexdigest()


def _remote_version_token(db: str, key: str) -> str | None:
    try:
        import lancedb

        from mmsearch.storage.remote import storage_options

        conn = lancedb.connect(db, storage_options=storage_options(db) or None)
        items = conn.open_table(f"items_{key}").version
        names = list(conn.list_tables().tables)
        layout = conn.open_table(SCHEMA).version if SCHEMA in names else 0
    except Exception:
        return None
    return f"remote:{items}:schema:{layout}"


def registry_tables() -> list[str]:
    return [MODELS, SCHEMA]


def read_registry(db: str) -> dict[str, Any] | None:
    """The registry file of a local store, if it describes the `models` table as it is now
    and was written by this layout; None otherwise (then ask the tables)."""
    if not is_local_uri(db):
        return None
    try:
        data = json.loads((Path(db) / REGISTRY).read_text())
        fresh = data["schema"] == SCHEMA_VERSION
        fresh = fresh and data["token"] == tables_token(db, registry_tables())
        return data if fresh and isinstance(data["models"], list) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def summary_token(db: str, key: str) -> str | None:
    return tables_token(db, [f"files_{key}", f"items_{key}", SCHEMA])


def remembered_summary(db: str, key: str) -> dict[str, Any] | None:
    """What `status` shows for collection `key` (`Collection.summary`), from the registry
    file, if its tables have not changed since it was written."""
    data = read_registry(db)
    summary = (data or {}).get("summaries", {}).get(key)
    if not isinstance(summary, dict) or summary.get("token") != summary_token(db, key):
        return None
    return summary


def row_of(rows: Sequence[dict[str, Any]], settings: Settings) -> dict[str, Any] | None:
    """The registry row of `settings`' model: by its key, or under the key schema 1 gave a
    checkpoint, if that row's weights are unknown or the same."""
    key = settings.model_key
    info = next((m for m in rows if m["key"] == key), None)
    if info is None and key != (legacy := settings.legacy_model_key):
        weights = settings.weights
        info = next(
            (m for m in rows if m["key"] == legacy and m["weights"] in (None, weights)), None
        )
    return info


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically (readers never see half a file); a file that cannot be written only costs
    readers the slower path."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # Private from the start, as everything else in the store (see mmsearch.core.private).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, ensure_ascii=False))
        os.replace(tmp, path)
    except OSError:
        with suppress(OSError):
            tmp.unlink()


def no_index_message(settings: Settings, others: Sequence[dict[str, Any]]) -> str:
    """Why there is nothing to search, and the flag or variable that would fix it."""
    from mmsearch.core.config import describe_row

    if not others:
        return (
            f"nothing indexed in {settings.db} yet: run `mmsearch index FOLDER` first "
            "(or point --db / MMSEARCH_DB at the store you built)"
        )
    held = "; ".join(describe_row(m) for m in others)
    return (
        f"nothing indexed with {settings.describe()} in {settings.db}; it holds {held}: "
        "leave --model and --pretrained unset to use it, or pass --model/--pretrained "
        "(MMSEARCH_MODEL/MMSEARCH_PRETRAINED) naming it"
    )


def folder_size(uri: str) -> int | None:
    """Bytes under a local store's folder; None for a remote store."""
    if not is_local_uri(uri):
        return None
    total = 0
    for folder, _, names in os.walk(uri):
        for name in names:
            with suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total
