"""POST /record: take a WAV (multipart or raw), convert it to MP3, store it, answer its URL."""

from __future__ import annotations

import uuid
from pathlib import Path

import falcon
from sqlalchemy.engine import Engine

from common.accounts import Accounts
from common.config import Settings
from common.db import create_engine, utc_now
from common.ffmpeg import EncoderOptions
from common.names import file_stem, original_name
from common.observability import conversion_timer
from common.spool import sweep, upload_directory
from common.storage import AudioFacts, QuotaExceeded, RecordStore
from common.transcode import Transcoded, transcode
from common.wav import Readable
from common.web import (
    FunctionApp,
    authenticate,
    base_url,
    create_base_app,
    max_body,
    record_url,
    request_token,
    uuid_param,
)
from functions.add_record.intake import receive


class Records:
    def __init__(self, accounts: Accounts, store: RecordStore, settings: Settings) -> None:
        self._accounts = accounts
        self._store = store
        self._settings = settings
        self._check_length = max_body(settings.max_upload_bytes)
        self._encoder = EncoderOptions.from_settings(settings)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._check_length(req, resp, self, {})
        base = base_url(req, self._settings.public_base_url)
        with upload_directory(self._settings.spool_dir) as work:
            mp3_path = Path(work) / "out.mp3"

            def convert(wav: Readable, file_name: str | None) -> Transcoded:
                with conversion_timer():
                    return transcode(wav, mp3_path, self._encoder, title=file_stem(file_name))

            upload = receive(
                req, Path(work), self._settings.max_upload_bytes, self._authenticate, convert
            )
            req.context.user_id = upload.user_id
            facts = AudioFacts(
                name=original_name(upload.file_name),
                channels=upload.result.wav.channels,
                sample_rate=upload.result.wav.sample_rate,
                duration_ms=upload.result.mp3.duration_ms,
            )
            with mp3_path.open("rb") as mp3_file:
                try:
                    record_id = self._store.save(
                        upload.user_id, facts, mp3_file, self._settings.user_quota_bytes
                    )
                except QuotaExceeded as full:
                    raise quota_exceeded(full.used, full.size, full.quota) from None
        url = record_url(base, record_id, upload.user_id)
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

    def _authenticate(self, user_id: uuid.UUID, token: str | None) -> None:
        """401 unless the token is the user's; 507 when the user has no room left at all."""
        authenticate(self._accounts, user_id, token)
        used = self._store.used_bytes(user_id)
        if used >= self._settings.user_quota_bytes:
            raise quota_exceeded(used, None, self._settings.user_quota_bytes)


def quota_exceeded(used: int, size: int | None, quota: int) -> falcon.HTTPError:
    """507: the user's stored MP3s would pass USER_QUOTA_BYTES; nothing is stored."""
    this = "nothing more fits" if size is None else f"this MP3 ({size} bytes) does not fit"
    return falcon.HTTPError(
        falcon.HTTP_507,
        title="Quota exceeded",
        description=f"this user has stored {used} of {quota} bytes; {this}",
    )


def create_app(settings: Settings, engine: Engine | None = None) -> FunctionApp:
    """The function's app; `engine` defaults to a new one for this worker process."""
    engine = engine or create_engine(settings.database_url, settings.db_pool_size)
    app = create_base_app("add_record", engine)
    sweep(settings.spool_dir)
    accounts = Accounts(engine, now=utc_now)
    store = RecordStore(engine, settings.chunk_bytes, now=utc_now)
    app.add_route("/record", Records(accounts, store, settings))
    return app


def get_app() -> FunctionApp:
    return create_app(Settings.from_env())
