"""What an operator sees: request ids, one JSON log line per request, metrics, health."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from falcon.testing import TestClient

from common.config import Settings
from functions.create_user.app import create_app as create_user_app


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(record.getMessage()))


@pytest.fixture
def log_lines() -> Iterator[list[dict[str, object]]]:
    handler = Lines()
    logger = logging.getLogger("audiosvc.requests")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def test_one_json_line_per_request_without_secrets(
    get_record_client: TestClient, user: dict[str, str], log_lines: list[dict[str, object]]
) -> None:
    result = get_record_client.simulate_get(
        "/records",
        params={"user": user["id"], "token": user["token"]},
        headers={"X-Request-ID": "req-123"},
    )
    assert result.status_code == 200
    assert result.headers["x-request-id"] == "req-123"
    line = log_lines[-1]
    assert line["request_id"] == "req-123"
    assert line["function"] == "get_record"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/records", 200)
    assert line["user_id"] == user["id"]
    assert isinstance(line["duration_ms"], float)
    assert line["bytes_out"] == len(result.content)
    assert user["token"] not in json.dumps(line)


def test_a_request_id_is_made_when_none_comes(
    create_user_client: TestClient, log_lines: list[dict[str, object]]
) -> None:
    result = create_user_client.simulate_post("/user", json={"name": f"n-{uuid.uuid4()}"})
    assert len(result.headers["x-request-id"]) == 32
    assert log_lines[-1]["request_id"] == result.headers["x-request-id"]
    assert log_lines[-1]["user_id"] == result.json["id"]


def test_metrics_count_requests(create_user_client: TestClient) -> None:
    create_user_client.simulate_post("/user", json={"name": ""})
    text = create_user_client.simulate_get("/metrics").text
    assert (
        'audiosvc_requests_total{function="create_user",method="POST",route="/user",status="400"}'
        in text
    )
    assert "audiosvc_request_seconds_bucket" in text


def test_health(create_user_client: TestClient, settings: Settings) -> None:
    result = create_user_client.simulate_get("/healthz")
    assert (result.status_code, result.json) == (200, {"status": "ok"})
    down = replace(settings, database_url="postgresql+psycopg://postgres@127.0.0.1:1/none")
    result = TestClient(create_user_app(down)).simulate_get("/healthz")
    assert result.status_code == 503
    assert result.json["title"] == "Database unavailable"
