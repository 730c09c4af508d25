"""POST /user through falcon.testing, on the real PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from falcon.testing import TestClient
from sqlalchemy.engine import Engine

from common.config import Settings
from common.names import BIDI_CONTROLS
from common.storage.db import users
from functions.create_user.app import create_app


def unique(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def test_created_user_gets_id_and_token(create_user_client: TestClient, engine: Engine) -> None:
    name = unique("Вася")
    result = create_user_client.simulate_post("/user", json={"name": f"  {name}\t"})
    assert result.status_code == 201
    user_id, token = uuid.UUID(result.json["id"]), uuid.UUID(result.json["token"])
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.id == user_id)).one()
    assert row.name == name
    assert row.token_hash == hashlib.sha256(token.bytes).digest()
    assert str(token).encode() not in row.token_hash


def test_username_is_an_alias(create_user_client: TestClient) -> None:
    result = create_user_client.simulate_post("/user", json={"username": unique()})
    assert result.status_code == 201


def test_taken_name_is_409(create_user_client: TestClient) -> None:
    name = unique()
    assert create_user_client.simulate_post("/user", json={"name": name}).status_code == 201
    result = create_user_client.simulate_post("/user", json={"name": f" {name} "})
    assert result.status_code == 409
    assert result.json["title"] == "Name taken"


def test_bad_bodies_are_400_with_a_reason(create_user_client: TestClient) -> None:
    cases = [
        b"{",
        b"[]",
        b'"x"',
        b"{}",
        b'{"name": ""}',
        b'{"name": 7}',
        b'{"name": "a\\u0000"}',
        b'{"name": "' + b"x" * 65 + b'"}',
        b"\xff\xfe",
    ]
    for body in cases:
        result = create_user_client.simulate_post(
            "/user", body=body, headers={"Content-Type": "application/json"}
        )
        assert result.status_code == 400, body
        assert result.headers["content-type"] == "application/json"
        assert set(result.json) == {"title", "description"}


def test_wrong_content_type_is_415(create_user_client: TestClient) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        result = create_user_client.simulate_post("/user", body=b'{"name": "x"}', headers=headers)
        assert result.status_code == 415


def test_json_with_charset_is_accepted(create_user_client: TestClient) -> None:
    result = create_user_client.simulate_post(
        "/user",
        body=f'{{"name": "{unique()}"}}'.encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert result.status_code == 201


def test_body_over_64_kib_is_413(create_user_client: TestClient) -> None:
    body = b'{"name": "x", "pad": "' + b"x" * 65536 + b'"}'
    result = create_user_client.simulate_post(
        "/user", body=body, headers={"Content-Type": "application/json"}
    )
    assert result.status_code == 413


def test_errors_are_json_whatever_accept_says(create_user_client: TestClient) -> None:
    result = create_user_client.simulate_get("/nope", headers={"Accept": "text/html"})
    assert result.status_code == 404
    assert result.headers["content-type"] == "application/json"
    assert result.json["title"]
    result = create_user_client.simulate_get("/user", headers={"Accept": "text/html"})
    assert result.status_code == 405
    assert result.json["description"]


def test_database_down_is_503_json(settings: Settings) -> None:
    down = replace(settings, database_url="postgresql+psycopg://postgres@127.0.0.1:1/none")
    client = TestClient(create_app(down))
    result = client.simulate_post("/user", json={"name": unique()})
    assert result.status_code == 503
    assert result.headers["retry-after"] == "5"
    assert result.json["title"] == "Database unavailable"


def post_json(client: TestClient, body: bytes) -> Any:
    return client.simulate_post("/user", body=body, headers={"Content-Type": "application/json"})


REFUSED_JSON = [
    ("nested arrays", b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
    ("nested objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "nested too deeply"),
    ("nested in the name", b'{"name": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nested"),
    ("encoded lone surrogate", b'{"name": "\xed\xa0\x80"}', "not valid UTF-8"),
    ("encoded low surrogate", b'{"name": "a\xed\xbf\xbfb"}', "not valid UTF-8"),
    ("invalid byte", b'{"name": "\xff"}', "not valid UTF-8"),
    ("truncated sequence", b'{"name": "\xd0"}', "not valid UTF-8"),
    ("overlong encoding", b'{"name": "\xc0\xaf"}', "not valid UTF-8"),
    ("long integer", b'{"name": "x", "n": 1' + b"0" * 5000 + b"}", "number too long"),
    ("long integer as name", b'{"name": ' + b"9" * 5000 + b"}", "number too long"),
    ("truncated", b'{"name": "x"', "not valid JSON"),
]


@pytest.mark.parametrize(
    ("case", "body", "reason"), REFUSED_JSON, ids=[case[0] for case in REFUSED_JSON]
)
def test_any_json_the_parser_refuses_is_400(
    create_user_client: TestClient, case: str, body: bytes, reason: str
) -> None:
    result = post_json(create_user_client, body)
    assert result.status_code == 400, result.text
    assert result.headers["content-type"] == "application/json"
    assert result.json["title"] == "Malformed JSON"
    assert reason in result.json["description"]


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\udc00b", "\\ude00\\ud83d"])
def test_a_name_decoding_to_a_lone_surrogate_is_400(
    create_user_client: TestClient, escape: str
) -> None:
    result = post_json(create_user_client, f'{{"name": "{escape}"}}'.encode())
    assert result.status_code == 400, result.text
    assert result.json["title"] == "Invalid name"
    assert "surrogates" in result.json["description"]


def test_an_escaped_surrogate_pair_is_one_character(create_user_client: TestClient) -> None:
    result = post_json(create_user_client, f'{{"name": "{unique()}\\ud83d\\ude00"}}'.encode())
    assert result.status_code == 201, result.text


@pytest.mark.parametrize("control", sorted(BIDI_CONTROLS))
def test_names_with_bidirectional_controls_are_400(
    create_user_client: TestClient, engine: Engine, control: str
) -> None:
    name = unique(f"admin{control}")
    result = create_user_client.simulate_post("/user", json={"name": name})
    assert result.status_code == 400, result.text
    assert result.json["title"] == "Invalid name"
    assert "bidirectional controls" in result.json["description"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(users.c.id).where(users.c.name == name)).first() is None


def test_the_token_is_not_to_be_cached(create_user_client: TestClient) -> None:
    result = create_user_client.simulate_post("/user", json={"name": unique()})
    assert result.status_code == 201
    assert result.headers["cache-control"] == "no-store"
