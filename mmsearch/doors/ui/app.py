"""The web UI's routes: a Starlette app over one library object.

Safe by construction, on a machine other people's web pages can reach through the browser:
every request must carry a session cookie (HttpOnly, SameSite=Strict), got from the token
of the printed address or from the one-time launch code the browser is opened with, and
name this server in its Host header (DNS rebinding); files are reached only by the id of
a result the index gave, never by a path; every response forbids inline script and loading
anything from elsewhere."""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import secrets
import sys
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmsearch.core.bounds import check_list, check_text
from mmsearch.core.config import cache_root
from mmsearch.core.errors import ExtractError, MmsearchError, explain, one_line
from mmsearch.core.private import private_cache, write_private
from mmsearch.core.vocab import Kind, choose
from mmsearch.doors.confine import Refused, query_picture, served_file, shown_file, status_of
from mmsearch.doors.ui import page
from mmsearch.doors.ui.order import Order
from mmsearch.doors.ui.page import Shown
from mmsearch.library import Library
from mmsearch.query.filters import Filters
from mmsearch.query.grammar import Part, parse, parse_date, similar_parts
from mmsearch.query.ranking import Hit

MAX_UPLOAD = 20 << 20  # bytes: far above any photo worth searching by
TOP = 60  # results per page
MAX_PAGES = 20  # "more" pages of a search: 1,200 results at most
MAX_UPLOADS = 100  # uploaded pictures kept (the least recently used removed first)
MAX_IDS = 100_000  # ids remembered (oldest forgotten first)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
CSP_NAME = b"content-security-policy"  # always added: a response's own one only narrows it
SECURITY_HEADERS = [
    (CSP_NAME, CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # the printed address carries the token
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),  # unless the response says otherwise (pictures)
]
CACHEABLE = {"cache-control": "private, max-age=600"}
STATIC = {"ui.js": "text/javascript", "ui.css": "text/css"}


class Sessions:
    """Who may use the app: a browser holding a session cookie. A session comes from the
    token (the printed address, `?token=`, for as long as the server runs) or from the
    one-time launch code the browser is opened with, which dies at its first use. A second
    use of the launch code (someone raced the browser to it) closes the session the first
    use made, and is said on stderr. Cookies are HttpOnly and SameSite=Strict: no script
    reads them and no other site's page makes the browser send them."""

    MAX = 1000  # sessions kept (the oldest forgotten first)

    def __init__(self, token: str, port: int, launch_code: str | None = None):
        self.token = token.encode()
        self.cookie = f"mmsearch-ui-{port}"  # cookies are not kept apart by port: the name is
        self.code = launch_code
        self.code_used = False
        self.launched: str | None = None  # the session the launch code made
        self.on_launched: Callable[[], None] = lambda: None
        self.known: OrderedDict[str, None] = OrderedDict()  # digests of the session ids
        self.lock = threading.Lock()

    @staticmethod
    def _digest(session: str) -> str:
        return hashlib.sha256(session.encode("utf-8", "surrogateescape")).hexdigest()

    def new(self) -> str:
        session = secrets.token_urlsafe(32)
        with self.lock:
            self.known[self._digest(session)] = None
            while len(self.known) > self.MAX:
                self.known.popitem(last=False)
        return session

    def valid(self, session: str) -> bool:
        with self.lock:
            return bool(session) and self._digest(session) in self.known

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.token)

    def launch(self, code: str) -> str | None:
        """A new session for the launch code's first use; None otherwise (a second use
        closes the first one's session)."""
        with self.lock:
            right = self.code is not None and hmac.compare_digest(
                code.encode("utf-8", "surrogateescape"), self.code.encode()
            )
            if not right:
                return None
            if self.code_used:
                if self.launched is not None:
                    self.known.pop(self._digest(self.launched), None)
                    self.launched = None
                    print(
                        "mmsearch ui: the launch link was used twice (someone else may have "
                        "used it first): its session is closed; open the printed address",
                        file=sys.stderr,
                    )
                return None
            self.code_used = True
        session = self.new()
        self.launched = session
        self.on_launched()
        return session

    def set_cookie(self, session: str) -> tuple[bytes, bytes]:
        value = f"{self.cookie}={session}; Path=/; HttpOnly; SameSite=Strict"
        return b"set-cookie", value.encode()


