"""What operators see of a function: one JSON log line per request, Prometheus metrics, /healthz.

Metrics use prometheus_client's multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set (gunicorn
sets it up, see deploy/gunicorn_conf.py), so /metrics adds up every worker of the function.
Log lines carry the path without its query string: a token may travel there.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import falcon
import sqlalchemy as sa
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy.engine import Engine

REQUESTS = Counter(
    "audiosvc_requests_total", "HTTP requests answered", ["function", "method", "route", "status"]
)
LATENCY = Histogram(
    "audiosvc_request_seconds",
    "Time to answer an HTTP request",
    ["function", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
BYTES = Counter(
    "audiosvc_http_bytes_total", "Request and response body bytes", ["function", "direction"]
)
CONVERSION = Histogram(
    "audiosvc_conversion_seconds",
    "Wall-clock time of WAV to MP3 conversions",
    ["outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)

_LOGGER = "audiosvc.requests"


@contextmanager
def conversion_timer() -> Iterator[None]:
    """Observe one conversion's wall-clock time, labelled by how it ended."""
    started = time.perf_counter()
    outcome = "failed"
    try:
        yield
        outcome = "converted"
    finally:
        CONVERSION.labels(outcome).observe(time.perf_counter() - started)


def request_logger() -> logging.Logger:
    """The request log: JSON lines on stderr, one per request."""
    logger = logging.getLogger(_LOGGER)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


class RequestTelemetry:
    """Falcon middleware: request id, one log line and the request metrics of every request."""

    def __init__(self, function: str, logger: logging.Logger | None = None) -> None:
        self._function = function
        self._logger = logger or request_logger()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        req.context.request_id = req.get_header("X-Request-ID") or uuid.uuid4().hex
        req.context.user_id = None
        resp.set_header("X-Request-ID", req.context.request_id)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        started = req.context.get("started")
        seconds = 0.0 if started is None else time.perf_counter() - started
        status = resp.status_code
        route = req.uri_template or "unmatched"
        bytes_in = req.content_length or 0
        bodiless = req.method == "HEAD" or status in (204, 304)
        bytes_out = 0 if bodiless else _body_length(resp)
        REQUESTS.labels(self._function, req.method, route, str(status)).inc()
        LATENCY.labels(self._function, req.method, route).observe(seconds)
        BYTES.labels(self._function, "in").inc(bytes_in)
        BYTES.labels(self._function, "out").inc(bytes_out)
        user_id = req.context.get("user_id")
        self._logger.info(
            json.dumps(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "request_id": req.context.get("request_id"),
                    "function": self._function,
                    "method": req.method,
                    "path": req.path,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "bytes_in": bytes_in,
                    "bytes_out": bytes_out,
                    "user_id": None if user_id is None else str(user_id),
                }
            )
        )


def _body_length(resp: falcon.Response) -> int:
    length = resp.headers.get("content-length")
    if length is not None and length.isdigit():
        return int(length)
    body = resp.render_body()  # rendered once: Falcon keeps the rendered media for the answer
    return 0 if body is None else len(body)


class Metrics:
    """GET /metrics in Prometheus' text format (not routed by the gateway: scrape the function)."""

    def __init__(self) -> None:
        self._multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = REGISTRY
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(registry)


class Health:
    """GET /healthz: 200 when the function can reach its database, else 503."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self._engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        resp.set_header("Cache-Control", "no-store")
        resp.media = {"status": "ok"}


def add_operations_routes(app: Any, engine: Engine) -> None:
    app.add_route("/healthz", Health(engine))
    app.add_route("/metrics", Metrics())
