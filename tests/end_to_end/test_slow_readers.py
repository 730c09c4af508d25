"""Slow readers starve no one: a download that is not read holds no function thread.

nginx takes the whole MP3 from get_record at once into a bounded temp file and feeds the client at
its own pace, so get_record's threads and database connections are free again in milliseconds; and
one address may hold only READ_CONN_LIMIT reads open at a time (429 past it).
"""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from devstack.stack import Stack
from devstack.wavgen import RATE, write_wav
from tests.stacks import module_gateway, needs_nginx, new_user, upload

pytestmark = needs_nginx

STALLED = 30
STARVED_S = 60.0
"""What a request starved by the stalled downloads would wait: until nginx gives up on them
(send_timeout, CLIENT_TIMEOUT_S). A request served in less than half of that was not starved,
however busy the machine running the suite."""


stack = module_gateway("readers", MP3_BITRATE="320k", READ_CONN_LIMIT=str(STALLED + 5))


@pytest.fixture(scope="module")
def big_record(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, str], str]:
    """A user and the URL of an MP3 far larger than every buffer between nginx and a client."""
    user = new_user(stack)
    wav = write_wav(tmp_path_factory.mktemp("wav") / "long.wav", 600 * RATE)
    with wav.open("rb") as body:
        created = upload(stack, user, body)
    assert created.status_code == 201, created.text
    return user, created.json()["url"]


def stalled_download(stack: Stack, url: str, source: str = "127.0.0.1") -> socket.socket:
    """Ask for the MP3 from `source` and never read the answer."""
    conn = socket.create_connection(
        ("127.0.0.1", stack.port), timeout=10, source_address=(source, 0)
    )
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    path = url.split(f":{stack.port}", 1)[1]
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return conn


def get_from(stack: Stack, source: str, path: str, **headers: str) -> tuple[int, float, bytes]:
    """GET through a connection from `source`; status, seconds to the whole answer, body."""
    started = time.monotonic()
    address = ("127.0.0.1", stack.port)
    with socket.create_connection(address, timeout=10, source_address=(source, 0)) as conn:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{head}\r\n".encode()
        )
        answer = b""
        while piece := conn.recv(1 << 20):
            answer += piece
    return int(answer.split(b" ", 2)[1]), time.monotonic() - started, answer.split(b"\r\n\r\n")[1]


def test_stalled_downloads_leave_listing_and_downloads_to_others_at_once(
    stack: Stack, big_record: tuple[dict[str, str], str]
) -> None:
    user, url = big_record
    stalled = [stalled_download(stack, url) for _ in range(STALLED)]
    try:
        time.sleep(2)
        listing = f"/records?user={user['id']}&token={user['token']}"
        status, seconds, _ = get_from(stack, "127.0.0.2", listing)
        assert (status, seconds < STARVED_S / 2) == (200, True), (status, seconds)
        path = url.split(f":{stack.port}", 1)[1]
        status, seconds, _ = get_from(stack, "127.0.0.2", path, Range="bytes=0-999")
        assert (status, seconds < STARVED_S / 2) == (206, True), (status, seconds)
    finally:
        for conn in stalled:
            conn.close()


def test_one_address_holds_at_most_its_share_of_reads(
    stack: Stack, big_record: tuple[dict[str, str], str]
) -> None:
    user, url = big_record
    stalled = [stalled_download(stack, url, "127.0.0.3") for _ in range(STALLED + 5)]
    try:
        time.sleep(1)
        path = url.split(f":{stack.port}", 1)[1]
        status, _, body = get_from(stack, "127.0.0.3", path)
        assert status == 429
        assert json.loads(body)["description"] == (
            f"this address already has {STALLED + 5} downloads and listings open (READ_CONN_LIMIT,"
            " per gateway); retry once one has finished"
        )
        listing = f"/records?user={user['id']}&token={user['token']}"
        assert get_from(stack, "127.0.0.3", listing)[0] == 429  # listings count as reads too
        refused = requests.get(url, timeout=10)  # from 127.0.0.1: another address, served
        assert refused.status_code == 200
    finally:
        for conn in stalled:
            conn.close()
