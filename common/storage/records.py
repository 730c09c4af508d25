"""Records and their MP3 bytes as fixed-size chunk rows.

A record's chunks are committed as they are made, under a pending row no reader looks at; the
record row that makes them visible comes last, in one short transaction (RecordWriter): a record is
visible whole or not at all. Reads fetch only the rows that a byte range touches, a chunk at a
time, so no request holds a whole file in memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from common.config import Settings
from common.storage.db import (
    delete_with_chunks,
    pending_records,
    record_chunks,
    records,
    users,
    utc_now,
)

logger = logging.getLogger(__name__)

SWEEP_EVERY_S = 60.0
RENEW_EVERY = timedelta(seconds=30)
"""How often a writer renews its lease while its upload runs (at most: each stored piece renews
when due), so that its quota reservation is known to be alive."""
ALIVE_WITHIN = timedelta(minutes=2)
"""A reservation counts while its lease was renewed this recently: a worker killed mid-upload
stops holding its user's quota within this, long before the sweep takes its rows (the lease)."""
"""How often, at most, a process looks for pending records whose lease has lapsed."""


@dataclass(frozen=True)
class AudioFacts:
    """What the upload path learnt about the audio, stored beside the MP3."""

    name: str | None
    channels: int
    sample_rate: int
    duration_ms: int


@dataclass(frozen=True)
class Record:
    id: uuid.UUID
    user_id: uuid.UUID
    name: str | None
    channels: int
    sample_rate: int
    duration_ms: int
    size: int
    sha256: str
    chunk_bytes: int
    created_at: datetime


class RecordGone(Exception):
    """A chunk of a record being read is not there: the record was deleted meanwhile (or, on a
    replica, is not replayed yet). The reader stops rather than send a body short of its length."""


class UnknownCursor(ValueError):
    """The `before` cursor of a listing is not one of the user's records."""


class QuotaExceeded(Exception):
    """Storing the MP3 would take the user's stored bytes past their quota: `used` bytes stored,
    `reserved` by the user's other records being made, `size` this one's (at least)."""

    def __init__(self, used: int, size: int, quota: int, reserved: int = 0) -> None:
        super().__init__(
            f"{used} bytes stored + {reserved} reserved + {size} bytes > quota of {quota} bytes"
        )
        self.used = used
        self.size = size
        self.quota = quota
        self.reserved = reserved


class LeaseLost(Exception):
    """A pending record's lease lapsed and the sweep removed its chunks before it was published
    (a writer stalled for longer than the lease): nothing is stored, the upload may be retried."""

    def __init__(self) -> None:
        super().__init__("the upload was interrupted before it could be stored; send it again")


