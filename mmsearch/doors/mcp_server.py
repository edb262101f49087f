"""`mmsearch mcp`: the library as Model Context Protocol tools for agents, over stdio.

Tools (all read-only): `search` (the CLI's grammar, filters, mode, sort, min_score), `similar`
(a picture or a video's moment), `picture` (a result's file at a chosen size, a PDF's page, a
video's frame) and `status`; the status is also the resource `mmsearch://status`. Results come
as structured JSON under an output schema, and the first ones each as a labelled thumbnail, so
an agent can look as well as read. Arguments are checked against the schema they publish
(mcp_args.py). The model warms up as the server starts. Needs the `mcp` extra."""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import threading
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, ValidationError

from mmsearch.core.bounds import MAX_PARTS, check_list, check_text
from mmsearch.core.errors import ExtractError, MmsearchError, UsageError, explain, one_line
from mmsearch.core.vocab import Kind
from mmsearch.doors.mcp_args import (
    PictureArguments,
    Result,
    Results,
    SearchArguments,
    SimilarArguments,
    refusal,
)
from mmsearch.query.ranking import no_good_match

if TYPE_CHECKING:
    from mmsearch.library import Library
    from mmsearch.query.filters import Filters
    from mmsearch.query.grammar import Part
    from mmsearch.query.ranking import Hit

THUMBNAILS = 6  # results that come with a picture: enough to look at, few enough to read
THUMB_SIDE = 160
READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
A = TypeVar("A", bound=BaseModel)
SEE_ALL = "min_score 0 shows the closest results whatever they score"


class _Raw(ArgModelBase):
    model_config = ConfigDict(extra="allow")


class _Checked(FuncMetadata):
    """Hands the call's arguments to the tool as they came: the tool checks them against
    its own schema, so a mistake is refused in its words, not the SDK's pydantic dump."""

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        return {"arguments": dict(arguments_to_validate)}


def _tool(
    fn: Callable[[dict[str, Any]], CallToolResult],
    arguments: type[BaseModel] | None,
    title: str,
    output: Any,
) -> Tool:
    parameters = (arguments or _NoArguments).model_json_schema()
    return Tool(
        fn=fn,
        name=fn.__name__,
        title=title,
        description=inspect.cleandoc(fn.__doc__ or ""),
        parameters=parameters,
        fn_metadata=_Checked(arg_model=_Raw, output_model=output),
        is_async=False,
        annotations=READ_ONLY,
    )


class _NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


def hit_object(n: int, hit: Hit) -> dict[str, Any]:
    """One result as an agent reads it: `moment` is where a video's match starts (seconds)."""
    taken = datetime.fromtimestamp(hit.taken).isoformat(timespec="seconds") if hit.taken else None
    return Result(
        n=n,
        path=hit.path,
        kind=Kind(hit.kind),
        score=round(hit.score, 4),
        moment=hit.t,
        moment_end=hit.t_end,
        page=hit.page,
        snippet=hit.snippet,
        taken=taken,
    ).model_dump(mode="json")


