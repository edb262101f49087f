"""Decoder libraries' own messages, kept off the user's terminal.

libtiff (inside Pillow) prints straight to file descriptor 2 ("tempfile.tif: WEBP compression
support is not configured."), which no Python-level redirect catches. Around a TIFF decode,
fd 2 points at a temporary file; afterwards the decoder's lines are handed to the caller (to
fold into a reason, or drop) and anything else written meanwhile (another thread's progress
line) is written through. One lock: the descriptor is process-wide.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_LOCK = threading.Lock()
_DECODER_LINE = re.compile(rb"^(?:[^:\n]*\.tiff?|_?TIFF\w*): ?(.*)$")


@contextmanager
def decoder_stderr() -> Iterator[list[str]]:
    """Capture fd 2 for the block; yields the list that receives the decoder's messages."""
    messages: list[str] = []
    with _LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            yield messages  # no fd 2 to guard
            return
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield messages
            finally:
                with suppress(OSError, ValueError):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                passed = []
                for line in capture.read().splitlines(keepends=True):
                    m = _DECODER_LINE.match(line.rstrip(b"\r\n"))
                    if m:
                        messages.append(m[1].decode("utf-8", "replace").strip().rstrip("."))
                    else:
                        passed.append(line)
                if passed:
                    os.write(2, b"".join(passed))
