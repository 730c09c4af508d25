"""Resumable uploads, tus 1.0.0 (core, creation, creation-with-upload, termination, expiration):
`/uploads` and `/uploads/<id>`. Contract v1.3.

An upload's state and bytes live in the database (common/storage/uploads.py), so any add_record
process continues any upload. The PATCH that brings the last byte makes the record exactly as
POST /record does (drafts.py), feeding ffmpeg the bytes stored by earlier PATCHes first and its own
as they arrive, and publishes it in the same transaction that marks the upload done: an upload
becomes at most one record, however often its last PATCH is repeated. Earlier PATCHes only keep
their bytes, and check the WAV header as soon as it has arrived (415/422 at once, upload removed).
"""

from __future__ import annotations

import uuid
from typing import Any

import falcon

from common.audio.ffmpeg import ConversionError
from common.audio.transcode import TooLong, refuse_too_long
from common.audio.wav import BadWav, EmptyWav, NotWav, read_header
from common.http.app import THE_WAV, too_large
from common.http.auth import bearer_token, token_owner, unauthorized
from common.http.params import parse_uuid, required_uuid
from common.http.urls import base_url, record_url, upload_url
from common.names import original_name
from common.storage.uploads import LockLost, Patch, Upload
from functions.add_record.errors import QuotaExceededError
from functions.add_record.received import EndedShort, NotYetKnown, Receiver, UploadStream
from functions.add_record.side import WriteSide
from functions.add_record.tus_headers import (
    EXTENSIONS,
    OFFSET_STREAM,
    TUS_VERSION,
    byte_count,
    metadata,
    required_byte_count,
)

MIN_PATCH_BYTES = 64 * 1024
"""The least a PATCH may declare, but for the one that ends the upload: a 1 GiB upload is then at
most 16,384 PATCHes (each a few queries and a row), not a billion. A PATCH cut short keeps what
arrived, whatever its size."""

WAV_FAULTS = (EmptyWav, NotWav, BadWav, ConversionError, TooLong)
"""The upload's own fault (415, 422): it is removed."""


def add_tus_routes(app: falcon.App[falcon.Request, falcon.Response], side: WriteSide) -> None:
    app.add_middleware(TusResumable())
    app.add_error_handler(LockLost, _taken_over)
    app.add_route("/uploads", TusUploads(side))
    app.add_route("/uploads/{upload_id}", TusUpload(side))


