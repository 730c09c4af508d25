"""Real tus clients that nobody here wrote, through the gateway: tuspy (PyPI) and tus-js-client
(npm, run by node), each uploading whole and cut then resumed; the record is the one POST /record
makes of the same WAV and file name, byte for byte."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tusclient.client import TusClient

from devstack.wavgen import write_wav
from tests.stacks import UNLIMITED, Gateway, gateway_under_test, needs_nginx, new_user

pytestmark = needs_nginx

TUS_JS = Path(__file__).resolve().parents[1] / "clients" / "tus-js"
needs_node = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are needed to run tus-js-client",
)


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Gateway]:
    with gateway_under_test(request, **UNLIMITED) as stack:
        yield stack


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s of 44.1 kHz stereo: about 10 MiB."""
    return write_wav(tmp_path_factory.mktemp("tus") / "take.wav", 60 * 44100)


@pytest.fixture(scope="module")
def tus_js() -> Path:
    """tus-js-client as package-lock.json pins it, installed once."""
    if not (TUS_JS / "node_modules" / "tus-js-client").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TUS_JS, check=True)
    return TUS_JS / "upload.js"


def posted_mp3(stack: Gateway, user: dict[str, str], wav: Path, name: str) -> bytes:
    with wav.open("rb") as body:
        result = requests.post(
            f"{stack.url}/record",
            params={"user": user["id"], "name": name},
            data=body,
            headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
            timeout=120,
        )
    assert result.status_code == 201, result.text
    return download(result.json()["url"])


def download(url: str) -> bytes:
    result = requests.get(url, timeout=60)
    assert result.status_code == 200, result.text
    return result.content


def record_location(stack: Gateway, user: dict[str, str], upload_url: str) -> str:
    state = requests.head(
        upload_url,
        headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {user['token']}"},
        timeout=30,
    )
    assert state.status_code == 200
    return state.headers["Record-Location"]


def tuspy_client(stack: Gateway, user: dict[str, str]) -> TusClient:
    return TusClient(f"{stack.url}/uploads", headers={"Authorization": f"Bearer {user['token']}"})


def test_tuspy_uploads_in_one_mib_patches(stack: Gateway, wav: Path) -> None:
    user = new_user(stack)
    uploader = tuspy_client(stack, user).uploader(
        file_path=str(wav), chunk_size=1 << 20, metadata={"user": user["id"], "filename": "py.wav"}
    )
    uploader.upload()
    mp3 = download(record_location(stack, user, uploader.url))
    assert mp3 == posted_mp3(stack, user, wav, "py.wav")


def test_tuspy_resumes_a_stopped_upload(stack: Gateway, wav: Path) -> None:
    user = new_user(stack)
    metadata = {"user": user["id"], "filename": "resumed.wav"}
    first = tuspy_client(stack, user).uploader(
        file_path=str(wav), chunk_size=1 << 20, metadata=metadata
    )
    first.upload(stop_at=4 << 20)
    assert first.offset == 4 << 20
    again = tuspy_client(stack, user).uploader(
        file_path=str(wav), chunk_size=3 << 20, url=first.url, metadata=metadata
    )
    assert again.offset == 4 << 20
    again.upload()
    mp3 = download(record_location(stack, user, first.url))
    assert mp3 == posted_mp3(stack, user, wav, "resumed.wav")


def run_tus_js(tus_js: Path, stack: Gateway, user: dict[str, str], wav: Path, *abort: str) -> dict:
    done = subprocess.run(
        ["node", str(tus_js), f"{stack.url}/uploads", str(wav), user["id"], user["token"], *abort],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@needs_node
def test_tus_js_client_uploads(stack: Gateway, wav: Path, tus_js: Path) -> None:
    user = new_user(stack)
    result = run_tus_js(tus_js, stack, user, wav)
    assert result["url"].startswith(f"{stack.url}/uploads/")
    assert download(result["recordLocation"]) == posted_mp3(stack, user, wav, "tus-js.wav")


@needs_node
def test_tus_js_client_resumes_where_the_server_stopped(
    stack: Gateway, wav: Path, tus_js: Path
) -> None:
    user = new_user(stack)
    result = run_tus_js(tus_js, stack, user, wav, "0.5")
    assert 0 < result["resumedAt"] < wav.stat().st_size, result
    assert download(result["recordLocation"]) == posted_mp3(stack, user, wav, "tus-js.wav")
