"""GET|HEAD /record: an MP3 as a static file server would send it; GET /records: the list."""

from __future__ import annotations

import time
from datetime import UTC

import falcon
from sqlalchemy.engine import Engine

from common.config import Settings
from common.http.app import FunctionApp, create_base_app
from common.http.params import uuid_param
from common.http.record_cache import fresh_until
from common.names import file_stem
from common.storage.accounts import Accounts
from common.storage.db import create_engine, utc_now
from common.storage.records import Record, open_store
from functions.get_record.disposition import attachment
from functions.get_record.listing import RecordList
from functions.get_record.ranges import (
    Unsatisfiable,
    byte_range,
    if_range_holds,
    modified_after,
    not_modified,
    strong_match,
)
from functions.get_record.read_side import ReadSide, create_read_engine, replica_name


class RecordFile:
    def __init__(self, reads: ReadSide) -> None:
        self._reads = reads

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._answer(req, resp, send_body=True)

    def on_head(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._answer(req, resp, send_body=False)

    def _answer(self, req: falcon.Request, resp: falcon.Response, send_body: bool) -> None:
        record_id = uuid_param(req, "id")
        user_id = req.context.user_id = uuid_param(req, "user")
        looked_up_at = time.time()
        found = self._reads.find(record_id, user_id)
        if found is None:
            raise falcon.HTTPNotFound(title="Not found", description="no such record for this user")
        record = found.record
        etag = f'"{record.sha256}"'
        modified = record.created_at.astimezone(UTC).replace(microsecond=0)
        resp.etag = etag
        resp.last_modified = modified
        resp.set_header("Cache-Control", "private, no-cache")
        resp.set_header("X-Accel-Expires", fresh_until(looked_up_at))
        # On every answer about the record (304, 412 and 416 too), as the gateway's record cache
        # answers them from the stored 200.
        resp.set_header("Content-Disposition", attachment(_stem(record)))
        if_match = req.get_header("If-Match")
        if if_match is not None and not strong_match(if_match, etag):
            raise falcon.HTTPPreconditionFailed(
                title="Precondition failed", description="If-Match names another representation"
            )
        if if_match is None and modified_after(req.get_header("If-Unmodified-Since"), modified):
            raise falcon.HTTPPreconditionFailed(
                title="Precondition failed",
                description="the record is newer than the If-Unmodified-Since date",
            )
        if not_modified(
            req.get_header("If-None-Match"), req.get_header("If-Modified-Since"), etag, modified
        ):
            resp.status = falcon.HTTP_NOT_MODIFIED
            return
        start, stop = 0, record.size
        partial = False
        range_header = req.get_header("Range")
        if range_header is not None and if_range_holds(req.get_header("If-Range"), etag, modified):
            try:
                requested = byte_range(range_header, record.size)
            except Unsatisfiable as error:
                raise falcon.HTTPRangeNotSatisfiable(
                    record.size,
                    title="Range not satisfiable",
                    description=f"{error}; the file has {record.size} bytes",
                ) from None
            if requested is not None:
                start, stop = requested
                partial = True
                resp.status = falcon.HTTP_PARTIAL_CONTENT
                resp.content_range = (start, stop - 1, record.size)
        if not partial:
            # On whole answers only, as nginx sends it (for a static file or from the cache).
            resp.accept_ranges = "bytes"
        resp.content_type = "audio/mpeg"
        resp.content_length = stop - start
        if send_body:
            resp.stream = self._reads.read(found, start, stop)


def _stem(record: Record) -> str:
    return file_stem(record.name) or str(record.id)


def create_app(
    settings: Settings, engine: Engine | None = None, read_engine: Engine | None = None
) -> FunctionApp:
    """The function's app; `engine` (the primary's) defaults to a new one for this worker process,
    and so does `read_engine` (the replica's) when DATABASE_READ_URL is set. /healthz checks the
    primary only: a replica that is down costs no answer (functions/get_record/read_side.py)."""
    engine = engine or create_engine(settings.database_url, settings.db_pool_size)
    app = create_base_app("get_record", engine)
    records = open_store(engine, settings)
    accounts = Accounts(engine, now=utc_now)
    if settings.database_read_url is None:
        reads = ReadSide(records, accounts)
    else:
        read_engine = read_engine or create_read_engine(
            settings.database_read_url, settings.db_pool_size
        )
        reads = ReadSide(
            records,
            accounts,
            open_store(read_engine, settings),
            replica_name=replica_name(settings.database_read_url),
        )
    app.add_route("/record", RecordFile(reads))
    app.add_route(
        "/records", RecordList(reads, settings.public_base_url, settings.user_quota_bytes)
    )
    return app


def get_app() -> FunctionApp:
    return create_app(Settings.from_env())
