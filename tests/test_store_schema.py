"""The store records its layout's version: a store of an older layout (schema 1, the first
release's) is upgraded in place, nothing lost or re-embedded; a store of a newer one is
refused in one line; a table lacking a newer nullable column gains it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import env_settings, file_rows, item_paths, make_image, query_json, run

from mmsearch.core.config import Settings
from mmsearch.model import embed
from mmsearch.storage.store import SCHEMA_VERSION, Store
from mmsearch.storage.store import items_schema as store_items_schema

# Schema 1, as the first release wrote it: no `schema` table, and these tables.
V1_MODELS = pa.schema(
    [
        ("key", pa.string()),
        ("model", pa.string()),
        ("pretrained", pa.string()),
        ("dim", pa.int32()),
        ("roots", pa.list_(pa.string())),
        ("created", pa.float64()),
        ("updated", pa.float64()),
    ]
)
V1_FILES = pa.schema(
    [
        ("path", pa.string()),
        ("kind", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("content_hash", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("items", pa.int32()),
        ("indexed_at", pa.float64()),
        ("ocr", pa.string()),
    ]
)


def v1_items(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("path", pa.string()),
            ("kind", pa.string()),
            ("t", pa.float64()),
            ("t_end", pa.float64()),
            ("page", pa.int32()),
            ("text", pa.string()),
            ("origin", pa.string()),
            ("ext", pa.string()),
            ("taken", pa.float64()),
            ("content_hash", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
        ]
    )


def v1_fingerprint(path: Path) -> str:
    """Schema 1's identity of a checkpoint, copied from its config.py."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha1()
    for f in files:
        try:
            with open(f, "rb") as fh:
                h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
                h.update(fh.read(1 << 20))
        except OSError:
            h.update(f.name.encode())
    return h.hexdigest()


def v1_model_key(settings: Settings) -> str:
    """Schema 1's table names, copied from its config.py."""
    model = settings.model
    if model.startswith("local-dir:"):
        folder = Path(model.removeprefix("local-dir:")).expanduser().absolute()
        model = f"local-dir:{folder}"
        weights = v1_fingerprint(folder)
    elif settings.pretrained and os.path.isfile(settings.pretrained):
        weights = v1_fingerprint(Path(settings.pretrained))
    else:
        weights = settings.pretrained or ""
    digest = hashlib.sha1(f"{model}\0{weights}".encode()).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9]+", "-", settings.model.rsplit("/", 1)[-1]).strip("-")[:40]
    return f"{readable}-{digest}"


