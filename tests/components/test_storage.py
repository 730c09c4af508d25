"""Records and chunk rows on both databases: all or nothing, reads by byte range."""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from common.storage.accounts import Accounts, NameTaken
from common.storage.db import create_engine, pending_records, utc_now
from common.storage.records import (
    ALIVE_WITHIN,
    AudioFacts,
    LeaseLost,
    QuotaExceeded,
    RecordStore,
)
from tests.helpers import stored_rows

CHUNK = 256 * 1024
FACTS = AudioFacts(name="a.wav", channels=2, sample_rate=44100, duration_ms=1000)
QUOTA = 1 << 30


@pytest.fixture
def db(any_database_url: str) -> Iterator[Engine]:
    engine = create_engine(any_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def owner(db: Engine) -> uuid.UUID:
    return Accounts(db, utc_now).create(f"owner-{uuid.uuid4()}").id


def save(
    store: RecordStore, owner: uuid.UUID, facts: AudioFacts, mp3: BinaryIO, quota_bytes: int
) -> uuid.UUID:
    """A finished MP3 stored as a new record, as add_record does once ffmpeg is done."""
    with store.writer(mp3) as writer:
        return writer.commit(owner, facts, quota_bytes)


class FailingAfter(io.BytesIO):
    """An MP3 file whose reading fails part-way, like a worker dying mid-copy."""

    def __init__(self, data: bytes, fail_at: int) -> None:
        super().__init__(data)
        self._fail_at = fail_at

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self._fail_at:
            raise OSError("disk gone")
        return super().read(size)


def test_save_and_read_back_any_range(db: Engine, owner: uuid.UUID) -> None:
    data = bytes(range(256)) * 5000
    store = RecordStore(db, CHUNK, utc_now)
    record_id = save(store, owner, FACTS, io.BytesIO(data), QUOTA)
    record = store.find(record_id, owner)
    assert record is not None
    assert (record.size, record.chunk_bytes) == (len(data), CHUNK)
    assert stored_rows(db, record_id) == (1, 5)
    for start, stop in [
        (0, len(data)),
        (CHUNK - 1, CHUNK + 1),
        (3 * CHUNK, 3 * CHUNK + 10),
        (len(data) - 1, len(data)),
    ]:
        assert b"".join(store.read(record, start, stop)) == data[start:stop]


def test_a_failed_copy_leaves_nothing_behind(db: Engine, owner: uuid.UUID) -> None:
    fixed = uuid.uuid4()
    store = RecordStore(db, CHUNK, utc_now, new_uuid=lambda: fixed)
    with pytest.raises(OSError, match="disk gone"):
        save(store, owner, FACTS, FailingAfter(bytes(4 * CHUNK), fail_at=2 * CHUNK), QUOTA)
    assert stored_rows(db, fixed) == (0, 0)
    assert store.find(fixed, owner) is None


def test_another_owner_finds_nothing(db: Engine, owner: uuid.UUID) -> None:
    store = RecordStore(db, CHUNK, utc_now)
    record_id = save(store, owner, FACTS, io.BytesIO(b"x" * 10), QUOTA)
    assert store.find(record_id, uuid.uuid4()) is None


def test_tokens_authenticate_only_their_user(db: Engine) -> None:
    accounts = Accounts(db, utc_now)
    alice, bob = accounts.create(f"a-{uuid.uuid4()}"), accounts.create(f"b-{uuid.uuid4()}")
    assert accounts.authenticate(alice.id, alice.token)
    assert not accounts.authenticate(alice.id, bob.token)
    assert not accounts.authenticate(uuid.uuid4(), alice.token)
    assert not accounts.authenticate(alice.id, None)


def test_names_are_unique(db: Engine) -> None:
    accounts = Accounts(db, utc_now)
    name = f"same-{uuid.uuid4()}"
    accounts.create(name)
    with pytest.raises(NameTaken):
        accounts.create(name)


def test_the_quota_counts_what_is_stored_and_refuses_what_would_pass_it(
    db: Engine, owner: uuid.UUID
) -> None:
    store = RecordStore(db, CHUNK, utc_now)
    save(store, owner, FACTS, io.BytesIO(bytes(600)), quota_bytes=1000)
    assert store.used_bytes(owner) == 600
    save(store, owner, FACTS, io.BytesIO(bytes(400)), quota_bytes=1000)  # exactly at the quota
    with pytest.raises(QuotaExceeded) as refused:
        save(store, owner, FACTS, io.BytesIO(bytes(1)), quota_bytes=1000)
    assert (refused.value.used, refused.value.size, refused.value.quota) == (1000, 1, 1000)
    assert store.used_bytes(owner) == 1000
    assert store.used_bytes(uuid.uuid4()) == 0


def test_concurrent_saves_of_one_user_never_pass_the_quota(database_url: str) -> None:
    """Ten saves of 300 bytes at once against a quota of 1000: three fit, seven are refused."""
    engine = create_engine(database_url, pool_size=10)
    try:
        owner = Accounts(engine, utc_now).create(f"race-{uuid.uuid4()}").id
        store = RecordStore(engine, CHUNK, utc_now)
        barrier = threading.Barrier(10)

        def save_at_once() -> bool:
            barrier.wait()
            try:
                save(store, owner, FACTS, io.BytesIO(bytes(300)), quota_bytes=1000)
            except QuotaExceeded:
                return False
            return True

        with ThreadPoolExecutor(10) as pool:
            outcomes = list(pool.map(lambda _: save_at_once(), range(10)))
        assert outcomes.count(True) == 3
        assert store.used_bytes(owner) == 900
    finally:
        engine.dispose()


def write_growing(path: Path, data: bytes, at: int = 0) -> None:
    """ffmpeg's side of the MP3 file: bytes written at `at`, flushed."""
    with path.open("r+b") as ffmpeg:
        ffmpeg.seek(at)
        ffmpeg.write(data)


def test_a_record_written_while_ffmpeg_writes_is_visible_only_at_commit(
    db: Engine, owner: uuid.UUID, tmp_path: Path
) -> None:
    """Chunks after the first are committed as the MP3 grows, each in a short transaction; the
    first, where ffmpeg fills in the Xing/LAME header last, and the record row at commit. Before
    it, no record shows and no transaction is left open."""
    store = RecordStore(db, CHUNK, utc_now)
    records_before = stored_rows(db)[0]
    final = bytes(range(256)) * (4 * CHUNK // 256) + b"tail"
    growing = tmp_path / "out.mp3"
    growing.write_bytes(b"")
    with growing.open("rb") as mp3, store.writer(mp3) as writer:
        write_growing(growing, bytes(100) + final[100 : 3 * CHUNK + 10])  # no header yet
        writer.store_final()
        assert writer.stored == 3
        assert stored_rows(db)[0] == records_before
        assert open_transactions(db) == 0
        write_growing(growing, final[3 * CHUNK + 10 :], at=3 * CHUNK + 10)
        write_growing(growing, final[:100])
        record_id = writer.commit(owner, FACTS, QUOTA)
    record = store.find(record_id, owner)
    assert record is not None
    assert record.size == len(final)
    assert record.sha256 == hashlib.sha256(final).hexdigest()
    assert b"".join(store.read(record, 0, record.size)) == final
    assert stored_rows(db, record_id) == (1, 5)
    assert pending_count(db) == 0


def open_transactions(db: Engine) -> int:
    """Backends of this database idle inside a transaction (none on SQLite: no such view)."""
    if db.dialect.name == "sqlite":
        return 0
    with db.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%'"
                )
            ).scalar_one()
        )