class _Tools:
    """The tools over one library. Each call waits for `warmed` (the model loading as the
    server starts) rather than load it a second time."""

    def __init__(self, library: Library, warmed: threading.Event | None) -> None:
        self.library = library
        self.warmed = warmed

    def search(self, arguments: dict[str, Any]) -> CallToolResult:
        """Find the user's photos, videos and documents matching a query in mmsearch's
        grammar, best first. An empty result comes with a sentence saying why (no good
        match); min_score 0 shows the closest results anyway. A video result names its
        moment in seconds, a document its page."""
        return self._checked(SearchArguments, arguments, self._search)

    def similar(self, arguments: dict[str, Any]) -> CallToolResult:
        """Find files that look like the picture at `path` (a file inside the indexed
        folders), or like the frame at `moment` seconds of a video; `plus`/`minus` words
        move the search toward or away from them. The file itself is never among the
        results."""
        return self._checked(SimilarArguments, arguments, self._similar)

    def picture(self, arguments: dict[str, Any]) -> CallToolResult:
        """A result's picture as JPEG at `size` pixels on its long side: a photo, a PDF's
        `page`, or a video's frame at `moment` seconds. Text documents have none."""
        return self._checked(PictureArguments, arguments, self._picture)

    def status(self, arguments: dict[str, Any]) -> CallToolResult:
        """What is indexed: roots, files and items by kind, failures, the model, the store.
        Also readable as the resource mmsearch://status."""
        return self._checked(_NoArguments, arguments, self._status)

    def _checked(
        self, model: type[A], arguments: dict[str, Any], answer: Callable[[A], CallToolResult]
    ) -> CallToolResult:
        try:
            given = model.model_validate(arguments)
        except ValidationError as e:
            return _error(refusal(e, tuple(model.model_fields)))
        if self.warmed is not None:
            self.warmed.wait()
        try:
            return answer(given)
        except MmsearchError as e:
            return _error(one_line(e))
        except Exception as e:  # a bug, as `explain` words it (MMSEARCH_TRACEBACK: its trace)
            return _error(explain(e)[0])

    def _search(self, a: SearchArguments) -> CallToolResult:
        from mmsearch.query.grammar import parse

        if not a.query.strip():
            raise UsageError("query is empty: give words, or a picture's absolute path")
        check_text(a.query, "query")
        parts = _confined(self.library, parse([a.query], allowed=self.library.holds))
        hits = self.library.search(
            parts,
            top=a.top,
            filters=_filters(a.kind, a.folder, a.ext, a.after, a.before, a.min_score),
            moments=a.moments,
            mode=a.mode,
            sort=a.sort,
        )
        return self._hits(hits, a.min_score)

    def _similar(self, a: SimilarArguments) -> CallToolResult:
        from mmsearch.core.formats import kind_of
        from mmsearch.core.paths import normalize
        from mmsearch.query.grammar import Part

        check_text(a.path, "path")
        for name, texts in (("plus", a.plus or []), ("minus", a.minus or [])):
            check_list(texts, name, MAX_PARTS, "texts")
            for text in texts:
                check_text(text, name)
        _confined(self.library, [Part("image", normalize(a.path), 1.0)])
        is_video = kind_of(a.path) == Kind.VIDEO
        if is_video and a.moment is None:
            raise UsageError(f"{a.path} is a video: give moment (seconds) to pick its frame")
        if a.moment is not None and not is_video:
            raise UsageError(f"moment picks a video's frame; {a.path} is not a video")
        hits = self.library.similar(
            a.path,
            at=a.moment,
            plus=a.plus or [],
            minus=a.minus or [],
            top=a.top,
            filters=_filters(a.kind, a.folder, None, a.after, a.before, a.min_score),
            sort=a.sort,
        )
        return self._hits(hits, a.min_score)

    def _picture(self, a: PictureArguments) -> CallToolResult:
        try:
            return _picture(self.library, a)
        except ExtractError as e:  # a text document, a page past the end: no picture
            return _error(one_line(e))

    def _status(self, _: _NoArguments) -> CallToolResult:
        report = asdict(self.library.status())
        text = json.dumps(report, ensure_ascii=False)
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=report
        )

    def _hits(self, hits: list[Hit], min_score: float | None) -> CallToolResult:
        found = [hit_object(n, h) for n, h in enumerate(hits, 1)]
        message = None if found else no_good_match(min_score, SEE_ALL)
        content: list[Any] = [TextContent(type="text", text=json.dumps(found, ensure_ascii=False))]
        if message:
            content.append(TextContent(type="text", text=message))
        for n, hit in enumerate(hits[:THUMBNAILS], 1):
            thumb = _thumbnail(self.library, hit)
            if thumb is not None:  # labelled: a text document has none, and must not shift them
                content.append(TextContent(type="text", text=f"result {n}: {hit.path}"))
                content.append(ImageContent(type="image", data=thumb, mime_type="image/jpeg"))
        structured = Results(results=found, message=message).model_dump(mode="json")
        return CallToolResult(content=content, structured_content=structured)


