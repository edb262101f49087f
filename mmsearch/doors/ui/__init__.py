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
) -> None:
    """Serve the UI until interrupted. Answers searches for the store meanwhile (the model is
    warm here anyway), or uses the `serve`/`watch` that already does."""
    try:
        import uvicorn

        from mmsearch.doors.ui.app import make_app
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
        app = make_app(searcher, token, port)
        config = uvicorn.Config(
            app, log_level="critical", access_log=False, server_header=False, lifespan="off"
        )
        on_ready(f"http://127.0.0.1:{port}/?token={token}")
        uvicorn.Server(config).run(sockets=[sock])


def _quietly(fn: Callable[[Library], None], library: Library) -> None:
    """Warm up, or fail silently: the first search then says what is wrong."""
    with contextlib.suppress(Exception):
        fn(library)
