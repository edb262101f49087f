"""`MMSEARCH_TIMINGS=1`: where a one-shot command's time went, as one JSON line on stderr.

The benchmark reads it to break a cold query down; phases include their own imports, and a
phase nested in another is counted only once, as itself.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

ENABLED = bool(os.environ.get("MMSEARCH_TIMINGS"))
_phases: dict[str, float] = {}
_open: list[float] = []  # time spent in phases nested inside each open phase


def process_age() -> float | None:
    """Seconds since this process started (Linux): interpreter start-up and CLI imports."""
    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def phase(name: str) -> Iterator[None]:
    if not ENABLED:
        yield
        return
    started = time.perf_counter()
    _open.append(0.0)
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        nested = _open.pop()
        _phases[name] = _phases.get(name, 0.0) + elapsed - nested  # each second counted once
        if _open:
            _open[-1] += elapsed


_started: float | None = None  # time.monotonic() at process start, once main() marks it


def mark_start() -> None:
    global _started
    age = process_age()
    _started = time.monotonic() - (age or 0.0)
    if ENABLED and age is not None:
        _phases["startup"] = age


def since_start() -> float | None:
    """Seconds since the process started, when the command line's main() marked it."""
    return None if _started is None else time.monotonic() - _started


def report() -> None:
    if ENABLED:
        rounded = {k: round(v, 4) for k, v in _phases.items()}
        print("timings: " + json.dumps(rounded), file=sys.stderr)
