"""Tokens are secrets: no log line of any component holds one, whatever the request (contract v1.2).

Every error path the gateway and the functions have is driven with a token in the query string, the
form and the Authorization header; then every log the stack wrote is searched for it.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.stack import Stack
from tests.helpers import pcm16
from tests.stacks import gateway, needs_nginx

pytestmark = needs_nginx

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with gateway(
        tmp_path_factory.mktemp("tokens"),
        database_url,
        MAX_UPLOAD_BYTES=str(LIMIT),
        USER_RATE_LIMIT="1r/m",
        USER_RATE_BURST="1",
        LOG_LEVEL="debug",
    ) as stack:
        yield stack


def raw(stack: Stack, request: bytes) -> None:
    """Send bytes as they are (what requests would refuse to send) and read the answer."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as conn:
        conn.sendall(request)
        while conn.recv(65536):
            pass


def test_no_log_line_holds_a_token(stack: Stack) -> None:
    account = requests.post(f"{stack.url}/user", json={"name": f"t-{uuid.uuid4()}"}, timeout=10)
    assert account.status_code == 201
    user, token = account.json()["id"], account.json()["token"]
    secret = str(uuid.uuid4())
    url = stack.url
    query = {"user": user, "token": secret}
    bearer = {"Authorization": f"Bearer {secret}"}
    wav = {"Content-Type": "audio/wav"}
    answers = [
        requests.post(
            f"{url}/record", params=query, data=bytes(LIMIT + 1), headers=wav, timeout=10
        ),  # 413
        requests.post(
            f"{url}/user", params={"token": secret}, data=b"x" * 70000, timeout=10
        ),  # 413
        requests.post(
            f"{url}/user", params={"token": secret}, json={"name": "a"}, timeout=10
        ),  # burst
        requests.post(
            f"{url}/user", params={"token": secret}, json={"name": "b"}, timeout=10
        ),  # 429
        requests.post(
            f"{url}/record", params=query, data=pcm16(0.1), headers=wav, timeout=10
        ),  # 401
        requests.post(
            f"{url}/record", params={**query, "token": token}, data=b"no", headers=wav, timeout=10
        ),
        requests.post(
            f"{url}/record", params=query, data=pcm16(0.1), headers={**wav, **bearer}, timeout=10
        ),
        requests.get(f"{url}/records", params=query, timeout=10),  # 401
        requests.get(f"{url}/records", params={"user": user}, headers=bearer, timeout=10),  # 401
        requests.delete(
            f"{url}/record", params={**query, "id": str(uuid.uuid4())}, timeout=10
        ),  # 401
        requests.put(f"{url}/record", params=query, timeout=10),  # 405
        requests.get(f"{url}/nowhere", params=query, timeout=10),  # 404
        requests.get(
            f"{url}/static/missing.js", params=query, timeout=10
        ),  # 404 from a file lookup
        requests.get(f"{url}/record", params={"id": "bad", "token": secret}, timeout=10),  # 400
        requests.get(f"{url}/record?token={secret}&{'x' * 9000}", timeout=10),  # 414
        requests.get(
            f"{url}/records", params=query, headers={"X-Big": "y" * 20000}, timeout=10
        ),  # 494/400
        requests.post(
            f"{url}/record",
            data={"user": user, "token": secret},
            files={"file": ("a.wav", pcm16(0.1), "audio/wav")},
            timeout=10,
        ),  # 401, token in the form
    ]
    assert {answer.status_code for answer in answers} >= {400, 401, 404, 405, 413, 414, 429}
    raw(
        stack,
        f"GET /record?token={secret} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".encode(),
    )
    raw(
        stack,
        f"POST /record?token={secret} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Length: 3\r\n\r\n0\r\n\r\n".encode(),
    )
    stack.stop_function("add_record")
    try:
        down = requests.post(
            f"{url}/record", params=query, data=pcm16(0.1), headers=wav, timeout=10
        )
        assert down.status_code == 502
    finally:
        stack.start_function("add_record")
        stack.wait_function("add_record")
    logs = {
        path.name: path.read_text(errors="replace") for path in Path(stack.run_dir).glob("*.log")
    }
    assert set(logs) >= {"nginx.log", "create_user.log", "add_record.log", "get_record.log"}
    assert any(logs.values())
    leaks = {name: text.count(secret) for name, text in logs.items() if secret in text}
    assert not leaks, f"the token was logged: {leaks}"
    assert not [name for name, text in logs.items() if token in text], "the real token was logged"
