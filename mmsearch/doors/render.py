"""Turn library results into text: tables for people, stable JSON and paths for pipelines."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, TextIO
from urllib.parse import quote

from rich.cells import cell_len
from rich.console import Console
from rich.padding import Padding
from rich.style import Style
from rich.text import Text

from mmsearch.core.paths import is_within
from mmsearch.core.redact import redact
from mmsearch.core.sanitise import snippet, terminal
from mmsearch.doors import thumbnails
from mmsearch.doors.output import write_hits

if TYPE_CHECKING:
    from mmsearch.indexing.index import IndexReport
    from mmsearch.query.dupes import Group
    from mmsearch.query.ranking import Hit
    from mmsearch.query.status import StatusReport


class _Console(Console):
    """A console whose closed pipe raises BrokenPipeError for the CLI to handle once (rich's
    own handler exits 1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def make_console(
    file: TextIO | None = None, stderr: bool = False, soft_wrap: bool = False
) -> Console:
    """A rich console for people: no guessed highlighting, a closed pipe reported plainly."""
    return _Console(file=file, stderr=stderr, highlight=False, soft_wrap=soft_wrap)


def hits(
    results: Sequence[Hit], fmt: str, out: TextIO | None = None, preview: bool = False
) -> None:
    if fmt != "table":
        write_hits(results, fmt, out)
        return
    out = out or sys.stdout
    _hits_table(results, out, preview)
    out.flush()


_BAR = " ▏▎▍▌▋▊▉█"
_GAP = "  "
_MIN_PATH = 24  # below this the score bars give their room to the path


def _hits_table(results: Sequence[Hit], out: TextIO, preview: bool) -> None:
    """One line per hit: rank, score, kind and moment at their full width, the path cut in
    the middle to what is left; a document's passage on its own wrapped line below it.
    Widths are display cells (CJK and emoji take two), so nothing ever pushes the rank, score
    or kind off the line; everything from the data is shown escaped (mmsearch.core.sanitise)."""
    console = make_console(out)
    if not results:
        return  # quick.show says so on stderr
    protocol = thumbnails.image_protocol(os.environ) if preview else None
    if preview and protocol is None:
        make_console(stderr=True).print(
            "mmsearch: this terminal shows no inline images (kitty, iTerm2 and WezTerm do)",
            style="dim",
            markup=False,
        )
    best, worst = results[0].score, min(h.score for h in results)
    columns = [
        [str(rank) for rank in range(1, len(results) + 1)],
        [f"{h.score:.3f}" for h in results],
        [terminal(h.kind) for h in results],
        [_locator(h).strip(" @") for h in results],
    ]
    widths = [max(cell_len(c) for c in column) for column in columns]
    widths[3] = max(widths[3], 4) if any(columns[3]) else 0
    fixed = sum(w + len(_GAP) for w in widths if w)
    bar = 5 if console.width - fixed - 5 >= _MIN_PATH else 0  # a space and four eighths
    path_width = max(1, console.width - fixed - bar)
    header = Text(style="dim")
    for name, width, align in zip(("#", "score", "kind", "when"), widths, "><<<", strict=True):
        if width:
            header.append(_pad(name, width + (bar if name == "score" else 0), align) + _GAP)
    console.print(header.append("path"), no_wrap=True, crop=True)
    for i, h in enumerate(results):
        line = Text(no_wrap=True)
        line.append(_pad(columns[0][i], widths[0], ">") + _GAP, style="dim")
        score = columns[1][i] + (" " + _bar(h.score, worst, best) if bar else "")
        line.append(_pad(score, widths[1] + bar) + _GAP)
        line.append(_pad(columns[2][i], widths[2]) + _GAP)
        if widths[3]:
            line.append(_pad(columns[3][i], widths[3]) + _GAP)
        line.append_text(_linked_path(h.path, path_width))
        console.print(line, no_wrap=True, crop=True)
        if h.snippet:
            indent = widths[0] + len(_GAP)
            shown = cut_end(snippet(h.snippet), 2 * (console.width - indent))
            console.print(Padding(Text(shown, style="dim"), (0, 0, 0, indent)))
        if protocol:
            out.write(thumbnails.escape(h, protocol) + "\n")


def _pad(text: str, width: int, align: str = "<") -> str:
    """`text` padded with spaces to `width` display cells."""
    room = " " * max(0, width - cell_len(text))
    return room + text if align == ">" else text + room


def _bar(score: float, worst: float, best: float, width: int = 4) -> str:
    share = 1.0 if best - worst < 1e-9 else (score - worst) / (best - worst)
    eighths = round(share * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_BAR[rest] if rest else "")).ljust(width)


