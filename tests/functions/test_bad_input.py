"""Everything that is not a real WAV, or not a proper request, is refused with its status and a
JSON reason; nothing is stored, nothing is left in the spool, and the service stays up."""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from falcon.testing import TestClient
from sqlalchemy.engine import Engine

from common.config import Settings
from functions.add_record.app import create_app
from tests.helpers import (
    fmt_chunk,
    lavfi,
    multipart,
    nothing_stored,
    pcm16,
    riff,
)

WAV = pcm16(0.5, 8000, 1)
BODIES = [
    ("empty", b"", 400),
    ("text", b"Hello, this is not audio at all.\n", 415),
    ("random-bytes", os.urandom(4096), 415),
    ("mp3-named-wav", lavfi("sine=duration=1", "-c:a", "libmp3lame", "-f", "mp3"), 415),
    ("flac-named-wav", lavfi("sine=duration=1", "-c:a", "flac", "-f", "flac"), 415),
    ("riff-avi", riff([(b"LIST", bytes(64))], form=b"AVI "), 415),
    ("riff-only-4-bytes", b"RIFF", 422),
    ("truncated-riff-header", b"RIFF\x24\x00\x00", 422),
    ("no-fmt", riff([(b"data", bytes(1000))]), 422),
    ("fmt-truncated", b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00", 422),
    ("no-data", riff([(b"fmt ", fmt_chunk(1, 1, 8000, 16))]), 422),
    ("zero-samples", riff([(b"fmt ", fmt_chunk(1, 1, 8000, 16)), (b"data", b"")]), 422),
    ("truncated-data", WAV[:45], 422),
    ("absurd-chunk-size", b"RIFF\xff\xff\xff\xffWAVEfmt \xff\xff\xff\x7f" + bytes(32), 422),
    ("absurd-list-before-data", b"RIFF\x00\x00\x00\x00WAVELIST\xff\xff\xff\xff" + bytes(64), 422),
    ("zero-channels", riff([(b"fmt ", fmt_chunk(1, 0, 8000, 16)), (b"data", bytes(100))]), 422),
    (
        "unknown-codec",
        riff(
            [
                (b"fmt ", struct.pack("<HHIIHH", 0x5555, 1, 8000, 16000, 2, 16)),
                (b"data", bytes(16000)),
            ]
        ),
        422,
    ),
    (
        "garbage-adpcm",
        riff(
            [
                (b"fmt ", struct.pack("<HHIIHHHH", 0x11, 1, 8000, 4055, 256, 4, 2, 505)),
                (b"data", os.urandom(10)),
            ]
        ),
        422,
    ),
]


@pytest.fixture
def strict_client(settings: Settings, engine: Engine) -> TestClient:
    return TestClient(create_app(replace(settings, max_duration_s=5.0), engine))


def post_boundary_b(client: TestClient, user: dict[str, str], body: bytes) -> Any:
    """A hand-made multipart body whose boundary is `B`, the token as Bearer."""
    return client.simulate_post(
        "/record",
        body=body,
        headers={
            "Content-Type": "multipart/form-data; boundary=B",
            "Authorization": f"Bearer {user['token']}",
        },
    )


def assert_refused(result: Any, status: int) -> None:
    assert result.status_code == status, result.text
    assert result.headers["content-type"] == "application/json"
    assert result.json["title"]
    assert result.json["description"]


@pytest.mark.parametrize(("case", "body", "status"), BODIES, ids=[case[0] for case in BODIES])
@pytest.mark.parametrize("form", ["raw", "multipart"])
def test_bad_bodies_are_refused(
    strict_client: TestClient,
    user: dict[str, str],
    engine: Engine,
    spool_dir: Path,
    case: str,
    body: bytes,
    status: int,
    form: str,
) -> None:
    with nothing_stored(engine, spool_dir):
        auth = {"Authorization": f"Bearer {user['token']}"}
        if form == "raw":
            result = strict_client.simulate_post(
                "/record",
                params={"user": user["id"], "name": f"{case}.wav"},
                body=body,
                headers={"Content-Type": "audio/wav", **auth},
            )
        else:
            form, content_type = multipart({"user": user["id"]}, [("file", f"{case}.wav", body)])
            result = strict_client.simulate_post(
                "/record", body=form, headers={"Content-Type": content_type, **auth}
            )
        assert_refused(result, status)


def test_too_long_audio_is_422_before_it_is_all_sent(
    strict_client: TestClient, user: dict[str, str], engine: Engine
) -> None:
    with nothing_stored(engine):
        result = strict_client.simulate_post(
            "/record",
            params={"user": user["id"]},
            body=pcm16(8.0, 8000, 1),
            headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
        )
        assert_refused(result, 422)
        assert result.json["title"] == "Audio too long"


def test_too_long_streamed_audio_is_caught_too(
    strict_client: TestClient, user: dict[str, str]
) -> None:
    wav = pcm16(8.0, 8000, 1)
    streamed = wav[:40] + b"\xff\xff\xff\xff" + wav[44:]
    result = strict_client.simulate_post(
        "/record",
        params={"user": user["id"]},
        body=streamed,
        headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
    )
    assert_refused(result, 422)


@pytest.mark.parametrize(
    "disposition",
    [
        b'form-data; name="file"; filename="\xff\xfe.wav"',
        b"form-data; name=\"file\"; filename*=UTF-8''%FF.wav",
        b'form-data; name="\xff"',
    ],
)
def test_bad_multipart_names_are_400(
    add_record_client: TestClient, user: dict[str, str], disposition: bytes
) -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="user"\r\n\r\n'
        + user["id"].encode()
        + b"\r\n--B\r\nContent-Disposition: "
        + disposition
        + b"\r\n\r\n"
        + WAV
        + b"\r\n--B--\r\n"
    )
    assert_refused(post_boundary_b(add_record_client, user, body), 400)


@pytest.mark.parametrize(
    "body",
    [
        b'--B\r\nContent-Disposition: form-data; name="user"\r\n\r\nx',
        b"no boundary here at all",
        b"--B\r\n\r\n\r\n--B--\r\n",
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n' + b"X" * 9000,
    ],
)
def test_malformed_multipart_is_400(
    add_record_client: TestClient, user: dict[str, str], body: bytes
) -> None:
    assert_refused(post_boundary_b(add_record_client, user, body), 400)


def test_the_service_still_converts_afterwards(
    add_record_client: TestClient, user: dict[str, str]
) -> None:
    result = add_record_client.simulate_post(
        "/record",
        params={"user": user["id"]},
        body=WAV,
        headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
    )
    assert result.status_code == 201


def test_names_of_any_origin_never_reach_a_header_raw(
    add_record_client: TestClient, get_record_client: TestClient, user: dict[str, str]
) -> None:
    name = '../../etc/evil\r\nSet-Cookie: x=1; "quoted".wav'
    created = add_record_client.simulate_post(
        "/record",
        params={"user": user["id"], "name": name},
        body=WAV,
        headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
    )
    assert created.status_code == 201
    download = get_record_client.simulate_get(
        "/record", params={"id": created.json["id"], "user": user["id"]}
    )
    disposition = download.headers["content-disposition"]
    assert "\r" not in disposition
    assert "\n" not in disposition
    assert "set-cookie" not in {key.lower() for key in download.headers}
    assert disposition.startswith('attachment; filename="evilSet-Cookie: x=1; _quoted_.mp3"')
    assert uuid.UUID(created.json["id"])
