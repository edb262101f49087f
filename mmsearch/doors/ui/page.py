"""The web UI's HTML, rendered on the server: the search form, the results grid, one result
alone, and the message page every refusal shows. Every value from a user, a file name or a
document is escaped here; no inline script or style (the Content-Security-Policy forbids it)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode

from mmsearch.core.vocab import Kind, Mode
from mmsearch.doors.render import clock
from mmsearch.doors.ui.order import Order
from mmsearch.query.ranking import Hit, no_good_match


@dataclass(frozen=True)
class Shown:
    """A hit with the id the UI serves its file and pictures by."""

    id: str
    hit: Hit


def url(route: str, **params: object) -> str:
    """A URL of the app with the non-empty parameters; never the token (the browser's
    session cookie is the key: a URL lands in history, screenshots and shared screens)."""
    query: list[tuple[str, str]] = []
    for key, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        query += [(key, str(v)) for v in values if v is not None and v != ""]
    return f"{route}?{urlencode(query)}" if query else route


def link(route: str, **params: object) -> str:
    """The same, escaped for an HTML attribute."""
    return escape(url(route, **params))


def locator(hit: Hit) -> str:
    if hit.t is not None and hit.t_end is not None:
        return f"{clock(hit.t)}\u2013{clock(hit.t_end)}"
    if hit.t is not None:
        return clock(hit.t)
    if hit.page is not None:
        return f"p. {hit.page}"
    return ""


def has_picture(hit: Hit) -> bool:
    return hit.kind != Kind.DOCUMENT or hit.path.lower().endswith(".pdf")


def _layout(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{escape(title)} · mmsearch</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{link("/static/ui.css")}">
<script src="{link("/static/ui.js")}" defer></script>
</head><body>
{body}
</body></html>
"""


def search_form(form: Mapping[str, object], start: str | None = None) -> str:
    """The search box (the CLI's grammar), the filters and the mode; the picture a query
    starts from, when there is one, rides along in hidden fields."""
    q = escape(str(form.get("q") or ""))
    kinds = form.get("kind") or ()
    boxes = "".join(
        f'<label><input type="checkbox" name="kind" value="{k}"'
        f"{' checked' if k.value in kinds else ''}> {k}</label>"
        for k in Kind
    )
    modes = "".join(
        f'<option value="{m}"{" selected" if form.get("mode") == m.value else ""}>{m}</option>'
        for m in Mode
    )
    sorts = "".join(
        f'<option value="{o}"{" selected" if form.get("sort") == o else ""}>{o}</option>'
        for o in Order
    )
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{escape(str(form[name]))}">'
        for name in ("like", "at", "img")
        if form.get(name) not in (None, "")
    )

    def field(name: str, label: str, placeholder: str, kind: str = "text", more: str = "") -> str:
        text = str(form.get(name) or "")
        if kind == "date" and text and not _full_date(text):
            kind = "text"  # "2024-06" is a valid filter a date picker would drop
        return (
            f'<label>{label} <input type="{kind}" name="{name}" value="{escape(text)}" '
            f'placeholder="{placeholder}" size="12"{more}></label>'
        )

    starting = ""
    if start:
        words = {k: form.get(k) for k in KEPT if k not in ("like", "at", "img")}
        words["q"] = str(form.get("q") or "").strip().removeprefix("+").strip()
        starting = (
            f'<span class="query-start"><img class="query-picture" src="{start}" alt="the picture">'
            f'<a id="drop-picture" href="{link("/", **words)}" title="search without the picture"'
            ' aria-label="remove the picture">&times;</a></span>'
        )
    hint = "add + words or - words to the picture" if starting else "words, ./picture.jpg, + and -"
    return f"""<header>
<form id="search" action="/" method="get" role="search">
{hidden}
{starting}<input id="q" name="q" value="{q}" placeholder="{hint}" autocomplete="off"
 aria-label="query" autofocus>
<button type="submit">Search</button>
<span id="busy" class="hint" role="status"></span>
<details{
        " open"
        if any(form.get(n) for n in ("kind", "in", "ext", "after", "before"))
        or form.get("sort") not in (None, "", "relevance")
        else ""
    }>
<summary>Filters</summary>
<fieldset>{boxes}
{field("in", "folder", "~/Photos", more=' list="roots"')}<datalist id="roots"></datalist>
{field("ext", "ext", "jpg,png")}
{field("after", "after", "2024-06", "date")}
{field("before", "before", "2025", "date")}
<label><input type="checkbox" name="moments" value="1"{
        " checked" if form.get("moments") == "1" else ""
    }> every moment</label>
<label>mode <select name="mode">{modes}</select></label>
<label>sort <select name="sort">{sorts}</select></label>
</fieldset></details>
</form>
<form id="upload" action="{link("/upload")}" method="post" enctype="multipart/form-data">
<label>Search by picture <input id="picture" type="file" name="image" accept="image/*"></label>
<button type="submit">Upload</button>
<span class="hint">or drop / paste a picture anywhere</span>
</form>
</header>"""


