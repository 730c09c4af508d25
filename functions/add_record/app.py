"""POST /record: take a WAV (multipart or raw), convert it to MP3, store it, answer its URL;
DELETE /record: the write side's other verb."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import falcon
from sqlalchemy.engine import Engine

from common.audio.ffmpeg import ConversionSlots, EncoderOptions
from common.audio.transcode import transcode
from common.config import Settings
from common.http.app import FunctionApp, WSGIApp, create_base_app
from common.http.auth import authenticate, request_token, token_owner
from common.http.observability import conversion_timer
from common.http.params import uuid_param
from common.http.urls import base_url, record_url
from common.names import file_stem, original_name
from common.spool import SLOTS_PREFIX, instance_directory, sweep, upload_directory
from common.storage.accounts import Accounts
from common.storage.db import create_engine, utc_now
from common.storage.records import AudioFacts, QuotaExceeded, RecordStore, open_store
from functions.add_record.errors import QuotaExceededError, add_conversion_errors
from functions.add_record.intake import open_upload
from functions.add_record.linger import linger_after_answer
from functions.add_record.pace import PaceRule, PaceWatcher


class Records:
    def __init__(self, accounts: Accounts, store: RecordStore, settings: Settings) -> None:
        self._accounts = accounts
        self._store = store
        self._settings = settings
        self._encoder = EncoderOptions.from_settings(settings)
        self._slots = ConversionSlots(
            instance_directory(settings.spool_dir), settings.max_conversions
        )
        self._pace = PaceWatcher(
            PaceRule(settings.client_timeout_s, settings.min_upload_bytes_per_s)
        )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        base = base_url(req, self._settings.public_base_url)
        quota = self._settings.user_quota_bytes
        with self._pace.metered(req), upload_directory(self._settings.spool_dir) as work:
            mp3_path = Path(work) / "out.mp3"
            mp3_path.touch()  # ffmpeg writes into this very file, read as it grows
            with mp3_path.open("rb") as mp3, self._store.writer(mp3) as record:
                with open_upload(
                    req, self._settings.max_upload_bytes, partial(token_owner, self._accounts)
                ) as upload:
                    user_id = req.context.user_id = upload.user_id
                    authenticate(self._accounts, user_id, upload.token)
                    if (used := self._store.used_bytes(user_id)) >= quota:
                        raise QuotaExceededError(used, None, quota)
                    with conversion_timer():
                        converted = transcode(
                            upload.wav,
                            mp3_path,
                            self._encoder,
                            title=file_stem(upload.file_name),
                            slots=self._slots,
                            progress=record.store_final,
                        )
                facts = AudioFacts(
                    name=original_name(upload.file_name),
                    channels=converted.wav.channels,
                    sample_rate=converted.wav.sample_rate,
                    duration_ms=converted.mp3.duration_ms,
                )
                try:
                    record_id = record.commit(user_id, facts, quota)
                except QuotaExceeded as full:
                    raise QuotaExceededError(full.used, full.size, full.quota) from None
        url = record_url(base, record_id, user_id)
        resp.status = falcon.HTTP_CREATED
        resp.location = url
        resp.media = {"id": str(record_id), "url": url}

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        record_id = uuid_param(req, "id")
        user_id = req.context.user_id = uuid_param(req, "user")
        authenticate(self._accounts, user_id, request_token(req))
        if not self._store.delete(record_id, user_id):
            raise falcon.HTTPNotFound(title="Not found", description="no such record for this user")
        resp.status = falcon.HTTP_NO_CONTENT


def create_app(settings: Settings, engine: Engine | None = None) -> FunctionApp:
    """The function's app; `engine` defaults to a new one for this worker process."""
    engine = engine or create_engine(settings.database_url, settings.db_pool_size)
    app = create_base_app("add_record", engine)
    add_conversion_errors(app)
    sweep(settings.spool_dir)
    sweep(settings.spool_dir, SLOTS_PREFIX)
    accounts = Accounts(engine, now=utc_now)
    store = open_store(engine, settings)
    app.add_route("/record", Records(accounts, store, settings))
    return app


def get_app() -> WSGIApp:
    """What gunicorn serves: the app, lingering after its answers (see linger.py)."""
    return linger_after_answer(create_app(Settings.from_env()))
