"""A request body of known length read straight from gunicorn's socket.

gunicorn's own body reader asks the socket for up to 1 MiB at once, keeps what the application
did not ask for in a buffer, and copies that whole buffer twice on every read: a body read 64 KiB
at a time (the upload path's pace) was copied some tens of times over. Here each read takes
from the socket what it needs, and nothing is copied beyond the receive itself.

The reads keep gunicorn's terms: a read waits for all it asked for (fewer bytes only at the
body's end or when the connection ends), and for at least a KiB (gunicorn's least read, which the
pace rule's "first KiB" relies on). gunicorn's reader is told how much of the body is left, so
that it would drain just the rest were the connection kept alive.
"""

from __future__ import annotations

import socket
from typing import Any

from gunicorn.http.body import Body, LengthReader  # type: ignore[import-untyped]

LEAST_WAIT = 1024


class SocketBody:
    def __init__(self, connection: socket.socket, reader: Any, held: bytes) -> None:
        self._connection = connection
        self._reader = reader
        self._held = held
        """Taken from the socket (by gunicorn, with the headers, or by a short read), not yet
        delivered."""

    def read(self, size: int | None = -1, /) -> bytes:
        """`size` bytes (the rest of the body when negative or None), fewer only at its end."""
        left: int = self._reader.length
        body_left = len(self._held) + left
        size = body_left if size is None or size < 0 else min(size, body_left)
        if size == 0:
            return b""
        wait_for = min(max(size, LEAST_WAIT), body_left)
        pieces = [self._held] if self._held else []
        have = len(self._held)
        while have < wait_for:
            piece = self._connection.recv(wait_for - have)
            if not piece:
                break
            left -= len(piece)
            self._reader.length = left
            pieces.append(piece)
            have += len(piece)
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self._held = data[size:]
        return data[:size]


def socket_body(environ: dict[str, Any]) -> SocketBody | None:
    """The body of this request as a SocketBody, or None when it is not gunicorn's body of a
    declared length, untouched so far (a chunked body, another server, a test's stream)."""
    body = environ.get("wsgi.input")
    connection = environ.get("gunicorn.socket")
    if not (
        isinstance(body, Body)
        and isinstance(body.reader, LengthReader)
        and isinstance(connection, socket.socket)
        and body.buf.tell() == 0
        and callable(getattr(body.reader.unreader, "take_buffered", None))
    ):
        return None
    reader = body.reader
    held = reader.unreader.take_buffered()
    if len(held) > reader.length:  # the next request's bytes: gunicorn's to read
        reader.unreader.unread(held)
        return None
    reader.length -= len(held)
    return SocketBody(connection, reader, held)