def _cookie(scope: Scope, name: str) -> str:
    for key, value in scope["headers"]:
        if key == b"cookie":
            for pair in value.decode("latin-1").split(";"):
                k, _, v = pair.strip().partition("=")
                if k == name:
                    return v
    return ""


class Guard:
    """ASGI middleware: the Host header and the session, before anything else runs, and
    the security headers on every response (refusals included). `/launch/CODE` trades the
    one-time launch code for a session; `?token=` (the printed address) starts one too."""

    def __init__(self, app: ASGIApp, sessions: Sessions, port: int):
        self.app = app
        self.sessions = sessions
        self.hosts = {f"127.0.0.1:{port}".encode(), f"localhost:{port}".encode()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie: list[tuple[bytes, bytes]] = []

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                named = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in named or k == CSP_NAME]
                message["headers"] = headers + cookie
            await send(message)

        host = dict(scope["headers"]).get(b"host", b"")
        given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        if host not in self.hosts:
            refusal = "this server answers only to 127.0.0.1 and localhost (Host header refused)"
            await _refuse(scope, receive, secured, 403, refusal)
        elif scope["path"].startswith("/launch/"):
            session = self.sessions.launch(scope["path"].removeprefix("/launch/"))
            if session is None:
                refusal = (
                    "this launch link is used up or wrong (it works once): "
                    "use the address `mmsearch ui` printed"
                )
                await _refuse(scope, receive, secured, 403, refusal)
                return
            cookie.append(self.sessions.set_cookie(session))
            await HTMLResponse(page.launch_page())(scope, receive, secured)
        elif self.sessions.valid(_cookie(scope, self.sessions.cookie)):
            await self.app(scope, receive, secured)
        elif given and self.sessions.token_ok(given):
            cookie.append(self.sessions.set_cookie(self.sessions.new()))
            await self.app(scope, receive, secured)
        else:
            refusal = (
                "this page has no valid session or token (stale, or typed by hand): "
                "use the address `mmsearch ui` printed"
            )
            await _refuse(scope, receive, secured, 403, refusal)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    response = HTMLResponse(page.message_page(False, message), status_code=status)
    await response(scope, receive, send)


