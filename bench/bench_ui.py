#!/usr/bin/env python3
"""The web UI's speed at scale: from a query sent in the browser to its first result painted.

    python bench/bench_ui.py --items 100000 --queries 20

A synthetic store of N image items (clustered random vectors, the tiny random-weight model
of the tests, so the model costs little and the store and the page cost what they cost),
`mmsearch ui` on it, and headless Chromium (Debian's chromium + chromium-driver) typing
queries. Measured in the browser with the Performance API: the navigation's requestStart
(the query sent) to the Element Timing paint of the first result's name; also the server's
answer (requestStart to responseEnd) and first-contentful-paint. Thumbnails are lazy, and the
synthetic paths have no pictures: what is timed is the page, not the thumbnailer.
Stores are kept under bench/out/ui-N and reused.

`--while-writing` measures the same while another process commits to the store as `watch`
does (100 new items per commit, then compaction and a new snapshot, in a loop): the page
must stay as quick while the index changes under it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
WORDS = [
    "red",
    "car",
    "beach",
    "dog",
    "sunset",
    "mountain",
    "cat",
    "snow",
    "city",
    "night",
    "river",
    "party",
    "food",
]
MEASURE = """
const done = arguments[arguments.length - 1];
const nav = performance.getEntriesByType('navigation')[0];
const fcp = performance.getEntriesByName('first-contentful-paint')[0];
new PerformanceObserver((list) => {
  const first = list.getEntries().find((e) => e.identifier === 'first');
  if (first) done({sent: nav.requestStart, answered: nav.responseEnd,
                   painted: first.renderTime || first.loadTime, fcp: fcp ? fcp.startTime : null});
}).observe({type: 'element', buffered: true});
"""


def tiny_model(folder: Path) -> str:
    if not (folder / "open_clip_model.safetensors").exists():
        import open_clip
        import torch
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "open_clip_config.json").write_text(
            json.dumps({"model_cfg": TINY, "preprocess_cfg": {}})
        )
        torch.manual_seed(0)
        net = open_clip.CLIP(**TINY)
        save_file(
            {k: v.contiguous() for k, v in net.state_dict().items()},
            str(folder / "open_clip_model.safetensors"),
        )
    return f"local-dir:{folder}"


def build(db: Path, model: str, n: int) -> None:
    """N image items in one folder tree, clustered like CLIP embeddings; made once."""
    if (db / "built").exists():
        return
    import pyarrow as pa

    from mmsearch.core.config import Settings
    from mmsearch.storage.store import Store, items_schema

    dim = TINY["embed_dim"]
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((200, dim)).astype(np.float32)
    x = centres[rng.integers(0, 200, n)] + rng.normal(0, 0.3, (n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    coll = Store(str(db)).create_collection(Settings(db=str(db), model=model), dim)
    for s in range(0, n, 100_000):
        ids = range(s, min(n, s + 100_000))
        k = len(ids)
        coll.items.add(
            pa.table(
                {
                    "path": [f"/synthetic/{i // 100:05d}/{i:07d}.jpg" for i in ids],
                    "kind": ["image"] * k,
                    "t": pa.nulls(k, pa.float64()),
                    "t_end": pa.nulls(k, pa.float64()),
                    "page": pa.nulls(k, pa.int32()),
                    "text": pa.nulls(k, pa.string()),
                    "words": pa.nulls(k, pa.string()),
                    "grams": pa.nulls(k, pa.string()),
                    "origin": [""] * k,
                    "ext": [".jpg"] * k,
                    "taken": pa.array([1.6e9 + i for i in ids], pa.float64()),
                    "content_hash": [f"{i:x}" for i in ids],
                    "vector": pa.FixedSizeListArray.from_arrays(
                        pa.array(x[s : s + k].ravel()), dim
                    ),
                },
                schema=items_schema(dim),
            )
        )
    coll.optimize()  # writes the search snapshot
    (db / "built").write_text("ok")


def writer(db: Path, model: str) -> None:
    """Commit 100 items at a time until killed, refreshing the snapshot as watch does."""
    import pyarrow as pa

    from mmsearch.core.config import Settings
    from mmsearch.storage.snapshot import refresh
    from mmsearch.storage.store import Store, items_schema

    dim = TINY["embed_dim"]
    coll = Store(str(db)).collection(Settings(db=str(db), model=model))
    assert coll is not None
    rng = np.random.default_rng(1)
    for batch in range(10**6):
        k = 100
        x = rng.standard_normal((k, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        names = [f"/written/{batch:06d}/{i:03d}.jpg" for i in range(k)]
        coll.items.add(
            pa.table(
                {
                    "path": names,
                    "kind": ["image"] * k,
                    "t": pa.nulls(k, pa.float64()),
                    "t_end": pa.nulls(k, pa.float64()),
                    "page": pa.nulls(k, pa.int32()),
                    "text": pa.nulls(k, pa.string()),
                    "words": pa.nulls(k, pa.string()),
                    "grams": pa.nulls(k, pa.string()),
                    "origin": [""] * k,
                    "ext": [".jpg"] * k,
                    "taken": pa.array([2e9] * k, pa.float64()),
                    "content_hash": names,
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), dim),
                },
                schema=items_schema(dim),
            )
        )
        refresh(coll, changed=True)


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,860",
    ):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='bench-ui-')}")
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--while-writing", action="store_true")
    ap.add_argument("--writer", help=argparse.SUPPRESS)  # the writing process itself
    args = ap.parse_args()
    if args.writer:
        writer(Path(args.writer), tiny_model(HERE / "out" / "ui-tiny-model"))
        return
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    out = HERE / "out"
    model = tiny_model(out / "ui-tiny-model")
    db = out / f"ui-{args.items}{'-written' if args.while_writing else ''}"
    env = {
        **os.environ,
        "MMSEARCH_DB": str(db),
        "MMSEARCH_MODEL": model,
        "MMSEARCH_CACHE": str(out / "ui-cache"),
        "HF_HUB_OFFLINE": "1",
        "MMSEARCH_MIN_SCORE": "0",  # random weights: no score means anything, show the top
    }
    os.environ.update(env)
    build(db, model, args.items)
    ui = subprocess.Popen(
        [sys.executable, "-m", "mmsearch", "ui", "--no-open"],
        env=env,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    driver = browser()
    writing = None
    try:
        url = ui.stdout.readline().strip() if ui.stdout else ""
        samples = []
        for i in range(args.queries + 3):  # the first three warm the model and the index
            if i == 3 and args.while_writing:
                writing = subprocess.Popen(
                    [sys.executable, __file__, "--writer", str(db)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                )
            driver.get(url)
            driver.find_element(By.ID, "q").send_keys(f"{WORDS[i % len(WORDS)]} {i}", Keys.ENTER)
            deadline = time.monotonic() + 60
            while "q=" not in driver.execute_script("return location.search"):
                if time.monotonic() > deadline:
                    sys.exit("the results page never came")
                time.sleep(0.01)
            m = driver.execute_async_script(MEASURE)
            if i >= 3:
                samples.append(m)
        paint = sorted(s["painted"] - s["sent"] for s in samples)
        answer = sorted(s["answered"] - s["sent"] for s in samples)
        print(
            json.dumps(
                {
                    "items": args.items,
                    "queries": len(samples),
                    "first_result_painted_ms_p50": round(statistics.median(paint), 1),
                    "first_result_painted_ms_p95": round(paint[int(0.95 * (len(paint) - 1))], 1),
                    "server_answer_ms_p50": round(statistics.median(answer), 1),
                    "fcp_after_sent_ms_p50": round(
                        statistics.median(
                            s["fcp"] - s["sent"] for s in samples if s["fcp"] is not None
                        ),
                        1,
                    ),
                    "while_writing": args.while_writing,
                    "load_average": os.getloadavg(),
                }
            )
        )
    finally:
        if writing is not None:
            writing.terminate()
            writing.wait()
        driver.quit()
        ui.terminate()
        ui.wait()


if __name__ == "__main__":
    main()
