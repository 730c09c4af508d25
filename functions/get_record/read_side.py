"""Where get_record reads: a streaming replica first (DATABASE_READ_URL), the primary behind it.

Whatever the replica cannot answer, the primary does, so that the replica only ever takes load off
the primary and never changes an answer:

- a record or a user the replica does not have (yet: replication lag right after an upload or a
  new account) is looked up on the primary before the answer is 404 or 401; this costs a second
  query on misses only;
- a replica that cannot be reached (refused, timed out, shut down, a query cancelled by a conflict
  with recovery) is skipped with one warning in the log, and left alone for `REPLICA_REST_S`
  seconds, during which everything is read on the primary: no 5xx, and no request waits out a
  connect timeout per query;
- the chunks of a record found on the replica are streamed from the replica. A record row and all
  of its chunk rows are committed in one transaction (common/storage/records.py), and a standby
  applies a transaction whole, so a record visible on the replica has every chunk there too. The
  replica may still go down mid-stream (or miss a chunk): the rest of the range, from the first
  byte not yet sent, then comes from the primary.

A listing is read where the user was authenticated: on the replica, it may lag the primary by the
replication delay (a record uploaded a moment ago may be missing from it, one just deleted still
listed); a `before` cursor the replica does not know is looked up on the primary.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import falcon
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from common.http.auth import authenticate
from common.storage.accounts import Accounts
from common.storage.db import create_engine
from common.storage.records import Record, RecordStore, UnknownCursor

REPLICA_CONNECT_TIMEOUT_S = 2
"""libpq's connect_timeout for the replica: how long a request may wait on one that is down."""
REPLICA_REST_S = 5.0
"""How long a replica found unreachable is left alone (per worker process) before it is retried."""
UNAVAILABLE: tuple[type[Exception], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,
)
"""What the primary would answer with 503 (common/http/app.py); of the replica, it is skipped."""

logger = logging.getLogger(__name__)


def create_read_engine(url: str, pool_size: int) -> Engine:
    """The replica's engine of this worker process: the primary's kind (common.storage.db, with
    pool_pre_ping), but a short connect timeout, since the primary stands behind it."""
    engine = create_engine(url, pool_size)
    sa.event.listen(engine, "do_connect", _quick_connect)
    return engine


def _quick_connect(
    dialect: object, record: object, cargs: object, cparams: dict[str, object]
) -> None:
    cparams["connect_timeout"] = REPLICA_CONNECT_TIMEOUT_S


@dataclass(frozen=True)
class Source:
    """One database that get_record reads: its records and its accounts."""

    records: RecordStore
    accounts: Accounts


@dataclass(frozen=True)
class Found:
    """A record and the database it was found on (where its chunks are read)."""

    record: Record
    source: Source


@dataclass(frozen=True)
class Listing:
    records: list[Record]
    next_cursor: uuid.UUID | None
    used_bytes: int


class ReadSide:
    """get_record's reads: on `replica` when there is one and it answers, else on `primary`."""

    def __init__(
        self,
        primary: Source,
        replica: Source | None = None,
        *,
        replica_name: str = "replica",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary = primary
        self._replica = replica
        self._replica_name = replica_name
        self._clock = clock
        self._resting_until = float("-inf")

    def find(self, record_id: uuid.UUID, user_id: uuid.UUID) -> Found | None:
        """The user's record, from the replica, or from the primary if the replica lacks it."""
        replica = self._available_replica()
        if replica is not None:
            try:
                record = replica.records.find(record_id, user_id)
            except UNAVAILABLE as error:
                self._skip(error)
            else:
                if record is not None:
                    return Found(record, replica)
        record = self._primary.records.find(record_id, user_id)
        return None if record is None else Found(record, self._primary)

    def read(self, found: Found, start: int, stop: int) -> Iterator[bytes]:
        """Bytes [start, stop) of the record's MP3 (lazily, as RecordStore.read), from where it was
        found; whatever the replica fails to send comes from the primary."""
        position = start
        if found.source is not self._primary and self._available_replica() is not None:
            try:
                for piece in found.source.records.read(found.record, start, stop):
                    position += len(piece)
                    yield piece
            except UNAVAILABLE as error:
                self._skip(error)
            if position >= stop:
                return
        yield from self._primary.records.read(found.record, position, stop)

    def authenticate(self, user_id: uuid.UUID, token: str | None) -> Source:
        """401 unless `token` is the user's (common.http.auth.authenticate); the database that
        knows the user, where their listing is then read."""
        replica = self._available_replica()
        if replica is not None:
            try:
                authenticate(replica.accounts, user_id, token)
            except falcon.HTTPUnauthorized:
                # A user newer than the replica's last replay, or a wrong token: ask the primary.
                pass
            except UNAVAILABLE as error:
                self._skip(error)
            else:
                return replica
        authenticate(self._primary.accounts, user_id, token)
        return self._primary

    def listing(
        self, source: Source, user_id: uuid.UUID, limit: int, before: uuid.UUID | None
    ) -> Listing:
        """A page of the user's records (RecordStore.page) and their stored bytes, on `source`;
        UnknownCursor when not even the primary knows `before`."""
        if source is not self._primary and self._available_replica() is not None:
            try:
                return _listing(source.records, user_id, limit, before)
            except UnknownCursor:
                pass  # a record newer than the replica's last replay: ask the primary
            except UNAVAILABLE as error:
                self._skip(error)
        return _listing(self._primary.records, user_id, limit, before)

    def _available_replica(self) -> Source | None:
        if self._replica is None or self._clock() < self._resting_until:
            return None
        return self._replica

    def _skip(self, error: Exception) -> None:
        self._resting_until = self._clock() + REPLICA_REST_S
        logger.warning(
            json.dumps(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "level": "warning",
                    "function": "get_record",
                    "event": "replica unavailable",
                    "replica": self._replica_name,
                    "error": _one_line(error),
                    "action": f"reading from the primary for {REPLICA_REST_S:g} s",
                },
                ensure_ascii=False,
            )
        )


def replica_name(url: str) -> str:
    """How the log names a replica: its URL without the password."""
    return sa.make_url(url).render_as_string(hide_password=True)


def _listing(
    records: RecordStore, user_id: uuid.UUID, limit: int, before: uuid.UUID | None
) -> Listing:
    page, next_cursor = records.page(user_id, limit, before)
    return Listing(page, next_cursor, records.used_bytes(user_id))


def _one_line(error: Exception) -> str:
    """The driver's own message (libpq's, which never holds a password), on one line, without
    SQLAlchemy's statement and parameters."""
    cause = error.orig if isinstance(error, sa.exc.DBAPIError) else error
    text = re.sub(r"\s+", " ", str(cause)).strip()
    return f"{type(cause).__name__}: {text}"[:500]