KEPT = ("q", "in", "ext", "after", "before", "mode", "sort", "moments", "like", "at", "img", "kind")


def _full_date(text: str) -> bool:
    return len(text) == 10 and text[4] == text[7] == "-" and text.replace("-", "").isdigit()


def day(taken: float | None) -> str:
    """A capture date as the page shows it (local time), or "" when unknown."""
    return time.strftime("%Y-%m-%d", time.localtime(taken)) if taken is not None else ""


def _thumb(shown: Shown, size: str = "s") -> str:
    hit = shown.hit
    return link(f"/thumb/{shown.id}", t=hit.t, page=hit.page, size=size)


def results_page(
    form: Mapping[str, object],
    shown: Sequence[Shown] | None,
    message: str = "",
    start: Shown | str | None = None,
    more: bool = False,
) -> str:
    """The search form and, below it, the count and grid of results (grouped by month when
    ordered by date), and a link to more of them; or the message instead."""
    if message:
        below = f'<p class="message" role="alert">{escape(message)}</p>'
    elif shown is None:
        below = '<p class="hint">Type words, or drop a picture, to search your files.</p>'
    elif not shown:
        below = f'<p class="message">{escape(no_good_match(None).capitalize())}.</p>'
    else:
        by_date = form.get("sort") in (Order.NEWEST, Order.OLDEST)
        cards = _cards(shown, by_date)
        # Element Timing names the first result's paint (bench/bench_ui.py measures it).
        cards = cards.replace('<span class="name">', '<span class="name" elementtiming="first">', 1)
        count = f"{len(shown)} result{'s' if len(shown) != 1 else ''}"
        below = f'<p id="count" class="hint">{count}{"+" if more else ""}</p>'
        below += f'<ol id="results" class="grid">{cards}</ol>'
        if more:
            pages = int(str(form.get("n") or 1)) + 1
            next_url = link("/", **{k: form.get(k) for k in KEPT}, n=pages)
            below += f'<p><a id="more" class="button" href="{next_url}">more results</a></p>'
    title = str(form.get("q") or "search")
    picture = _thumb(start) if isinstance(start, Shown) else start
    return _layout(title, search_form(form, picture) + f"<main>{below}</main>")


def _cards(shown: Sequence[Shown], by_date: bool) -> str:
    """The cards, with a heading at each new month when they are in date order."""
    out: list[str] = []
    month = None
    for s in shown:
        this = day(s.hit.taken)[:7] or "no date"
        if by_date and this != month:
            out.append(f'<li class="group"><h2>{this}</h2></li>')
            month = this
        out.append(_card(s))
    return "".join(out)


