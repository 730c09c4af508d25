"""Records and their MP3 bytes as fixed-size chunk rows.

A record and all of its chunks are written in one transaction (the chunks first, the record row
last, the foreign key checked at commit): a record is visible whole or not at all. Reads fetch only
the rows that a byte range touches, a chunk at a time, so no request holds a whole file in memory.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from common.config import Settings
from common.storage.db import record_chunks, records, users, utc_now


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


class UnknownCursor(ValueError):
    """The `before` cursor of a listing is not one of the user's records."""


class QuotaExceeded(Exception):
    """Storing the MP3 would take the user's stored bytes past their quota."""

    def __init__(self, used: int, size: int, quota: int) -> None:
        super().__init__(f"{used} bytes stored + {size} bytes > quota of {quota} bytes")
        self.used = used
        self.size = size
        self.quota = quota


class RecordStore:
    def __init__(
        self,
        engine: Engine,
        chunk_bytes: int,
        now: Callable[[], datetime],
        new_uuid: Callable[[], uuid.UUID] = uuid.uuid4,
    ) -> None:
        self._engine = engine
        # Reads are single statements: no transaction around them, no BEGIN/ROLLBACK round trips.
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._chunk_bytes = chunk_bytes
        self._now = now
        self._new_uuid = new_uuid
        self._streaming = engine.dialect.name != "sqlite"

    def used_bytes(self, user_id: uuid.UUID) -> int:
        """MP3 bytes the user has stored."""
        with self._reader.connect() as conn:
            return _used_bytes(conn, user_id)

    def writer(self, mp3: BinaryIO) -> RecordWriter:
        """A writer of the MP3 file `mp3` as a new record: use it as a context manager; what it
        has not committed when the block ends is rolled back."""
        return RecordWriter(
            self._engine,
            mp3,
            chunk_bytes=self._chunk_bytes,
            now=self._now,
            record_id=self._new_uuid(),
            streaming=self._streaming,
        )

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
        """Remove the record and, by cascade, its chunks; False if the user has no such record."""
        with self._engine.begin() as conn:
            deleted = conn.execute(
                records.delete().where(records.c.id == record_id, records.c.user_id == user_id)
            )
        return deleted.rowcount == 1

    def read(self, record: Record, start: int, stop: int) -> Iterator[bytes]:
        """Yield bytes [start, stop) of the MP3, a chunk row (or the part of one needed) at a time.

        Lazy: no connection is taken until the first chunk is asked for. Should the record be
        deleted meanwhile, the stream ends early and the client sees a body short of its length.
        """
        size = record.chunk_bytes
        data = record_chunks.c.data
        with self._reader.connect() as conn:
            for seq in range(start // size, (stop - 1) // size + 1):
                low, high = max(start - seq * size, 0), min(stop - seq * size, size)
                column = (
                    data if (low, high) == (0, size) else sa.func.substr(data, low + 1, high - low)
                )
                piece = conn.execute(
                    sa.select(column).where(
                        record_chunks.c.record_id == record.id, record_chunks.c.seq == seq
                    )
                ).scalar_one_or_none()
                if piece is None:
                    return
                yield bytes(piece)


def open_store(engine: Engine, settings: Settings) -> RecordStore:
    """The functions' record store. The one place that picks where MP3 bytes live: another
    backend (an object store) would be a class with RecordStore's methods, chosen here."""
    return RecordStore(engine, settings.chunk_bytes, now=utc_now)


class RecordWriter:
    """One new record's chunk rows and record row, in one transaction: the chunks go in first, the
    record row last, and the foreign key is checked at commit, so a record is visible whole or
    not at all, whatever fails or crashes on the way.

    While ffmpeg still writes the MP3, `store_final` copies the chunks it has finished, so that
    little is left to store after the upload's last byte. ffmpeg writes front to back, but fills
    in the first bytes (the Xing/LAME header with the exact length) when it ends: the first chunk
    is stored only by `commit`. On SQLite (local runs), a write transaction would lock the whole
    database for the upload's length, so everything waits for `commit` there.
    """

    def __init__(
        self,
        engine: Engine,
        mp3: BinaryIO,
        *,
        chunk_bytes: int,
        now: Callable[[], datetime],
        record_id: uuid.UUID,
        streaming: bool,
    ) -> None:
        self._engine = engine
        self._mp3 = mp3
        self._chunk_bytes = chunk_bytes
        self._now = now
        self._record_id = record_id
        self._streaming = streaming
        self._conn: sa.Connection | None = None
        self.stored = 1
        """Chunks 1 .. stored - 1 are in the transaction."""

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            self._conn.close()

    def store_final(self) -> None:
        """Store the chunks of the MP3 (a file ffmpeg is writing) that are complete and final."""
        if not self._streaming:
            return
        size = os.fstat(self._mp3.fileno()).st_size
        while (self.stored + 1) * self._chunk_bytes <= size:
            self._mp3.seek(self.stored * self._chunk_bytes)
            self._insert(self.stored, self._mp3.read(self._chunk_bytes))
            self.stored += 1

    def commit(self, user_id: uuid.UUID, facts: AudioFacts, quota_bytes: int) -> uuid.UUID:
        """Store the rest of the finished MP3, hashing the whole on the way, then the record row.

        The user's row is locked first, so that uploads of one user are counted against the quota
        one after the other (QuotaExceeded when this one would pass it); other users never wait.
        """
        digest = hashlib.sha256()
        size = 0
        seq = 0
        self._mp3.seek(0)
        while piece := self._mp3.read(self._chunk_bytes):
            digest.update(piece)
            size += len(piece)
            if seq == 0 or seq >= self.stored:
                self._insert(seq, piece)
            seq += 1
        conn = self._connection()
        conn.execute(sa.select(users.c.id).where(users.c.id == user_id).with_for_update())
        used = _used_bytes(conn, user_id)
        if used + size > quota_bytes:
            raise QuotaExceeded(used, size, quota_bytes)
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
        conn.commit()
        return self._record_id

    def _insert(self, seq: int, data: bytes) -> None:
        self._connection().execute(
            record_chunks.insert(), {"record_id": self._record_id, "seq": seq, "data": data}
        )

    def _connection(self) -> sa.Connection:
        if self._conn is None:
            self._conn = self._engine.connect()
            self._conn.begin()
        return self._conn


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
