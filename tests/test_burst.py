"""A burst of thousands of paths (a big import into a watched folder): every lookup stays
exact while no step costs more than O(log n) per path."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from mmsearch.core.config import Settings
from mmsearch.core.paths import PathSet, cover, is_within
from mmsearch.indexing.pipeline import Writer
from mmsearch.indexing.scan import FileEntry, scan
from mmsearch.storage.store import SUBTREE_RANGES, Item, Store

# Names that sort right beside each other and share prefixes: where a sloppy subtree test
# takes a neighbour for a child.
AWKWARD = ("b", "b c", "b-c", "b0", "b.d", "bb", "a", "c")


def random_paths(rng: random.Random, n: int) -> list[str]:
    return ["/" + "/".join(rng.choices(AWKWARD, k=rng.randint(1, 4))) for _ in range(n)]


def test_path_set_agrees_with_is_within_on_awkward_neighbours() -> None:
    rng = random.Random(7)
    for _ in range(50):
        roots = random_paths(rng, rng.randint(1, 30))
        members = PathSet(roots)
        for path in random_paths(rng, 200):
            assert (path in members) == any(is_within(path, r) for r in roots), (path, roots)


def test_the_root_folder_holds_every_path() -> None:
    assert "/a/b.jpg" in PathSet(["/"])


def test_cover_holds_every_path_within_the_limit() -> None:
    rng = random.Random(3)
    paths = random_paths(rng, 500)
    folders = cover(paths, 5)
    assert len(folders) <= 5
    assert all(any(is_within(p, f) for f in folders) for p in paths)


def test_many_paths_in_one_folder_each_obey_their_own_folders_ignore_file(tmp_path: Path) -> None:
    for folder, rule in (("x", "*.png\n"), ("y", "*.jpg\n")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / ".mmsearchignore").write_text(rule)
    paths = []
    for i in range(300):
        for folder in ("x", "y"):
            for ext in ("jpg", "png"):
                path = tmp_path / folder / f"{i}.{ext}"
                path.write_bytes(b"x")
                paths.append(str(path))
    found = {
        Path(f.path).relative_to(tmp_path).as_posix()
        for f in scan(paths, roots=[str(tmp_path)]).files
    }
    assert found == {f"x/{i}.jpg" for i in range(300)} | {f"y/{i}.png" for i in range(300)}


def test_store_lookups_for_more_paths_than_one_filter_holds_return_exactly_those(
    tmp_path: Path,
) -> None:
    settings = Settings(db=str(tmp_path / "store"), model="ViT-B-32", pretrained="t")
    store = Store(settings.db)
    folder = tmp_path / "photos"
    names = [f"{n} {i}.jpg" for i in range(2 * SUBTREE_RANGES) for n in AWKWARD]
    with store.writer_lock("test"):
        coll = store.create_collection(settings, 4)
        writer = Writer(coll, SimpleNamespace(failed=0, failures=[]), flush_items=10**9)
        for name in names:
            path = str(folder / name)
            item = Item(path, "image", "h", np.ones(4, np.float32) / 2)
            writer.ok(FileEntry(path, 1, 1, "image"), "h", [item])
        writer.flush()
    asked = [str(folder / n) for n in names[::3]] + [str(folder / "b")]  # "b" holds nothing
    assert len(asked) > SUBTREE_RANGES
    assert set(coll.records_under(asked)) == set(asked[:-1])
    assert coll.item_paths_under(asked) == set(asked[:-1])
    assert {r["path"] for r in coll.ocr_pending(asked, ["image"])} == set(asked[:-1])
