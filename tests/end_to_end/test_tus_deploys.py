"""Deploys of add_record lose nothing of a resumable upload (contract v1.3; docs/operations.md,
"Deploying add_record"), on the local stack through real nginx, gunicorn, ffmpeg and PostgreSQL:

- a graceful reload (SIGHUP to gunicorn's master) lets the PATCH in flight finish on its worker;
- a SIGKILL of the worker receiving the PATCH (what a deploy's hard stop, or the OOM killer, does)
  loses only what that worker had not yet written: HEAD says what was kept, the client sends the
  rest, and the record is the one POST /record makes of the same WAV, stored once.
"""

from __future__ import annotations

import base64
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from devstack.stack import Stack
from devstack.wavgen import write_wav
from tests.stacks import UNLIMITED, RawUpload, children, gateway, needs_nginx, new_user

pytestmark = needs_nginx

PIECE = 64 * 1024


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with gateway(tmp_path_factory.mktemp("tus_deploys"), database_url, **UNLIMITED) as stack:
        yield stack


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """60 s of 44.1 kHz stereo: about 10 MiB, sent at about 3 MiB/s."""
    return write_wav(tmp_path_factory.mktemp("wav") / "60s.wav", 60 * 44100).read_bytes()


def tus(user: dict[str, str], **headers: str) -> dict[str, str]:
    return {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {user['token']}", **headers}


def create(stack: Stack, user: dict[str, str], wav: bytes) -> str:
    meta = f"user {_b64(user['id'])},filename {_b64('deployed.wav')}"
    created = requests.post(
        f"{stack.url}/uploads",
        headers=tus(user, **{"Upload-Length": str(len(wav)), "Upload-Metadata": meta}),
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return str(created.headers["Location"])


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class SlowPatch(threading.Thread):
    """The whole WAV in one PATCH, a piece every 20 ms; `sent` counts what went out. Its
    connection may be cut under it: then `answer` stays None."""

    def __init__(self, stack: Stack, user: dict[str, str], url: str, wav: bytes) -> None:
        super().__init__(daemon=True)
        self.sender = RawUpload.tus_patch(stack, user, url, 0, len(wav))
        self.wav = wav
        self.sent = 0
        self.answer: tuple[int, dict[str, str]] | None = None

    def run(self) -> None:
        try:
            while self.sent < len(self.wav):
                self.sender.send(self.wav[self.sent : self.sent + PIECE])
                self.sent += PIECE
                time.sleep(0.02)
            status, headers, _ = self.sender.answer()
            self.answer = status, {name.lower(): value for name, value in headers.items()}
        except OSError:
            return


def wait_until(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def posted_mp3(stack: Stack, user: dict[str, str], wav: bytes) -> bytes:
    result = requests.post(
        f"{stack.url}/record",
        params={"user": user["id"], "name": "deployed.wav"},
        data=wav,
        headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
        timeout=120,
    )
    assert result.status_code == 201, result.text
    return requests.get(result.json()["url"], timeout=60).content


def listed(stack: Stack, user: dict[str, str]) -> int:
    listing = requests.get(
        f"{stack.url}/records",
        params={"user": user["id"]},
        headers={"Authorization": f"Bearer {user['token']}"},
        timeout=30,
    )
    return len(listing.json()["records"])


def test_a_graceful_reload_lets_the_patch_in_flight_finish(stack: Stack, wav: bytes) -> None:
    user = new_user(stack)
    url = create(stack, user, wav)
    master = stack.processes["add_record"].pid
    workers_before = set(children(master))
    patch = SlowPatch(stack, user, url, wav)
    patch.start()
    wait_until(lambda: patch.sent > len(wav) // 4)
    os.kill(master, signal.SIGHUP)
    wait_until(lambda: not set(children(master)) & workers_before)  # all replaced
    patch.join(120)
    assert patch.answer is not None, "the PATCH was cut by the reload"
    status, headers = patch.answer
    assert status == 204, headers
    assert headers["upload-offset"] == str(len(wav))
    mp3 = requests.get(headers["record-location"], timeout=60).content
    assert mp3 == posted_mp3(stack, user, wav)
    assert listed(stack, user) == 2


def test_a_killed_worker_loses_only_what_it_had_not_written(stack: Stack, wav: bytes) -> None:
    user = new_user(stack)
    url = create(stack, user, wav)
    master = stack.processes["add_record"].pid
    patch = SlowPatch(stack, user, url, wav)
    patch.start()
    wait_until(lambda: patch.sent > len(wav) // 2)
    busy = [worker for worker in children(master) if children(worker)]  # the one running ffmpeg
    assert len(busy) == 1, busy
    os.kill(busy[0], signal.SIGKILL)
    patch.join(60)
    assert patch.answer is None or patch.answer[0] >= 500
    kept = 0
    for _ in range(3):  # the dead worker's lock lapses within its lease; HEAD never waits on it
        state = requests.head(url, headers=tus(user), timeout=30)
        assert state.status_code == 200
        kept = int(state.headers["Upload-Offset"])
    assert 0 < kept <= patch.sent
    assert "Record-Location" not in state.headers

    deadline = time.monotonic() + 60
    while True:
        rest = requests.patch(
            url,
            data=wav[kept:],
            headers=tus(
                user,
                **{"Upload-Offset": str(kept), "Content-Type": "application/offset+octet-stream"},
            ),
            timeout=120,
        )
        if rest.status_code != 409 or time.monotonic() > deadline:
            break
        time.sleep(1)  # the dead PATCH's lock, until its lease lapses
    assert rest.status_code == 204, rest.text
    mp3 = requests.get(rest.headers["Record-Location"], timeout=60).content
    assert mp3 == posted_mp3(stack, user, wav)
    assert listed(stack, user) == 2
    again = requests.patch(
        url,
        data=b"",
        headers=tus(
            user,
            **{"Upload-Offset": str(len(wav)), "Content-Type": "application/offset+octet-stream"},
        ),
        timeout=60,
    )
    assert again.status_code == 204
    assert again.headers["Record-Location"] == rest.headers["Record-Location"]
    assert listed(stack, user) == 2
