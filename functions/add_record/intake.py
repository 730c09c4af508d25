"""Reading an upload, in either form, up to what on_post needs: who sent it, with which token,
the original file name, and the WAV as a stream.

Form A is multipart/form-data (fields `user`, `token`, file part `file`); form B is the raw WAV body
with `?user=` (and `?token=`, `?name=`) in the query string. Either may carry the token as
`Authorization: Bearer`, and only one way (RFC 6750 §2). Credentials come before bytes: a multipart
file part that comes before the user and token fields is refused (400) unless the token came as
the header; then the token names its user (401 when it is nobody's, before a byte of the file is
read), the file streams into the converter like any other, and the user field that follows must
name the same user (401 otherwise, and nothing is stored). No upload is ever spooled to disk
unauthenticated. MAX_UPLOAD_BYTES counts the WAV's own bytes, in either form.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NoReturn, cast

import falcon
from falcon.media.multipart import BodyPart
from falcon.util.reader import BufferedReader

from common.audio.wav import Readable
from common.config import MULTIPART_ENVELOPE_BYTES
from common.http.app import THE_WAV, refuse_declared_length_over, too_large
from common.http.auth import bearer_token, request_token, unauthorized
from common.http.params import required_uuid, single_param, uuid_param

RAW_WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
MULTIPART = "multipart/form-data"
PIECE = 1 << 20
_FIELDS = ("user", "token")


@dataclass(frozen=True)
class Upload:
    user_id: uuid.UUID
    token: str | None
    file_name: str | None
    wav: Readable


TokenOwner = Callable[[str], uuid.UUID]
"""The user a Bearer token belongs to (401 when it is nobody's)."""


@contextmanager
def open_upload(req: falcon.Request, limit: int, token_owner: TokenOwner) -> Iterator[Upload]:
    """The upload's sender and WAV stream; on leaving the block, the rest of the form is checked."""
    kind = (req.content_type or "").split(";")[0].strip().lower()
    if kind in RAW_WAV_TYPES:
        refuse_declared_length_over(req, limit, THE_WAV)
        body = req.bounded_stream if req.content_length is not None else req.stream
        yield Upload(
            uuid_param(req, "user"),
            request_token(req),
            single_param(req, "name"),
            LimitedReader(body, limit),
        )
    elif kind == MULTIPART:
        refuse_declared_length_over(req, limit + MULTIPART_ENVELOPE_BYTES, THE_WAV, shown=limit)
        form = _Form(req, limit, token_owner)
        with form.upload() as upload:
            yield upload
        form.refuse_more_parts()
    else:
        raise falcon.HTTPUnsupportedMediaType(
            title="Unsupported media type",
            description="send multipart/form-data with a file part, or the WAV itself as audio/wav",
        )


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
            raise too_large(THE_WAV, self._limit)
        return piece


class _Form:
    """The parts of a multipart upload, read once, in order."""

    def __init__(self, req: falcon.Request, limit: int, token_owner: TokenOwner) -> None:
        self._req = req
        self._limit = limit
        self._token_owner = token_owner
        self._parts: Iterator[BodyPart] = iter(_parts(req, limit + MULTIPART_ENVELOPE_BYTES))
        self._fields: dict[str, str] = {}

    @contextmanager
    def upload(self) -> Iterator[Upload]:
        """Fields up to the file part, then the file streamed; when the user field comes after
        the file, the Bearer token names the user first and the field must agree at the end."""
        for part in self._parts:
            name, file_name = _disposition(part)
            if name in _FIELDS:
                self._field(name, part)
            elif name == "file":
                token = request_token(self._req, self._fields.get("token"))
                if "user" in self._fields and token is not None:
                    yield Upload(
                        _user(self._fields),
                        token,
                        file_name,
                        LimitedReader(part.stream, self._limit),
                    )
                    return
                bearer = bearer_token(self._req)
                if bearer is None:
                    raise falcon.HTTPBadRequest(
                        title="Credentials after file", description=_missing_before_file(token)
                    )
                owner = self._token_owner(bearer)
                yield Upload(owner, bearer, file_name, LimitedReader(part.stream, self._limit))
                self.refuse_more_parts()
                request_token(self._req, self._fields.get("token"))
                if _user(self._fields) != owner:
                    raise unauthorized()
                return
            else:
                _unexpected(name)
        _user(self._fields)
        raise falcon.HTTPBadRequest(title="Missing file", description="the file part is missing")

    def refuse_more_parts(self) -> None:
        """Fields may follow the file; another file or an unknown field may not."""
        for part in self._parts:
            name, _ = _disposition(part)
            if name == "file":
                raise falcon.HTTPBadRequest(
                    title="Malformed form", description="send exactly one file part"
                )
            if name not in _FIELDS:
                _unexpected(name)
            self._field(name, part)

    def _field(self, name: str, part: BodyPart) -> None:
        if name in self._fields:
            raise falcon.HTTPBadRequest(
                title="Malformed form", description=f"{name} is given more than once"
            )
        self._fields[name] = _text(part.get_data(), name)


def _parts(req: falcon.Request, most: int) -> Iterable[BodyPart]:
    """The form's parts as they arrive. A chunked body (no Content-Length) is read as it comes,
    at most `most` bytes: Falcon's own reading of a form needs the length."""
    if req.content_length is not None:
        return cast(Iterable[BodyPart], req.get_media())
    handler = req.options.media_handlers[MULTIPART]
    stream = BufferedReader(req.stream.read, most)
    return cast(Iterable[BodyPart], handler.deserialize(stream, req.content_type, None))


def _missing_before_file(token: str | None) -> str:
    """What the fields before the file part lacked, and both ways to send it."""
    if token is None:
        return (
            "the token is missing: no token field came before the file part, and no "
            "Authorization: Bearer header; send user and token first, or the token as "
            "Authorization: Bearer"
        )
    return (
        "the file part came before the user field: send user and token first, or the token as "
        "Authorization: Bearer"
    )


def _unexpected(name: str | None) -> NoReturn:
    raise falcon.HTTPBadRequest(
        title="Malformed form",
        description=f"unexpected form field {name!r}: expected user, token and file",
    )


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
