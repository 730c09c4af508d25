"""Where get_record reads: the primary decides, a streaming replica (DATABASE_READ_URL) carries.

Whether a record exists and whose it is, who a token belongs to, and what a listing holds are read
on the primary: each is one or a few indexed rows, and the replica lags by its replication delay,
in which it would still serve a record deleted a moment ago (second security review, finding 4).
The heavy part, the MP3's chunk rows, is read on the replica:

- a record's chunks are all committed before its record row (common/storage/records.py), and a
  standby replays commits in order, so once the replica has the row it has every chunk; a record
  the replica has not replayed yet (an upload of a moment ago) has no chunk there, and the range
  comes from the primary, from the first byte not yet sent;
- a replica that cannot be reached (refused, timed out, shut down, a query cancelled by a conflict
  with recovery) is skipped with one warning in the log, and left alone for `REPLICA_REST_S`
  seconds, during which everything is read on the primary: no 5xx, and no request waits out a
  connect timeout per query; one that fails mid-stream leaves the rest to the primary too.

A record deleted while its download is under way: the replica may still send it whole (its last
state before the delete); the primary, missing a chunk, ends the stream with RecordGone, and the
connection is cut at once rather than left short of its Content-Length.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from common.http.auth import authenticate
from common.storage.accounts import Accounts
from common.storage.db import create_engine
from common.storage.records import Record, RecordGone, RecordStore

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
class Found:
    """A record, as the primary has it, and the store its chunks are read from."""

    record: Record
    chunks: RecordStore


@dataclass(frozen=True)
class Listing:
    records: list[Record]
    next_cursor: uuid.UUID | None
    used_bytes: int


class ReadSide:
    """get_record's reads: everything on the primary (`records`, `accounts`), but chunk rows on
    `replica` when there is one and it answers."""

    def __init__(
        self,
        records: RecordStore,
        accounts: Accounts,
        replica: RecordStore | None = None,
        *,
        replica_name: str = "replica",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._records = records
        self._accounts = accounts
        self._replica = replica
        self._replica_name = replica_name
        self._clock = clock
        self._resting_until = float("-inf")

    def find(self, record_id: uuid.UUID, user_id: uuid.UUID) -> Found | None:
        """The user's record, as the primary has it; its chunks are then read on the replica
        while one is available."""
        record = self._records.find(record_id, user_id)
        if record is None:
            return None
        return Found(record, self._available_replica() or self._records)

    def read(self, found: Found, start: int, stop: int) -> Iterator[bytes]:
        """Bytes [start, stop) of the record's MP3 (lazily, as RecordStore.read), from where it was
        found; whatever the replica does not send comes from the primary."""
        position = start
        if found.chunks is not self._records and self._available_replica() is not None:
            try:
                for piece in found.chunks.read(found.record, start, stop):
                    position += len(piece)
                    yield piece
            except RecordGone:
                pass  # not replayed there yet
            except UNAVAILABLE as error:
                self._skip(error)
            if position >= stop:
                return
        yield from self._records.read(found.record, position, stop)

    def authenticate(self, user_id: uuid.UUID, token: str | None) -> None:
        """401 unless `token` is the user's (common.http.auth.authenticate), on the primary."""
        authenticate(self._accounts, user_id, token)

    def listing(self, user_id: uuid.UUID, limit: int, before: uuid.UUID | None) -> Listing:
        """A page of the user's records (RecordStore.page) and their stored bytes, on the
        primary; UnknownCursor when it does not know `before`."""
        page, next_cursor = self._records.page(user_id, limit, before)
        return Listing(page, next_cursor, self._records.used_bytes(user_id))

    def _available_replica(self) -> RecordStore | None:
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


def _one_line(error: Exception) -> str:
    """The driver's own message (libpq's, which never holds a password), on one line, without
    SQLAlchemy's statement and parameters."""
    cause = error.orig if isinstance(error, sa.exc.DBAPIError) else error
    text = re.sub(r"\s+", " ", str(cause)).strip()
    return f"{type(cause).__name__}: {text}"[:500]
