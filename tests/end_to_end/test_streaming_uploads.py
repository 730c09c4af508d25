"""Uploads stream through the gateway into ffmpeg (contract v1.2's slow-sender rule), through real
nginx, gunicorn, ffmpeg and PostgreSQL.

The gateway passes an upload's body on as it arrives, so ffmpeg converts while the client sends.
A slow client therefore holds an add_record thread: these tests check that it cannot starve anyone
(threads, conversion slots, per-address connections are bounded; slow senders end with 408) and
that an upload that ends badly leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from common.config import CONVERSION_FOOTPRINT_BYTES
from devstack.stack import Stack
from devstack.wavgen import write_wav
from tests.helpers import left_in_spool, pcm16, stored_rows_at
from tests.stacks import (
    UNLIMITED,
    RawUpload,
    children,
    converting_worker,
    gateway,
    needs_nginx,
    new_user,
    upload,
)

pytestmark = needs_nginx

SLOWLORIS = 30
NORMAL = 10


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Rate limits lifted; the per-address upload limit (UPLOAD_CONN_LIMIT) at its default."""
    limits = {name: value for name, value in UNLIMITED.items() if name != "UPLOAD_CONN_LIMIT"}
    with gateway(tmp_path_factory.mktemp("streaming"), database_url, **limits) as stack:
        yield stack


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """60 s of 44.1 kHz stereo: about 10 MiB."""
    return write_wav(tmp_path_factory.mktemp("wav") / "60s.wav", 60 * 44100).read_bytes()