@pytest.fixture(scope="module")
def indexed_rows(
    tmp_path_factory: pytest.TempPathFactory,
    photo_library: Path,
    tiny_model: str,
    model_cache: Path,
) -> dict:
    """Real rows of the photo library: its files and their embeddings by the tiny model, as a
    run of the first release would have written them (read back from a scratch store)."""
    import lancedb

    from mmsearch.indexing.index import index_paths

    scratch = tmp_path_factory.mktemp("scratch") / "store"
    photos = tmp_path_factory.mktemp("v1-photos")
    for p in photo_library.rglob("*"):
        if p.is_file():
            target = photos / p.relative_to(photo_library)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(p.read_bytes())
            os.utime(target, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("MMSEARCH_CACHE", str(model_cache))
        settings = Settings(db=str(scratch), model=tiny_model)
        index_paths(settings, [str(photos)])
    db = lancedb.connect(str(scratch))
    key = settings.model_key
    (info,) = db.open_table("models").to_arrow().to_pylist()
    return {
        "photos": photos,
        "dim": info["dim"],
        "files": db.open_table(f"files_{key}").to_arrow().to_pylist(),
        "items": db.open_table(f"items_{key}").to_arrow().to_pylist(),
    }


def make_v1_store(rows: dict, drop: str | None = None, settings: Settings | None = None) -> str:
    """A store of schema 1 at MMSEARCH_DB, keyed the old way; `drop` leaves one column out
    of its items table (a table older than the layout)."""
    import lancedb

    settings = settings or env_settings()
    key = v1_model_key(settings)
    db = lancedb.connect(settings.db)
    models = [
        {
            "key": key,
            "model": settings.model,
            "pretrained": "",
            "dim": rows["dim"],
            "roots": [str(rows["photos"])],
            "created": 1.7e9,
            "updated": 1.7e9,
        }
    ]
    db.create_table("models", data=pa.Table.from_pylist(models, schema=V1_MODELS))
    files = [{k: r[k] for k in V1_FILES.names} for r in rows["files"]]
    db.create_table(f"files_{key}", data=pa.Table.from_pylist(files, schema=V1_FILES))
    schema = v1_items(rows["dim"])
    items = pa.Table.from_pylist([{k: r[k] for k in schema.names} for r in rows["items"]], schema)
    if drop:
        items = items.drop_columns([drop])
    db.create_table(f"items_{key}", data=items)
    return key


def tables() -> set[str]:
    import lancedb

    return set(lancedb.connect(os.environ["MMSEARCH_DB"]).list_tables().tables)


def status_json() -> dict:
    result = run("status", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def recorded_version() -> list[int]:
    import lancedb

    table = lancedb.connect(os.environ["MMSEARCH_DB"]).open_table("schema")
    return table.to_arrow()["version"].to_pylist()


def claim_version(version: int) -> None:
    import lancedb

    record = pa.table({"version": pa.array([version], pa.int32()), "updated": [0.0]})
    lancedb.connect(os.environ["MMSEARCH_DB"]).create_table("schema", record, mode="overwrite")


@contextmanager
def lock_held_by_another_thread() -> Iterator[None]:
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with Store(os.environ["MMSEARCH_DB"]).writer_lock("watch"):
            held.set()
            done.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(30)
        yield
    finally:
        done.set()
        thread.join(30)


def test_the_v1_layout_is_what_this_test_builds(indexed_rows: dict) -> None:
    """The literal schemas above are the ones the first release wrote: only the models
    registry, (in schema 3) the items' full-text columns and (in schema 4) OCR's confidence
    grew since."""
    from mmsearch.storage import store

    assert store.FILES_SCHEMA == V1_FILES
    v1 = v1_items(indexed_rows["dim"])
    assert store.items_schema(indexed_rows["dim"]).names[: len(v1)] == v1.names
    grown = store.items_schema(indexed_rows["dim"]).names[len(v1) :]
    assert grown == ["words", "grams", "confidence"]
    assert store.MODELS_SCHEMA.names[: len(V1_MODELS)] == V1_MODELS.names


def test_a_query_finds_the_rows_of_a_v1_store(indexed_rows: dict) -> None:
    make_v1_store(indexed_rows)
    found = {r["path"] for r in query_json("x", "-n", "50")}
    assert found == {r["path"] for r in indexed_rows["files"]} and len(found) == 7


def test_indexing_a_v1_store_upgrades_it_and_reembeds_nothing(
    indexed_rows: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = make_v1_store(indexed_rows)
    before = tables()
    monkeypatch.setattr(embed, "_cache", {})
    result = run("index", str(indexed_rows["photos"]))
    assert result.exit_code == 0, result.stderr
    assert "0 new, 0 updated, 0 reused, 7 unchanged" in result.stderr
    assert embed._cache == {}  # no model loaded
    assert tables() == before | {"schema"}  # no table renamed or added but the record
    assert recorded_version() == [SCHEMA_VERSION]
    rows = file_rows()
    assert {p: (r["size"], r["mtime_ns"]) for p, r in rows.items()} == {
        r["path"]: (r["size"], r["mtime_ns"]) for r in indexed_rows["files"]
    }
    assert item_paths() == sorted(r["path"] for r in indexed_rows["items"])
    settings = env_settings()
    import lancedb

    (info,) = lancedb.connect(settings.db).open_table("models").to_arrow().to_pylist()
    assert info["key"] == key != settings.model_key  # adopted under its old name
    assert (info["weights"], info["checkpoint"]) == (settings.weights, settings.checkpoint)
    assert info["roots"] == [str(indexed_rows["photos"])]
    s = status_json()
    assert s["schema_version"] == SCHEMA_VERSION and s["files_indexed"] == 7
    assert s["other_models"] == []
    from mmsearch.storage.snapshot import open_fresh

    assert open_fresh(settings.db, settings.model_key) is not None  # named as queries look
    found = {r["path"] for r in query_json("x", "-n", "50")}
    assert found == set(rows)


def test_an_adopted_collection_is_not_taken_by_weights_changed_in_place(
    indexed_rows: dict, tiny_model: str, tmp_path: Path
) -> None:
    """Schema 1 knew a checkpoint by its first MiB; once adopted, a collection belongs to
    the whole content: weights retrained in place (same size and first MiB) are another
    model, with tables of their own."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model.removeprefix("local-dir:"), folder)
    settings = Settings(db=os.environ["MMSEARCH_DB"], model=f"local-dir:{folder}")
    key = make_v1_store(indexed_rows, settings=settings)
    adopted = settings.weights
    coll = Store(settings.db).collection(settings)
    assert coll is not None and coll.key == key and coll.info["weights"] == adopted
    weights = folder / "open_clip_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 1
    weights.write_bytes(bytes(data))
    retrained = Settings(db=os.environ["MMSEARCH_DB"], model=f"local-dir:{folder}")
    assert retrained.legacy_model_key == key and retrained.weights != adopted
    assert Store(settings.db).collection(retrained) is None


def test_a_reader_upgrades_a_v1_store_when_the_lock_is_free(indexed_rows: dict) -> None:
    make_v1_store(indexed_rows)
    s = status_json()
    assert s["schema_version"] == SCHEMA_VERSION and s["files_indexed"] == 7
    assert s["problem"] is None
    assert recorded_version() == [SCHEMA_VERSION]


def test_a_reader_reads_a_v1_store_as_it_is_while_a_writer_holds_the_lock(
    indexed_rows: dict,
) -> None:
    make_v1_store(indexed_rows)
    with lock_held_by_another_thread():
        s = status_json()
        assert s["schema_version"] == 1 and s["files_indexed"] == 7 and s["problem"] is None
        assert len(query_json("x", "-n", "50")) == 7
        assert "schema" not in tables()
    assert status_json()["schema_version"] == SCHEMA_VERSION


def test_a_table_lacking_a_nullable_column_gains_it(indexed_rows: dict, tmp_path: Path) -> None:
    import lancedb

    key = make_v1_store(indexed_rows, drop="taken")
    assert run("index", "-q", str(indexed_rows["photos"])).exit_code == 0
    items = lancedb.connect(os.environ["MMSEARCH_DB"]).open_table(f"items_{key}").to_arrow()
    assert set(items.schema.names) == set(store_items_schema(indexed_rows["dim"]).names)
    assert items["taken"].null_count == items.num_rows == len(indexed_rows["items"])
    assert sorted(items["path"].to_pylist()) == sorted(r["path"] for r in indexed_rows["items"])
    assert len(query_json("x", "--after", "1990-01-01")) == 0  # a null date is no date
    new = make_image(tmp_path / "new" / "n.png", seed=5)  # the upgraded table takes new rows
    assert run("index", "-q", str(new.parent)).exit_code == 0
    assert [r["path"] for r in query_json("x", "--after", "1990-01-01")] == [str(new)]


@pytest.mark.parametrize(
    "command", [["query", "x"], ["status", "--json"], ["status"], ["index", "{photos}"]]
)
def test_a_store_of_a_newer_schema_is_refused_in_one_line(
    indexed_rows: dict, command: list[str]
) -> None:
    make_v1_store(indexed_rows)
    assert run("index", "-q", str(indexed_rows["photos"])).exit_code == 0  # and a snapshot
    claim_version(99)
    args = [a.replace("{photos}", str(indexed_rows["photos"])) for a in command]
    result = run(*args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"mmsearch: error: the store {os.environ['MMSEARCH_DB']} was written by a newer "
        f"mmsearch (schema 99; this one reads up to {SCHEMA_VERSION}): upgrade mmsearch"
    ]
    if command == ["status", "--json"]:
        assert json.loads(result.stdout)["schema_version"] == 99
    assert recorded_version() == [99]


def test_status_reports_the_schema_of_a_new_store(photos: Path) -> None:
    assert status_json()["schema_version"] is None  # no store yet
    assert run("index", "-q", str(photos)).exit_code == 0
    assert status_json()["schema_version"] == SCHEMA_VERSION
    assert recorded_version() == [SCHEMA_VERSION]


def make_v2_store(folder: Path) -> str:
    """A store of schema 2: indexed now, then its items stripped of the full-text columns
    schema 3 added (their indexes go with them) and the record set back to 2."""
    import lancedb

    assert run("index", "-q", str(folder)).exit_code == 0
    settings = env_settings()
    items = lancedb.connect(settings.db).open_table(f"items_{settings.model_key}")
    items.drop_columns(["words", "grams"])
    claim_version(2)
    return settings.model_key


def test_a_v2_store_gains_exact_and_cjk_full_text_in_place(tmp_path: Path) -> None:
    import lancedb

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "exact.txt").write_text("Homogeneity of variance is assumed.")
    (folder / "variant.txt").write_text("A homogeneous, homogeneous, homogeneous mixture.")
    (folder / "seoul.txt").write_text("서울 도서관에서 책을 빌렸습니다.")
    key = make_v2_store(folder)
    s = status_json()  # a reader upgrades when the lock is free
    assert s["schema_version"] == SCHEMA_VERSION and recorded_version() == [SCHEMA_VERSION]
    items = lancedb.connect(os.environ["MMSEARCH_DB"]).open_table(f"items_{key}")
    rows = {r["path"]: r for r in items.to_arrow().to_pylist()}
    seoul = rows[str(folder / "seoul.txt")]
    assert seoul["words"] == seoul["text"] and seoul["grams"] == "서울 도서관에서 책을 빌렸습니다"
    assert rows[str(folder / "exact.txt")]["grams"] is None
    indexed = {c for i in items.list_indices() for c in i.columns}
    assert {"text", "words", "grams"} <= indexed
    assert query_json("homogeneity", "--mode", "text")[0]["path"] == str(folder / "exact.txt")
    assert query_json("도서관", "--mode", "text")[0]["path"] == str(folder / "seoul.txt")


def test_a_v2_store_gains_the_forget_exclusions_in_place(photos: Path) -> None:
    """Schema 3 adds `models.excluded`: a store of schema 2 (no such column) is upgraded on
    open, its rows kept, and `forget` then sticks in it."""
    import lancedb

    assert run("index", "-q", str(photos)).exit_code == 0
    db = lancedb.connect(os.environ["MMSEARCH_DB"])
    db.open_table("models").drop_columns(["excluded"])
    claim_version(2)
    Path(os.environ["MMSEARCH_DB"], "registry.json").unlink()
    s = status_json()
    assert s["schema_version"] == SCHEMA_VERSION and s["files_indexed"] == 7
    assert "excluded" in db.open_table("models").schema.names
    assert run("forget", str(photos / "trips")).exit_code == 0
    assert run("index", "-q", str(photos)).exit_code == 0
    assert not any("/trips/" in p for p in file_rows())


def test_a_v3_store_gains_ocr_confidence_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    import lancedb

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "note.txt").write_text("Homogeneity of variance is assumed.")
    assert run("index", "-q", str(folder)).exit_code == 0
    settings = env_settings()
    items = lancedb.connect(settings.db).open_table(f"items_{settings.model_key}")
    before = items.count_rows()
    items.drop_columns(["confidence"])
    claim_version(3)
    assert status_json()["schema_version"] == SCHEMA_VERSION  # a reader upgrades it
    items = lancedb.connect(settings.db).open_table(f"items_{settings.model_key}")
    assert "confidence" in items.schema.names and items.count_rows() == before
    assert query_json("homogeneity", "--mode", "text")[0]["path"] == str(folder / "note.txt")
