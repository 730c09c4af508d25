"""A function's falcon.App: the service's JSON error format, security headers, request logs and
metrics, /healthz and /metrics, and 503 when the database cannot be reached."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

import falcon
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from common.config import GIB, KIB, MIB
from common.http.observability import RequestTelemetry, add_operations_routes

FunctionApp: TypeAlias = "falcon.App[falcon.Request, falcon.Response]"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ErrorHandler = Callable[[falcon.Request, falcon.Response, Exception, dict[str, Any]], None]
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def create_base_app(function: str, engine: Engine) -> FunctionApp:
    middleware: list[Any] = [RequestTelemetry(function), SecurityHeaders()]
    app = falcon.App(middleware=middleware)
    add_operations_routes(app, engine)
    app.set_error_serializer(serialize_error)
    for error in (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError):
        app.add_error_handler(error, _database_unavailable)
    return app


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Every error is JSON {"title", "description"}, whatever the client's Accept says."""
    title = error.title or resp.status
    body = {"title": title, "description": error.description or title}
    resp.content_type = falcon.MEDIA_JSON
    resp.data = json.dumps(body, ensure_ascii=False).encode()


def answer_as(status: Callable[..., falcon.HTTPError], title: str, **options: Any) -> ErrorHandler:
    """An error handler answering `status` with `title` and the exception's text."""

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


def max_body(
    limit: int,
) -> Callable[[falcon.Request, falcon.Response, object, dict[str, Any]], None]:
    """A `falcon.before` hook refusing a declared Content-Length over `limit` before any read."""

    def hook(
        req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        refuse_declared_length_over(req, limit)

    return hook


def size_text(size: int) -> str:
    """A limit as people read it: `1 GiB (1073741824 bytes)`, or the bytes alone when no binary
    unit divides it."""
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name} ({size} bytes)"
    return f"{size} bytes"


THE_WAV = "the WAV"
THE_BODY = "the body"
_TOO_LARGE_TITLES = {THE_WAV: "Upload too large", THE_BODY: "Request body too large"}


def too_large(what: str, limit: int) -> falcon.HTTPContentTooLarge:
    """The 413 of a body past its limit, saying the limit; `what` is THE_WAV or THE_BODY."""
    title = _TOO_LARGE_TITLES[what]
    return falcon.HTTPContentTooLarge(
        title=title, description=f"{what} may be at most {size_text(limit)}"
    )


def refuse_declared_length_over(
    req: falcon.Request, limit: int, what: str = THE_BODY, shown: int | None = None
) -> None:
    """413 when the request declares a body longer than `limit` (nothing is read); the answer
    says `what` may be at most `shown` (the limit, unless the body carries more than `what`)."""
    length = req.content_length
    if length is not None and length > limit:
        raise too_large(what, limit if shown is None else shown)
