"""GET /records: a user's records, newest first, a page at a time (for the web page)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import falcon

from common.http.auth import request_token
from common.http.params import required_uuid, single_param, uuid_param
from common.http.urls import base_url, record_url
from common.storage.records import Record, UnknownCursor
from functions.get_record.read_side import ReadSide

_LIMIT = re.compile(r"[0-9]{1,3}")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class RecordList:
    def __init__(self, reads: ReadSide, public_base_url: str | None, quota_bytes: int) -> None:
        self._reads = reads
        self._public_base_url = public_base_url
        self._quota_bytes = quota_bytes

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user_id = req.context.user_id = uuid_param(req, "user")
        limit = _limit(single_param(req, "limit"))
        before = _before(single_param(req, "before"))
        self._reads.authenticate(user_id, request_token(req))
        try:
            listing = self._reads.listing(user_id, limit, before)
        except UnknownCursor:
            raise falcon.HTTPBadRequest(
                title="Malformed parameter", description="before is not one of this user's records"
            ) from None
        base = base_url(req, self._public_base_url)
        resp.set_header("Cache-Control", "no-store")
        resp.media = {
            "records": [_entry(record, base) for record in listing.records],
            "next": None if listing.next_cursor is None else str(listing.next_cursor),
            "quota": self._quota_bytes,
            "used": listing.used_bytes,
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
