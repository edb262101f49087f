#!/usr/bin/env python3
"""`mmsearch mcp` from launch to its first answer, as an agent meets it: the official SDK's
client spawns the server over stdio, initializes, and calls `search` at once; timed from the
spawn to the answer (medians of N launches), with the initialize answer on the way.

    python bench/bench_mcp.py --runs 5

The default model's architecture, ViT-B-32-256, with random weights (no weights can be
downloaded here; speed needs no real values), warm cache: its ONNX export is made by the
first indexing and reused after. The store holds real photos (scikit-image's); all under
bench/out/mcp, built once. The
second figure, `call after settling`, is what an agent that connects at its own start and
asks later sees: the same first search made 10 s after initialize, when warm-up is done.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUERY = "an astronaut in a white suit"


def environment(out: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMSEARCH_")}
    env |= {"MMSEARCH_DB": str(out / "db"), "HF_HUB_OFFLINE": "1"}
    env["MMSEARCH_MODEL"] = f"local-dir:{out / 'model'}"
    env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def build_store(out: Path, env: dict[str, str]) -> None:
    """Scikit-image's photos, indexed once (the model exported to ONNX on the way)."""
    if (out / "db").exists():
        return
    from PIL import Image
    from skimage import data

    sys.path.insert(0, str(HERE))
    from bench_int8 import random_checkpoint

    random_checkpoint("ViT-B-32-256", out / "model")
    photos = out / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field"):
        Image.fromarray(getattr(data, name)()).convert("RGB").save(photos / f"{name}.jpg")
    subprocess.run(
        [sys.executable, "-m", "mmsearch", "index", "-q", str(photos)], env=env, check=True
    )


def launch(env: dict[str, str], settle: float) -> tuple[float, float, float]:
    """Seconds from spawn to initialize's answer, from spawn to the first search's answer
    (less the settling), and of the search call alone."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    server = StdioServerParameters(command=sys.executable, args=["-m", "mmsearch", "mcp"], env=env)

    async def talk() -> tuple[float, float, float]:
        start = time.perf_counter()
        async with stdio_client(server) as (r, w), ClientSession(r, w) as client:
            await client.initialize()
            ready = time.perf_counter() - start
            await asyncio.sleep(settle)
            asked = time.perf_counter()
            query = f"{QUERY} {time.time_ns()}"  # new words: the query cache cannot answer
            result: Any = await client.call_tool("search", {"query": query, "top": 3})
            call = time.perf_counter() - asked
            assert not result.is_error, result.content[0].text
            return ready, time.perf_counter() - start - settle, call

    return asyncio.run(talk())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    out = (HERE / "out" / "mcp").resolve()  # one store and model path, however reached
    env = environment(out)
    build_store(out, env)
    for label, settle in (("call at once", 0.0), ("call after settling", 10.0)):
        times = [launch(env, settle) for _ in range(args.runs)]
        ready = statistics.median(t[0] for t in times)
        first = statistics.median(t[1] for t in times)
        call = statistics.median(t[2] for t in times)
        worst = max(t[1] for t in times)
        print(
            f"{label:20} initialize {ready:.2f} s, launch to first answer {first:.2f} s "
            f"(worst {worst:.2f} s), the call itself {call:.2f} s; medians of {args.runs}"
        )


if __name__ == "__main__":
    main()
