"""The stand-in for nginx when it is not installed: the three apps mounted on the gateway's routes.

Only for local runs; the tests and compose always go through nginx.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from common.config import Settings
from common.db import create_engine
from functions.add_record.app import create_app as create_add_record
from functions.create_user.app import create_app as create_create_user
from functions.get_record.app import create_app as create_get_record

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Dispatcher:
    def __init__(self, routes: dict[str, dict[str, WSGIApp]]) -> None:
        self._routes = routes

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        methods = self._routes.get(environ.get("PATH_INFO", ""))
        if methods is None:
            return _error(start_response, "404 Not Found", "no such path", [])
        app = methods.get(environ.get("REQUEST_METHOD", ""))
        if app is None:
            allow = [("Allow", ", ".join(methods))]
            return _error(
                start_response,
                "405 Method Not Allowed",
                "this method is not allowed on this path",
                allow,
            )
        return app(environ, start_response)


def _error(
    start_response: Callable[..., Any], status: str, description: str, extra: list[tuple[str, str]]
) -> Iterable[bytes]:
    body = json.dumps({"title": status.split(" ", 1)[1], "description": description}).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra]
    )
    return [body]


def create_app(settings: Settings) -> Dispatcher:
    engine = create_engine(settings.database_url, settings.db_pool_size)
    create_user = create_create_user(settings, engine)
    add_record = create_add_record(settings, engine)
    get_record = create_get_record(settings, engine)
    return Dispatcher(
        {
            "/user": {"POST": create_user},
            "/record": {"GET": get_record, "HEAD": get_record, "POST": add_record},
        }
    )


def get_app() -> Dispatcher:
    return create_app(Settings.from_env())