def pending_count(db: Engine) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(pending_records)).scalar_one()
        )


class Clock:
    """A `now` the test moves."""

    def __init__(self) -> None:
        self.at = utc_now()

    def __call__(self) -> datetime:
        return self.at


def test_the_sweep_removes_what_a_dead_writer_left_and_only_that(
    db: Engine, owner: uuid.UUID, tmp_path: Path
) -> None:
    """A writer that dies mid-upload leaves committed chunks under its pending row; once its
    lease has lapsed the sweep removes them, and a live writer's lease keeps its own."""
    clock = Clock()
    lease = timedelta(minutes=10)
    dead_id, live_id = uuid.uuid4(), uuid.uuid4()
    ids = iter([dead_id, live_id])
    store = RecordStore(db, CHUNK, clock, new_uuid=lambda: next(ids), lease=lease)
    dead_file, live_file = tmp_path / "dead.mp3", tmp_path / "live.mp3"
    for path in (dead_file, live_file):
        path.write_bytes(bytes(4 * CHUNK))
    dead_mp3 = dead_file.open("rb")
    dead = store.writer(dead_mp3).__enter__()  # never left: its process is gone
    dead.store_final()
    assert stored_rows(db, dead_id) == (0, 3)
    with live_file.open("rb") as mp3, store.writer(mp3) as live:
        clock.at += lease * 0.9
        live.store_final()  # renews its lease: due after lease / 8
        clock.at += lease * 0.2
        assert store.sweep() == 1
        assert stored_rows(db, dead_id) == (0, 0)
        assert stored_rows(db, live_id) == (0, 3)
        live.commit(owner, FACTS, QUOTA)
    assert stored_rows(db, live_id) == (1, 4)
    dead_mp3.close()