class TusResumable:
    """Every answer under /uploads says Tus-Resumable; every request but OPTIONS must (412)."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not _is_tus(req) or req.method == "OPTIONS":
            return
        if req.get_header("Tus-Resumable") != TUS_VERSION:
            raise falcon.HTTPPreconditionFailed(
                title="Unsupported tus version",
                description=f"send Tus-Resumable: {TUS_VERSION}, the version this server speaks",
                headers={"Tus-Version": TUS_VERSION, "Tus-Resumable": TUS_VERSION},
            )

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        if _is_tus(req):
            resp.set_header("Tus-Resumable", TUS_VERSION)


class TusUploads:
    """/uploads: what the server supports (OPTIONS), and new uploads (POST)."""

    def __init__(self, side: WriteSide) -> None:
        self._side = side

    def on_options(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_NO_CONTENT
        resp.set_header("Tus-Version", TUS_VERSION)
        resp.set_header("Tus-Extension", EXTENSIONS)
        resp.set_header("Tus-Max-Size", str(self._side.settings.max_upload_bytes))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        side = self._side
        base = base_url(req, side.settings.public_base_url)
        if req.get_header("Upload-Defer-Length") is not None:
            raise falcon.HTTPBadRequest(
                title="Deferred length not supported",
                description="send Upload-Length: the WAV's size in bytes",
            )
        length = required_byte_count(req.get_header("Upload-Length"), "Upload-Length")
        if length == 0:
            raise falcon.HTTPBadRequest(
                title="Invalid Upload-Length", description="an empty file is not a WAV"
            )
        if length > side.settings.max_upload_bytes:
            raise too_large(THE_WAV, side.settings.max_upload_bytes)
        pairs = metadata(req.get_header("Upload-Metadata"))
        user_id = req.context.user_id = required_uuid("user", pairs.get("user"))
        if _owner(req, side) != user_id:
            raise unauthorized()
        quota = side.settings.user_quota_bytes
        if (used := side.records.used_bytes(user_id)) >= quota:
            raise QuotaExceededError(used, None, quota)
        with_body = _has_body(req)
        upload = side.uploads.create(
            user_id,
            length,
            original_name(pairs.get("filename", pairs.get("name"))),
            side.settings.max_open_uploads,
        )
        if upload is None:
            raise falcon.HTTPTooManyRequests(
                title="Too many unfinished uploads",
                description=f"this user already has {side.settings.max_open_uploads} unfinished "
                "uploads: finish or delete one (DELETE /uploads/<id>) first",
            )
        resp.status = falcon.HTTP_CREATED
        resp.location = upload_url(base, upload.id)
        resp.set_header("Upload-Expires", falcon.dt_to_http(upload.expires_at))
        resp.set_header("Upload-Offset", "0")
        if with_body:
            with side.uploads.patch(upload) as patch:
                if patch is not None:
                    _answer_patch(resp, base, upload, _receive(side, req, upload, patch))


class TusUpload:
    """/uploads/<id>: its offset (HEAD), its next bytes (PATCH), its end (DELETE)."""

    def __init__(self, side: WriteSide) -> None:
        self._side = side

    def on_head(self, req: falcon.Request, resp: falcon.Response, upload_id: str) -> None:
        upload = self._owned(req, upload_id)
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("Upload-Offset", str(upload.offset))
        resp.set_header("Upload-Length", str(upload.length))
        if upload.record_id is None:
            resp.set_header("Upload-Expires", falcon.dt_to_http(upload.expires_at))
        else:
            base = base_url(req, self._side.settings.public_base_url)
            resp.set_header("Record-Location", record_url(base, upload.record_id, upload.user_id))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, upload_id: str) -> None:
        side = self._side
        base = base_url(req, side.settings.public_base_url)
        upload = self._owned(req, upload_id)
        if (req.content_type or "").split(";")[0].strip().lower() != OFFSET_STREAM:
            raise falcon.HTTPUnsupportedMediaType(
                title="Unsupported media type",
                description=f"a PATCH carries Content-Type: {OFFSET_STREAM}",
            )
        offset = required_byte_count(req.get_header("Upload-Offset"), "Upload-Offset")
        length = byte_count(req.get_header("Upload-Length"), "Upload-Length")
        if length is not None and length != upload.length:
            raise falcon.HTTPBadRequest(
                title="Invalid Upload-Length",
                description=f"the upload's length is {upload.length} bytes and cannot change",
            )
        if upload.record_id is not None:
            if offset == upload.length and not req.content_length:
                _answer_patch(resp, base, upload, (upload.length, upload.record_id))
                return
            raise _conflict(f"the upload is complete: it has all its {upload.length} bytes")
        with side.uploads.patch(upload) as patch:
            if patch is None:
                raise _conflict("another PATCH of this upload is in flight; retry after it")
            if offset != patch.offset:
                raise _conflict(f"the upload is at byte {patch.offset}, not {offset}")
            _refuse_size(req.content_length, offset, upload.length)
            _answer_patch(resp, base, upload, _receive(side, req, upload, patch))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, upload_id: str) -> None:
        upload = self._owned(req, upload_id)
        self._side.uploads.remove(upload.id, upload.user_id)
        resp.status = falcon.HTTP_NO_CONTENT

    def _owned(self, req: falcon.Request, upload_id: str) -> Upload:
        """The upload, if the token's user has it (401 for no or a wrong token, 404 otherwise:
        another user's upload is as good as none)."""
        owner = req.context.user_id = _owner(req, self._side)
        parsed = parse_uuid(upload_id)
        upload = None if parsed is None else self._side.uploads.find(parsed, owner)
        if upload is None:
            raise falcon.HTTPNotFound(
                title="Not found", description="no such upload for this user (or it has expired)"
            )
        return upload


