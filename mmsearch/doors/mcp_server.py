"""`mmsearch mcp`: the library as Model Context Protocol tools for agents, over stdio.

Tools: `search` (the CLI's grammar, filters, mode, top), `similar` (a picture or a video's
moment), `status`. A search answers with structured JSON (path, kind, score, moment, page,
snippet per result) and a small thumbnail of each of the first results as image content, so
an agent can look as well as read. Needs the `mcp` extra (the official SDK)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ImageContent, TextContent

from mmsearch.core.bounds import MAX_PARTS, MAX_SECONDS, check_list, check_text
from mmsearch.core.errors import MmsearchError, UsageError, explain, one_line
from mmsearch.query.ranking import no_good_match

if TYPE_CHECKING:
    from mmsearch.library import Library
    from mmsearch.query.grammar import Part
    from mmsearch.query.ranking import Hit

THUMBNAILS = 6  # results that come with a picture: enough to look at, few enough to read
THUMB_SIDE = 160
MAX_TOP = 100


def hit_object(hit: Hit) -> dict[str, Any]:
    """One result as an agent reads it: `moment` is where a video's match starts (seconds)."""
    return {
        "path": hit.path,
        "kind": hit.kind,
        "score": round(hit.score, 4),
        "moment": hit.t,
        "moment_end": hit.t_end,
        "page": hit.page,
        "snippet": hit.snippet,
    }


def build(library: Library) -> MCPServer:
    """The MCP server object with its three tools."""
    from mmsearch.core.paths import normalize
    from mmsearch.query.filters import Filters
    from mmsearch.query.grammar import Part, parse, parse_date

    server = MCPServer(
        "mmsearch",
        instructions="Search the user's own photos, videos and documents by meaning or words. "
        "Results are files on this machine; a video result names its moment in seconds.",
    )

    def answered(find: Callable[[], list[Hit]]) -> CallToolResult:
        try:
            hits = find()
        except Exception as e:  # the user's error as its line; a bug as `explain` words it
            line = one_line(e) if isinstance(e, MmsearchError) else explain(e)[0]
            return CallToolResult(content=[TextContent(type="text", text=line)], is_error=True)
        found = [hit_object(h) for h in hits]
        content: list[Any] = [TextContent(type="text", text=json.dumps(found, ensure_ascii=False))]
        if not found:
            content.append(TextContent(type="text", text=no_good_match(None)))
        for hit in hits[:THUMBNAILS]:
            thumb = _thumbnail(library, hit)
            if thumb is not None:
                content.append(ImageContent(type="image", data=thumb, mime_type="image/jpeg"))
        return CallToolResult(content=content, structured_content={"results": found})

    def filters(
        kind: list[str] | None,
        folder: list[str] | None,
        ext: list[str] | None,
        after: str | None,
        before: str | None,
    ) -> Filters:
        """The filters, each argument bounded first, in this door's words."""
        check_list(kind or [], "kind", what="kinds")
        check_list(folder or [], "folder", what="folders")
        check_list(ext or [], "ext", what="extensions")
        for name, value in (("after", after), ("before", before)):
            check_text(value or "", name, 64)
        return Filters(
            within=folder or [],
            kinds=kind or [],
            exts=ext or [],
            after=parse_date(after, "after") if after else None,
            before=parse_date(before, "before") if before else None,
        )

    @server.tool()
    def search(
        query: str,
        top: int = 10,
        kind: list[str] | None = None,
        folder: list[str] | None = None,
        ext: list[str] | None = None,
        after: str | None = None,
        before: str | None = None,
        mode: str = "auto",
        moments: bool = False,
    ) -> CallToolResult:
        """Find the user's files matching a query in mmsearch's grammar: words ("red car at
        night"), a picture's absolute path (inside the indexed folders), parts joined by +
        and - ("/a/beach.jpg + sunset - people"), weights ("2:dog + 0.5:grass"). kind:
        image, video, document. folder: only under these paths. ext: e.g. jpg.
        after/before: YYYY, YYYY-MM or YYYY-MM-DD. mode: auto, vector, text (words only) or
        hybrid. moments: every matching moment of a video.
        """

        def find() -> list[Hit]:
            check_text(query, "query")
            check_text(mode, "mode", 64)
            return library.search(
                _confined(library, parse([query], allowed=library.holds)),
                top=max(1, min(int(top), MAX_TOP)),
                filters=filters(kind, folder, ext, after, before),
                moments=moments,
                mode=mode,
            )

        return answered(find)

    @server.tool()
    def similar(
        path: str,
        moment: float | None = None,
        plus: list[str] | None = None,
        minus: list[str] | None = None,
        top: int = 10,
        kind: list[str] | None = None,
        folder: list[str] | None = None,
    ) -> CallToolResult:
        """Find files that look like the picture at `path` (a file inside the indexed
        folders), or like the frame at `moment` seconds of a video; `plus`/`minus` texts
        move the search toward or away from words. The file itself is never among the
        results."""

        def find() -> list[Hit]:
            check_text(path, "path")
            check_list(plus or [], "plus", MAX_PARTS, "texts")
            check_list(minus or [], "minus", MAX_PARTS, "texts")
            if moment is not None and not 0 <= moment <= MAX_SECONDS:
                raise UsageError(f"moment must be 0 to {MAX_SECONDS:g} seconds, not {moment}")
            _confined(library, [Part("image", normalize(path), 1.0)])
            return library.similar(
                path,
                at=moment,
                plus=plus or [],
                minus=minus or [],
                top=max(1, min(int(top), MAX_TOP)),
                filters=filters(kind, folder, None, None, None),
            )

        return answered(find)

    @server.tool()
    def status() -> CallToolResult:
        """What is indexed: roots, files and items by kind, failures, the model, the store."""
        report = asdict(library.status())
        text = json.dumps(report, ensure_ascii=False)
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=report
        )

    return server


def _confined(library: Library, parts: list[Part]) -> list[Part]:
    """The parts, once every picture they name is one of the library's (confine.py)."""
    from mmsearch.doors.confine import query_picture

    for part in parts:
        if part.kind == "image":
            query_picture(library, part.value)
    return parts


def _thumbnail(library: Library, hit: Hit) -> str | None:
    from mmsearch.doors.confine import shown_file
    from mmsearch.doors.pictures import picture

    try:
        shown_file(library, hit.path)  # still the library's file, not a link swapped in
        return base64.b64encode(picture(hit.path, hit.kind, hit.t, hit.page, THUMB_SIDE)).decode()
    except Exception:  # a text document, or a file gone since: the result stands without one
        return None


def run(library: Library) -> None:
    """Serve on stdin/stdout until the client closes them."""
    build(library).run("stdio")