def test_a_writer_whose_lease_was_swept_stores_nothing(
    db: Engine, owner: uuid.UUID, tmp_path: Path
) -> None:
    clock = Clock()
    fixed = uuid.uuid4()
    store = RecordStore(db, CHUNK, clock, new_uuid=lambda: fixed, lease=timedelta(minutes=10))
    growing = tmp_path / "out.mp3"
    growing.write_bytes(bytes(4 * CHUNK))
    with growing.open("rb") as mp3, store.writer(mp3) as writer:
        writer.store_final()
        clock.at += timedelta(hours=1)
        assert store.sweep() == 1
        with pytest.raises(LeaseLost):
            writer.commit(owner, FACTS, QUOTA)
    assert stored_rows(db, fixed) == (0, 0)
    assert store.find(fixed, owner) is None


def test_a_token_names_its_user_and_nobody_else(db: Engine) -> None:
    accounts = Accounts(db, utc_now)
    alice = accounts.create(f"a-{uuid.uuid4()}")
    assert accounts.owner_of(alice.token) == alice.id
    assert accounts.owner_of(uuid.uuid4()) is None


def test_a_writer_left_without_commit_leaves_nothing(
    db: Engine, owner: uuid.UUID, tmp_path: Path
) -> None:
    store = RecordStore(db, CHUNK, utc_now)
    before = stored_rows(db)
    growing = tmp_path / "out.mp3"
    growing.write_bytes(bytes(5 * CHUNK))
    with growing.open("rb") as mp3, store.writer(mp3) as writer:
        writer.store_final()
        assert writer.stored == 5
    assert stored_rows(db) == before
    assert pending_count(db) == 0


def test_a_reservation_counts_while_its_writer_renews_it(
    db: Engine, owner: uuid.UUID, tmp_path: Path
) -> None:
    """Quota reserved before a conversion holds while its writer lives (renewing its lease as
    pieces are stored); a writer killed mid-upload stops holding it within ALIVE_WITHIN, long
    before the sweep (the lease, 32 min with the defaults)."""
    clock = Clock()
    store = RecordStore(db, CHUNK, clock, lease=timedelta(minutes=32))
    files = [(tmp_path / f"{n}.mp3") for n in range(4)]
    for path in files:
        path.write_bytes(bytes(CHUNK))
    mp3s = [path.open("rb") for path in files]
    try:
        dead = store.writer(mp3s[0]).__enter__()  # never left: its process is gone
        dead.reserve(owner, 600, 1000)
        with store.writer(mp3s[1]) as refused, pytest.raises(QuotaExceeded) as full:
            refused.reserve(owner, 600, 1000)
        assert (full.value.reserved, full.value.size) == (600, 600)
        clock.at += ALIVE_WITHIN + timedelta(seconds=1)
        with store.writer(mp3s[2]) as live:
            live.reserve(owner, 600, 1000)  # the dead writer's reservation no longer counts
            for _ in range(8):  # four minutes of a slow upload, a piece stored now and then
                clock.at += timedelta(seconds=31)
                live.store_final()
            with store.writer(mp3s[3]) as other, pytest.raises(QuotaExceeded):
                other.reserve(owner, 600, 1000)
    finally:
        for mp3 in mp3s:
            mp3.close()