def build(library: Library, warmed: threading.Event | None = None) -> MCPServer:
    """The MCP server object with its tools and the status resource."""
    from mmsearch.query.status import StatusReport

    tools = _Tools(library, warmed)
    server = MCPServer(
        "mmsearch",
        instructions="Search the user's own photos, videos and documents by meaning or words. "
        "Results are files on this machine; a video result names its moment in seconds, a "
        "document its page. Use `picture` to look closer at a result.",
        tools=[
            _tool(tools.search, SearchArguments, "Search the media library", Results),
            _tool(tools.similar, SimilarArguments, "Find similar pictures", Results),
            _tool(tools.picture, PictureArguments, "Look at a result", None),
            _tool(tools.status, None, "Library status", StatusReport),
        ],
    )

    @server.resource(
        "mmsearch://status",
        name="status",
        title="Library status",
        description="What is indexed: roots, counts by kind, failures, the model, the store.",
        mime_type="application/json",
    )
    def status_resource() -> str:
        return json.dumps(asdict(library.status()), ensure_ascii=False)

    return server


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def _filters(
    kind: list[str] | None,
    folder: list[str] | None,
    ext: list[str] | None,
    after: str | None,
    before: str | None,
    min_score: float | None,
) -> Filters:
    """The filters, dates read as the CLI reads them, errors named as this door names them."""
    from mmsearch.query.filters import Filters
    from mmsearch.query.grammar import parse_date

    return Filters(
        within=folder or [],
        kinds=kind or [],
        exts=ext or [],
        after=parse_date(after, "after") if after else None,
        before=parse_date(before, "before") if before else None,
        min_score=min_score,
    )


def _confined(library: Library, parts: list[Part]) -> list[Part]:
    """The parts, once every picture they name is one of the library's (confine.py)."""
    from mmsearch.doors.confine import query_picture

    for part in parts:
        if part.kind == "image":
            query_picture(library, part.value)
    return parts


def _picture(library: Library, a: PictureArguments) -> CallToolResult:
    """The picture tool's answer: the file must still be the library's (confine.py)."""
    from mmsearch.core.formats import kind_of
    from mmsearch.doors.confine import shown_file
    from mmsearch.doors.pictures import picture

    check_text(a.path, "path")
    shown_file(library, a.path)
    kind = kind_of(a.path)
    if kind is None:
        raise UsageError(f"{a.path} is not a photo, video or document")
    if a.page is not None and kind != Kind.DOCUMENT:
        raise UsageError(f"page picks a document's page; {a.path} is a {kind}")
    if a.moment is not None and kind != Kind.VIDEO:
        raise UsageError(f"moment picks a video's frame; {a.path} is a {kind}")
    data = picture(a.path, kind, a.moment, a.page, a.size)
    where = f" page {a.page or 1}" if kind == Kind.DOCUMENT else ""
    where += f" at {a.moment or 0:g} s" if kind == Kind.VIDEO else ""
    image = ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type="image/jpeg")
    return CallToolResult(content=[TextContent(type="text", text=f"{a.path}{where}"), image])


def _thumbnail(library: Library, hit: Hit) -> str | None:
    from mmsearch.doors.confine import shown_file
    from mmsearch.doors.pictures import picture

    try:
        shown_file(library, hit.path)  # still the library's file, not a link swapped in
        return base64.b64encode(picture(hit.path, hit.kind, hit.t, hit.page, THUMB_SIDE)).decode()
    except Exception:  # a text document, or a file gone since: the result stands without one
        return None


def run(library: Library) -> None:
    """Serve on stdin/stdout until the client closes them, warming the model meanwhile so
    the first search does not pay for loading it."""
    from mmsearch.doors.serve import warm_up

    warmed = threading.Event()

    def warm() -> None:
        try:
            with contextlib.suppress(MmsearchError):  # the first call says it, in its words
                warm_up(library)
        finally:
            warmed.set()

    threading.Thread(target=warm, name="mcp-warm-up", daemon=True).start()
    build(library, warmed).run("stdio")
