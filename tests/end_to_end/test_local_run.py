"""The first-try path of `make run`: the embedded SQLite file, with nginx and without it."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import requests

from common.storage.db import migrate
from devstack.stack import Stack, free_port
from tests.helpers import pcm16


@pytest.mark.parametrize(
    "use_nginx",
    [
        pytest.param(
            True,
            marks=pytest.mark.skipif(
                shutil.which("nginx") is None,
                reason="nginx is not installed: apt-get install nginx (.ci/run does)",
            ),
        ),
        False,
    ],
    ids=["nginx", "dispatcher"],
)
def test_sqlite_stack_walks_the_contract(tmp_path: Path, use_nginx: bool) -> None:
    url = f"sqlite:///{tmp_path / 'audio.sqlite3'}"
    migrate(url)
    stack = Stack(
        run_dir=tmp_path / "run",
        port=free_port(),
        use_nginx=use_nginx,
        env={"DATABASE_URL": url, "SPOOL_DIR": str(tmp_path)},
    )
    stack.start()
    try:
        account = requests.post(
            f"{stack.url}/user", json={"name": f"Ёж-{uuid.uuid4()}"}, timeout=10
        ).json()
        created = requests.post(
            f"{stack.url}/record",
            data={"user": account["id"], "token": account["token"]},
            files={"file": ("a.wav", pcm16(1.0), "audio/wav")},
            timeout=60,
        )
        assert created.status_code == 201, created.text
        download = requests.get(created.json()["url"], headers={"Range": "bytes=0-2"}, timeout=30)
        assert (download.status_code, download.content) == (206, b"ID3")
        wrong = requests.put(f"{stack.url}/record", timeout=10)
        assert wrong.status_code == 405
        assert wrong.headers["Allow"] == "GET, HEAD, POST, DELETE"
        assert requests.get(f"{stack.url}/x", timeout=10).json()["title"] == "Not Found"
    finally:
        stack.stop()
