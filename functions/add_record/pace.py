"""Slow senders (contract v1.2): an upload whose body stalls for CLIENT_TIMEOUT_S, or whose average
rate is under MIN_UPLOAD_BYTES_PER_S once its first 30 s are over, ends with 408 and leaves nothing.
So does one whose first body bytes (gunicorn's first KiB) have not come BODY_START_TIMEOUT_S after
its headers: a connection that sends headers and nothing else would otherwise hold a thread for
free until the rate rule judges it.

The gateway streams upload bodies through as they arrive, so a slow client now holds an add_record
thread (and, once its audio starts, an ffmpeg). A read blocked in gunicorn's socket cannot be given
a deadline from here, so one watcher thread per worker looks at every body in flight each second
and, for one too slow, shuts the reading side of its connection: the blocked read returns at once,
and the body raises 408. The connection can still carry that answer.

Only the client's time counts: the time the upload spent waiting in a read for the client's bytes,
not the time it spent converting or storing them (then the client waits on us, held back by TCP).
The body is read in pieces of `STEP` bytes, so what has arrived is known to within one piece: the
rate rule gives the client that piece's benefit of the doubt, and a stall is one read waiting
CLIENT_TIMEOUT_S for its piece (a client at MIN_UPLOAD_BYTES_PER_S fills one each second).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import falcon

from common.audio.wav import Readable
from common.http.socket_body import socket_body

GRACE_S = 30.0
"""How long an upload may run before its average rate is judged (the contract's 30 s)."""
STEP = 64 * 1024
"""The largest read passed to the server: fine enough to see a body's progress."""
WATCH_EVERY_S = 1.0


class UploadTooSlow(falcon.HTTPError):
    """408: the body stalled or came too slowly; nothing is stored."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            falcon.HTTP_408,
            title="Upload too slow",
            description=f"{reason}; nothing was stored",
        )


class IncompleteBody(falcon.HTTPBadRequest):
    """The body ended before its Content-Length or its last chunk: the client went away."""

    def __init__(self) -> None:
        super().__init__(
            title="Incomplete body",
            description="the body ended before all of it arrived; nothing was stored",
        )


@dataclass(frozen=True)
class PaceRule:
    stall_s: float
    min_bytes_per_s: int
    start_s: float

    def verdict(self, waited: float, waiting: float, received: int) -> str | None:
        """Why a body is too slow, or None while it is not: `waited` is the time its reads have
        waited for the client in all, `waiting` how long the read now in progress has waited,
        `received` the bytes delivered."""
        if received == 0 and waited + waiting >= self.start_s:
            return (
                f"the body's first KiB did not arrive in the {self.start_s:g} s after its headers"
            )
        if waiting >= self.stall_s:
            return f"the body stalled: under {STEP // 1024} KiB of it arrived in {self.stall_s:g} s"
        elapsed = waited + waiting
        if elapsed >= GRACE_S and (received + STEP) / elapsed < self.min_bytes_per_s:
            return (
                f"the body arrived at {received / elapsed:.0f} bytes/s on average, under the "
                f"{self.min_bytes_per_s} bytes/s required after {GRACE_S:g} s"
            )
        return None


class MeteredBody:
    """The request body as the server delivers it, counted, and cut off when too slow."""

    def __init__(
        self,
        stream: Readable,
        expected: int | None,
        connection: socket.socket | None,
        clock: Callable[[], float],
    ) -> None:
        self._stream = stream
        self._expected = expected
        self._connection = connection
        self._clock = clock
        self.received = 0
        self._waited = 0.0
        self._waiting_since: float | None = None
        self._ended = False
        self._incomplete = False
        self._cut: str | None = None

    def read(self, size: int | None = -1, /) -> bytes:
        """Up to `size` bytes (all when negative or None), fewer only at the body's end. A body
        cut short still delivers every byte that came: the error comes with the next read."""
        wanted = -1 if size is None or size < 0 else size
        pieces: list[bytes] = []
        got = 0
        while wanted < 0 or got < wanted:
            step = STEP if wanted < 0 else min(STEP, wanted - got)
            try:
                # The server's read waits for all it was asked: one byte first, so that a body
                # that has begun is known to have (BODY_START_TIMEOUT_S) once gunicorn has its
                # first KiB, whatever the body's rate.
                piece = self._step(1 if self.received == 0 else step)
            except IncompleteBody:
                if not pieces:
                    raise
                break
            if not piece:
                break
            pieces.append(piece)
            got += len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _step(self, size: int) -> bytes:
        self._raise_if_cut()
        if self._incomplete:
            raise IncompleteBody()
        self._waiting_since = self._clock()
        try:
            piece = self._stream.read(size)
        except OSError:
            self._raise_if_cut()
            self._incomplete = True
            raise IncompleteBody() from None
        finally:
            self._waited += self._clock() - self._waiting_since
            self._waiting_since = None
        self._raise_if_cut()
        if piece:
            self.received += len(piece)
            self._ended = self.received == self._expected
        elif not self._ended:
            self._ended = True
            if self._expected is not None and self.received < self._expected:
                self._incomplete = True
                raise IncompleteBody()
        return piece

    def pace(self) -> tuple[float, float, int] | None:
        """(time waited for the client, time the current read has waited, bytes received), or
        None once the body has ended or been cut: there is nothing left to judge."""
        if self._ended or self._cut is not None:
            return None
        since = self._waiting_since
        waiting = 0.0 if since is None else self._clock() - since
        return self._waited, waiting, self.received

    def cut(self, reason: str) -> None:
        """Called by the watcher: wake a blocked read by shutting the connection's reading side."""
        self._cut = reason
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.shutdown(socket.SHUT_RD)

    def _raise_if_cut(self) -> None:
        if self._cut is not None:
            raise UploadTooSlow(self._cut)


class PaceWatcher:
    """One per worker process: every second, each body in flight is judged by `rule`."""

    def __init__(self, rule: PaceRule, clock: Callable[[], float] = time.monotonic) -> None:
        self._rule = rule
        self._clock = clock
        self._bodies: set[MeteredBody] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def metered(self, req: falcon.Request) -> Iterator[MeteredBody]:
        """Put a metered body in place of the request's, watched until the block ends."""
        body = MeteredBody(
            socket_body(req.env) or req.stream,
            req.content_length,
            req.env.get("gunicorn.socket"),
            self._clock,
        )
        req.stream = req.env["wsgi.input"] = body
        with self._lock:
            self._bodies.add(body)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="pace", daemon=True)
                self._thread.start()
        try:
            yield body
        finally:
            with self._lock:
                self._bodies.discard(body)

    def check(self) -> None:
        """Judge every body in flight once; cut those too slow."""
        with self._lock:
            bodies = list(self._bodies)
        for body in bodies:
            pace = body.pace()
            reason = None if pace is None else self._rule.verdict(*pace)
            if reason is not None:
                body.cut(reason)

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_EVERY_S)
            self.check()
