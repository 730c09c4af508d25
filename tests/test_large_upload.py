"""An upload of over 100 MB through nginx: streamed end to end, the MP3's length exact."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.wavgen import FRAME_BYTES, RATE, write_wav
from devstack.stack import Stack, free_port

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")

FRAMES = 110_000_000 // FRAME_BYTES


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(
        run_dir=tmp_path_factory.mktemp("large"),
        port=free_port(),
        use_nginx=True,
        env={"DATABASE_URL": database_url, "SPOOL_DIR": str(tmp_path_factory.mktemp("spool"))},
    )
    stack.start()
    yield stack
    stack.stop()


def test_a_110_mb_wav_converts_whole(stack: Stack, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "long.wav", FRAMES)
    assert wav.stat().st_size > 100_000_000
    user = requests.post(
        f"{stack.url}/user", json={"name": f"big-{uuid.uuid4()}"}, timeout=10
    ).json()
    with wav.open("rb") as body:
        created = requests.post(
            f"{stack.url}/record",
            params={"user": user["id"]},
            data=body,
            headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
            timeout=300,
        )
    assert created.status_code == 201, created.text
    mp3 = tmp_path / "long.mp3"
    with requests.get(created.json()["url"], stream=True, timeout=60) as download:
        assert download.status_code == 200
        with mp3.open("wb") as out:
            for piece in download.iter_content(1 << 20):
                out.write(piece)
    assert mp3.stat().st_size == int(download.headers["Content-Length"])
    pcm = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(mp3), "-f", "s16le", "-ac", "2", "pipe:1"],
        capture_output=True,
        check=True,
    ).stdout
    assert len(pcm) / (2 * 2 * RATE) == pytest.approx(FRAMES / RATE, rel=0.01)
