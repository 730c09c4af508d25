"""POST /record through falcon.testing, on the real PostgreSQL and the real ffmpeg."""

from __future__ import annotations

import io
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from falcon.testing import TestClient
from sqlalchemy.engine import Engine

from common.config import CONVERSION_FOOTPRINT_BYTES
from common.http.auth import NO_CREDENTIALS
from common.storage.db import record_chunks, records
from functions.add_record.app import create_app
from tests.helpers import fmt_chunk, left_in_spool, multipart, nothing_stored, pcm16, riff

WAV = pcm16(1.0, 44100, 2)


def post_multipart(
    client: TestClient, fields: dict[str, str], files: list[tuple[str, str, bytes]], **headers: str
) -> Any:
    body, content_type = multipart(fields, files)
    return client.simulate_post(
        "/record",
        body=body,
        headers={"Content-Type": content_type, "Host": "example.org:8080", **headers},
    )


def post_raw(
    client: TestClient,
    params: dict[str, str],
    body: bytes,
    content_type: str = "audio/wav",
    **headers: str,
) -> Any:
    return client.simulate_post(
        "/record",
        params=params,
        body=body,
        headers={"Content-Type": content_type, "Host": "example.org:8080", **headers},
    )


def test_multipart_upload_is_stored(
    add_record_client: TestClient, user: dict[str, str], engine: Engine
) -> None:
    result = post_multipart(
        add_record_client,
        {"user": user["id"], "token": user["token"]},
        [("file", "My take.wav", WAV)],
    )
    assert result.status_code == 201
    record_id = result.json["id"]
    expected = f"http://example.org:8080/record?id={record_id}&user={user['id']}"
    assert result.json["url"] == expected
    assert result.headers["location"] == expected
    with engine.connect() as conn:
        row = conn.execute(sa.select(records).where(records.c.id == uuid.UUID(record_id))).one()
        sizes = conn.execute(
            sa.select(sa.func.sum(sa.func.length(record_chunks.c.data))).where(
                record_chunks.c.record_id == row.id
            )
        ).scalar_one()
    assert (row.name, row.channels, row.sample_rate) == ("My take.wav", 2, 44100)
    assert row.duration_ms == pytest.approx(1000, abs=60)
    assert sizes == row.size


