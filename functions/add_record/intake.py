"""Reading an upload, in either form, into a spooled WAV file and who sent it.

Form A is multipart/form-data (fields `user`, `token`, file part `file`); form B is the raw WAV body
with `?user=` (and `?token=`, `?name=`) in the query string. Either may carry the token as
`Authorization: Bearer`. The WAV is copied to disk in bounded pieces as it arrives, never held
whole.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import falcon
from falcon.media.multipart import MultipartForm

from common.wav import sniff
from common.web import bearer_token, parse_uuid, single_param, uuid_param

RAW_WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
MULTIPART = "multipart/form-data"
PIECE = 1 << 20
_FIELDS = ("user", "token")

Authenticate = Callable[[uuid.UUID, str | None], None]
"""Raises 401 unless the token (as sent, possibly not a UUID) is the user's."""


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class Upload:
    user_id: uuid.UUID
    file_name: str | None
    size: int


def media_type(req: falcon.Request) -> str:
    return (req.content_type or "").split(";")[0].strip().lower()


def receive(req: falcon.Request, target: Path, limit: int, authenticate: Authenticate) -> Upload:
    """Spool the WAV of either form to `target`, authenticating as early as the form allows."""
    kind = media_type(req)
    if kind == MULTIPART:
        return _receive_multipart(req, target, limit, authenticate)
    if kind in RAW_WAV_TYPES:
        return _receive_raw(req, target, limit, authenticate)
    raise falcon.HTTPUnsupportedMediaType(
        title="Unsupported media type",
        description="send multipart/form-data with a file part, or the WAV itself as audio/wav",
    )


def _receive_raw(
    req: falcon.Request, target: Path, limit: int, authenticate: Authenticate
) -> Upload:
    user_id = uuid_param(req, "user")
    authenticate(user_id, bearer_token(req) or single_param(req, "token"))
    size = spool(req.bounded_stream, target, limit)
    if size == 0:
        raise falcon.HTTPBadRequest(title="Missing file", description="the body is empty")
    return Upload(user_id=user_id, file_name=single_param(req, "name"), size=size)


def _receive_multipart(
    req: falcon.Request, target: Path, limit: int, authenticate: Authenticate
) -> Upload:
    fields: dict[str, str] = {}
    file_name: str | None = None
    size: int | None = None
    authenticated = False
    form: MultipartForm = req.get_media()
    for part in form:
        name = part.name
        if name in _FIELDS:
            if name in fields:
                raise falcon.HTTPBadRequest(
                    title="Malformed form", description=f"{name} is given more than once"
                )
            fields[name] = _text(part.get_data(), name)
        elif name == "file":
            if size is not None:
                raise falcon.HTTPBadRequest(
                    title="Malformed form", description="send exactly one file part"
                )
            if "user" in fields:
                authenticate(_user(fields), _token(req, fields))
                authenticated = True
            file_name = part.filename
            size = spool(part.stream, target, limit)
        else:
            raise falcon.HTTPBadRequest(
                title="Malformed form",
                description=f"unexpected form field {name!r}: expected user, token and file",
            )
    user_id = _user(fields)
    if size is None or size == 0:
        raise falcon.HTTPBadRequest(
            title="Missing file", description="the file part is missing or empty"
        )
    if not authenticated:
        authenticate(user_id, _token(req, fields))
    return Upload(user_id=user_id, file_name=file_name, size=size)


def _user(fields: dict[str, str]) -> uuid.UUID:
    raw = fields.get("user")
    if not raw:
        raise falcon.HTTPBadRequest(title="Missing parameter", description="user is required")
    parsed = parse_uuid(raw.strip())
    if parsed is None:
        raise falcon.HTTPBadRequest(title="Malformed parameter", description="user must be a UUID")
    return parsed


def _token(req: falcon.Request, fields: dict[str, str]) -> str | None:
    return bearer_token(req) or fields.get("token", "").strip() or None


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise falcon.HTTPBadRequest(
            title="Malformed form", description=f"{name} is not UTF-8 text"
        ) from None


def spool(stream: Readable, target: Path, limit: int) -> int:
    """Copy `stream` to `target` in bounded pieces; 413 past `limit`, 415 once it is no WAV."""
    size = 0
    head = b""
    with target.open("wb") as out:
        while piece := stream.read(PIECE):
            size += len(piece)
            if size > limit:
                raise falcon.HTTPContentTooLarge(
                    title="Upload too large", description=f"the WAV may be at most {limit} bytes"
                )
            if len(head) < 12:
                head += piece[:12]
                if len(head) >= 12:
                    sniff(head)
            out.write(piece)
    if 0 < size < 12:
        sniff(head)
    return size
