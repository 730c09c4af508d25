"""The gateway stack the end-to-end tests run against.

By default each module starts its own: nginx and three gunicorn functions on free ports (devstack).
Under `make compose-test` (AUDIOSVC_COMPOSE_PROJECT set) the same modules test the compose stack
that command started instead; the keyword settings below are then those of its env file.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import pytest
import requests

from devstack.compose import ComposeStack
from devstack.stack import Stack, free_port

COMPOSE_STACK = ComposeStack.from_environment()

needs_nginx = pytest.mark.skipif(
    COMPOSE_STACK is None and shutil.which("nginx") is None,
    reason="nginx is not installed: apt-get install nginx (.ci/run does) for the end-to-end tests",
)

UNLIMITED = {
    "USER_RATE_LIMIT": "100000r/s",
    "UPLOAD_RATE_LIMIT": "100000r/s",
    "USER_RATE_BURST": "1000",
    "UPLOAD_RATE_BURST": "1000",
    "READ_CONN_LIMIT": "1000",
    "UPLOAD_CONN_LIMIT": "1000",
}
"""Rate and connection limits out of the way, for tests that send many requests on purpose."""


class Gateway(Protocol):
    """What the end-to-end tests need of a running stack, local or compose."""

    @property
    def url(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def max_upload_bytes(self) -> int: ...
    @property
    def public_base_url(self) -> str | None: ...
    def stop_function(self, name: str) -> None: ...
    def start_function(self, name: str) -> None: ...
    def wait_function(self, name: str, timeout: float = ...) -> None: ...
    def restart_gateway(self) -> None: ...
    def log(self, name: str) -> str: ...
    def function_get(self, name: str, path: str) -> str: ...


@contextmanager
def gateway(directory: Path, database_url: str, **env: str) -> Iterator[Stack]:
    """A running local stack on a free port, its spool and logs in `directory`, stopped on exit."""
    spool = directory / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        run_dir=directory / "run",
        port=free_port(),
        use_nginx=True,
        env={"DATABASE_URL": database_url, "SPOOL_DIR": str(spool), **env},
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def module_gateway(name: str, **env: str) -> Any:
    """A module-scoped fixture: a local stack with `env`, its files in a directory named `name`."""

    @pytest.fixture(scope="module")
    def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
        with gateway(tmp_path_factory.mktemp(name), database_url, **env) as running:
            yield running

    return stack


@contextmanager
def gateway_under_test(request: pytest.FixtureRequest, **env: str) -> Iterator[Gateway]:
    """The compose stack under `make compose-test`, else a local stack with `env`."""
    if COMPOSE_STACK is not None:
        yield COMPOSE_STACK
        return
    directory = request.getfixturevalue("tmp_path_factory").mktemp(request.module.__name__)
    with gateway(directory, request.getfixturevalue("database_url"), **env) as stack:
        yield stack


def new_user(stack: Gateway) -> dict[str, str]:
    """A fresh account through the gateway: its id and token."""
    result = requests.post(f"{stack.url}/user", json={"name": f"u-{uuid.uuid4()}"}, timeout=30)
    assert result.status_code == 201, result.text
    return dict(result.json())


def upload(
    stack: Gateway, user: dict[str, str], wav: Any, timeout: float = 300, name: str = "take.wav"
) -> requests.Response:
    """A raw upload through the gateway, the token as Bearer; `wav` is bytes or a file."""
    return requests.post(
        f"{stack.url}/record",
        params={"user": user["id"], "name": name},
        data=wav,
        headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
        timeout=timeout,
    )


def records_of(stack: Gateway, user: dict[str, str]) -> requests.Response:
    """GET /records of `user` with its token as Bearer: the first page of its listing."""
    return requests.get(
        f"{stack.url}/records",
        params={"user": user["id"]},
        headers={"Authorization": f"Bearer {user['token']}"},
        timeout=30,
    )


def children(pid: int) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(child) for child in out.split()]


def converting_worker(master: int, timeout_s: float = 30) -> tuple[int, int] | None:
    """(worker, ffmpeg) PIDs of the first gunicorn worker of `master` seen running ffmpeg."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for worker in children(master):
            for ffmpeg in children(worker):
                return worker, ffmpeg
        time.sleep(0.02)
    return None


class RawUpload:
    """A raw upload written by hand on a socket, so that the test decides when each byte goes."""

    def __init__(
        self,
        stack: Stack,
        user: dict[str, str],
        length: int,
        source: str = "127.0.0.1",
        request: str | None = None,
    ) -> None:
        """A raw POST /record of `length` bytes, or `request` (line and headers of another)."""
        self.sock = socket.create_connection(
            ("127.0.0.1", stack.port), timeout=120, source_address=(source, 0)
        )
        self.sock.sendall(
            (
                request
                or f"POST /record?user={user['id']}&name=take.wav HTTP/1.1\r\n"
                "Content-Type: audio/wav\r\n"
            ).encode()
            + f"Host: 127.0.0.1:{stack.port}\r\nAuthorization: Bearer {user['token']}\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n".encode()
        )

    @classmethod
    def tus_patch(
        cls, stack: Stack, user: dict[str, str], upload_url: str, offset: int, length: int
    ) -> RawUpload:
        """A PATCH of `length` bytes at `offset` of the resumable upload at `upload_url`."""
        path = upload_url.removeprefix(stack.url)
        request = (
            f"PATCH {path} HTTP/1.1\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n"
            "Content-Type: application/offset+octet-stream\r\n"
        )
        return cls(stack, user, length, request=request)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answered(self) -> bool:
        """Whether the gateway has begun an answer, without waiting for one."""
        self.sock.setblocking(False)
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except BlockingIOError:
            return False
        finally:
            self.sock.setblocking(True)

    def answer(self) -> tuple[int, dict[str, str], Any]:
        """Status, headers and JSON body of the answer (the connection closes after it)."""
        raw = b""
        while piece := self.sock.recv(65536):
            raw += piece
        self.sock.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        return int(lines[0].split()[1]), headers, json.loads(body) if body else None


class CuttableProxy:
    """A TCP relay in front of the gateway whose connections the test can cut at once, as a
    dropped network does (the browser sees its requests in flight fail, the gateway its
    clients go away), passing what clients send at `upload_bytes_per_s` (a slow uplink)."""

    def __init__(self, target_port: int, upload_bytes_per_s: int) -> None:
        self._target = target_port
        self._rate = upload_bytes_per_s
        # A small receive window, so that what the client counts as sent is what went on.
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Reset every connection (RST, no goodbye), as a dropped link looks to both ends."""
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.shutdown(socket.SHUT_RDWR)  # wakes its pumps, which close it: RST
            self._open.clear()

    def close(self) -> None:
        self._listener.close()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            with self._lock:
                self._open.update((client, upstream))
            for source, sink, rate in ((client, upstream, self._rate), (upstream, client, 0)):
                threading.Thread(target=_pump, args=(source, sink, rate), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket, bytes_per_s: int) -> None:
    """Copy `source` to `sink` (at `bytes_per_s` when not 0) until either ends."""
    piece = max(bytes_per_s // 20, 1024) if bytes_per_s else 65536
    with contextlib.suppress(OSError):
        while data := source.recv(piece):
            sink.sendall(data)
            if bytes_per_s:
                time.sleep(len(data) / bytes_per_s)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
    source.close()
