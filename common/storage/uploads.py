"""Resumable uploads (tus): their state and received bytes, in the database only.

Any add_record process continues any upload: nothing about one is kept in a process or on a local
disk between requests. The bytes are written in short transactions as they arrive (no transaction
spans the client's sending); the offset is what is stored, so after a crash HEAD reports exactly
what was kept. One PATCH at a time writes to an upload: it takes the upload's lock (its own id and
a lease in the uploads row), renews the lease with every write, and each write checks that it still
holds it, in the same transaction: a PATCH whose lease lapsed (its worker died, or its client went
silent) is replaced by the next one, and the old one can no longer write a byte.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from common.config import Settings
from common.storage.db import delete_with_chunks, upload_chunks, uploads, users, utc_now

logger = logging.getLogger(__name__)

SWEEP_EVERY_S = 60.0
"""How often, at most, a process removes expired uploads."""


class LockLost(Exception):
    """Another PATCH took this upload over (this one's lease had lapsed): it writes no more."""


@dataclass(frozen=True)
class Upload:
    id: uuid.UUID
    user_id: uuid.UUID
    length: int
    name: str | None
    expires_at: datetime
    wav_ok: bool
    """Its WAV header has been read and passed the checks."""
    record_id: uuid.UUID | None
    offset: int
    """Bytes stored, from the first on."""


class UploadStore:
    def __init__(
        self,
        engine: Engine,
        now: Callable[[], datetime],
        expiry: timedelta,
        lease: timedelta,
        new_uuid: Callable[[], uuid.UUID] = uuid.uuid4,
    ) -> None:
        self._engine = engine
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._now = now
        self._expiry = expiry
        self._lease = lease
        self._new_uuid = new_uuid
        self._next_sweep = 0.0

    def create(
        self, user_id: uuid.UUID, length: int, name: str | None, max_open: int
    ) -> Upload | None:
        """A new upload, or None when the user already has `max_open` unfinished ones (counted
        under a lock on the user's row, so that racing creations cannot pass the limit)."""
        self.sweep_now_and_then()
        now = self._now()
        upload = Upload(self._new_uuid(), user_id, length, name, now + self._expiry, False, None, 0)
        with self._engine.begin() as conn:
            conn.execute(sa.select(users.c.id).where(users.c.id == user_id).with_for_update())
            open_uploads = conn.execute(
                sa.select(sa.func.count())
                .select_from(uploads)
                .where(
                    uploads.c.user_id == user_id,
                    uploads.c.record_id.is_(None),
                    uploads.c.expires_at > now,
                )
            ).scalar_one()
            if open_uploads >= max_open:
                return None
            conn.execute(
                uploads.insert(),
                {
                    "id": upload.id,
                    "user_id": user_id,
                    "length": length,
                    "name": name,
                    "created_at": now,
                    "expires_at": upload.expires_at,
                },
            )
        return upload

    def find(self, upload_id: uuid.UUID, user_id: uuid.UUID) -> Upload | None:
        """The upload if it exists, has not expired and belongs to `user_id`. Sweeps now and
        then on the way: expired uploads go without any outside job."""
        self.sweep_now_and_then()
        with self._reader.connect() as conn:
            row = conn.execute(
                sa.select(uploads).where(
                    uploads.c.id == upload_id,
                    uploads.c.user_id == user_id,
                    uploads.c.expires_at > self._now(),
                )
            ).one_or_none()
            if row is None:
                return None
            offset = row.length if row.record_id is not None else _offset(conn, upload_id)
        return Upload(
            row.id,
            row.user_id,
            row.length,
            row.name,
            _aware(row.expires_at),
            row.wav_ok,
            row.record_id,
            offset,
        )

    def remove(self, upload_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Remove the upload and its bytes (a record it became stays); False if there is none."""
        owned = uploads.delete().where(uploads.c.id == upload_id, uploads.c.user_id == user_id)
        with self._engine.begin() as conn:
            return bool(_delete_uploads(conn, owned))

    def read(self, upload_id: uuid.UUID, start: int, stop: int) -> Iterator[bytes]:
        """The stored bytes [start, stop), a row at a time (no connection held between rows)."""
        position = start
        while position < stop:
            with self._reader.connect() as conn:
                row = conn.execute(
                    sa.select(upload_chunks.c.start, upload_chunks.c.data)
                    .where(
                        upload_chunks.c.upload_id == upload_id,
                        upload_chunks.c.start <= position,
                    )
                    .order_by(upload_chunks.c.start.desc())
                    .limit(1)
                ).one_or_none()
            if row is None:
                return
            data = bytes(row.data)[position - row.start : stop - row.start]
            if not data:
                return
            yield data
            position += len(data)

    @contextmanager
    def patch(self, upload: Upload) -> Iterator[Patch | None]:
        """Hold the upload's lock for one PATCH (None: another PATCH holds it, or the upload has
        just become a record), released at the end of the block. The lock of a PATCH whose lease
        has lapsed is taken over."""
        patch_id = self._new_uuid()
        now = self._now()
        with self._engine.begin() as conn:
            taken = conn.execute(
                uploads.update()
                .where(
                    uploads.c.id == upload.id,
                    uploads.c.expires_at > now,
                    uploads.c.record_id.is_(None),
                    sa.or_(uploads.c.patch_id.is_(None), uploads.c.patch_until < now),
                )
                .values(patch_id=patch_id, patch_until=now + self._lease)
            ).rowcount
            offset = _offset(conn, upload.id) if taken else 0
        if not taken:
            yield None
            return
        patch = Patch(
            self._engine,
            upload,
            now=self._now,
            patch_id=patch_id,
            offset=offset,
            lease=self._lease,
            expiry=self._expiry,
        )
        try:
            yield patch
        finally:
            patch.release()

    def sweep_now_and_then(self) -> None:
        if time.monotonic() >= self._next_sweep:
            self.sweep()

    def sweep(self) -> int:
        """Remove expired uploads and their bytes (none that a live PATCH holds); returns how
        many were removed."""
        self._next_sweep = time.monotonic() + SWEEP_EVERY_S
        now = self._now()
        expired = uploads.delete().where(
            uploads.c.expires_at < now,
            sa.or_(uploads.c.patch_id.is_(None), uploads.c.patch_until < now),
        )
        with self._engine.begin() as conn:
            return len(_delete_uploads(conn, expired))


class Patch:
    """One PATCH's hold on an upload: it appends bytes at `offset` and may publish the upload's
    record, each only while it still holds the lock (LockLost otherwise)."""

    def __init__(
        self,
        engine: Engine,
        upload: Upload,
        *,
        now: Callable[[], datetime],
        patch_id: uuid.UUID,
        offset: int,
        lease: timedelta,
        expiry: timedelta,
    ) -> None:
        self._engine = engine
        self._now = now
        self.upload = upload
        self._id = patch_id
        self.offset = offset
        """Bytes stored when the lock was taken, plus those this PATCH has appended."""
        self._lease = lease
        self._expiry = expiry
        self._renewed = now()

    def append(self, data: bytes) -> None:
        """Store `data` at the current offset, renewing the lease and the expiry."""
        with self._engine.begin() as conn:
            self._renew(conn)
            conn.execute(
                upload_chunks.insert(),
                {"upload_id": self.upload.id, "start": self.offset, "data": data},
            )
        self.offset += len(data)

    def keep_alive(self) -> None:
        """Renew the lease if a quarter of it has gone by since the last renewal."""
        if self._now() - self._renewed > self._lease / 4:
            with self._engine.begin() as conn:
                self._renew(conn)

    def wav_checked(self) -> None:
        """Note that the upload's WAV header passed the checks (later PATCHes skip them)."""
        with self._engine.begin() as conn:
            self._renew(conn)
            conn.execute(uploads.update().where(uploads.c.id == self.upload.id).values(wav_ok=True))

    def publish(self, conn: sa.Connection, record_id: uuid.UUID) -> None:
        """Inside the transaction that publishes the record: mark the upload as that record's
        and drop its bytes. LockLost when another PATCH holds it or it already has a record, so
        an upload becomes at most one record."""
        done = conn.execute(
            uploads.update()
            .where(
                uploads.c.id == self.upload.id,
                uploads.c.patch_id == self._id,
                uploads.c.record_id.is_(None),
            )
            .values(record_id=record_id, expires_at=self._now() + self._expiry)
        )
        if done.rowcount != 1:
            raise LockLost(self.upload.id)
        conn.execute(upload_chunks.delete().where(upload_chunks.c.upload_id == self.upload.id))

    def release(self) -> None:
        """Give the lock up; should the database be unreachable, its lease lapses instead."""
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    uploads.update()
                    .where(uploads.c.id == self.upload.id, uploads.c.patch_id == self._id)
                    .values(patch_id=None, patch_until=None)
                )
        except sa.exc.SQLAlchemyError:
            logger.warning("the lock of upload %s is left to lapse", self.upload.id)

    def _renew(self, conn: sa.Connection) -> None:
        now = self._now()
        renewed = conn.execute(
            uploads.update()
            .where(uploads.c.id == self.upload.id, uploads.c.patch_id == self._id)
            .values(patch_until=now + self._lease, expires_at=now + self._expiry)
        )
        if renewed.rowcount != 1:
            raise LockLost(self.upload.id)
        self._renewed = now


def _delete_uploads(conn: sa.Connection, rows: sa.Delete) -> list[uuid.UUID]:
    return delete_with_chunks(conn, rows, uploads.c.id, upload_chunks.c.upload_id)


def _offset(conn: sa.Connection, upload_id: uuid.UUID) -> int:
    """Bytes stored: the end of the last piece (pieces are written front to back, no gaps)."""
    end = conn.execute(
        sa.select(upload_chunks.c.start + sa.func.length(upload_chunks.c.data))
        .where(upload_chunks.c.upload_id == upload_id)
        .order_by(upload_chunks.c.start.desc())
        .limit(1)
    ).scalar_one_or_none()
    return int(end or 0)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


PATCH_LEASE = timedelta(seconds=15)
"""How long a PATCH that has stopped receiving keeps the upload's lock: after that, the client's
next PATCH (it reconnected; the old connection is dead and its read not yet timed out) takes the
upload over. A PATCH receiving bytes renews it with each write (at least every FLUSH_EVERY_S)."""


def open_uploads(engine: Engine, settings: Settings) -> UploadStore:
    return UploadStore(
        engine, utc_now, expiry=timedelta(seconds=settings.upload_expiry_s), lease=PATCH_LEASE
    )
