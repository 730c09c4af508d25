"""After add_record answers, what is left of the upload's body is read and dropped, for a while,
before the connection closes.

The gateway streams an upload's body through as it arrives, so add_record may answer (401, 413,
415, 503, ...) while the gateway is still sending the body. Closing the connection then, with
body bytes unread, makes the kernel reset it, and the gateway, still writing, may lose the
answer and report a 502 instead. Reading on after the answer (a lingering close, done here
because gunicorn's lingers for 64 KiB only) lets the gateway take the answer and hang up first;
a client that keeps sending is cut off after LINGER_S.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from common.http.app import WSGIApp
from functions.add_record.pace import STEP

LINGER_S = 10.0


def linger_after_answer(app: WSGIApp) -> WSGIApp:
    def lingering(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return _Lingering(app(environ, start_response), environ)

    return lingering


class _Lingering:
    """The app's answer; once the server has sent it (and calls close), the body is drained."""

    def __init__(self, answer: Iterable[bytes], environ: dict[str, Any]) -> None:
        self._answer = answer
        self._environ = environ

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._answer)

    def close(self) -> None:
        try:
            close = getattr(self._answer, "close", None)
            if close is not None:
                close()
        finally:
            self._drain()

    def _drain(self) -> None:
        body = self._environ["wsgi.input"]
        connection = self._environ.get("gunicorn.socket")
        deadline = time.monotonic() + LINGER_S
        # Whatever stops the reading (the body's end, a timeout, a reset, a cut-off slow sender)
        # ends the lingering: the answer is already sent.
        with contextlib.suppress(Exception):
            while (left := deadline - time.monotonic()) > 0:
                if connection is not None:
                    connection.settimeout(left)
                if not body.read(STEP):
                    return