class _OpenFile(FileResponse):
    """A file served from a descriptor opened and checked beforehand (reopened through
    /proc/self/fd, or /dev/fd elsewhere: the same file, whatever its path names now),
    closed when the response is done, however it ends."""

    def __init__(self, fd: int, st: os.stat_result, media: str):
        self.fd = fd
        folder = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
        path = f"{folder}/{fd}"
        super().__init__(
            path,
            media_type=media,
            stat_result=st,
            headers={"content-security-policy": "sandbox"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            os.close(self.fd)


class Ids:
    """The files results have shown, by id: the only files the app ever reads. An id is a
    hash of the path, so the same result keeps its id across searches and restarts."""

    def __init__(self) -> None:
        self.known: OrderedDict[str, Hit] = OrderedDict()
        self.lock = threading.Lock()  # requests run on a thread pool

    def add(self, hit: Hit) -> Shown:
        key = hashlib.blake2b(hit.path.encode("utf-8", "surrogateescape"), digest_size=8)
        shown = Shown(key.hexdigest(), hit)
        with self.lock:
            self.known[shown.id] = hit
            self.known.move_to_end(shown.id)
            while len(self.known) > MAX_IDS:
                self.known.popitem(last=False)
        return shown

    def get(self, item: str) -> Hit:
        with self.lock:
            hit = self.known.get(item)
        if hit is None:
            raise Refused(404, "unknown item (search again: the server forgets after a restart)")
        return hit


def _prune(folder: Path, keep: int) -> None:
    """Only the `keep` most recently used uploads stay: an upload is referenced only by the
    URLs of its searches, which nothing can count, so the cache is bounded instead."""
    used: list[tuple[int, Path]] = []
    for path in folder.glob("*.png"):
        try:
            used.append((path.stat().st_mtime_ns, path))
        except OSError:  # removed by a request beside this one
            continue
    for _, old in sorted(used, reverse=True)[keep:]:
        old.unlink(missing_ok=True)


def make_app(library: Library, sessions: Sessions, port: int) -> ASGIApp:
    """The whole web UI, guarded; `port` is the one the server listens on (Host check)."""
    ids = Ids()
    uploads = cache_root() / "uploads"

    def handled(
        endpoint: Callable[[Request], Response],
    ) -> Callable[[Request], Awaitable[Response]]:
        """Every refusal and failure as a page that says it in one line (JSON for the
        page's own script), with its status; never a traceback in the page, and in the log
        only when MMSEARCH_TRACEBACK asks (`explain`)."""
        from starlette.concurrency import run_in_threadpool

        async def run(request: Request) -> Response:
            try:
                return await run_in_threadpool(endpoint, request)
            except Refused as e:
                return _error(request, e.status, str(e))
            except MmsearchError as e:
                return _error(request, status_of(e), one_line(e))
            except ExtractError as e:
                return _error(request, 404, one_line(e))
            except Exception as e:
                print(f"mmsearch ui: {explain(e)[0]}", file=sys.stderr)
                return _error(request, 500, f"internal error: {type(e).__name__}")

        return run

    def _error(request: Request, status: int, message: str) -> Response:
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"error": message}, status_code=status)
        return HTMLResponse(page.message_page(True, message), status_code=status)

    def home(request: Request) -> Response:
        params = request.query_params
        form: dict[str, Any] = {
            k: params.get(k, "")
            for k in ("q", "in", "ext", "after", "before", "like", "at", "img", "n", "moments")
        }
        form["kind"] = params.getlist("kind")
        form["mode"] = params.get("mode", "auto")
        form["sort"] = params.get("sort", "relevance")
        start: Shown | str | None = None
        parts: list[Part] = []
        pictures: list[str] = []  # what the query reads of the library
        try:
            for name, value in form.items():  # each field bounded, named as in the URL
                if isinstance(value, str):
                    check_text(value, name)
            check_list(form["kind"], "kind", what="kinds")
            if form["like"]:
                hit = ids.get(form["like"])
                at = _number(form["at"], "at") if hit.kind == Kind.VIDEO else None
                query_picture(library, hit.path)  # still the library's: not swapped for a link
                parts += similar_parts(hit.path, at)
                pictures.append(hit.path)
                start = Shown(form["like"], Hit(hit.path, hit.kind, hit.score, t=at))
            if form["img"]:
                picture = _upload_path(form["img"])
                parts.append(Part("image", str(picture), 1.0))
                start = page.link(f"/upload/{form['img']}")  # escaped: goes in src=""
            words = str(form["q"]).strip()
            if parts and words.startswith("+"):
                words = words[1:].strip()
            if words:
                typed = parse([words], allowed=library.holds)
                for part in typed:
                    if part.kind == "image":
                        query_picture(library, part.value)
                        pictures.append(part.value)
                parts += typed
            if not parts:
                return HTMLResponse(page.results_page(form, None, start=start))
            order = choose(Order, form["sort"] or "relevance", "sort")
            top = TOP * _pages(form["n"])
            hits = library.search(
                parts,
                top=top,
                filters=_filters(form),
                mode=form["mode"] or "auto",
                sort=order.sort,
                moments=form["moments"] == "1",
            )
        except Refused as e:
            html = page.results_page(form, None, str(e), start)
            return HTMLResponse(html, status_code=e.status)
        except MmsearchError as e:
            html = page.results_page(form, None, one_line(e), start)
            return HTMLResponse(html, status_code=status_of(e, pictures))
        shown = [ids.add(h) for h in hits]
        more = len(hits) == top and _pages(form["n"]) < MAX_PAGES
        return HTMLResponse(page.results_page(form, shown, start=start, more=more))

    def _filters(form: dict[str, Any]) -> Filters:
        return Filters(
            within=[form["in"]] if form["in"] else [],
            kinds=form["kind"],
            exts=[form["ext"]] if form["ext"] else [],
            after=parse_date(form["after"], "after") if form["after"] else None,
            before=parse_date(form["before"], "before") if form["before"] else None,
        )

    def _pages(text: str) -> int:
        if not text:
            return 1
        if not text.isdigit() or not 1 <= int(text) <= MAX_PAGES:
            raise Refused(400, f"n must be a whole number from 1 to {MAX_PAGES}, not {text!r}")
        return int(text)

    def _upload_path(name: str) -> Path:
        if len(name) != 32 or any(c not in "0123456789abcdef" for c in name):
            raise Refused(404, "unknown picture: upload it again")
        path = uploads / f"{name}.png"
        if not path.is_file():
            raise Refused(404, "unknown picture: upload it again")
        return path

    def _number(text: str, name: str) -> float | None:
        if text in ("", None):
            return None
        try:
            value = float(text)
        except ValueError:
            raise Refused(400, f"{name} must be a number, not {text!r}") from None
        if not 0 <= value < 1e9:
            raise Refused(400, f"{name} must be a number of seconds")
        return value

    def _locator(request: Request, hit: Hit) -> Hit:
        """The hit at the moment or page the URL names (a video's frame, a PDF's page)."""
        t = _number(request.query_params.get("t", ""), "t")
        page_text = request.query_params.get("page", "")
        if page_text and (not page_text.isdigit() or int(page_text) < 1):
            raise Refused(400, f"page must be a whole number from 1, not {page_text!r}")
        number = int(page_text) if page_text else None
        end = _number(request.query_params.get("end", ""), "end")
        return Hit(hit.path, hit.kind, hit.score, t=t, t_end=end, page=number, snippet=hit.snippet)

    def item(request: Request) -> Response:
        key = request.path_params["id"]
        hit = _locator(request, ids.get(key))
        opened = request.query_params.get("opened") == "1"
        return HTMLResponse(page.item_page(Shown(key, hit), opened))

    def thumb(request: Request) -> Response:
        from mmsearch.doors.pictures import LARGE, THUMB, picture

        hit = _locator(request, ids.get(request.path_params["id"]))
        shown_file(library, hit.path)
        side = LARGE if request.query_params.get("size") == "l" else THUMB
        data = picture(hit.path, hit.kind, hit.t, hit.page, side)
        return Response(data, media_type="image/jpeg", headers=CACHEABLE)

    def file(request: Request) -> Response:
        """A video or photo itself, with Range requests (a player seeks by them); other kinds
        are shown as pictures or opened in the desktop's viewer, never served. Only the very
        file the index holds, from inside the library, of the type its bytes say
        (confine.served_file), served from the descriptor that was checked."""
        hit = ids.get(request.path_params["id"])
        if hit.kind not in (Kind.VIDEO, Kind.IMAGE):
            raise Refused(404, "only videos and photos are served; open the file instead")
        fd, st, media = served_file(library, hit.path, hit.kind)
        return _OpenFile(fd, st, media)

    def open_(request: Request) -> Response:
        import subprocess

        from mmsearch.doors.opener import opener_command

        key = request.path_params["id"]
        hit = _locator(request, ids.get(key))
        if not Path(hit.path).exists():
            raise Refused(404, f"{hit.path} no longer exists")
        shown_file(library, hit.path)
        command = opener_command({"path": hit.path, "t": hit.t})
        try:
            subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as e:
            raise Refused(500, f"cannot run {command[0]}: {e.strerror or e}") from None
        back = page.url(f"/item/{key}", t=hit.t, page=hit.page, opened=1)
        return RedirectResponse(back, status_code=303)

    async def upload(request: Request) -> Response:
        """A picture to search by: checked, re-encoded and kept under the cache by the hash
        of its pixels; answered with a redirect to its results."""
        if int(request.headers.get("content-length") or 0) > MAX_UPLOAD:
            return _error(request, 413, f"the picture is over {MAX_UPLOAD >> 20} MB")
        total = 0

        async def capped() -> Message:
            nonlocal total
            message = await request.receive()
            total += len(message.get("body", b""))
            if total > MAX_UPLOAD:
                raise Refused(413, f"the picture is over {MAX_UPLOAD >> 20} MB")
            return message

        try:
            async with Request(request.scope, capped).form(
                max_files=1, max_fields=8, max_part_size=MAX_UPLOAD
            ) as fields:
                image = fields.get("image")
                words = str(fields.get("q") or "")
                if image is None or isinstance(image, str):
                    raise Refused(400, "choose a picture to search by")
                data = await image.read()
            from starlette.concurrency import run_in_threadpool

            name = await run_in_threadpool(_keep_upload, data)
        except Refused as e:
            return _error(request, e.status, str(e))
        except Exception as e:  # a malformed multipart body
            return _error(request, 400, f"cannot read the upload: {one_line(e)}")
        target = page.url("/", img=name, q=words)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"location": target})  # the page's script goes there itself
        return RedirectResponse(target, status_code=303)

    def _keep_upload(data: bytes) -> str:
        from PIL import Image

        from mmsearch.indexing.extract.image import load_image

        try:
            picture = load_image(data, 512)
        except ExtractError as e:
            raise Refused(415, f"not a picture: {e}") from None
        picture.thumbnail((1024, 1024), Image.BILINEAR)
        buf = io.BytesIO()
        picture.save(buf, "PNG")
        name = hashlib.sha256(buf.getvalue()).hexdigest()[:32]
        target = private_cache("uploads") / f"{name}.png"  # 0700 folder
        if target.exists():
            os.utime(target)  # used again: the newest
        else:
            write_private(target, buf.getvalue())  # 0600, whole or absent
        _prune(target.parent, MAX_UPLOADS)
        return name

    def roots(request: Request) -> Response:
        """The indexed folders, for the folder picker (asked for when it is first used, so
        no search waits for the store's status)."""
        return JSONResponse({"roots": sorted(library.status().roots)})

    def uploaded(request: Request) -> Response:
        return FileResponse(_upload_path(request.path_params["name"]), media_type="image/png")

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            raise Refused(404, "no such asset")
        data = files("mmsearch.doors.ui").joinpath("static", name).read_bytes()
        return Response(data, media_type=STATIC[name], headers=CACHEABLE)

    async def upload_route(request: Request) -> Response:
        try:
            return await upload(request)
        except Exception as e:
            print(f"mmsearch ui: {explain(e)[0]}", file=sys.stderr)
            return _error(request, 500, f"internal error: {type(e).__name__}")

    routes = [
        Route("/", handled(home)),
        Route("/item/{id:str}", handled(item)),
        Route("/thumb/{id:str}", handled(thumb)),
        Route("/file/{id:str}", handled(file)),
        Route("/open/{id:str}", handled(open_), methods=["POST"]),
        Route("/roots", handled(roots)),
        Route("/upload", upload_route, methods=["POST"]),
        Route("/upload/{name:str}", handled(uploaded)),
        Route("/static/{name:str}", handled(static)),
    ]
    app = Starlette(routes=routes)

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(request, getattr(exc, "status_code", 404), "no such page")

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_found)
    return Guard(app, sessions, port)
