"""One filter definition: the SQL the store runs and the mask the snapshot applies agree on
random rows and random filters."""

from __future__ import annotations

import random
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pytest

from mmsearch.query.filters import Filters

NAMES = ["/a", "/a/b", "/a/b/c.jpg", "/a/b-c/d.png", "/a/b0", "/a/x'y.jpg", "/é/ü.mp4", "/a_/%.pdf"]
EXTS = [".jpg", ".jpeg", ".png", ".mp4", ".pdf", ".tif", ".tiff"]


def random_rows(rng: random.Random, n: int) -> pa.Table:
    return pa.table(
        {
            "id": list(range(n)),
            "path": [
                rng.choice(NAMES) + ("/z.jpg" if rng.random() < 0.3 else "") for _ in range(n)
            ],
            "kind": [rng.choice(["image", "video", "document"]) for _ in range(n)],
            "ext": [rng.choice(EXTS) for _ in range(n)],
            "taken": pa.array(
                [None if rng.random() < 0.2 else rng.uniform(0, 100) for _ in range(n)],
                pa.float64(),
            ),
        }
    )


def random_filters(rng: random.Random) -> tuple[Filters, list[str]]:
    pick = lambda pool, k: rng.sample(pool, rng.randint(0, k))  # noqa: E731
    filters = Filters(
        within=pick(NAMES, 2),
        kinds=pick(["image", "video", "document"], 2),
        exts=[e.lstrip(".") for e in pick(EXTS, 2)],
        after=rng.choice([None, rng.uniform(0, 100)]),
        before=rng.choice([None, rng.uniform(0, 100)]),
    )
    return filters, pick(NAMES, 2)


@pytest.mark.parametrize("seed", range(3))
def test_sql_and_mask_select_the_same_rows(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    rows = random_rows(rng, 300)
    table = lancedb.connect(str(tmp_path / "db")).create_table("t", rows)
    for _ in range(40):
        filters, exclude = random_filters(rng)
        where = filters.where(exclude)
        query = table.search().select(["id"]).limit(None)
        by_sql = set((query.where(where) if where else query).to_arrow()["id"].to_pylist())
        mask = filters.mask(rows, exclude)
        ids = np.asarray(rows["id"])
        by_mask = set(ids.tolist() if mask is None else ids[mask].tolist())
        assert by_sql == by_mask, (filters, exclude)