class RecordStore:
    def __init__(
        self,
        engine: Engine,
        chunk_bytes: int,
        now: Callable[[], datetime],
        new_uuid: Callable[[], uuid.UUID] = uuid.uuid4,
        lease: timedelta = timedelta(hours=1),
    ) -> None:
        self._engine = engine
        # Reads are single statements: no transaction around them, no BEGIN/ROLLBACK round trips.
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._chunk_bytes = chunk_bytes
        self._now = now
        self._new_uuid = new_uuid
        self._lease = lease
        self._next_sweep = 0.0

    def used_bytes(self, user_id: uuid.UUID) -> int:
        """MP3 bytes the user has stored."""
        with self._reader.connect() as conn:
            return _used_bytes(conn, user_id)

    def writer(self, mp3: BinaryIO) -> RecordWriter:
        """A writer of the MP3 file `mp3` as a new record: use it as a context manager; what it
        has not committed when the block ends is removed. Sweeps now and then on the way."""
        if time.monotonic() >= self._next_sweep:
            self.sweep()
        return RecordWriter(
            self._engine,
            mp3,
            chunk_bytes=self._chunk_bytes,
            now=self._now,
            record_id=self._new_uuid(),
            lease=self._lease,
        )

    def sweep(self) -> int:
        """Remove the chunks of pending records whose lease has lapsed (their writer died);
        returns how many pending records were removed."""
        self._next_sweep = time.monotonic() + SWEEP_EVERY_S
        lapsed = pending_records.delete().where(pending_records.c.lease_until < self._now())
        with self._engine.begin() as conn:
            return len(_delete_pending(conn, lapsed))

    def find(self, record_id: uuid.UUID, user_id: uuid.UUID) -> Record | None:
        """The record if it exists and belongs to `user_id` (another user's is as good as none)."""
        with self._engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(records).where(
                        records.c.id == record_id, records.c.user_id == user_id
                    )
                )
                .mappings()
                .one_or_none()
            )
        return None if row is None else _record(row)

    def page(
        self, user_id: uuid.UUID, limit: int, before: uuid.UUID | None = None
    ) -> tuple[list[Record], uuid.UUID | None]:
        """A page of the user's records, newest first, and the cursor of the next page (if any).

        Raises UnknownCursor when `before` is not one of the user's records.
        """
        query = sa.select(records).where(records.c.user_id == user_id)
        with self._reader.connect() as conn:
            if before is not None:
                cursor = conn.execute(
                    sa.select(records.c.created_at, records.c.id).where(
                        records.c.id == before, records.c.user_id == user_id
                    )
                ).one_or_none()
                if cursor is None:
                    raise UnknownCursor(before)
                query = query.where(
                    sa.tuple_(records.c.created_at, records.c.id) < sa.tuple_(*cursor)
                )
            rows = (
                conn.execute(
                    query.order_by(records.c.created_at.desc(), records.c.id.desc()).limit(
                        limit + 1
                    )
                )
                .mappings()
                .all()
            )
        page = [_record(row) for row in rows[:limit]]
        return page, (page[-1].id if len(rows) > limit else None)

    def delete(self, record_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Remove the record and its chunks; False if the user has no such record."""
        owned = records.delete().where(records.c.id == record_id, records.c.user_id == user_id)
        with self._engine.begin() as conn:
            return bool(delete_with_chunks(conn, owned, records.c.id, record_chunks.c.record_id))

    def read(self, record: Record, start: int, stop: int) -> Iterator[bytes]:
        """Yield bytes [start, stop) of the MP3, a chunk row (or the part of one needed) at a time.

        Lazy: no connection is taken until the first chunk is asked for. Should the record be
        deleted meanwhile, RecordGone: the server cuts the connection at once.
        """
        with self._reader.connect() as conn:
            for query, params in _chunk_queries(record, start, stop):
                piece = conn.execute(query, params).scalar_one_or_none()
                if piece is None:
                    raise RecordGone(record.id)
                yield bytes(piece)


# Built once: a download of a long record asks for hundreds of chunks, and building a statement
# (and its cache key) anew for each cost about a sixth of get_record's time per MiB.
_WHOLE_CHUNK = sa.select(record_chunks.c.data).where(
    record_chunks.c.record_id == sa.bindparam("record_id"),
    record_chunks.c.seq == sa.bindparam("seq"),
)
_CHUNK_PART = _WHOLE_CHUNK.with_only_columns(
    sa.func.substr(record_chunks.c.data, sa.bindparam("low"), sa.bindparam("length"))
)
"""Bytes [low, low + length) of a chunk row, counted from 1: only the toast slices they touch."""


def _chunk_queries(
    record: Record, start: int, stop: int
) -> Iterator[tuple[sa.Select[Any], dict[str, Any]]]:
    """The query of each chunk row bytes [start, stop) of the record touch, with its parameters:
    the whole row's bytes, or the part of them needed."""
    size = record.chunk_bytes
    for seq in range(start // size, (stop - 1) // size + 1):
        low, high = max(start - seq * size, 0), min(stop - seq * size, size)
        key = {"record_id": record.id, "seq": seq}
        if (low, high) == (0, size):
            yield _WHOLE_CHUNK, key
        else:
            yield _CHUNK_PART, {**key, "low": low + 1, "length": high - low}


def open_store(engine: Engine, settings: Settings) -> RecordStore:
    """The functions' record store. The one place that picks where MP3 bytes live: another
    backend (an object store) would be a class with RecordStore's methods, chosen here."""
    return RecordStore(engine, settings.chunk_bytes, now=utc_now, lease=pending_lease(settings))


def pending_lease(settings: Settings) -> timedelta:
    """How long a pending record's chunks outlive their writer's last sign of life.

    The writer renews the lease after each piece of the WAV handed to ffmpeg; between two, it
    waits at most for the client (CLIENT_TIMEOUT_S, then 408) and for ffmpeg (FFMPEG_TIMEOUT_S,
    then 503). Twice their sum leaves a live writer's chunks alone whatever the machine's load.
    """
    return timedelta(seconds=2 * (settings.client_timeout_s + settings.ffmpeg_timeout_s))


class RecordWriter:
    """One new record: its chunks committed while the MP3 is made, its record row at the end.

    No transaction stays open across the upload's client I/O (a slow sender would hold a backend
    idle in transaction, vacuum's horizon and, through a pooler, a server connection for hours).
    Each finished chunk is committed in a transaction of its own, into record_chunks under the id
    the record will have; no reader sees it, since readers start from the record row. A
    pending_records row with a lease owns those chunks: every chunk and every `store_final` renews
    it, `commit` publishes the record (remaining chunks, the record row, the pending row gone) in
    one short transaction, and leaving the block without a commit removes them. A writer that dies
    leaves its chunks to `RecordStore.sweep` once its lease has lapsed.

    ffmpeg writes front to back, but fills in the first bytes (the Xing/LAME header with the exact
    length) when it ends: the first chunk is stored only by `commit`.
    """

    def __init__(
        self,
        engine: Engine,
        mp3: BinaryIO,
        *,
        chunk_bytes: int,
        now: Callable[[], datetime],
        record_id: uuid.UUID,
        lease: timedelta,
    ) -> None:
        self._engine = engine
        self._mp3 = mp3
        self._chunk_bytes = chunk_bytes
        self._now = now
        self._record_id = record_id
        self._lease = lease
        self._leased_at: datetime | None = None
        self._committed = False
        self.stored = 1
        """Chunks 1 .. stored - 1 are committed (pending until the record row is)."""

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._leased_at is not None and not self._committed:
            self._discard()

    def reserve(self, user_id: uuid.UUID, size: int, quota_bytes: int) -> None:
        """Count `size` bytes, the least this MP3 will take, against the user's quota while it is
        made, before its conversion starts: QuotaExceeded when what is stored, what the user's
        other records being made have reserved (their leases renewed within ALIVE_WITHIN) and
        this do not fit. Takes the pending row's lease; the user's row is locked, as for
        `commit`."""
        with self._engine.begin() as conn:
            _lock_user(conn, user_id)
            used = _used_bytes(conn, user_id)
            reserved = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(pending_records.c.reserved_bytes), 0)).where(
                    pending_records.c.user_id == user_id,
                    pending_records.c.id != self._record_id,
                    pending_records.c.lease_until >= self._now() + self._lease - ALIVE_WITHIN,
                )
            ).scalar_one()
            if used + reserved + size > quota_bytes:
                raise QuotaExceeded(used, size, quota_bytes, int(reserved))
            self._hold(conn, user_id=user_id, reserved_bytes=size)

    def store_final(self) -> None:
        """Store the chunks of the MP3 (a file ffmpeg is writing) that are complete and final,
        each in a short transaction; renew the lease when it is due even if none is."""
        size = os.fstat(self._mp3.fileno()).st_size
        while (self.stored + 1) * self._chunk_bytes <= size:
            self._mp3.seek(self.stored * self._chunk_bytes)
            piece = self._mp3.read(self._chunk_bytes)
            with self._engine.begin() as conn:
                self._hold(conn)
                self._insert(conn, self.stored, piece)
            self.stored += 1
        if self._leased_at is not None and self._now() - self._leased_at > min(
            self._lease / 8, RENEW_EVERY
        ):
            with self._engine.begin() as conn:
                self._hold(conn)

    def commit(
        self,
        user_id: uuid.UUID,
        facts: AudioFacts,
        quota_bytes: int,
        also: Callable[[sa.Connection, uuid.UUID], None] | None = None,
    ) -> uuid.UUID:
        """Publish the record in one transaction: the rest of the finished MP3 (hashing the whole
        on the way), the pending row released, `also` (given the connection and the record's id:
        what else must happen with the record or not at all), then the record row.

        The user's row is locked last, so that uploads of one user are counted against the quota
        one after the other (QuotaExceeded when this one would pass it); other users never wait.
        """
        digest = hashlib.sha256()
        size = 0
        seq = 0
        self._mp3.seek(0)
        with self._engine.begin() as conn:
            while piece := self._mp3.read(self._chunk_bytes):
                digest.update(piece)
                size += len(piece)
                if seq == 0 or seq >= self.stored:
                    self._insert(conn, seq, piece)
                seq += 1
            if self._leased_at is not None:
                released = conn.execute(
                    pending_records.delete().where(pending_records.c.id == self._record_id)
                )
                if released.rowcount != 1:
                    raise LeaseLost
            _lock_user(conn, user_id)
            used = _used_bytes(conn, user_id)
            if used + size > quota_bytes:
                raise QuotaExceeded(used, size, quota_bytes)
            if also is not None:
                also(conn, self._record_id)
            conn.execute(
                records.insert(),
                {
                    "id": self._record_id,
                    "user_id": user_id,
                    "name": facts.name,
                    "channels": facts.channels,
                    "sample_rate": facts.sample_rate,
                    "duration_ms": facts.duration_ms,
                    "size": size,
                    "sha256": digest.hexdigest(),
                    "chunk_bytes": self._chunk_bytes,
                    "created_at": self._now(),
                },
            )
        self._committed = True
        return self._record_id

    def _hold(self, conn: sa.Connection, **owner: object) -> None:
        """Take the pending row's lease, or renew it; LeaseLost when the sweep took it meanwhile.

        The renewal locks the row, so a sweep running at the same moment either waits and then
        sees the new lease, or wins and makes this write fail: no chunk is ever left unowned.
        """
        now = self._now()
        if self._leased_at is None:
            conn.execute(
                pending_records.insert(),
                {"id": self._record_id, "lease_until": now + self._lease, **owner},
            )
        else:
            renewed = conn.execute(
                pending_records.update()
                .where(pending_records.c.id == self._record_id)
                .values(lease_until=now + self._lease, **owner)
            )
            if renewed.rowcount != 1:
                raise LeaseLost
        self._leased_at = now

    def _insert(self, conn: sa.Connection, seq: int, data: bytes) -> None:
        conn.execute(
            record_chunks.insert(), {"record_id": self._record_id, "seq": seq, "data": data}
        )

    def _discard(self) -> None:
        """Remove the pending row and its chunks; should the database be unreachable, the sweep
        removes them once the lease has lapsed."""
        try:
            with self._engine.begin() as conn:
                _delete_pending(
                    conn, pending_records.delete().where(pending_records.c.id == self._record_id)
                )
        except sa.exc.SQLAlchemyError:
            logger.warning("pending record %s left to the sweep", self._record_id)


def _delete_pending(conn: sa.Connection, rows: sa.Delete) -> list[uuid.UUID]:
    return delete_with_chunks(conn, rows, pending_records.c.id, record_chunks.c.record_id)


def _lock_user(conn: sa.Connection, user_id: uuid.UUID) -> None:
    """Uploads of one user are counted against the quota one after the other."""
    conn.execute(sa.select(users.c.id).where(users.c.id == user_id).with_for_update())


def _used_bytes(conn: sa.Connection, user_id: uuid.UUID) -> int:
    total = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(records.c.size), 0)).where(
            records.c.user_id == user_id
        )
    ).scalar_one()
    return int(total)


def _record(row: sa.RowMapping) -> Record:
    created_at = row["created_at"]
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return Record(**{**row, "created_at": created_at})