def home_short(path: str) -> str:
    """The path with the home folder as ~, as every command shows a path to a person."""
    home = os.path.expanduser("~")
    return "~" + path[len(home) :] if home != "/" and is_within(path, home) else path


def _linked_path(path: str, width: int) -> Text:
    """The path with the home folder as ~, cut in the middle to fit, clickable (OSC 8)."""
    raw = path.encode("utf-8", "surrogateescape")
    shown = cut_middle(terminal(home_short(path)), width)
    return Text(shown, style=Style(link="file://" + quote(raw)))


MIN_NAME = 12  # cells a cut file name keeps before its folder gives way


def cut_middle(path: str, width: int) -> str:
    """`path` in at most `width` display cells: folders give way first (`/a/…/name.jpg`),
    then the middle of the file name, never its extension; its first folder stays while
    there is room for it (`~/…/IMG_…_long….png`: whose file it is still shows)."""
    if cell_len(path) <= width:
        return path
    head, sep, name = path.rpartition("/")
    if cell_len(name) + 2 <= width:  # room for "…/" and the whole name
        keep = width - cell_len(name) - 2
        return cut_end(head + sep, keep, ellipsis="") + "…/" + name
    top = head + sep if "/" not in head else head.split("/", 1)[0] + "/…/"
    if sep and cell_len(top) + MIN_NAME <= width:
        return top + _cut_name(name, width - cell_len(top))
    return _cut_name(name, width)


def _cut_name(name: str, width: int) -> str:
    """A file name in at most `width` cells, cut in the middle of its stem."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 8 or cell_len(ext) + 3 > width:
        stem, ext = name, ""  # no extension, or no room to keep one
    tail = "." + ext if ext else ""
    return cut_end(stem, width - cell_len(tail)) + tail


def cut_end(text: str, width: int, ellipsis: str = "…") -> str:
    """`text` in at most `width` display cells, cut at its end (marked with `ellipsis`)."""
    if cell_len(text) <= width:
        return text
    room = width - cell_len(ellipsis)
    kept, used = [], 0
    for char in text:
        used += cell_len(char)
        if used > room:
            break
        kept.append(char)
    return "".join(kept) + ellipsis if room >= 0 else ""


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
    console = make_console(out)
    if not groups:
        console.print("no near-duplicates", style="dim")
    for n, g in enumerate(groups, 1):
        console.print(f"group {n}: {len(g.members)} files", style="bold", markup=False)
        for m in g.members:
            moment = f" @ {clock(m.t)}" if m.t is not None else ""
            console.print(
                f"  {m.similarity:.3f}  {m.kind:<5}  {terminal(home_short(m.path))}{moment}",
                markup=False,
                soft_wrap=True,
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
        + (f"({r.links_out} links leaving the folder skipped) " if r.links_out else "")
        + f"in {seconds:.1f} s{said}",
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
        console.print(f"failed: {terminal(path)}: {terminal(reason)}", markup=False, style="yellow")
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
    console = make_console(out or sys.stdout)
    model = f"{report.model} ({report.pretrained})" if report.pretrained else report.model
    size = f" ({_size(report.size_bytes)})" if report.size_bytes else ""
    rows = [
        ("store", home_short(redact(report.db)) + size),
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
            ("roots", "\n".join(terminal(home_short(r)) for r in report.roots) or "-"),
            *(
                [("forgotten", "\n".join(terminal(home_short(e)) for e in report.excluded))]
                if report.excluded
                else []
            ),
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
        rows.append(("also", "\n".join(map(terminal, report.other_models))))
    width = max(len(name) for name, _ in rows) + 2
    for name, value in rows:
        lines = [terminal(line) for line in value.split("\n")]
        console.print(Text(name.ljust(width), style="bold") + Text(lines[0]), soft_wrap=True)
        for line in lines[1:]:
            console.print(" " * width + line, markup=False, soft_wrap=True)
    if report.failures:
        console.print("failed files:", style="bold")
        for f in report.failures:
            line = f"  {terminal(home_short(f['path']))}: {terminal(f['reason'])}"
            console.print(line, markup=False, soft_wrap=True)


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
