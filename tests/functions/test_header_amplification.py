"""Tiny headers, huge work (security review, high): what a WAV's header says cannot buy more
conversion or storage than the audio it carries, within the bounds `make amplification` measures.

Each case failed before: a second `fmt ` chunk and a 1 Hz rate were stored (201); a byte rate of
0xFFFFFFFF made an ADPCM file look like 0 s; FLAC and MP3 inside a WAV were converted.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from falcon.testing import TestClient
from sqlalchemy.engine import Engine

from common.config import Settings
from common.storage.db import records
from functions.add_record.app import create_app
from tests.helpers import ima_adpcm, lavfi, nothing_stored, pcm8, two_fmt_chunks


def post_wav(client: TestClient, user: dict[str, str], body: bytes, name: str) -> Any:
    return client.simulate_post(
        "/record",
        params={"user": user["id"], "name": name},
        body=body,
        headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
    )


@pytest.mark.parametrize(
    ("case", "body", "reason"),
    [
        ("two-fmt-chunks", two_fmt_chunks(), "the WAV has more than one fmt chunk"),
        ("1-hz", pcm8(1, 60), "the WAV declares a sample rate of 1 Hz, under 1000 Hz"),
        (
            "flac-in-wav",
            lavfi("sine=duration=1", "-c:a", "flac", "-f", "wav"),
            "the WAV's codec (format tag 0xF1AC) is not accepted",
        ),
        (
            "mp3-in-wav",
            lavfi("sine=duration=1", "-c:a", "libmp3lame", "-b:a", "32k", "-f", "wav"),
            "the WAV's codec (format tag 0x0055) is not accepted",
        ),
    ],
)
def test_headers_that_lie_about_the_work_are_422(
    add_record_client: TestClient,
    user: dict[str, str],
    engine: Engine,
    spool_dir: Path,
    case: str,
    body: bytes,
    reason: str,
) -> None:
    with nothing_stored(engine, spool_dir):
        result = post_wav(add_record_client, user, body, f"{case}.wav")
        assert result.status_code == 422, result.text
        assert result.json["title"] == "Undecodable WAV"
        assert result.json["description"].startswith(reason)


def test_a_byte_rate_claiming_microseconds_does_not_pass_the_limit(
    settings: Settings, engine: Engine, user: dict[str, str], spool_dir: Path
) -> None:
    strict = TestClient(create_app(replace(settings, max_duration_s=5.0), engine))
    with nothing_stored(engine, spool_dir):
        result = post_wav(strict, user, ima_adpcm(10), "adpcm.wav")
        assert result.status_code == 422, result.text
        assert result.json["title"] == "Audio too long"


TELEPHONY = [
    ("gsm-6.10", 8000, ("-c:a", "libgsm_ms")),
    ("g.726-2bit", 8000, ("-c:a", "g726", "-code_size", "2")),
    ("g.723.1", 8000, ("-c:a", "g723_1", "-b:a", "6300")),
    ("g.722", 16000, ("-c:a", "g722")),
]
"""Voicemail and call-recording codecs, each at the one rate and channel it is defined for."""


def telephony_wav(rate: int, codec: tuple[str, ...]) -> bytes:
    return lavfi(
        f"sine=frequency=440:sample_rate={rate}:duration=2", "-ac", "1", *codec, "-f", "wav"
    )


@pytest.mark.parametrize(("case", "rate", "codec"), TELEPHONY, ids=[c[0] for c in TELEPHONY])
def test_telephony_codecs_are_converted(
    add_record_client: TestClient,
    user: dict[str, str],
    engine: Engine,
    case: str,
    rate: int,
    codec: tuple[str, ...],
) -> None:
    """GSM 6.10 and its kin (refused as unknown codecs before): 201, the audio's own length."""
    result = post_wav(add_record_client, user, telephony_wav(rate, codec), f"{case}.wav")
    assert result.status_code == 201, result.text
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(records.c.duration_ms, records.c.sample_rate, records.c.channels).where(
                records.c.id == uuid.UUID(result.json["id"])
            )
        ).one()
    assert abs(stored.duration_ms - 2000) <= 60, stored
    assert (stored.sample_rate, stored.channels) == (rate, 1)


def test_a_fixed_rate_codec_whose_header_says_another_rate_is_422(
    add_record_client: TestClient, user: dict[str, str], engine: Engine, spool_dir: Path
) -> None:
    """GSM 6.10 declared at 1 kHz would make 8 times the audio its bytes hold."""
    body = bytearray(telephony_wav(8000, ("-c:a", "libgsm_ms")))
    fmt = body.index(b"fmt ") + 8
    struct.pack_into("<I", body, fmt + 4, 1000)
    with nothing_stored(engine, spool_dir):
        result = post_wav(add_record_client, user, bytes(body), "stretched.wav")
        assert result.status_code == 422, result.text
        assert result.json["description"].startswith(
            "GSM 6.10 audio is 8000 Hz with 1 channel; this WAV's header says 1000 Hz with 1"
        )
