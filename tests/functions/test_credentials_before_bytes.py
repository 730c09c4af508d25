"""Credentials before bytes (security reviews one and two): a multipart upload whose file part
comes before its user and token is refused before any byte of it is kept, unless the token came as
Authorization: Bearer; then the token names its user before the file is read (401 when it is
nobody's), and a user field after the file that names another user is a 401 with nothing stored.

Before, such a file part was spooled whole whatever the token (the second review filled a 24 MB
spool with bogus-token bodies, and every honest upload got 503 while the attacker saw no 401).
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from falcon.testing import TestClient
from sqlalchemy.engine import Engine

from tests.helpers import multipart, nothing_stored, pcm16

WAV = pcm16(1.0, 44100, 2)


def post_file_first(
    client: TestClient, fields: dict[str, str], wav: bytes = WAV, **headers: str
) -> tuple[Any, io.BytesIO]:
    """A multipart upload whose file part comes before `fields`, and its body as read."""
    body, content_type = multipart(fields, [("file", "a.wav", wav)], files_first=True)
    stream = io.BytesIO(body)
    result = client.simulate_post(
        "/record",
        headers={"Content-Type": content_type, "Content-Length": str(len(body)), **headers},
        extras={"wsgi.input": stream},
    )
    return result, stream


@pytest.mark.parametrize("token_field", [False, True])
def test_multipart_with_bearer_and_file_before_fields(
    add_record_client: TestClient, user: dict[str, str], token_field: bool
) -> None:
    fields = {"user": user["id"], **({"token": user["token"]} if token_field else {})}
    result, _ = post_file_first(add_record_client, fields, Authorization=f"Bearer {user['token']}")
    assert result.status_code == 201, result.text


def test_file_before_fields_without_bearer_is_400_before_the_file_is_read(
    add_record_client: TestClient, user: dict[str, str], engine: Engine, spool_dir: Path
) -> None:
    with nothing_stored(engine, spool_dir):
        wav = pcm16(30.0)
        result, body = post_file_first(
            add_record_client, {"user": user["id"], "token": user["token"]}, wav
        )
        assert result.status_code == 400, result.text
        assert result.json["title"] == "Credentials after file"
        assert "send user and token first" in result.json["description"]
        assert "Authorization: Bearer" in result.json["description"]
        assert body.tell() < len(wav) // 4


@pytest.mark.parametrize(
    "fields", [{"user": "U"}, {}, {"token": "T"}, {"token": "T", "user": "U"}], ids=str
)
def test_file_before_fields_is_400_without_the_header(
    add_record_client: TestClient,
    user: dict[str, str],
    engine: Engine,
    spool_dir: Path,
    fields: dict[str, str],
) -> None:
    with nothing_stored(engine, spool_dir):
        values = {
            k: v.replace("U", user["id"]).replace("T", user["token"]) for k, v in fields.items()
        }
        result, _ = post_file_first(add_record_client, values)
        assert result.status_code == 400, result.text
        assert result.json["title"] == "Credentials after file"
        assert result.json["description"].startswith("the token is missing: no token field came")
        assert "Authorization: Bearer" in result.json["description"]


def test_a_token_before_the_file_and_the_user_after_is_told_so(
    add_record_client: TestClient, user: dict[str, str], engine: Engine, spool_dir: Path
) -> None:
    with nothing_stored(engine, spool_dir):
        token_first, content_type = multipart({"token": user["token"]}, [("file", "a.wav", WAV)])
        boundary = content_type.split("boundary=")[1]
        user_after = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="user"\r\n\r\n{user["id"]}\r\n'
        ).encode()
        end = f"--{boundary}--\r\n".encode()
        body = token_first.removesuffix(end) + user_after + end
        result = add_record_client.simulate_post(
            "/record", body=body, headers={"Content-Type": content_type}
        )
        assert result.status_code == 400, result.text
        assert result.json["description"].startswith("the file part came before the user field")


@pytest.mark.parametrize("token", [str(uuid.uuid4()), "not-a-uuid"])
def test_file_before_fields_with_a_wrong_bearer_is_401_before_the_file_is_read(
    add_record_client: TestClient,
    user: dict[str, str],
    engine: Engine,
    spool_dir: Path,
    token: str,
) -> None:
    with nothing_stored(engine, spool_dir):
        wav = pcm16(30.0)
        result, body = post_file_first(
            add_record_client, {"user": user["id"]}, wav, Authorization=f"Bearer {token}"
        )
        assert result.status_code == 401, result.text
        assert result.headers["www-authenticate"] == "Bearer"
        assert body.tell() < len(wav) // 4


def test_a_user_field_after_the_file_naming_another_user_is_401(
    add_record_client: TestClient,
    create_user_client: TestClient,
    user: dict[str, str],
    engine: Engine,
    spool_dir: Path,
) -> None:
    other = create_user_client.simulate_post("/user", json={"name": f"o-{uuid.uuid4()}"}).json
    with nothing_stored(engine, spool_dir):
        result, _ = post_file_first(
            add_record_client, {"user": other["id"]}, Authorization=f"Bearer {user['token']}"
        )
        assert result.status_code == 401, result.text
        assert result.headers["www-authenticate"] == "Bearer"


def test_a_token_field_after_the_file_unlike_the_bearer_is_400(
    add_record_client: TestClient, user: dict[str, str], engine: Engine, spool_dir: Path
) -> None:
    with nothing_stored(engine, spool_dir):
        result, _ = post_file_first(
            add_record_client,
            {"user": user["id"], "token": str(uuid.uuid4())},
            Authorization=f"Bearer {user['token']}",
        )
        assert result.status_code == 400, result.text
        assert result.json["title"] == "Invalid request"


def test_file_before_fields_with_bearer_and_no_user_is_400(
    add_record_client: TestClient, user: dict[str, str], engine: Engine, spool_dir: Path
) -> None:
    with nothing_stored(engine, spool_dir):
        result, _ = post_file_first(add_record_client, {}, Authorization=f"Bearer {user['token']}")
        assert result.status_code == 400, result.text
        assert result.json["description"] == "user is required"
