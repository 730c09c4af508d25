"""The slow-sender rule (contract v1.2) and the metered body that enforces it."""

from __future__ import annotations

import io
import socket
import threading
import time

import pytest

from functions.add_record.pace import (
    GRACE_S,
    STEP,
    IncompleteBody,
    MeteredBody,
    PaceRule,
    PaceWatcher,
    UploadTooSlow,
)

RULE = PaceRule(stall_s=60, min_bytes_per_s=64 * 1024, start_s=10)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("waited", "waiting", "received"),
    [
        (0, 0, 0),
        (GRACE_S - 1, 0, 1),  # slow, but its first 30 s are not over
        (0, 9.9, 0),  # no body byte yet, within BODY_START_TIMEOUT_S
        (GRACE_S, 0, 64 * 1024 * 30),  # exactly at the rate
        (100, 0, 64 * 1024 * 100 - STEP),  # short by less than one read: benefit of the doubt
        (10, 59.9, 64 * 1024 * 70),  # a read waiting, not yet for CLIENT_TIMEOUT_S
    ],
)
def test_fast_enough(waited: float, waiting: float, received: int) -> None:
    assert RULE.verdict(waited, waiting, received) is None


def test_no_body_byte_within_the_start_timeout() -> None:
    """Headers and nothing else: cut after BODY_START_TIMEOUT_S, long before the stall rule."""
    assert "the body's first KiB did not arrive in the 10 s" in (RULE.verdict(0, 10, 0) or "")
    assert "first KiB did not arrive" in (RULE.verdict(4, 6, 0) or "")
    assert RULE.verdict(0, 20, 1) is None  # one byte came: the stall rule judges from here


def test_stalled_for_client_timeout() -> None:
    assert "stalled" in (RULE.verdict(0, 60, 1) or "")


def test_under_the_rate_after_the_grace() -> None:
    reason = RULE.verdict(GRACE_S, 0, 1000)
    assert reason is not None
    assert "33 bytes/s on average" in reason


def test_zero_rate_means_no_minimum() -> None:
    assert PaceRule(stall_s=60, min_bytes_per_s=0, start_s=10).verdict(10_000, 0, 1) is None


def test_reads_return_what_was_asked_until_the_end() -> None:
    body = MeteredBody(io.BytesIO(bytes(3 * STEP + 5)), 3 * STEP + 5, None, Clock())
    assert len(body.read(2 * STEP + 1)) == 2 * STEP + 1
    assert len(body.read()) == STEP + 4
    assert body.read(10) == b""
    assert body.received == 3 * STEP + 5


def test_a_body_short_of_its_content_length_is_incomplete() -> None:
    body = MeteredBody(io.BytesIO(bytes(100)), 200, None, Clock())
    assert len(body.read(100)) == 100
    with pytest.raises(IncompleteBody):
        body.read(100)


def test_a_read_error_is_an_incomplete_body() -> None:
    class Broken:
        def read(self, size: int = -1, /) -> bytes:
            raise ConnectionResetError

    with pytest.raises(IncompleteBody):
        MeteredBody(Broken(), None, None, Clock()).read(10)


def test_the_time_spent_elsewhere_is_not_the_clients() -> None:
    """Only the time reads wait counts: converting and storing between reads does not."""
    clock = Clock()
    body = MeteredBody(io.BytesIO(bytes(STEP)), None, None, clock)
    clock.now = 1000.0
    body.read(STEP)
    assert body.pace() == (0.0, 0.0, STEP)


def test_the_first_byte_is_read_alone() -> None:
    """The server's read waits for all it is asked: asking one byte first tells a body that has
    begun from one that has not (BODY_START_TIMEOUT_S), whatever its rate."""
    asked: list[int] = []

    class Recorded(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            asked.append(-1 if size is None else size)
            return super().read(size)

    body = MeteredBody(Recorded(bytes(3 * STEP)), 3 * STEP, None, Clock())
    assert len(body.read(2 * STEP)) == 2 * STEP
    assert asked == [1, STEP, STEP - 1]
    assert body.pace() == (0.0, 0.0, 2 * STEP)


def test_the_time_after_a_read_is_not_the_clients() -> None:
    """The client takes 2 s to deliver a piece; then the server converts and stores for 1000 s.
    Only the 2 s count, and no read is waiting meanwhile (second review's mutation audit: the
    time after a read counted as the client's went unnoticed)."""
    clock = Clock()

    class TwoSeconds(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            clock.now += 2.0
            return super().read(size)

    body = MeteredBody(TwoSeconds(bytes(2 * STEP)), None, None, clock)
    body.read(STEP)  # two reads: the first byte, then the rest of the piece
    clock.now += 1000.0
    assert body.pace() == (4.0, 0.0, STEP)
    assert RULE.verdict(*(body.pace() or (0.0, 0.0, 0))) is None


def test_the_watcher_wakes_a_read_blocked_on_a_silent_client() -> None:
    """A real socket whose peer sends nothing: the watcher shuts its reading side, and the
    blocked read ends with 408 at once."""
    clock = Clock()
    server, client = socket.socketpair()
    stream = server.makefile("rb")
    watcher = PaceWatcher(PaceRule(stall_s=5, min_bytes_per_s=0, start_s=60), clock)
    errors: list[BaseException] = []
    reading = threading.Event()

    class Request:
        def __init__(self) -> None:
            self.env = {"gunicorn.socket": server, "wsgi.input": stream}
            self.stream = stream
            self.content_length = 1000

    request = Request()

    def read() -> None:
        with watcher.metered(request) as body:  # type: ignore[arg-type]
            reading.set()
            try:
                body.read(100)
            except UploadTooSlow as error:
                errors.append(error)

    reader = threading.Thread(target=read)
    reader.start()
    reading.wait(5)
    time.sleep(0.2)
    client.sendall(b"x")
    watcher.check()
    assert reader.is_alive()
    clock.now = 5.0
    watcher.check()
    reader.join(5)
    assert not reader.is_alive()
    assert len(errors) == 1
    assert errors[0].status == "408 Request Timeout"
    server.close()
    client.close()
