"""HTTP helpers of the functions: JSON errors, domain errors -> statuses, parameters, URLs."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any, TypeAlias

import falcon
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from common.accounts import Accounts
from common.ffmpeg import ConversionError, ConverterFault
from common.observability import RequestTelemetry, add_operations_routes
from common.transcode import TooLong
from common.wav import BadWav, EmptyWav, NotWav

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::[0-9]{1,5})?$"
)
_BEARER = re.compile(r"^\s*bearer\s+(\S+)\s*$", re.IGNORECASE)
FunctionApp: TypeAlias = "falcon.App[falcon.Request, falcon.Response]"
CONVERTER_RETRY_AFTER_S = 30
"""Retry-After of a conversion that failed through no fault of the upload (a 503)."""
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Every error is JSON {"title", "description"}, whatever the client's Accept says."""
    title = error.title or resp.status
    body = {"title": title, "description": error.description or title}
    resp.content_type = falcon.MEDIA_JSON
    resp.data = json.dumps(body, ensure_ascii=False).encode()


def unauthorized(description: str = "the user or the token is wrong") -> falcon.HTTPUnauthorized:
    """The single 401 answer: unknown user and wrong token must not be told apart."""
    return falcon.HTTPUnauthorized(
        title="Unauthorized", description=description, challenges=["Bearer"]
    )


def _raise(
    status: Callable[..., falcon.HTTPError], title: str, **options: Any
) -> Callable[[falcon.Request, falcon.Response, Exception, dict[str, Any]], None]:
    def handler(
        req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
    ) -> None:
        raise status(title=title, description=str(error), **options)

    return handler


def _database_unavailable(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    raise falcon.HTTPServiceUnavailable(
        title="Database unavailable",
        description="the database cannot be reached right now; try again shortly",
        retry_after=5,
    )


class SecurityHeaders:
    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        resp.set_headers(SECURITY_HEADERS)


def create_base_app(function: str, engine: Engine) -> FunctionApp:
    """A function's falcon.App: the service's error format and mapping, response headers,
    request logs and metrics, and the operations routes /healthz and /metrics."""
    middleware: list[Any] = [RequestTelemetry(function), SecurityHeaders()]
    app = falcon.App(middleware=middleware)
    add_operations_routes(app, engine)
    app.set_error_serializer(serialize_error)
    app.add_error_handler(EmptyWav, _raise(falcon.HTTPBadRequest, "Missing file"))
    app.add_error_handler(NotWav, _raise(falcon.HTTPUnsupportedMediaType, "Not a WAV file"))
    app.add_error_handler(BadWav, _raise(falcon.HTTPUnprocessableEntity, "Undecodable WAV"))
    app.add_error_handler(
        ConversionError, _raise(falcon.HTTPUnprocessableEntity, "Undecodable WAV")
    )
    app.add_error_handler(TooLong, _raise(falcon.HTTPUnprocessableEntity, "Audio too long"))
    app.add_error_handler(
        ConverterFault,
        _raise(
            falcon.HTTPServiceUnavailable,
            "Converter unavailable",
            retry_after=CONVERTER_RETRY_AFTER_S,
        ),
    )
    for error in (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError):
        app.add_error_handler(error, _database_unavailable)
    return app


def uuid_param(req: falcon.Request, name: str) -> uuid.UUID:
    """A required UUID from the query string: 400 if missing or malformed."""
    return required_uuid(name, single_param(req, name))


def required_uuid(name: str, raw: str | None) -> uuid.UUID:
    """`raw` (a parameter or form field called `name`) as a UUID: 400 if missing or malformed."""
    if raw is None or raw == "":
        raise falcon.HTTPBadRequest(title="Missing parameter", description=f"{name} is required")
    parsed = parse_uuid(raw)
    if parsed is None:
        raise falcon.HTTPBadRequest(
            title="Malformed parameter", description=f"{name} must be a UUID"
        )
    return parsed


def single_param(req: falcon.Request, name: str) -> str | None:
    values = req.get_param_as_list(name)
    if values is None:
        return None
    if len(values) > 1:
        raise falcon.HTTPBadRequest(
            title="Ambiguous parameter", description=f"{name} is given more than once"
        )
    return str(values[0])


def parse_uuid(raw: str) -> uuid.UUID | None:
    return uuid.UUID(raw) if _UUID.match(raw) else None


def authenticate(accounts: Accounts, user_id: uuid.UUID, token: str | None) -> None:
    """401 unless `token` (as sent: a token that is not a UUID is simply wrong) is the user's."""
    parsed = parse_uuid(token) if token else None
    if not accounts.authenticate(user_id, parsed):
        raise unauthorized()


def request_token(req: falcon.Request, form_field: str | None = None) -> str | None:
    """The token of a request, whichever way it came: `Authorization: Bearer <token>`, the
    `token` query parameter, or the `token` form field (`form_field`, as sent).

    A client sends the token one way (RFC 6750 §2): two ways carrying different tokens are a
    400 invalid_request; the same token twice is served.
    """
    sent = [bearer_token(req), single_param(req, "token"), form_field]
    tokens = {token.strip() for token in sent if token and token.strip()}
    if len({token.lower() for token in tokens}) > 1:
        raise falcon.HTTPBadRequest(
            title="Invalid request",
            description="invalid_request: the token came more than one way (Authorization: "
            "Bearer, token parameter, token field) with different values; send it one way only",
            headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
        )
    return min(tokens, default=None)


def record_url(base: str, record_id: uuid.UUID, user_id: uuid.UUID) -> str:
    return f"{base}/record?id={record_id}&user={user_id}"


def bearer_token(req: falcon.Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if there is one (the part of
    `request_token` that tells whether the token came as the header)."""
    header = req.get_header("Authorization")
    if header is None:
        return None
    match = _BEARER.match(header)
    return match.group(1) if match else None


def base_url(req: falcon.Request, public_base_url: str | None) -> str:
    """scheme://host:port the client called, as the gateway passed it on (or the configured one)."""
    if public_base_url:
        return public_base_url.rstrip("/")
    proto = (req.get_header("X-Forwarded-Proto") or req.scheme).split(",")[0].strip().lower()
    if proto not in ("http", "https"):
        proto = req.scheme
    host = (req.get_header("X-Forwarded-Host") or req.get_header("Host") or "").split(",")[0]
    host = host.strip()
    if not _HOST.match(host):
        raise falcon.HTTPBadRequest(
            title="Bad Host header", description="the Host header is not a valid host[:port]"
        )
    return f"{proto}://{host}"


def max_body(
    limit: int,
) -> Callable[[falcon.Request, falcon.Response, object, dict[str, Any]], None]:
    """A hook refusing a declared Content-Length over `limit` before anything is read."""

    def hook(
        req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        length = req.content_length
        if length is not None and length > limit:
            raise falcon.HTTPContentTooLarge(
                title="Request body too large",
                description=f"the body may be at most {limit} bytes",
            )

    return hook
