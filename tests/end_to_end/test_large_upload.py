"""An upload of over 100 MB through nginx: streamed end to end, the MP3's length exact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.wavgen import FRAME_BYTES, RATE, write_wav
from tests.helpers import decoded_seconds
from tests.stacks import Gateway, gateway_under_test, needs_nginx, new_user, upload

pytestmark = needs_nginx

FRAMES = 110_000_000 // FRAME_BYTES


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Gateway]:
    with gateway_under_test(request) as stack:
        yield stack


def test_a_110_mb_wav_converts_whole(stack: Gateway, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "long.wav", FRAMES)
    assert wav.stat().st_size > 100_000_000
    with wav.open("rb") as body:
        created = upload(stack, new_user(stack), body)
    assert created.status_code == 201, created.text
    mp3 = tmp_path / "long.mp3"
    with requests.get(created.json()["url"], stream=True, timeout=60) as download:
        assert download.status_code == 200
        with mp3.open("wb") as out:
            for piece in download.iter_content(1 << 20):
                out.write(piece)
    assert mp3.stat().st_size == int(download.headers["Content-Length"])
    assert decoded_seconds(mp3) == pytest.approx(FRAMES / RATE, rel=0.01)
