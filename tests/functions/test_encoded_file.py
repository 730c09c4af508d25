"""What reaches the stored MP3 from the settings and the upload: its bitrate and its ID3 title."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from falcon.testing import TestClient
from sqlalchemy.engine import Engine

from common.config import Settings
from functions.add_record.app import create_app as add_record_app
from tests.helpers import pcm16, probe


def stored_mp3(
    settings: Settings,
    engine: Engine,
    get_record_client: TestClient,
    user: dict[str, str],
    name: str,
) -> bytes:
    client = TestClient(add_record_app(settings, engine))
    created = client.simulate_post(
        "/record",
        params={"user": user["id"], "name": name},
        body=pcm16(3.0, 44100, 2),
        headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
    )
    assert created.status_code == 201, created.text
    download = get_record_client.simulate_get(
        "/record", params={"id": created.json["id"], "user": user["id"]}
    )
    assert download.status_code == 200
    return download.content


def stream_bit_rate(path: Path) -> int:
    command = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries"]
    command += ["stream=bit_rate", "-of", "default=noprint_wrappers=1:nokey=1", str(path)]
    return int(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


@pytest.mark.parametrize("bitrate", ["64k", "128k", "256k"])
def test_the_configured_bitrate_reaches_the_stored_file(
    settings: Settings,
    engine: Engine,
    get_record_client: TestClient,
    user: dict[str, str],
    tmp_path: Path,
    bitrate: str,
) -> None:
    mp3 = tmp_path / "take.mp3"
    mp3.write_bytes(
        stored_mp3(replace(settings, mp3_bitrate=bitrate), engine, get_record_client, user, "a.wav")
    )
    assert stream_bit_rate(mp3) == int(bitrate[:-1]) * 1000


@pytest.mark.parametrize(
    ("name", "title"),
    [("My take.wav", "My take"), ("Запись 1.final.wav", "Запись 1.final"), ("noext", "noext")],
)
def test_the_file_name_stem_becomes_the_id3_title(
    settings: Settings,
    engine: Engine,
    get_record_client: TestClient,
    user: dict[str, str],
    tmp_path: Path,
    name: str,
    title: str,
) -> None:
    mp3 = tmp_path / "take.mp3"
    mp3.write_bytes(stored_mp3(settings, engine, get_record_client, user, name))
    assert probe(mp3).get("TAG:title") == title