def _card(shown: Shown) -> str:
    hit = shown.hit
    name = escape(os.path.basename(hit.path))
    where = escape(locator(hit))
    item = link(f"/item/{shown.id}", t=hit.t, end=hit.t_end, page=hit.page)
    taken = ""
    if hit.taken is not None:
        date = day(hit.taken)
        taken = f'<time datetime="{date}" data-taken="{hit.taken:.3f}">{date}</time>'
    if has_picture(hit):
        face = (
            f'<img src="{_thumb(shown)}" srcset="{_thumb(shown)} 1x, {_thumb(shown, "l")} 2x" '
            f'loading="lazy" alt="{name}">'
        )
    else:
        face = f'<span class="text">{escape(hit.snippet or "")}</span>'
    similar = ""
    if hit.kind in (Kind.IMAGE, Kind.VIDEO):
        like = link("/", like=shown.id, at=hit.t)
        similar = f'<a class="similar" href="{like}" title="more like this">more like this</a>'
    return (
        f'<li class="card {escape(hit.kind)}" data-id="{shown.id}">'
        f'<a class="hit" href="{item}" title="{escape(hit.path)}">{face}'
        f'<span class="name">{name}</span>'
        f'<span class="where">{where}</span>{taken}</a>{similar}</li>'
    )


def item_page(shown: Shown, opened: bool = False) -> str:
    """One result alone: the video playing from its moment, the photo, or the page picture
    with its passage; "more like this" and "open" beside it."""
    hit = shown.hit
    name = escape(os.path.basename(hit.path))
    if hit.kind == Kind.VIDEO:
        src = link(f"/file/{shown.id}") + (f"#t={hit.t:.3f}" if hit.t else "")
        view = (
            f'<video id="player" controls preload="metadata" src="{src}" '
            f'data-t="{hit.t or 0:.3f}"></video>'
        )
        if hit.t_end is not None:  # the moment's span on the video's timeline
            view += (
                f'<div id="timeline" data-t="{hit.t or 0:.3f}" data-end="{hit.t_end:.3f}" '
                'title="the moment that matched"><span id="span"></span></div>'
            )
    elif has_picture(hit):
        view = f'<img id="picture-large" src="{_thumb(shown, "l")}" alt="{name}">'
    else:
        view = ""
    snippet = f'<blockquote id="snippet">{escape(hit.snippet)}</blockquote>' if hit.snippet else ""
    actions = [
        '<a id="prev" hidden title="previous result (←)">&lsaquo; previous</a>',
        '<a id="next" hidden title="next result (→)">next &rsaquo;</a>',
        '<button id="fullscreen" type="button">full screen</button>',
        f'<a href="{link("/")}" id="back">new search</a>',
    ]
    if hit.kind in (Kind.IMAGE, Kind.VIDEO):
        like = link("/", like=shown.id, at=hit.t)
        actions.append(f'<a class="similar" href="{like}">more like this</a>')
    open_url = link(f"/open/{shown.id}", t=hit.t, page=hit.page)
    actions.append(
        f'<form action="{open_url}" method="post"><button id="open">open</button></form>'
    )
    if opened:
        actions.append('<span class="message" role="status">opened</span>')
    where = escape(locator(hit))
    body = f"""<main class="item">
<h1>{name} <span class="where">{where}</span></h1>
<p class="path">{escape(hit.path)}</p>
{view}
{snippet}
<nav class="actions">{"".join(actions)}</nav>
</main>"""
    return _layout(os.path.basename(hit.path), search_form({}) + body)


def message_page(signed_in: bool, message: str) -> str:
    """A refusal or failure, said in one line: no form when the caller has no session."""
    if not signed_in:
        body = f'<main><p class="message" role="alert">{escape(message)}</p></main>'
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mmsearch</title>
<link rel="icon" href="data:,"></head><body>{body}</body></html>
"""
    return results_page({}, None, message)


def launch_page() -> str:
    """What the launch link answers, with the session cookie: a step to the search page,
    taken from this page (so the browser counts it as this site's own navigation and sends
    the SameSite=Strict cookie with it)."""
    return """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mmsearch</title>
<meta http-equiv="refresh" content="0; url=/">
<link rel="icon" href="data:,"></head>
<body><main><p class="hint"><a href="/">Open mmsearch</a></p></main></body></html>
"""


def launch_file(url: str) -> str:
    """The private file the browser is opened on: it goes on to the one-time launch `url`,
    which so never appears on a command line (`ps` shows every process's to everyone)."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mmsearch</title>
<meta http-equiv="refresh" content="0; url={escape(url)}">
</head><body><p><a href="{escape(url)}">Open mmsearch</a></p></body></html>
"""
