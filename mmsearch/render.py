"""Turn library results into text: tables for people, stable JSON and paths for pipelines."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from rich.console import Console
from rich.style import Style
from rich.table import Table
from rich.text import Text

from mmsearch import thumbnails
from mmsearch.paths import is_within

if TYPE_CHECKING:
    from mmsearch.dupes import Group
    from mmsearch.index import IndexReport
    from mmsearch.ranking import Hit
    from mmsearch.status import StatusReport


def hits(
    results: Sequence[Hit], fmt: str, out: TextIO | None = None, preview: bool = False
) -> None:
    out = out or sys.stdout
    if fmt == "table":
        _hits_table(results, out, preview)
    elif fmt == "json":
        out.write(json.dumps([hit_json(h) for h in results], ensure_ascii=False, indent=2) + "\n")
    elif fmt == "jsonl":
        out.writelines(json.dumps(hit_json(h), ensure_ascii=False) + "\n" for h in results)
    elif fmt == "paths":
        out.writelines(h.path + "\n" for h in results)
    elif fmt == "nul":
        out.writelines(h.path + "\0" for h in results)
    else:
        out.writelines(_plain(h) for h in results)
    out.flush()


def hit_json(hit: Hit) -> dict[str, Any]:
    """The documented result object (schema/result.schema.json)."""
    return asdict(hit)


_BAR = " ▏▎▍▌▋▊▉█"
_FIXED_WIDTH = 40  # rank, score and bar, kind, moment, and the gaps between columns


def _hits_table(results: Sequence[Hit], out: TextIO, preview: bool) -> None:
    console = Console(file=out, highlight=False)
    if not results:
        console.print("no results", style="dim")
        return
    protocol = thumbnails.image_protocol(os.environ) if preview else None
    if preview and protocol is None:
        Console(stderr=True).print(
            "mmsearch: this terminal shows no inline images (kitty, iTerm2 and WezTerm do)",
            style="dim",
            markup=False,
        )
    path_width = max(20, console.width - _FIXED_WIDTH)
    best, worst = results[0].score, min(h.score for h in results)
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("score", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("when", no_wrap=True)
    table.add_column("path", no_wrap=True, overflow="ellipsis")
    for rank, h in enumerate(results, 1):
        table.add_row(
            str(rank),
            f"{h.score:.3f} {_bar(h.score, worst, best)}",
            h.kind,
            _locator(h).strip(" @"),
            _path_cell(h, path_width),
        )
        if protocol:
            console.print(table)
            out.write(thumbnails.escape(h, protocol) + "\n")
            table = Table(box=None, pad_edge=False, show_edge=False, show_header=False)
            for column in ("#", "score", "kind", "when", "path"):
                table.add_column(column, no_wrap=True)
    if not protocol:
        console.print(table)


def _bar(score: float, worst: float, best: float, width: int = 4) -> str:
    share = 1.0 if best - worst < 1e-9 else (score - worst) / (best - worst)
    eighths = round(share * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_BAR[rest] if rest else "")).ljust(width)


def _linked_path(path: str, width: int) -> Text:
    """The path with the home folder as ~, cut from the left to fit, clickable (OSC 8)."""
    home = os.path.expanduser("~")
    shown = "~" + path[len(home) :] if home != "/" and is_within(path, home) else path
    if len(shown) > width:
        shown = "…" + shown[-(width - 1) :]
    return Text(shown, style=Style(link="file://" + quote(path)))


def _path_cell(hit: Hit, width: int) -> Text:
    cell = _linked_path(hit.path, width)
    if hit.snippet:
        snippet = Text(hit.snippet[: width * 2], style="dim")
        cell.append("\n")
        cell.append_text(snippet)
    return cell


def _plain(hit: Hit) -> str:
    """`score<TAB>path`, plus `<TAB>seconds` for a video moment (to feed a player)."""
    moment = f"\t{hit.t:.3f}" if hit.t is not None else ""
    return f"{hit.score:.4f}\t{hit.path}{moment}\n"


def _locator(hit: Hit) -> str:
    if hit.t is not None:
        span = clock(hit.t)
        if hit.t_end is not None and clock(hit.t_end) != span:
            span += f"-{clock(hit.t_end)}"
        return f" @ {span}"
    if hit.page is not None:
        return f" p. {hit.page}"
    return ""


def clock(seconds: float) -> str:
    """01:23, or 1:02:03 past the hour."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def dupes(groups: Sequence[Group], as_json: bool, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if as_json:
        data = [{"size": len(g.members), "files": [asdict(m) for m in g.members]} for g in groups]
        out.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    console = Console(file=out, highlight=False)
    if not groups:
        console.print("no near-duplicates", style="dim")
    for n, g in enumerate(groups, 1):
        console.print(f"group {n}: {len(g.members)} files", style="bold", markup=False)
        for m in g.members:
            moment = f" @ {clock(m.t)}" if m.t is not None else ""
            console.print(
                f"  {m.similarity:.3f}  {m.kind:<5}  {m.path}{moment}", markup=False, soft_wrap=True
            )


