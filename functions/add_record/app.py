"""POST /record: take a WAV (multipart or raw), convert it to MP3, store it, answer its URL;
DELETE /record: the write side's other verb; /uploads: the same, resumable (tus.py)."""

from __future__ import annotations

import time
from functools import partial

import falcon
from sqlalchemy.engine import Engine

from common.config import Settings
from common.http.app import FunctionApp, WSGIApp, create_base_app
from common.http.auth import authenticate, request_token, token_owner
from common.http.params import uuid_param
from common.http.record_cache import wait_out_cached_answers
from common.http.urls import base_url, record_url
from common.spool import SLOTS_PREFIX, sweep
from common.storage.accounts import Accounts
from common.storage.db import create_engine, utc_now
from common.storage.records import open_store
from common.storage.uploads import open_uploads
from functions.add_record.drafts import Drafts
from functions.add_record.errors import add_conversion_errors
from functions.add_record.intake import open_upload
from functions.add_record.linger import linger_after_answer
from functions.add_record.pace import PaceRule, PaceWatcher
from functions.add_record.side import WriteSide
from functions.add_record.tus import add_tus_routes


class Records:
    def __init__(self, side: WriteSide) -> None:
        self._side = side

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        side = self._side
        base = base_url(req, side.settings.public_base_url)
        with side.pace.metered(req), side.drafts.draft() as draft:
            with open_upload(
                req, side.settings.max_upload_bytes, partial(token_owner, side.accounts)
            ) as upload:
                user_id = req.context.user_id = upload.user_id
                authenticate(side.accounts, user_id, upload.token)
                draft.convert(upload.wav, user_id, upload.file_name, req.content_length)
            record_id = draft.commit()
        url = record_url(base, record_id, user_id)
        resp.status = falcon.HTTP_CREATED
        resp.location = url
        resp.media = {"id": str(record_id), "url": url}

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        record_id = uuid_param(req, "id")
        user_id = req.context.user_id = uuid_param(req, "user")
        authenticate(self._side.accounts, user_id, request_token(req))
        if not self._side.records.delete(record_id, user_id):
            raise falcon.HTTPNotFound(title="Not found", description="no such record for this user")
        wait_out_cached_answers(time.time())
        resp.status = falcon.HTTP_NO_CONTENT


def create_app(settings: Settings, engine: Engine | None = None) -> FunctionApp:
    """The function's app; `engine` defaults to a new one for this worker process."""
    engine = engine or create_engine(settings.database_url, settings.db_pool_size)
    app = create_base_app("add_record", engine)
    add_conversion_errors(app)
    sweep(settings.spool_dir)
    sweep(settings.spool_dir, SLOTS_PREFIX)
    records = open_store(engine, settings)
    side = WriteSide(
        settings=settings,
        accounts=Accounts(engine, now=utc_now),
        records=records,
        uploads=open_uploads(engine, settings),
        drafts=Drafts(records, settings),
        pace=PaceWatcher(
            PaceRule(
                settings.client_timeout_s,
                settings.min_upload_bytes_per_s,
                settings.body_start_timeout_s,
            )
        ),
    )
    app.add_route("/record", Records(side))
    add_tus_routes(app, side)
    return app


def get_app() -> WSGIApp:
    """What gunicorn serves: the app, lingering after its answers (see linger.py)."""
    return linger_after_answer(create_app(Settings.from_env()))
