"""Uploads at a fixed bandwidth, and slowloris uploads that send one byte a second."""

from __future__ import annotations

import http.client
import select
import socket
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from bench.client import Gateway

PACE_PIECE = 64 << 10


@dataclass(frozen=True)
class Paced:
    """One raw upload: first byte sent -> last byte sent, and last byte sent -> answer read."""

    transfer: float
    delay: float

    @property
    def total(self) -> float:
        return self.transfer + self.delay


def raw_upload_path(user: dict[str, str]) -> str:
    return "/record?" + urlencode({"user": user["id"]})


def raw_upload_headers(user: dict[str, str], wav: Path) -> dict[str, str]:
    return {
        "Content-Type": "audio/wav",
        "Authorization": f"Bearer {user['token']}",
        "Content-Length": str(wav.stat().st_size),
    }


def raw_request_head(gateway: Gateway, user: dict[str, str], wav: Path) -> bytes:
    """Request line and headers of a raw `audio/wav` upload of `wav`."""
    lines = [
        f"POST {raw_upload_path(user)} HTTP/1.1",
        f"Host: {gateway.host}:{gateway.port}",
        *(f"{name}: {value}" for name, value in raw_upload_headers(user, wav).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def open_upload(
    gateway: Gateway, user: dict[str, str], wav: Path, source: str | None = None
) -> http.client.HTTPConnection:
    """A connection from `source` with the request line and headers of a raw upload of `wav` put,
    not yet sent (send_paced sends them)."""
    conn = gateway.connect(source)
    conn.connect()
    conn.putrequest("POST", raw_upload_path(user), skip_accept_encoding=True)
    for name, value in raw_upload_headers(user, wav).items():
        conn.putheader(name, value)
    return conn


def send_paced(
    conn: http.client.HTTPConnection,
    wav: Path,
    rate: float | None,
    stop: threading.Event | None = None,
) -> tuple[float, bool]:
    """The headers, then the WAV at `rate` bytes/s (None: as fast as it goes). Returns when the
    first byte went out (perf_counter) and whether the whole body did; with `stop`, it stops early
    once `stop` is set or the gateway has answered."""
    with wav.open("rb") as body:
        start = time.perf_counter()
        conn.endheaders()
        sent = 0
        while piece := body.read(PACE_PIECE):
            if stop is not None and (stop.is_set() or select.select([conn.sock], [], [], 0)[0]):
                return start, False
            if rate is not None:
                ahead = start + (sent + len(piece)) / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
            conn.send(piece)
            sent += len(piece)
    return start, True


def paced_upload(
    gateway: Gateway,
    user: dict[str, str],
    wav: Path,
    rate: float | None = None,
    source: str | None = None,
) -> Paced:
    """POST /record with the WAV as the body, sent at `rate` bytes/s (None: as fast as it goes),
    from the address `source`; the answer must be a 201."""
    conn = open_upload(gateway, user, wav, source)
    start, _ = send_paced(conn, wav, rate)
    last_byte = time.perf_counter()
    response = conn.getresponse()
    answer = response.read()
    answered = time.perf_counter()
    conn.close()
    if response.status != 201:
        raise RuntimeError(f"POST /record: {response.status} {answer!r}")
    return Paced(last_byte - start, answered - last_byte)


def held_upload(
    gateway: Gateway, user: dict[str, str], wav: Path, rate: float, stop: threading.Event
) -> str:
    """A raw upload of `wav` at `rate` bytes/s until `stop` is set, then its connection closed
    mid-body: "held", or the status of an answer that came first (503: no conversion slot)."""
    conn = open_upload(gateway, user, wav)
    try:
        _, whole = send_paced(conn, wav, rate, stop)
        if stop.is_set() and not whole:
            return "held"
        return str(conn.getresponse().status)
    except OSError as error:
        return type(error).__name__
    finally:
        conn.close()


class Slowloris:
    """Raw uploads that send their headers, then one body byte a second, each from its own source
    address, until the gateway answers or closes them; `outcomes` counts how each ended."""

    def __init__(
        self, gateway: Gateway, user: dict[str, str], wav: Path, sources: list[str]
    ) -> None:
        self._gateway, self._user, self._wav, self._sources = gateway, user, wav, sources
        self._open: dict[socket.socket, bytes] = {}
        self._ended: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._body = b""
        self.started = 0.0

    def __enter__(self) -> Slowloris:
        head = raw_request_head(self._gateway, self._user, self._wav)
        with self._wav.open("rb") as body:
            self._body = body.read(120)
        self.started = time.monotonic()
        for source in self._sources:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((source, 0))
            sock.connect((self._gateway.host, self._gateway.port))
            sock.sendall(head)
            sock.setblocking(False)
            self._open[sock] = b""
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self._open:
            sock.close()
        self._open.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._open)

    def outcomes(self) -> tuple[Counter[str], float | None]:
        """How many ended how, and the median seconds from opening to an answer (None: none)."""
        with self._lock:
            ended = list(self._ended)
            pending = len(self._open)
        counts = Counter(outcome for outcome, _ in ended)
        if pending:
            counts["unanswered"] = pending
        seconds = [after for outcome, after in ended if outcome.isdigit()]
        return counts, statistics.median(seconds) if seconds else None

    def wait(self, deadline: float) -> None:
        """Until every one has ended, or the monotonic `deadline`."""
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.1)

    def _trickle(self) -> None:
        sent = 0
        while not self._stop.wait(1.0):
            with self._lock:
                self._read_answers()
                if sent < len(self._body):
                    for sock in list(self._open):
                        try:
                            sock.send(self._body[sent : sent + 1])
                        except OSError as error:
                            self._end(sock, type(error).__name__)
                    sent += 1

    def _read_answers(self) -> None:
        readable, _, _ = select.select(list(self._open), [], [], 0)
        for sock in readable:
            try:
                data = sock.recv(4096)
            except OSError as error:
                self._end(sock, type(error).__name__)
                continue
            if not data:
                self._end(sock, "closed")
                continue
            self._open[sock] += data
            status_line, found, _ = self._open[sock].partition(b"\r\n")
            if found:
                parts = status_line.split(b" ")
                self._end(sock, parts[1].decode() if len(parts) > 1 else "garbled")

    def _end(self, sock: socket.socket, outcome: str) -> None:
        self._ended.append((outcome, time.monotonic() - self.started))
        del self._open[sock]
        sock.close()
