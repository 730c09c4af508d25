"""GET /records: a user's records, newest first, a page at a time (for the web page)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import falcon

from common.http.auth import authenticate, request_token
from common.http.params import required_uuid, single_param, uuid_param
from common.http.urls import base_url, record_url
from common.storage.accounts import Accounts
from common.storage.records import Record, RecordStore, UnknownCursor

_LIMIT = re.compile(r"[0-9]{1,3}")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class RecordList:
    def __init__(
        self, accounts: Accounts, store: RecordStore, public_base_url: str | None, quota_bytes: int
    ) -> None:
        self._accounts = accounts
        self._store = store
        self._public_base_url = public_base_url
        self._quota_bytes = quota_bytes

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user_id = req.context.user_id = uuid_param(req, "user")
        limit = _limit(single_param(req, "limit"))
        before = _before(single_param(req, "before"))
        authenticate(self._accounts, user_id, request_token(req))
        try:
            page, next_cursor = self._store.page(user_id, limit, before)
        except UnknownCursor:
            raise falcon.HTTPBadRequest(
                title="Malformed parameter", description="before is not one of this user's records"
            ) from None
        base = base_url(req, self._public_base_url)
        resp.set_header("Cache-Control", "no-store")
        resp.media = {
            "records": [_entry(record, base) for record in page],
            "next": None if next_cursor is None else str(next_cursor),
            "quota": self._quota_bytes,
            "used": self._store.used_bytes(user_id),
        }

    on_head = on_get


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise falcon.HTTPBadRequest(
            title="Malformed parameter",
            description=f"limit must be an integer from 1 to {MAX_LIMIT}",
        )
    return int(raw)


def _before(raw: str | None) -> uuid.UUID | None:
    return None if raw is None else required_uuid("before", raw)


def _entry(record: Record, base: str) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "name": record.name,
        "url": record_url(base, record.id, record.user_id),
        "duration_ms": record.duration_ms,
        "channels": record.channels,
        "sample_rate": record.sample_rate,
        "size": record.size,
        "created_at": record.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
