#!/usr/bin/env python3
"""One-shot word queries against one-shot vector queries, and a fresh server's first answer.

    python bench/bench_words.py                  # builds bench/out/words (the relevance corpus)

On the relevance benchmark's mixed corpus (pictures, videos, PDF/DOCX/TXT passages; the scene
model), each a whole `mmsearch query ... --json` process with no server, alternated, median
of `--runs`: a document's distinctive word in the default mode (hybrid: full-text lists and
pictures), a picture's description in the default mode, and the same description with
`--mode vector`. Then `mmsearch serve` is started and the first client process after it says
ready is timed against the median of the next `--runs`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_relevance import SCENE_MODEL, make_corpus  # noqa: E402


def query_seconds(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mmsearch", "query", *args, "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=HERE / "out" / "words")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "words.json")
    args = ap.parse_args()
    store = args.work / "store"
    env = {**os.environ, "MMSEARCH_DB": str(store), "MMSEARCH_MODEL": SCENE_MODEL}
    env.pop("MMSEARCH_MIN_SCORE", None)
    corpus = make_corpus(args.work / "corpus")
    if not store.exists():
        subprocess.run(
            [sys.executable, "-m", "mmsearch", "index", "-q", str(corpus.folder)],
            env={**env, "MMSEARCH_NO_SERVER": "1"},
            check=True,
        )
    word = next(q.parts[0] for q in corpus.queries if q.kind == "distinctive")
    caption = next(q.parts[0] for q in corpus.queries if q.kind == "caption")
    one_shot = {**env, "MMSEARCH_NO_SERVER": "1"}
    cases = {
        "word (default mode)": (word,),
        "description (default mode)": (caption,),
        "description (--mode vector)": (caption, "--mode", "vector"),
    }
    for case in cases.values():
        query_seconds(one_shot, *case)  # caches warm: files, the query-vector cache
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, case in cases.items():
            times[name].append(query_seconds(one_shot, *case))
    result = {name: round(statistics.median(t), 3) for name, t in times.items()}
    result["word / vector"] = round(
        result["word (default mode)"] / result["description (--mode vector)"], 2
    )

    server = subprocess.Popen(
        [sys.executable, "-m", "mmsearch", "serve"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stderr is not None
        server.stderr.readline()  # "serving ... on SOCKET": warmed up and ready
        first = query_seconds(env, word)
        warm = statistics.median(query_seconds(env, word) for _ in range(args.runs))
    finally:
        server.terminate()
        server.wait(timeout=30)
    result["served: first query"] = round(first, 3)
    result["served: warm query"] = round(warm, 3)
    result["first / warm"] = round(first / warm, 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    width = max(map(len, result))
    for name, value in result.items():
        print(f"{name:<{width}}  {value}")
    if args.work == HERE / "out" / "words" and os.environ.get("BENCH_CLEAN"):
        shutil.rmtree(args.work)


if __name__ == "__main__":
    main()
