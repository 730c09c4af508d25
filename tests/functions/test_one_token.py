"""One token per request (RFC 6750 §2): the header, the query parameter and the form field may
each carry it, but two that differ are a 400 invalid_request; the same token twice is served.
POST /record, DELETE /record and GET /records share the rule (common.http.auth.request_token)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from falcon.testing import TestClient
from sqlalchemy.engine import Engine

from tests.helpers import multipart, nothing_stored, pcm16

WAV = pcm16(0.5, 22050, 1)


def assert_invalid_request(result: Any) -> None:
    assert result.status_code == 400, result.text
    assert result.headers["content-type"] == "application/json"
    assert result.json["title"] == "Invalid request"
    assert result.json["description"].startswith("invalid_request: ")
    assert "one way" in result.json["description"]
    assert result.headers["www-authenticate"] == 'Bearer error="invalid_request"'


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_raw(client: TestClient, user: dict[str, str], token: str, **headers: str) -> Any:
    return client.simulate_post(
        "/record",
        params={"user": user["id"], "token": token},
        body=WAV,
        headers={"Content-Type": "audio/wav", **headers},
    )


def post_form(
    client: TestClient,
    user: dict[str, str],
    token: str,
    params: dict[str, str] | None = None,
    **headers: str,
) -> Any:
    body, content_type = multipart({"user": user["id"], "token": token}, [("file", "a.wav", WAV)])
    return client.simulate_post(
        "/record", params=params, body=body, headers={"Content-Type": content_type, **headers}
    )


@pytest.mark.parametrize("other", ["wrong", str(uuid.uuid4())])
def test_raw_upload_with_two_different_tokens_is_400(
    add_record_client: TestClient,
    user: dict[str, str],
    engine: Engine,
    spool_dir: Path,
    other: str,
) -> None:
    with nothing_stored(engine, spool_dir):
        assert_invalid_request(post_raw(add_record_client, user, other, **bearer(user["token"])))
        assert_invalid_request(post_raw(add_record_client, user, user["token"], **bearer(other)))


def test_raw_upload_with_the_same_token_twice_is_served(
    add_record_client: TestClient, user: dict[str, str]
) -> None:
    token = user["token"]
    assert post_raw(add_record_client, user, token, **bearer(token)).status_code == 201
    assert post_raw(add_record_client, user, token.upper(), **bearer(token)).status_code == 201


def test_multipart_with_a_header_and_a_field_that_differ_is_400(
    add_record_client: TestClient, user: dict[str, str], engine: Engine, spool_dir: Path
) -> None:
    with nothing_stored(engine, spool_dir):
        result = post_form(add_record_client, user, str(uuid.uuid4()), **bearer(user["token"]))
        assert_invalid_request(result)


def test_multipart_with_a_field_and_a_parameter_that_differ_is_400(
    add_record_client: TestClient, user: dict[str, str], engine: Engine
) -> None:
    with nothing_stored(engine):
        result = post_form(add_record_client, user, user["token"], {"token": str(uuid.uuid4())})
        assert_invalid_request(result)


def test_multipart_with_the_same_token_in_header_and_field_is_served(
    add_record_client: TestClient, user: dict[str, str]
) -> None:
    result = post_form(add_record_client, user, user["token"], **bearer(user["token"]))
    assert result.status_code == 201, result.text


def test_delete_with_two_different_tokens_is_400_and_deletes_nothing(
    add_record_client: TestClient, get_record_client: TestClient, user: dict[str, str]
) -> None:
    created = post_raw(add_record_client, user, user["token"]).json
    params = {"id": created["id"], "user": user["id"]}
    result = add_record_client.simulate_delete(
        "/record", params={**params, "token": str(uuid.uuid4())}, headers=bearer(user["token"])
    )
    assert_invalid_request(result)
    assert get_record_client.simulate_get("/record", params=params).status_code == 200
    result = add_record_client.simulate_delete(
        "/record", params={**params, "token": user["token"]}, headers=bearer(user["token"])
    )
    assert result.status_code == 204


def test_listing_with_two_different_tokens_is_400(
    get_record_client: TestClient, user: dict[str, str]
) -> None:
    params = {"user": user["id"]}
    result = get_record_client.simulate_get(
        "/records", params={**params, "token": user["token"]}, headers=bearer(str(uuid.uuid4()))
    )
    assert_invalid_request(result)
    result = get_record_client.simulate_get(
        "/records", params={**params, "token": user["token"]}, headers=bearer(user["token"])
    )
    assert result.status_code == 200
