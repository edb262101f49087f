"""`mmsearch ui`: the same search in a browser, served on 127.0.0.1 only.

Needs the `ui` extra (Starlette, uvicorn, python-multipart). The app lives in `app.py`, its
HTML in `page.py`, its script and style in `static/` (shipped in the package: nothing is
loaded from outside the machine)."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmsearch.core.errors import MmsearchError, NotPrivate, StoreBusy
from mmsearch.library import Library


def token_from_env() -> str:
    """$MMSEARCH_UI_TOKEN, or a fresh random one."""
    return os.environ.get("MMSEARCH_UI_TOKEN") or secrets.token_urlsafe(24)


def run(
    library: Library,
    port: int,
    token: str,
    on_ready: Callable[[str], None],
    on_notice: Callable[[str], None],
    open_browser: Callable[[str], object] | None = None,
) -> None:
    """Serve the UI until interrupted. Answers searches for the store meanwhile (the model is
    warm here anyway), or uses the `serve`/`watch` that already does. `on_ready` gets the
    address with the token (for stdout); `open_browser`, when given, gets the `file://`
    address of a private launch file (see `launch`), never the token."""
    try:
        import uvicorn

        from mmsearch.doors.ui.app import Sessions, make_app
    except ImportError as e:
        raise MmsearchError(
            f"the web UI needs its extra: pip install 'mmsearch[ui]' ({e.name} is missing)"
        ) from None
    from mmsearch.doors.serve import serving, warm_up

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        sock.close()
        raise MmsearchError(f"cannot listen on 127.0.0.1:{port}: {e.strerror or e}") from None
    port = sock.getsockname()[1]
    sock.listen(128)  # before the address is printed: a client may connect at once
    with contextlib.ExitStack() as stack:
        stack.callback(sock.close)
        local = Library(library.settings, ask_server=False)
        try:
            stack.enter_context(serving(library))
            searcher = local  # we are the server: answer here, with the model warm
            threading.Thread(target=_quietly, args=(warm_up, local), daemon=True).start()
        except StoreBusy as e:
            on_notice(f"using the running server: {e}")
            searcher = library
        except NotPrivate as e:  # the page still works; `query` answers alone
            on_notice(f"not answering the command line's queries: {e}")
            searcher = local
        sessions = Sessions(token, port, secrets.token_urlsafe(24) if open_browser else None)
        app = make_app(searcher, sessions, port)
        config = uvicorn.Config(
            app, log_level="critical", access_log=False, server_header=False, lifespan="off"
        )
        on_ready(f"http://127.0.0.1:{port}/?token={token}")
        if open_browser is not None and sessions.code is not None:
            try:
                opened = launch(port, sessions.code)
            except (OSError, MmsearchError) as e:
                on_notice(f"not opening a browser ({e}): open the address above")
            else:
                stack.callback(_remove, opened)
                sessions.on_launched = lambda: _remove(opened)
                # in a thread: a browser command may wait, and the server must answer it
                threading.Thread(
                    target=_quietly, args=(open_browser, opened.as_uri()), daemon=True
                ).start()
        uvicorn.Server(config).run(sockets=[sock])


def launch(port: int, code: str) -> Path:
    """Write the launch file for the browser: `ui-PORT.html` in this user's runtime folder
    (0700, checked to be this user's alone), mode 0600, going on to the one-time launch
    link. The browser's command line, which every user can read, so holds a file name; the
    file goes when the link is used, or when the UI stops."""
    from mmsearch.core.private import owned_folder, private_folder, write_private
    from mmsearch.doors.client import cache_folder, runtime_folder
    from mmsearch.doors.ui.page import launch_file

    folder = runtime_folder()
    if folder.parent == Path(cache_folder()):
        private_folder(folder.parent)
    owned_folder(folder)
    path = folder / f"ui-{port}.html"
    write_private(path, launch_file(f"http://127.0.0.1:{port}/launch/{code}"))
    return path


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _quietly(fn: Callable[[Any], object], arg: object) -> None:
    """Warm up (or open the browser), or fail silently: the first search then says what is
    wrong (or the printed address is there to open)."""
    with contextlib.suppress(Exception):
        fn(arg)