def index_summary(report: IndexReport, console: Console, total: float | None = None) -> None:
    """One line: the counts, the whole run's time (`total`, from process start, when known),
    the model's loading or one-time preparation on its own, and the rate of the files the
    model embedded over the time it spent on them."""
    r = report
    seconds = max(total or 0.0, r.seconds)
    notes = []
    if r.model_seconds >= 0.05:
        what = "model prepared once" if r.model_prepared else "model loaded"
        notes.append(f"{what} in {r.model_seconds:.1f} s")
    embedded, busy = r.new + r.updated, r.seconds - r.model_seconds
    if embedded and busy > 0:
        notes.append(f"{embedded / busy:.1f} files/s embedded")
    if r.frames and r.video_seconds:
        notes.append(f"{r.frames} video frames at {r.frames / r.video_seconds:.1f} frames/s")
    said = f" ({', '.join(notes)})" if notes else ""
    console.print(
        f"{r.new} new, {r.updated} updated, {r.reused} reused, {r.unchanged} unchanged, "
        f"{r.removed} removed, {r.failed} failed, "
        + (f"{r.empty} empty, " if r.empty else "")
        + f"{r.unsupported} unsupported "
        f"in {seconds:.1f} s{said}",
        markup=False,
    )
    o = r.ocr
    if o.text or o.none or o.failed:
        console.print(
            f"OCR: words in {o.text} files, none in {o.none}, {o.skipped} skipped, "
            f"{o.failed} failed in {o.seconds:.1f} s",
            markup=False,
        )
    for path, reason in r.failures[:10]:
        console.print(f"failed: {path}: {reason}", markup=False, style="yellow")
    if len(r.failures) > 10:
        console.print(f"... and {len(r.failures) - 10} more: see `mmsearch status`", markup=False)


def watch_line(report: IndexReport) -> str | None:
    """One line per batch of changes, or None when the batch changed nothing."""
    r = report
    parts = [
        (r.new, "new"),
        (r.updated, "updated"),
        (r.reused, "moved or copied"),
        (r.removed, "removed"),
        (r.failed, "failed"),
    ]
    said = ", ".join(f"{n} {what}" for n, what in parts if n)
    if not said:
        return None
    return f"{datetime.now().strftime('%H:%M:%S')} {said} ({r.seconds:.1f} s)"


def status_json(report: StatusReport) -> str:
    data = asdict(report)
    data["last_update"] = _iso(report.last_update)
    return json.dumps(data, ensure_ascii=False, indent=2)


def status_text(report: StatusReport, out: TextIO | None = None) -> None:
    console = Console(file=out or sys.stdout, highlight=False)
    model = f"{report.model} ({report.pretrained})" if report.pretrained else report.model
    rows = [
        ("store", report.db + (f" ({_size(report.size_bytes)})" if report.size_bytes else "")),
        ("model", model),
    ]
    if not report.indexed:
        hint = (
            "leave --model/--pretrained unset to use the model below, or run "
            "`mmsearch index FOLDER` with this one"
            if report.other_models
            else "run `mmsearch index FOLDER` (or point --db / MMSEARCH_DB at your store)"
        )
        rows.append(("index", f"nothing indexed with this model: {hint}"))
    else:
        rows += [
            ("roots", "\n".join(report.roots) or "-"),
            *([("forgotten", "\n".join(report.excluded))] if report.excluded else []),
            (
                "files",
                f"{report.files_indexed} indexed{_by_kind(report.files_by_kind)}, "
                f"{report.files_failed} failed"
                + (f", {report.files_empty} empty" if report.files_empty else ""),
            ),
            ("items", f"{report.items}{_by_kind(report.items_by_kind)}"),
            ("updated", _iso(report.last_update, sep=" ") or "-"),
            ("ocr", _ocr_line(report)),
        ]
    if report.other_models:
        rows.append(("also", "\n".join(report.other_models)))
    width = max(len(name) for name, _ in rows) + 2
    for name, value in rows:
        lines = value.split("\n")
        console.print(Text(name.ljust(width), style="bold") + Text(lines[0]), soft_wrap=True)
        for line in lines[1:]:
            console.print(" " * width + line, markup=False, soft_wrap=True)
    if report.failures:
        console.print("failed files:", style="bold")
        for f in report.failures:
            console.print(f"  {f['path']}: {f['reason']}", markup=False, soft_wrap=True)


def _ocr_line(report: StatusReport) -> str:
    if not report.ocr_available:
        return "not installed (pip install 'mmsearch[ocr]' to read words in pictures)"
    names = {
        "text": "with words",
        "none": "without",
        "skipped": "skipped",
        "failed": "failed",
        "pending": "pending",
    }
    parts = [f"{report.ocr[k]} {label}" for k, label in names.items() if report.ocr.get(k)]
    return ", ".join(parts) or "-"


def _by_kind(counts: dict[str, int]) -> str:
    return f" ({', '.join(f'{k} {n}' for k, n in sorted(counts.items()))})" if counts else ""


def _iso(ts: float | None, sep: str = "T") -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts).astimezone().isoformat(sep=sep, timespec="seconds")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
