"""nginx and the dispatcher route alike: every method to every path, the same answer from each.

Stand-in functions that only say their name sit behind both gateways: the real nginx with the real
template, and the dispatcher built from devstack/routes.py. Paths and methods are tried in every
combination; status, Allow header and the function that answered must agree.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from falcon.testing import TestClient

from devstack.dispatcher import dispatch
from devstack.routes import FUNCTIONS, ROUTES
from devstack.stack import Stack, free_port
from tests.stacks import needs_nginx

PATHS = (
    "/user",
    "/record",
    "/records",
    "/",
    "/static/index.html",
    "/static/app.js",
    "/nope",
    "/user/x",
    "/uploads",
    "/uploads/x",
    "/uploads/x/y",
    "/uploads/",
)
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


class Named(BaseHTTPRequestHandler):
    """Answers any method with 200 and the name of the function it stands for."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("X-Function", self.server.name)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _answer

    def log_message(self, *args: Any) -> None:
        pass


def named_wsgi(name: str) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(
            "200 OK",
            [("X-Function", name), ("Content-Type", "text/plain"), ("Content-Length", "0")],
        )
        return []

    return app


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    servers = []
    for name in FUNCTIONS:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Named)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    stack = Stack(
        run_dir=tmp_path_factory.mktemp("routes"), env={}, port=free_port(), use_nginx=True
    )
    stack.function_ports = {
        name: s.server_address[1] for name, s in zip(FUNCTIONS, servers, strict=True)
    }
    stack.start_nginx()
    try:
        stack.wait_gateway()
        yield stack
    finally:
        stack.stop()
        for server in servers:
            server.shutdown()


def answer(status: int, headers: Any) -> tuple[int, str | None, str | None]:
    return status, headers.get("X-Function"), headers.get("Allow") if status == 405 else None


@needs_nginx
def test_nginx_and_the_dispatcher_route_every_method_and_path_alike(nginx: Stack) -> None:
    dispatcher = TestClient(dispatch({name: named_wsgi(name) for name in FUNCTIONS}))
    differ = {}
    for path in PATHS:
        for method in METHODS:
            via_nginx = requests.request(method, f"{nginx.url}{path}", timeout=10)
            via_dispatcher = dispatcher.simulate_request(method, path)
            got = answer(via_nginx.status_code, via_nginx.headers)
            expected = answer(via_dispatcher.status_code, via_dispatcher.headers)
            if got != expected:
                differ[f"{method} {path}"] = {"nginx": got, "dispatcher": expected}
    assert not differ


def test_every_route_names_a_function() -> None:
    assert {name for methods in ROUTES.values() for name in methods.values()} == set(FUNCTIONS)
