"""The stand-in for nginx when it is not installed: the three apps and the web page on the
gateway's routes.

Only for local runs; the tests and compose always go through nginx.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from common.config import Settings
from common.http.app import WSGIApp
from common.storage.db import create_engine
from devstack.routes import ROUTES, UPLOAD
from functions.add_record.app import create_app as create_add_record
from functions.create_user.app import create_app as create_create_user
from functions.get_record.app import create_app as create_get_record

WEB_ROOT = Path(__file__).resolve().parent.parent / "nginx" / "web"


class Dispatcher:
    def __init__(self, routes: dict[str, dict[str, WSGIApp]]) -> None:
        self._routes = routes

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        methods = self._routes.get(_route(environ.get("PATH_INFO", "")))
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


def _route(path: str) -> str:
    """The route table's key for `path`: itself, or UPLOAD for /uploads/<one segment>."""
    prefix, _, rest = path.rpartition("/")
    return UPLOAD if prefix == "/uploads" and rest else path


def _error(
    start_response: Callable[..., Any], status: str, description: str, extra: list[tuple[str, str]]
) -> Iterable[bytes]:
    body = json.dumps({"title": status.split(" ", 1)[1], "description": description}).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra]
    )
    return [body]


class StaticFile:
    """One file of the web page, served as the gateway serves it."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        body = self._path.read_bytes()
        start_response(
            "200 OK",
            [
                ("Content-Type", _TYPES.get(self._path.suffix, "application/octet-stream")),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
                ("Content-Security-Policy", _CSP),
            ],
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


_CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""The same policy nginx/nginx.conf.template sends with the page."""
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def _page_routes(web: Path) -> dict[str, dict[str, WSGIApp]]:
    routes: dict[str, dict[str, WSGIApp]] = {}
    for path in sorted(web.glob("*")):
        if path.is_file():
            served = StaticFile(path)
            routes[f"/static/{path.name}"] = {"GET": served, "HEAD": served}
            if path.name == "index.html":
                routes["/"] = {"GET": served, "HEAD": served}
    return routes


def create_app(settings: Settings) -> Dispatcher:
    engine = create_engine(settings.database_url, settings.db_pool_size)
    return dispatch(
        {
            "create_user": create_create_user(settings, engine),
            "add_record": create_add_record(settings, engine),
            "get_record": create_get_record(settings, engine),
        }
    )


def dispatch(functions: Mapping[str, WSGIApp], web: Path = WEB_ROOT) -> Dispatcher:
    """The gateway's routes (devstack/routes.py) to these apps, and the web page's files."""
    api = {
        path: {method: functions[name] for method, name in methods.items()}
        for path, methods in ROUTES.items()
    }
    return Dispatcher({**api, **_page_routes(web)})


def get_app() -> Dispatcher:
    return create_app(Settings.from_env())
