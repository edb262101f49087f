#!/usr/bin/env python3
"""Measure how soon a big import starts indexing: a burst of N new files lands in a watched
folder beside files already indexed; from the moment the burst has settled, how long until the
pipeline hands the first file to the model (watch's change set, scan, change detection and
every store lookup, but no decoding or embedding).

    python bench/bench_burst.py [--sizes 8000,80000] [--indexed 10000]

Prints one line per size and writes bench/out/burst.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from mmsearch.core.config import Settings  # noqa: E402
from mmsearch.indexing.index import IndexOptions, sync  # noqa: E402
from mmsearch.indexing.pipeline import Writer  # noqa: E402
from mmsearch.indexing.scan import FileEntry  # noqa: E402
from mmsearch.indexing.watch import ChangeSet  # noqa: E402
from mmsearch.storage.store import Store  # noqa: E402


class Started(Exception):
    """Raised when the pipeline starts on the first file: what is being timed ends there."""


class StopAtStart:
    def start(self, total: int, label: str = "indexing") -> None:
        raise Started(total)

    def advance(self, n: int = 1) -> None:
        pass


def make_files(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"IMG_{i:06d}.jpg"
        path.write_bytes(b"\xff\xd8not decoded here")
        paths.append(str(path))
    return paths


def burst(root: Path, n: int, indexed: int) -> dict[str, float]:
    settings = Settings(db=str(root / "store"), model="ViT-B-32-256", pretrained="bench")
    store = Store(settings.db)
    old = make_files(root / "photos" / "old", indexed)
    with store.writer_lock("bench"):
        coll = store.create_collection(settings, 512)
        writer = Writer(coll, SimpleNamespace(failed=0, failures=[]), flush_items=10**9)
        for p in old:  # rows as an earlier run left them (status aside, the same lookups)
            st = Path(p).stat()
            writer.fail(FileEntry(p, st.st_size, st.st_mtime_ns, "image"), "bench")
        writer.flush()
        new = make_files(root / "photos" / "import", n)
        changes = ChangeSet()
        for p in new:  # what the observer delivers for the burst
            changes.dispatch(SimpleNamespace(event_type="created", is_directory=False, src_path=p))
        settled = time.perf_counter()
        changes.settled(0.0)  # first look: sizes and mtimes noted
        ready = changes.settled(0.0)  # second look: unchanged, released
        released = time.perf_counter()
        roots = [str(root / "photos")]
        try:
            sync(
                store,
                settings,
                ready,
                IndexOptions(ocr="never"),
                roots=roots,
                progress=StopAtStart(),
                optimize=False,
            )
            raise SystemExit("the pipeline never started")
        except Started as e:
            assert e.args[0] == n, e.args
        started = time.perf_counter()
    return {
        "files": n,
        "indexed": indexed,
        "change_set_s": round(released - settled, 3),
        "to_first_file_s": round(started - settled, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8000,80000")
    ap.add_argument("--indexed", type=int, default=10000)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "burst.json")
    args = ap.parse_args()
    rows = []
    for n in map(int, args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(burst(Path(tmp), n, args.indexed))
        r = rows[-1]
        print(
            f"burst of {r['files']} new files beside {r['indexed']} indexed: change set "
            f"{r['change_set_s']} s, first file to the model after {r['to_first_file_s']} s"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