def _receive(
    side: WriteSide, req: falcon.Request, upload: Upload, patch: Patch
) -> tuple[int, uuid.UUID | None]:
    """Keep this request's bytes; convert and publish when they are the last. Returns the new
    offset and the record made (if any)."""
    sending = req.content_length
    last = sending is None or patch.offset + sending == upload.length
    with side.pace.metered(req) as body:
        received = Receiver(body, patch, upload.length, side.settings.chunk_bytes)
        try:
            if last:
                return upload.length, _finish(side, upload, patch, received)
            _check_header(side, upload, patch, received)
            received.drain()
        except EndedShort:
            pass
        except WAV_FAULTS:
            side.uploads.remove(upload.id, upload.user_id)
            raise
    return received.offset, None


def _finish(side: WriteSide, upload: Upload, patch: Patch, received: Receiver) -> uuid.UUID:
    """The record of the whole WAV: the stored bytes, then this PATCH's, through ffmpeg."""
    stored = side.uploads.read(upload.id, 0, patch.offset)
    wav = UploadStream(stored, received, upload.length, whole=True)
    with side.drafts.draft() as draft:
        draft.convert(wav, upload.user_id, upload.name, upload.length, patch.keep_alive)
        received.drain()
        record_id = draft.commit(also=patch.publish)
    return record_id


def _check_header(side: WriteSide, upload: Upload, patch: Patch, received: Receiver) -> None:
    """Once per upload, as soon as its header has arrived: the checks POST /record makes of it,
    and the length it declares against MAX_DURATION_S."""
    if upload.wav_ok:
        return
    stored = side.uploads.read(upload.id, 0, patch.offset)
    try:
        wav, _ = read_header(UploadStream(stored, received, upload.length, whole=False))
    except NotYetKnown:
        return
    refuse_too_long(wav, upload.length, side.drafts.encoder)
    patch.wav_checked()


def _refuse_size(sending: int | None, offset: int, length: int) -> None:
    """413 for a PATCH declaring bytes past the upload's length, 400 for one smaller than
    MIN_PATCH_BYTES that does not end the upload: before a byte of it is read."""
    if sending is None:
        return
    if offset + sending > length:
        raise falcon.HTTPContentTooLarge(
            title="Past the upload's length",
            description=f"this PATCH would end past Upload-Length ({length}); nothing of it "
            "was kept",
        )
    if 0 < sending < MIN_PATCH_BYTES and offset + sending < length:
        raise falcon.HTTPBadRequest(
            title="PATCH too small",
            description=f"a PATCH but the last must carry at least {MIN_PATCH_BYTES} bytes",
        )


def _answer_patch(
    resp: falcon.Response, base: str, upload: Upload, result: tuple[int, uuid.UUID | None]
) -> None:
    offset, record_id = result
    if resp.status != falcon.HTTP_CREATED:
        resp.status = falcon.HTTP_NO_CONTENT
    resp.set_header("Upload-Offset", str(offset))
    if record_id is not None:
        resp.set_header("Record-Location", record_url(base, record_id, upload.user_id))
    else:
        resp.set_header("Upload-Expires", falcon.dt_to_http(upload.expires_at))


def _owner(req: falcon.Request, side: WriteSide) -> uuid.UUID:
    token = bearer_token(req)
    if token is None:
        raise unauthorized("send the token as Authorization: Bearer")
    return token_owner(side.accounts, token)


def _has_body(req: falcon.Request) -> bool:
    """Whether a POST carries the upload's first bytes (creation-with-upload)."""
    chunked = "chunked" in (req.get_header("Transfer-Encoding") or "").lower()
    if not (req.content_length or chunked):
        return False
    if (req.content_type or "").split(";")[0].strip().lower() != OFFSET_STREAM:
        raise falcon.HTTPUnsupportedMediaType(
            title="Unsupported media type",
            description=f"the upload's first bytes come as Content-Type: {OFFSET_STREAM}",
        )
    return True


def _conflict(description: str) -> falcon.HTTPConflict:
    return falcon.HTTPConflict(title="Conflict", description=description)


def _taken_over(req: falcon.Request, resp: falcon.Response, error: Exception, params: Any) -> None:
    raise _conflict("another PATCH took this upload over; ask HEAD for its offset and resume")


def _is_tus(req: falcon.Request) -> bool:
    return req.path == "/uploads" or req.path.startswith("/uploads/")