def no_ffmpeg_left(stack: Stack) -> bool:
    """Whether every ffmpeg add_record started has been reaped (waiting up to 5 s)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        workers = children(stack.processes["add_record"].pid)
        if not any(children(worker) for worker in workers):
            return True
        time.sleep(0.1)
    return False


def spool_is_empty(stack: Stack) -> bool:
    return left_in_spool(Path(stack.env["SPOOL_DIR"])) == []


def test_ffmpeg_converts_while_the_body_is_still_arriving(stack: Stack, long_wav: bytes) -> None:
    """With the body buffered at the gateway, no ffmpeg could start before the last byte."""
    user = new_user(stack)
    sender = RawUpload(stack, user, len(long_wav))
    half = len(long_wav) // 2
    sender.send(long_wav[:half])
    converting = converting_worker(stack.processes["add_record"].pid, timeout_s=10)
    assert converting is not None, "no ffmpeg ran while half of the body was still to come"
    assert not sender.answered()
    sender.send(long_wav[half:])
    status, _, body = sender.answer()
    assert status == 201, body
    assert body["url"].startswith(stack.url)


def test_a_body_cut_short_stores_nothing(stack: Stack, long_wav: bytes, database_url: str) -> None:
    """A client that goes away mid-body: what arrived is not a (truncated) WAV to keep."""
    user = new_user(stack)
    before = stored_rows_at(database_url)
    sender = RawUpload(stack, user, len(long_wav))
    sender.send(long_wav[: len(long_wav) // 2])
    assert converting_worker(stack.processes["add_record"].pid, timeout_s=10) is not None
    sender.sock.close()
    assert no_ffmpeg_left(stack)
    assert stored_rows_at(database_url) == before
    assert spool_is_empty(stack)


def test_an_answer_before_the_body_ends_reaches_the_client(stack: Stack) -> None:
    """add_record answers a wrong token at once, while the gateway still streams the body to it;
    closing then would reset the connection under the gateway (a 502 about one time in ten
    here). It reads on after its answer instead (functions/add_record/linger.py)."""
    user = new_user(stack)
    body = bytes(8 << 20)
    statuses = [
        upload(stack, {"id": user["id"], "token": str(uuid.uuid4())}, body, timeout=30).status_code
        for _ in range(30)
    ]
    assert statuses == [401] * 30


def test_uploads_in_flight_per_address_are_limited(stack: Stack) -> None:
    """UPLOAD_CONN_LIMIT (8) uploads from one address at once; the next gets 429 in JSON at once,
    saying which limit it hit, and another address is not affected."""
    user = new_user(stack)
    wav = pcm16(1.0)
    held = [RawUpload(stack, user, len(wav), source="127.0.3.1") for _ in range(8)]
    for sender in held:
        sender.send(wav[:100])
    time.sleep(0.5)
    refused = RawUpload(stack, user, len(wav), source="127.0.3.1")
    status, headers, body = refused.answer()
    assert status == 429
    assert headers["Content-Type"] == "application/json"
    assert body["title"] == "Too Many Requests"
    assert body["description"] == (
        "this address already has 8 uploads in flight (UPLOAD_CONN_LIMIT, per gateway);"
        " retry once one has finished"
    )
    other = RawUpload(stack, user, len(wav), source="127.0.3.2")
    other.send(wav)
    assert other.answer()[0] == 201
    for sender in held:
        sender.send(wav[100:])
        assert sender.answer()[0] == 201


def test_slowloris_crowd_starves_no_one(stack: Stack, long_wav: bytes, database_url: str) -> None:
    """30 uploads that send their first 2 KiB (past BODY_START_TIMEOUT_S's rule), then 1 byte/s,
    each from its own address, while 10 normal uploads from another: every normal one succeeds,
    and each slow one ends with 408 in JSON after its first 30 s."""
    user = new_user(stack)
    before = stored_rows_at(database_url)
    slow = [
        RawUpload(stack, user, len(long_wav), source=f"127.0.1.{n}")
        for n in range(1, SLOWLORIS + 1)
    ]
    started = time.monotonic()

    head = 2048
    for sender in slow:
        sender.send(long_wav[:head])

    def trickle() -> None:
        sent = head
        while not all(sender.answered() for sender in slow) and sent < head + 60:
            for sender in slow:
                if not sender.answered():
                    with contextlib.suppress(OSError):
                        sender.send(long_wav[sent : sent + 1])
            sent += 1
            time.sleep(1)

    with ThreadPoolExecutor(1) as pool:
        trickling = pool.submit(trickle)
        time.sleep(2)
        normal = [upload(stack, user, long_wav, timeout=60) for _ in range(NORMAL)]
        normal_done = time.monotonic() - started
        trickling.result()
    assert [result.status_code for result in normal] == [201] * NORMAL, [
        result.text for result in normal if result.status_code != 201
    ]
    assert normal_done < 30, "the normal uploads finished while every slowloris was held open"
    answers = [sender.answer() for sender in slow]
    assert [status for status, _, _ in answers] == [408] * SLOWLORIS
    assert {body["title"] for _, _, body in answers} == {"Upload too slow"}
    assert "bytes/s on average" in answers[0][2]["description"]
    assert time.monotonic() - started >= 30
    assert stored_rows_at(database_url)[0] == before[0] + NORMAL
    assert no_ffmpeg_left(stack)
    assert spool_is_empty(stack)


def test_a_stalled_body_is_408(database_url: str, tmp_path: Path) -> None:
    """No byte for CLIENT_TIMEOUT_S: add_record answers 408 in JSON (nginx's own body timeout,
    which would close without an answer, comes 10 s later), and nothing is kept."""
    wav = pcm16(5.0)
    with gateway(tmp_path, database_url, CLIENT_TIMEOUT_S="3", **UNLIMITED) as stack:
        user = new_user(stack)
        before = stored_rows_at(database_url)
        sender = RawUpload(stack, user, len(wav))
        sender.send(wav[: 200 * 1024])
        started = time.monotonic()
        status, headers, body = sender.answer()
        assert status == 408, body
        assert headers["Content-Type"] == "application/json"
        assert body["title"] == "Upload too slow"
        assert "stalled" in body["description"]
        assert 3 <= time.monotonic() - started < 13
        assert stored_rows_at(database_url) == before
        assert no_ffmpeg_left(stack)
        assert spool_is_empty(stack)


def test_conversions_past_the_slots_get_503_after_their_wait(
    database_url: str, tmp_path: Path, long_wav: bytes
) -> None:
    """One conversion slot for the instance's two workers: a second upload while the first
    converts waits SLOT_WAIT_S for it, then is refused with 503 and Retry-After, whichever
    worker takes it; the first completes."""
    with gateway(
        tmp_path,
        database_url,
        CONVERSION_MEMORY_BYTES=str(CONVERSION_FOOTPRINT_BYTES),
        SLOT_WAIT_S="1",
        **UNLIMITED,
    ) as stack:
        user = new_user(stack)
        first = RawUpload(stack, user, len(long_wav))
        first.send(long_wav[: 1 << 20])
        assert converting_worker(stack.processes["add_record"].pid, timeout_s=10) is not None
        second = upload(stack, user, pcm16(1.0), timeout=30)
        assert second.status_code == 503, second.text
        assert second.headers["Retry-After"] == "5"
        assert second.json()["title"] == "Converter busy"
        first.send(long_wav[1 << 20 :])
        assert first.answer()[0] == 201
        assert upload(stack, user, pcm16(1.0), timeout=30).status_code == 201


def test_a_burst_of_uploads_waits_for_slots_instead_of_503(
    database_url: str, tmp_path: Path
) -> None:
    """30 small uploads from 10 users at once against the default 8 slots: each waits its turn
    (SLOT_WAIT_S) and all 30 get 201 (before, 22 got 503 Converter busy at once)."""
    with gateway(tmp_path, database_url, **UNLIMITED) as stack:
        users = [new_user(stack) for _ in range(10)]
        wav = pcm16(1.0)
        with ThreadPoolExecutor(30) as pool:
            statuses = list(
                pool.map(
                    lambda n: upload(stack, users[n % 10], wav, timeout=60).status_code, range(30)
                )
            )
    assert statuses == [201] * 30


def ffmpegs_running(stack: Stack) -> int:
    return sum(len(children(worker)) for worker in children(stack.processes["add_record"].pid))


def test_trickling_uploads_do_not_take_every_conversion(stack: Stack, long_wav: bytes) -> None:
    """Eight uploads that have started their audio and then trickle, from two addresses (the
    per-address limit's worth each), hold eight conversions; a slot is memory (16 MiB), so a
    normal upload still converts at once: 201 (with a slot count of 8, 503 Converter busy)."""
    user = new_user(stack)
    trickles = [
        RawUpload(stack, user, len(long_wav), source=f"127.0.4.{n % 2 + 1}") for n in range(8)
    ]
    for sender in trickles:
        sender.send(long_wav[: 256 * 1024])
    deadline = time.monotonic() + 30
    while ffmpegs_running(stack) < len(trickles) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ffmpegs_running(stack) == len(trickles)
    normal = upload(stack, user, pcm16(1.0), timeout=60)
    assert normal.status_code == 201, normal.text
    for sender in trickles:
        sender.sock.close()
    assert no_ffmpeg_left(stack)


def test_header_only_connections_keep_no_one_waiting(database_url: str, tmp_path: Path) -> None:
    """64 connections from 16 addresses (4 each, within UPLOAD_CONN_LIMIT) send an upload's
    headers and no body byte. An upload and a DELETE from elsewhere answer long before
    BODY_START_TIMEOUT_S, the bound a request starved of threads would wait; the silent ones
    then get 408."""
    start_timeout = 20.0
    limits = {name: value for name, value in UNLIMITED.items() if name != "UPLOAD_CONN_LIMIT"}
    with gateway(
        tmp_path, database_url, BODY_START_TIMEOUT_S=f"{start_timeout:g}", **limits
    ) as stack:
        user = new_user(stack)
        doomed = upload(stack, user, pcm16(1.0), timeout=60)
        assert doomed.status_code == 201, doomed.text
        silent = [
            RawUpload(stack, user, 1_000_000, source=f"127.0.5.{n // 4 + 1}") for n in range(64)
        ]
        started = time.monotonic()
        time.sleep(1)  # the gateway has passed every one of them on
        assert upload(stack, user, pcm16(1.0), timeout=60).status_code == 201
        deleted = requests.delete(
            doomed.json()["url"],
            headers={"Authorization": f"Bearer {user['token']}"},
            timeout=60,
        )
        assert deleted.status_code == 204
        answered_in = time.monotonic() - started
        assert answered_in < start_timeout / 2, answered_in
        answers = [sender.answer() for sender in silent]
        assert time.monotonic() - started >= start_timeout - 1
    assert {status for status, _, _ in answers} == {408}
    assert answers[0][2]["description"] == (
        f"the body's first KiB did not arrive in the {start_timeout:g} s after its headers;"
        " nothing was stored"
    )


def test_uploads_that_cannot_all_fit_the_quota_are_refused_before_converting(
    database_url: str, tmp_path: Path
) -> None:
    """A quota with room for two 10 s MP3s (about 240 kB each) and three uploads at once: the
    third is refused with 507 as soon as its header shows it cannot fit beside the two in
    progress, before ffmpeg starts for it and before its body is sent; the two are stored."""
    wav = pcm16(10.0)
    with gateway(tmp_path, database_url, USER_QUOTA_BYTES="600000", **UNLIMITED) as stack:
        user = new_user(stack)
        senders: list[RawUpload] = []
        for count in (1, 2):
            senders.append(RawUpload(stack, user, len(wav)))
            senders[-1].send(wav[: 256 * 1024])
            deadline = time.monotonic() + 30
            while ffmpegs_running(stack) < count and time.monotonic() < deadline:
                time.sleep(0.05)
        assert ffmpegs_running(stack) == 2
        third = RawUpload(stack, user, len(wav))
        third.send(wav[: 256 * 1024])
        third.sock.settimeout(30)
        status, _, body = third.answer()
        assert status == 507, body
        assert body["description"] == (
            "this user has stored 0 of 600000 bytes; this upload will take at least 216000"
            " bytes, their other uploads in progress at least 432000: it does not fit"
        )
        assert ffmpegs_running(stack) == 2
        for sender in senders:
            sender.send(wav[256 * 1024 :])
            assert sender.answer()[0] == 201
