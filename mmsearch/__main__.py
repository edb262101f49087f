"""`python -m mmsearch` and the `mmsearch` command. A shell completion request is answered
before the CLI (typer, click, rich) is even imported: one bare Python start per Tab; so are
`query` and `similar`: handed whole to a running server (mmsearch.doors.client), else read here
(mmsearch.doors.quick)."""

import os
import sys


def run() -> None:
    if os.environ.get("_MMSEARCH_COMPLETE"):
        from mmsearch.doors.completion import respond

        respond()
    if sys.argv[1:2] in (["query"], ["similar"]):
        from mmsearch.doors.client import hand_over

        status = hand_over(sys.argv[1:])
        if status is None:
            from mmsearch.doors.quick import answer

            status = answer(sys.argv[1:])
        if status is not None:
            sys.exit(status)
    from mmsearch.doors.cli import main

    main()


if __name__ == "__main__":
    run()
