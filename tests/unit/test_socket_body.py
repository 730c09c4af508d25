"""common/http/socket_body.py: a gunicorn body of known length read from its socket, on gunicorn's
terms (all that was asked, a KiB at least, the rest left on the socket for the next request)."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from gunicorn.http.body import Body, ChunkedReader, LengthReader  # type: ignore[import-untyped]
from gunicorn.http.unreader import SocketUnreader  # type: ignore[import-untyped]

from common.http.socket_body import LEAST_WAIT, socket_body


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    server.settimeout(5)
    yield server, client
    server.close()
    client.close()


def environ(server: socket.socket, length: int, buffered: bytes = b"") -> dict[str, Any]:
    unreader = SocketUnreader(server)
    unreader.unread(buffered)  # what gunicorn read past the headers
    return {"wsgi.input": Body(LengthReader(unreader, length)), "gunicorn.socket": server}


def test_reads_all_asked_then_stops_at_the_length(pair: tuple[socket.socket, ...]) -> None:
    server, client = pair
    body = bytes(range(256)) * 1024
    env = environ(server, len(body), body[:100])
    sender = threading.Thread(target=client.sendall, args=[body[100:] + b"GET /next"])
    sender.start()
    reader = socket_body(env)
    assert reader is not None
    pieces = [reader.read(1), reader.read(70_000), reader.read(-1), reader.read(10)]
    assert b"".join(pieces) == body
    assert [len(piece) for piece in pieces] == [1, 70_000, len(body) - 70_001, 0]
    assert env["wsgi.input"].reader.length == 0
    sender.join()
    assert server.recv(100) == b"GET /next"  # the next request's bytes stay on the socket


def test_a_read_waits_for_a_kib_at_least(pair: tuple[socket.socket, ...]) -> None:
    server, client = pair
    reader = socket_body(environ(server, 10 * LEAST_WAIT))
    assert reader is not None
    client.sendall(b"x" * (LEAST_WAIT - 1))
    server.settimeout(0.3)
    with pytest.raises(TimeoutError):
        reader.read(1)
    server.settimeout(5)
    reader = socket_body(environ(server, 10 * LEAST_WAIT))
    assert reader is not None
    threading.Timer(0.1, client.sendall, [b"x" * LEAST_WAIT]).start()
    assert reader.read(1) == b"x"


def test_a_body_cut_short_gives_what_came_then_nothing(pair: tuple[socket.socket, ...]) -> None:
    server, client = pair
    reader = socket_body(environ(server, 5000))
    assert reader is not None
    client.sendall(b"y" * 3000)
    client.shutdown(socket.SHUT_WR)
    assert reader.read(4000) == b"y" * 3000
    assert reader.read(4000) == b""


def test_other_bodies_are_left_to_gunicorn(pair: tuple[socket.socket, ...]) -> None:
    server, _ = pair
    assert socket_body({"wsgi.input": io.BytesIO(b"abc")}) is None
    chunked = {
        "wsgi.input": Body(ChunkedReader(None, SocketUnreader(server))),
        "gunicorn.socket": server,
    }
    assert socket_body(chunked) is None
    pipelined = environ(server, 3, b"abcGET /next")
    assert socket_body(pipelined) is None
    assert pipelined["wsgi.input"].read(3) == b"abc"
