"""Users and their tokens. Tokens exist in clear only in the 201 answer; at rest, their SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from common.storage.db import users

_NO_SUCH_USER_HASH = hashlib.sha256(b"no such user").digest()


class NameTaken(Exception):
    """Another user already has this name (409)."""


@dataclass(frozen=True)
class NewUser:
    id: uuid.UUID
    token: uuid.UUID


def token_hash(token: uuid.UUID) -> bytes:
    return hashlib.sha256(token.bytes).digest()


class Accounts:
    def __init__(
        self,
        engine: Engine,
        now: Callable[[], datetime],
        new_uuid: Callable[[], uuid.UUID] = uuid.uuid4,
    ) -> None:
        # Each call is a single statement: no transaction around it, no BEGIN/COMMIT round trips.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._now = now
        self._new_uuid = new_uuid

    def create(self, name: str) -> NewUser:
        user = NewUser(id=self._new_uuid(), token=self._new_uuid())
        try:
            with self._engine.connect() as conn:
                conn.execute(
                    users.insert(),
                    {
                        "id": user.id,
                        "name": name,
                        "token_hash": token_hash(user.token),
                        "created_at": self._now(),
                    },
                )
        except sa.exc.IntegrityError:
            raise NameTaken(name) from None
        return user

    def owner_of(self, token: uuid.UUID) -> uuid.UUID | None:
        """The user whose token this is, if any: one lookup of its hash in a unique index."""
        with self._engine.connect() as conn:
            found: uuid.UUID | None = conn.execute(
                sa.select(users.c.id).where(users.c.token_hash == token_hash(token))
            ).scalar_one_or_none()
        return found

    def authenticate(self, user_id: uuid.UUID, token: uuid.UUID | None) -> bool:
        """True when `token` is this user's; the same work is done for unknown users."""
        with self._engine.connect() as conn:
            stored = conn.execute(
                sa.select(users.c.token_hash).where(users.c.id == user_id)
            ).scalar_one_or_none()
        presented = token_hash(token) if token is not None else b""
        matches = hmac.compare_digest(presented, stored or _NO_SUCH_USER_HASH)
        return matches and stored is not None and token is not None
