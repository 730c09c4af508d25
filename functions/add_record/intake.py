"""Reading an upload, in either form: who sent it, and its WAV handed on as a stream.

Form A is multipart/form-data (fields `user`, `token`, file part `file`); form B is the raw WAV body
with `?user=` (and `?token=`, `?name=`) in the query string. Either may carry the token as
`Authorization: Bearer`, and only one way (RFC 6750 §2). Nobody's audio is converted before they
are authenticated, and credentials come before bytes: a multipart file part that comes before the
user and token fields is refused (400) unless the token came as the header; then, when the user
field comes after the file, the file is spooled to disk until the user is known.
"""

from __future__ import annotations

import errno
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import falcon
from falcon.media.multipart import BodyPart, MultipartForm

from common.ffmpeg import ConverterFault
from common.wav import Readable
from common.web import bearer_token, request_token, required_uuid, single_param, uuid_param

RAW_WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
MULTIPART = "multipart/form-data"
PIECE = 1 << 20
_FIELDS = ("user", "token")

T = TypeVar("T")
Authenticate = Callable[[uuid.UUID, str | None], None]
"""Raises 401 unless the token (as sent, possibly not a UUID) is the user's."""
Consume = Callable[[Readable, str | None], T]
"""Takes the WAV stream and the original file name (if any)."""


@dataclass(frozen=True)
class Upload(Generic[T]):
    user_id: uuid.UUID
    file_name: str | None
    result: T


class LimitedReader:
    """A stream that answers 413 once more than `limit` bytes have come through it."""

    def __init__(self, stream: Readable, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._left = limit

    def read(self, size: int = PIECE, /) -> bytes:
        piece = self._stream.read(min(size, self._left + 1))
        self._left -= len(piece)
        if self._left < 0:
            raise falcon.HTTPContentTooLarge(
                title="Upload too large", description=f"the WAV may be at most {self._limit} bytes"
            )
        return piece


def media_type(req: falcon.Request) -> str:
    return (req.content_type or "").split(";")[0].strip().lower()


def receive(
    req: falcon.Request, work: Path, limit: int, authenticate: Authenticate, consume: Consume[T]
) -> Upload[T]:
    """Authenticate the sender and pass the WAV to `consume`, in whichever form it came."""
    kind = media_type(req)
    if kind == MULTIPART:
        return _receive_multipart(req, work, limit, authenticate, consume)
    if kind in RAW_WAV_TYPES:
        user_id = uuid_param(req, "user")
        authenticate(user_id, request_token(req))
        file_name = single_param(req, "name")
        return Upload(user_id, file_name, consume(LimitedReader(_body(req), limit), file_name))
    raise falcon.HTTPUnsupportedMediaType(
        title="Unsupported media type",
        description="send multipart/form-data with a file part, or the WAV itself as audio/wav",
    )


def _receive_multipart(
    req: falcon.Request, work: Path, limit: int, authenticate: Authenticate, consume: Consume[T]
) -> Upload[T]:
    fields: dict[str, str] = {}
    file_name: str | None = None
    seen_file = authenticated = False
    result: tuple[T] | None = None
    spooled = work / "upload.wav"
    form: MultipartForm = req.get_media()
    for part in form:
        name, part_file_name = _disposition(part)
        if name in _FIELDS:
            if name in fields:
                raise falcon.HTTPBadRequest(
                    title="Malformed form", description=f"{name} is given more than once"
                )
            fields[name] = _text(part.get_data(), name)
        elif name == "file":
            if seen_file:
                raise falcon.HTTPBadRequest(
                    title="Malformed form", description="send exactly one file part"
                )
            seen_file = True
            file_name = part_file_name
            token = request_token(req, fields.get("token"))
            if "user" in fields and token is not None:
                authenticate(_user(fields), token)
                authenticated = True
                result = (consume(LimitedReader(part.stream, limit), file_name),)
            elif bearer_token(req) is not None:
                spool(LimitedReader(part.stream, limit), spooled)
            else:
                raise falcon.HTTPBadRequest(
                    title="Credentials after file",
                    description="the file part came before the user and token fields: send "
                    "user and token first, or the token as Authorization: Bearer",
                )
        else:
            raise falcon.HTTPBadRequest(
                title="Malformed form",
                description=f"unexpected form field {name!r}: expected user, token and file",
            )
    user_id = _user(fields)
    if not seen_file:
        raise falcon.HTTPBadRequest(title="Missing file", description="the file part is missing")
    token = request_token(req, fields.get("token"))
    if not authenticated:
        authenticate(user_id, token)
    if result is None:
        with spooled.open("rb") as wav_file:
            result = (consume(wav_file, file_name),)
    return Upload(user_id, file_name, result[0])


def _body(req: falcon.Request) -> Readable:
    """The request body: bounded by Content-Length, or read to its end when it came chunked
    (gunicorn decodes chunked bodies; nginx always sends a length)."""
    return req.bounded_stream if req.content_length is not None else req.stream


def _disposition(part: BodyPart) -> tuple[str | None, str | None]:
    """A part's field name and file name, 400 when its headers are not UTF-8."""
    try:
        return part.name, part.filename
    except UnicodeDecodeError:
        raise falcon.HTTPBadRequest(
            title="Malformed form", description="a part's headers are not valid UTF-8"
        ) from None


def _user(fields: dict[str, str]) -> uuid.UUID:
    raw = fields.get("user")
    return required_uuid("user", raw if raw is None else raw.strip() or raw)


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise falcon.HTTPBadRequest(
            title="Malformed form", description=f"{name} is not UTF-8 text"
        ) from None


def spool(stream: Readable, target: Path) -> int:
    """Copy `stream` to `target` in bounded pieces; returns the bytes copied. A full disk is
    the server's fault, not the upload's (503)."""
    size = 0
    try:
        with target.open("wb") as out:
            while piece := stream.read(PIECE):
                size += len(piece)
                out.write(piece)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ConverterFault("no disk space is left for the upload; try again later") from None
        raise
    return size
