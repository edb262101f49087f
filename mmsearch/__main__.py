"""`python -m mmsearch` and the `mmsearch` command. A shell completion request is answered
before the CLI (typer, click, rich) is even imported: one bare Python start per Tab."""

import os


def run() -> None:
    if os.environ.get("_MMSEARCH_COMPLETE"):
        from mmsearch.completion import respond

        respond()
    from mmsearch.cli import main

    main()


if __name__ == "__main__":
    run()
