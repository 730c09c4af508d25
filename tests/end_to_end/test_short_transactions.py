"""No transaction stays open across an upload's client I/O (second security review, finding 5).

An upload's MP3 chunks are committed as ffmpeg makes them, each in a transaction of its own, under
a pending row no reader looks at; the record row comes in one short transaction at the end. Before,
each upload held a backend "idle in transaction" from its second chunk to its last byte: with slow
senders for hours, holding vacuum's horizon and, through PgBouncer in transaction mode, a server
connection per upload.

Through real nginx, gunicorn, ffmpeg, PostgreSQL and PgBouncer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from devstack.pgbouncer import pgbouncer
from devstack.stack import Stack
from tests.helpers import pcm16
from tests.stacks import UNLIMITED, RawUpload, gateway, needs_nginx, new_user

pytestmark = needs_nginx

CHUNK_BYTES = 256 * 1024
WAV = pcm16(60.0, 44100, 1)
"""60 s of mono: 5.3 MB of WAV, about 1.4 MB of MP3 at 192 kbit/s (five chunks), so several
chunks are committed while the upload is still arriving."""
PIECE = 64 * 1024


def send_slowly(sender: RawUpload, pause_s: float, between: object = None) -> None:
    """The WAV in pieces of PIECE bytes, `pause_s` apart; `between` called after each piece."""
    for start in range(0, len(WAV), PIECE):
        sender.send(WAV[start : start + PIECE])
        if callable(between):
            between()
        time.sleep(pause_s)


LONG_S = 4
"""A transaction older than this spans client I/O. The service's own last milliseconds (a chunk
written, a record published), however slow the machine; one held across the upload lives from its
second MP3 chunk to its last byte, about 8 of the upload's 12.5 s here: the bound it would pass."""


def database_activity(engine: sa.Engine, user_id: str) -> tuple[int, int, int]:
    """(other backends in a transaction older than LONG_S, the user's pending records, chunk
    rows); pending records of other tests' killed workers are the sweep's, not this test's."""
    with engine.connect() as conn:
        long = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND xact_start < now() - make_interval(secs => :s)"
            ),
            {"s": LONG_S},
        ).scalar_one()
        pending = conn.execute(
            sa.text("SELECT count(*) FROM pending_records WHERE user_id = :user"),
            {"user": user_id},
        ).scalar_one()
        chunks = conn.execute(sa.text("SELECT count(*) FROM record_chunks")).scalar_one()
    return int(long), int(pending), int(chunks)


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("short_transactions")
    with gateway(directory, database_url, CHUNK_BYTES=str(CHUNK_BYTES), **UNLIMITED) as stack:
        yield stack


def test_no_transaction_is_open_while_the_client_sends(stack: Stack, database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        user = new_user(stack)
        _, _, chunks_before = database_activity(engine, user["id"])
        samples: list[tuple[int, int, int]] = []
        sender = RawUpload(stack, user, len(WAV))
        send_slowly(sender, 0.15, lambda: samples.append(database_activity(engine, user["id"])))
        status, _, body = sender.answer()
        assert status == 201, body
        assert max(long for long, _, _ in samples) == 0, "a transaction spanned the upload"
        staged = max(chunks for _, pending, chunks in samples if pending) - chunks_before
        assert staged >= 2, "no chunk was committed while the upload was arriving"
        assert database_activity(engine, user["id"])[1] == 0, "the pending row outlived its upload"
    finally:
        engine.dispose()


def test_thirty_slow_uploads_through_a_pooler_of_ten_connections(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each upload takes about 12 s; all thirty at once need the pooler's ten server connections
    only for the moments they write. A client that waits 5 s for a server connection is starved
    (a write takes milliseconds): the pooler then disconnects it, and its upload fails."""
    uploads = 30
    directory = tmp_path_factory.mktemp("pooled_slow_uploads")
    with (
        pgbouncer(database_url, pool_size=10, wait_timeout_s=5) as pooled,
        gateway(
            directory,
            pooled,
            CHUNK_BYTES=str(CHUNK_BYTES),
            DB_POOL_SIZE=str(uploads),
            **UNLIMITED,
        ) as stack,
    ):
        users = [new_user(stack) for _ in range(uploads)]

        def slow_upload(user: dict[str, str]) -> int:
            sender = RawUpload(stack, user, len(WAV))
            send_slowly(sender, 0.15)
            status, _, body = sender.answer()
            assert status == 201, body
            return status

        with ThreadPoolExecutor(uploads) as pool:
            statuses = list(pool.map(slow_upload, users))
    assert statuses == [201] * uploads