@pytest.mark.parametrize(
    "content_type",
    ["audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "Audio/WAV; codecs=1"],
)
def test_raw_upload_with_bearer(
    add_record_client: TestClient, user: dict[str, str], content_type: str
) -> None:
    result = post_raw(
        add_record_client,
        {"user": user["id"], "name": "raw.wav"},
        WAV,
        content_type,
        Authorization=f"Bearer {user['token']}",
    )
    assert result.status_code == 201, result.text


def test_raw_upload_with_token_parameter(
    add_record_client: TestClient, user: dict[str, str]
) -> None:
    result = post_raw(add_record_client, {"user": user["id"], "token": user["token"]}, WAV)
    assert result.status_code == 201


def test_public_base_url_wins(settings: Any, engine: Engine, user: dict[str, str]) -> None:
    client = TestClient(
        create_app(replace(settings, public_base_url="https://audio.example/"), engine)
    )
    result = post_raw(client, {"user": user["id"], "token": user["token"]}, WAV)
    assert result.json["url"].startswith("https://audio.example/record?id=")


def test_forwarded_proto_and_host_are_used(
    add_record_client: TestClient, user: dict[str, str]
) -> None:
    result = post_raw(
        add_record_client,
        {"user": user["id"], "token": user["token"]},
        WAV,
        **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gw.example:8443"},
    )
    assert result.json["url"].startswith("https://gw.example:8443/record?id=")


ERROR_CASES = [
    ("no user", lambda u: ({"token": u["token"]}, WAV, "audio/wav"), 400),
    ("malformed user", lambda u: ({"user": "nope", "token": u["token"]}, WAV, "audio/wav"), 400),
    ("empty body", lambda u: ({"user": u["id"], "token": u["token"]}, b"", "audio/wav"), 400),
    ("no token", lambda u: ({"user": u["id"]}, WAV, "audio/wav"), 401),
    (
        "wrong token",
        lambda u: ({"user": u["id"], "token": str(uuid.uuid4())}, WAV, "audio/wav"),
        401,
    ),
    ("token not a uuid", lambda u: ({"user": u["id"], "token": "secret"}, WAV, "audio/wav"), 401),
    (
        "unknown user",
        lambda u: ({"user": str(uuid.uuid4()), "token": u["token"]}, WAV, "audio/wav"),
        401,
    ),
    (
        "text",
        lambda u: ({"user": u["id"], "token": u["token"]}, b"just some text here", "audio/wav"),
        415,
    ),
    (
        "wrong content type",
        lambda u: ({"user": u["id"], "token": u["token"]}, WAV, "application/octet-stream"),
        415,
    ),
    (
        "no fmt",
        lambda u: (
            {"user": u["id"], "token": u["token"]},
            riff([(b"data", bytes(1000))]),
            "audio/wav",
        ),
        422,
    ),
    (
        "zero samples",
        lambda u: (
            {"user": u["id"], "token": u["token"]},
            riff([(b"fmt ", fmt_chunk(1, 1, 8000, 16)), (b"data", b"")]),
            "audio/wav",
        ),
        422,
    ),
    (
        "unknown codec",
        lambda u: (
            {"user": u["id"], "token": u["token"]},
            riff([(b"fmt ", fmt_chunk(0x2222, 1, 8000, 16)), (b"data", bytes(8000))]),
            "audio/wav",
        ),
        422,
    ),
]


@pytest.mark.parametrize(("case", "build", "status"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_raw_errors_store_nothing_and_leave_no_file(
    add_record_client: TestClient,
    user: dict[str, str],
    engine: Engine,
    spool_dir: Path,
    case: str,
    build: Any,
    status: int,
) -> None:
    with nothing_stored(engine, spool_dir):
        params, body, content_type = build(user)
        result = post_raw(add_record_client, params, body, content_type)
        assert result.status_code == status, result.text
        assert result.headers["content-type"] == "application/json"
        assert result.json["description"]
        if status == 401:
            assert result.headers["www-authenticate"] == "Bearer"
            wrong = NO_CREDENTIALS if case == "no token" else "the user or the token is wrong"
            assert result.json["description"] == wrong


@pytest.mark.parametrize(
    ("fields", "files", "status"),
    [
        ({"token": "T"}, [("file", "a.wav", WAV)], 400),
        ({"user": "U", "token": "T"}, [], 400),
        ({"user": "U", "token": "T"}, [("file", "a.wav", b"")], 400),
        ({"user": "U", "token": "T"}, [("file", "a.wav", WAV), ("file", "b.wav", WAV)], 400),
        ({"user": "U", "token": "T"}, [("upload", "a.wav", WAV)], 400),
        ({"user": "U", "token": "T", "user_id": "x"}, [("file", "a.wav", WAV)], 400),
        ({"user": "U", "token": "wrong"}, [("file", "a.wav", WAV)], 401),
        ({"user": "U", "token": "T"}, [("file", "a.wav", b"ID3\x04not a wav at all")], 415),
    ],
)
def test_multipart_errors(
    add_record_client: TestClient,
    user: dict[str, str],
    engine: Engine,
    spool_dir: Path,
    fields: dict[str, str],
    files: list[tuple[str, str, bytes]],
    status: int,
) -> None:
    with nothing_stored(engine, spool_dir):
        values = {
            k: v.replace("U", user["id"]).replace("T", user["token"]) if len(v) == 1 else v
            for k, v in fields.items()
        }
        result = post_multipart(add_record_client, values, files)
        assert result.status_code == status, result.text
        assert result.json["description"]


def test_malformed_multipart_is_400(add_record_client: TestClient) -> None:
    result = add_record_client.simulate_post(
        "/record",
        body=b"--x\r\ngarbage",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert result.status_code == 400
    result = add_record_client.simulate_post(
        "/record", body=b"whatever", headers={"Content-Type": "multipart/form-data"}
    )
    assert result.status_code == 400


def test_over_limit_is_413(
    settings: Any, engine: Engine, user: dict[str, str], spool_dir: Path
) -> None:
    client = TestClient(create_app(replace(settings, max_upload_bytes=len(WAV) - 1), engine))
    result = post_raw(client, {"user": user["id"], "token": user["token"]}, WAV)
    assert result.status_code == 413
    assert left_in_spool(spool_dir) == []


def test_a_chunked_body_over_the_limit_is_413_while_streaming(
    settings: Any, engine: Engine, user: dict[str, str], spool_dir: Path
) -> None:
    client = TestClient(create_app(replace(settings, max_upload_bytes=1 << 20), engine))
    body = io.BytesIO(pcm16(30.0))
    result = client.simulate_post(
        "/record",
        params={"user": user["id"]},
        headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
        extras={"wsgi.input": body},
    )
    assert result.status_code == 413
    assert result.json["description"] == "the WAV may be at most 1 MiB (1048576 bytes)"
    assert body.tell() < 3 << 20
    assert left_in_spool(spool_dir) == []


def test_a_conversion_past_its_deadline_is_503_with_retry_after(
    settings: Any, engine: Engine, user: dict[str, str], spool_dir: Path
) -> None:
    client = TestClient(create_app(replace(settings, ffmpeg_timeout_s=0.05), engine))
    with nothing_stored(engine, spool_dir):
        result = post_raw(
            client, {"user": user["id"], "token": user["token"]}, pcm16(30.0, 48000, 2)
        )
        assert result.status_code == 503, result.text
        assert result.headers["retry-after"] == "30"
        assert result.json["title"] == "Converter unavailable"
        assert "longer than 0.05 s" in result.json["description"]


def test_no_converter_is_503_with_retry_after(
    settings: Any, engine: Engine, user: dict[str, str], spool_dir: Path
) -> None:
    client = TestClient(create_app(replace(settings, ffmpeg_path="/nonexistent/ffmpeg"), engine))
    result = post_raw(client, {"user": user["id"], "token": user["token"]}, WAV)
    assert result.status_code == 503, result.text
    assert result.headers["retry-after"] == "30"
    assert left_in_spool(spool_dir) == []


def test_a_chunked_multipart_upload_is_stored(
    add_record_client: TestClient, user: dict[str, str]
) -> None:
    """No Content-Length (a chunked body, as curl -H 'Transfer-Encoding: chunked' -F sends it):
    the form is read as it comes. It was a 500 (second security review, finding 7)."""
    body, content_type = multipart(
        {"user": user["id"], "token": user["token"]}, [("file", "a.wav", WAV)]
    )
    result = add_record_client.simulate_post(
        "/record",
        headers={"Content-Type": content_type, "Transfer-Encoding": "chunked"},
        extras={"wsgi.input": io.BytesIO(body)},
    )
    assert result.status_code == 201, result.text


@pytest.mark.parametrize(
    ("failing", "overrides"),
    [
        (riff([(b"fmt ", fmt_chunk(1, 1, 8000, 16)), (b"data", b"")]), {}),
        (pcm16(2.0), {"max_duration_s": 1.0}),
    ],
    ids=["no-samples", "too-long"],
)
def test_a_failed_conversion_frees_its_slot(
    settings: Any,
    engine: Engine,
    user: dict[str, str],
    failing: bytes,
    overrides: dict[str, Any],
) -> None:
    """With one conversion slot, an upload refused once ffmpeg had started (422), then a good
    one: 201, not 503 Converter busy (the slot was given back)."""
    one_slot = replace(settings, conversion_memory_bytes=CONVERSION_FOOTPRINT_BYTES)
    refused = post_raw(
        TestClient(create_app(replace(one_slot, **overrides), engine)),
        {"user": user["id"], "token": user["token"]},
        failing,
    )
    assert refused.status_code == 422, refused.text
    good = post_raw(
        TestClient(create_app(one_slot, engine)), {"user": user["id"], "token": user["token"]}, WAV
    )
    assert good.status_code == 201, good.text


def test_the_quota_is_checked_at_its_boundary_before_the_body_is_read(
    settings: Any, engine: Engine, user: dict[str, str], add_record_client: TestClient
) -> None:
    """Stored bytes exactly equal to the quota: nothing more fits, refused (507) before the WAV
    is read, let alone converted."""
    first = post_raw(add_record_client, {"user": user["id"], "token": user["token"]}, WAV)
    with engine.connect() as conn:
        size = conn.execute(
            sa.select(records.c.size).where(records.c.id == uuid.UUID(first.json["id"]))
        ).scalar_one()
    full = TestClient(create_app(replace(settings, user_quota_bytes=size), engine))
    body = io.BytesIO(pcm16(30.0))
    refused = full.simulate_post(
        "/record",
        params={"user": user["id"], "token": user["token"]},
        headers={"Content-Type": "audio/wav", "Content-Length": str(len(body.getvalue()))},
        extras={"wsgi.input": body},
    )
    assert refused.status_code == 507, refused.text
    assert refused.json["description"].endswith("nothing more fits")
    assert body.tell() < len(body.getvalue()) // 4
