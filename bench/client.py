"""A lean HTTP client for the benchmark: uploads streamed from disk, downloads read and dropped."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

PIECE = 1 << 20


class Gateway:
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def connect(self, source: str | None = None) -> http.client.HTTPConnection:
        """A connection to the gateway, from the local address `source` when one is given."""
        return http.client.HTTPConnection(
            self.host,
            self.port,
            timeout=3600,
            source_address=None if source is None else (source, 0),
        )

    def created(self, path: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
        """POST on a new connection; the JSON answer, which must be a 201."""
        conn = self.connect()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        answer = json.loads(response.read())
        conn.close()
        if response.status != 201:
            raise RuntimeError(f"POST {path}: {response.status} {answer}")
        return dict(answer)

    def create_user(self) -> dict[str, str]:
        body = json.dumps({"name": f"bench-{uuid.uuid4()}"})
        return self.created("/user", body, {"Content-Type": "application/json"})

    def upload(self, user: dict[str, str], wav: Path) -> dict[str, Any]:
        """POST /record as multipart/form-data, the file streamed from disk."""
        boundary = uuid.uuid4().hex
        head = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in (("user", user["id"]), ("token", user["token"]))
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{wav.name}"\r\nContent-Type: audio/wav\r\n\r\n'
        )
        tail = f"\r\n--{boundary}--\r\n".encode()
        length = len(head.encode()) + wav.stat().st_size + len(tail)

        def body() -> Iterator[bytes]:
            yield head.encode()
            with wav.open("rb") as source:
                while piece := source.read(PIECE):
                    yield piece
            yield tail

        return self.created(
            "/record",
            body(),
            {
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(length),
            },
        )

    def download(
        self, conn: http.client.HTTPConnection, path: str, byte_range: tuple[int, int] | None = None
    ) -> int:
        """GET and drop the body; returns the bytes received."""
        headers = {} if byte_range is None else {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        received = 0
        while piece := response.read(PIECE):
            received += len(piece)
        if response.status not in (200, 206):
            raise RuntimeError(f"GET {path}: {response.status}")
        return received


def record_path(record: dict[str, Any], user: dict[str, str]) -> str:
    return "/record?" + urlencode({"id": record["id"], "user": user["id"]})


def timed(action: Any, *args: Any) -> float:
    start = time.perf_counter()
    action(*args)
    return time.perf_counter() - start
