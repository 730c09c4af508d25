"""What a client's own headers cannot change, through real nginx (security review, findings 11, 12).

Its address: the per-address limits (request rates, uploads in flight) and the access log take the
address of the TCP peer, whatever X-Forwarded-For says, unless the peer is a trusted proxy
(TRUSTED_PROXIES); then the rightmost address of X-Forwarded-For that is not a trusted proxy's. The
functions are told that one address, never the chain a client sent.

The host of its links: with PUBLIC_BASE_URL set, as production sets it, a Host header changes
nothing in Location.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from devstack.stack import Stack
from tests.helpers import pcm16
from tests.stacks import UNLIMITED, RawUpload, gateway, module_gateway, needs_nginx

pytestmark = needs_nginx

PUBLIC_BASE_URL = "https://audio.example.com"
LIMITED = {**UNLIMITED, "USER_RATE_LIMIT": "1r/m", "USER_RATE_BURST": "1", "UPLOAD_CONN_LIMIT": "2"}
"""Per address: two POST /user, then 429 for a minute; two uploads in flight, the third 429."""


@pytest.fixture(scope="module")
def direct(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """No proxy trusted (TRUSTED_PROXIES empty, the default); links on PUBLIC_BASE_URL."""
    with gateway(
        tmp_path_factory.mktemp("direct"), database_url, PUBLIC_BASE_URL=PUBLIC_BASE_URL, **LIMITED
    ) as stack:
        yield stack


proxied = module_gateway("proxied", TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.1", **LIMITED)
"""Behind a proxy on 127.0.0.1, and inner ones in 10.0.0.0/8 (127.0.0.2, .3: not trusted)."""


def send(
    stack: Stack,
    method: str,
    path: str,
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request from the local address `source`: status, headers (any case), body."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", stack.port, timeout=30, source_address=(source, 0)
    )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.headers, answer.read()
    finally:
        conn.close()


def create_user(
    stack: Stack, source: str = "127.0.0.1", forwarded: str | None = None
) -> tuple[int, str, dict[str, Any]]:
    """POST /user from `source`, with `forwarded` as X-Forwarded-For: status, request id, body."""
    headers = {"Content-Type": "application/json"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    body = json.dumps({"name": f"fh-{uuid.uuid4()}"}).encode()
    status, answer_headers, answer = send(stack, "POST", "/user", source, headers, body)
    return status, answer_headers["X-Request-ID"], json.loads(answer)


def logged(stack: Stack, request_ids: list[str]) -> list[dict[str, Any]]:
    """The gateway's access-log entries of these requests, in their order (nginx writes one once
    its answer is out: waiting a moment for the last)."""
    deadline = time.monotonic() + 5
    while True:
        entries = {}
        for line in stack.log("nginx").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                entries[entry["request_id"]] = entry
        if set(request_ids) <= set(entries) or time.monotonic() > deadline:
            return [entries[request_id] for request_id in request_ids]
        time.sleep(0.05)


def user_creations(
    stack: Stack, source: str, forwarded: list[str]
) -> tuple[list[int], list[dict[str, Any]]]:
    """POST /user once per X-Forwarded-For value: the statuses and the access-log entries."""
    answers = [create_user(stack, source, each) for each in forwarded]
    return [status for status, _, _ in answers], logged(stack, [rid for _, rid, _ in answers])


def raw_upload(
    stack: Stack, user: dict[str, Any], length: int, source: str, forwarded: str
) -> RawUpload:
    """A raw POST /record of `length` bytes, its headers sent, with this X-Forwarded-For."""
    request = (
        f"POST /record?user={user['id']}&name=take.wav HTTP/1.1\r\n"
        f"Content-Type: audio/wav\r\nX-Forwarded-For: {forwarded}\r\n"
    )
    return RawUpload(stack, dict(user), length, source=source, request=request)


def hold(stack: Stack, user: dict[str, Any], source: str, forwarded: list[str]) -> list[RawUpload]:
    """Uploads left in flight (their first bytes sent), one per X-Forwarded-For value."""
    wav = pcm16(1.0)
    held = [raw_upload(stack, user, len(wav), source, each) for each in forwarded]
    for sender in held:
        sender.send(wav[:100])
    time.sleep(0.5)
    return held


def refused(stack: Stack, user: dict[str, Any], source: str, forwarded: str) -> bool:
    """Whether an upload is refused with 429 in JSON before its body (UPLOAD_CONN_LIMIT)."""
    status, _, body = raw_upload(stack, user, len(pcm16(1.0)), source, forwarded).answer()
    return status == 429 and body["title"] == "Too Many Requests"


def stored(stack: Stack, user: dict[str, Any], source: str, forwarded: str) -> bool:
    """Whether a whole upload is stored (201)."""
    wav = pcm16(1.0)
    sender = raw_upload(stack, user, len(wav), source, forwarded)
    sender.send(wav)
    return sender.answer()[0] == 201


def finish(held: list[RawUpload]) -> None:
    wav = pcm16(1.0)
    for sender in held:
        sender.send(wav[100:])
        assert sender.answer()[0] == 201


# ---- no proxy trusted: the header is the client's word, and changes nothing ----------------------


def test_a_forged_forwarded_for_neither_escapes_a_rate_limit_nor_reaches_the_log(
    direct: Stack,
) -> None:
    forged = [f"203.0.113.{n}" for n in range(1, 5)]
    statuses, entries = user_creations(direct, "127.0.0.1", forged)
    assert statuses == [201, 201, 429, 429]
    assert [(e["remote"], e["peer"]) for e in entries] == [("127.0.0.1", "127.0.0.1")] * 4
    assert "203.0.113." not in direct.log("nginx")
    # The limit is the address's, not everyone's: another address is served.
    assert create_user(direct, "127.0.4.2", forged[0])[0] == 201


def test_a_forged_forwarded_for_does_not_escape_the_uploads_in_flight_limit(direct: Stack) -> None:
    status, _, user = create_user(direct, "127.0.4.3")
    assert status == 201
    held = hold(direct, user, "127.0.3.1", ["203.0.113.1", "203.0.113.2"])
    assert refused(direct, user, "127.0.3.1", "203.0.113.3")
    assert stored(direct, user, "127.0.3.2", "203.0.113.1")
    finish(held)


def test_the_functions_are_told_the_gateway_s_client_address_only(
    direct: Stack, proxied: Stack
) -> None:
    """X-Forwarded-For towards the functions: the one address the limits used, not the chain."""
    assert told_forwarded_for(direct, "127.0.6.1", "203.0.113.9") == "127.0.6.1"
    assert told_forwarded_for(proxied, "127.0.0.1", "203.0.113.9, 198.51.100.50") == (
        "198.51.100.50"
    )
    assert told_forwarded_for(proxied, "127.0.0.3", "198.51.100.51") == "127.0.0.3"


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Stands in for create_user: records the headers of what the gateway passes on."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Recorder.seen.append(dict(self.headers))
        body = json.dumps({"id": str(uuid.uuid4()), "token": str(uuid.uuid4())}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        # Not kept alive: nginx would reuse the connection after create_user is back.
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def told_forwarded_for(stack: Stack, source: str, forwarded: str) -> str:
    """The X-Forwarded-For create_user gets for a POST /user from `source` with `forwarded`."""
    stack.stop_function("create_user")
    recorder = http.server.ThreadingHTTPServer(
        ("127.0.0.1", stack.function_ports["create_user"]), _Recorder
    )
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    try:
        _Recorder.seen.clear()
        assert create_user(stack, source, forwarded)[0] == 201
        (headers,) = _Recorder.seen
        return headers["X-Forwarded-For"]
    finally:
        recorder.shutdown()
        recorder.server_close()
        stack.start_function("create_user")
        stack.wait_function("create_user")


# ---- behind a trusted proxy: each forwarded address is a client of its own -----------------------


def test_behind_a_trusted_proxy_each_forwarded_address_has_its_own_limit(proxied: Stack) -> None:
    clients = ["198.51.100.1"] * 3 + ["198.51.100.2"]
    statuses, entries = user_creations(proxied, "127.0.0.1", clients)
    assert statuses == [201, 201, 429, 201]
    assert [(e["remote"], e["peer"]) for e in entries] == [
        (client, "127.0.0.1") for client in clients
    ]


def test_the_rightmost_address_that_is_not_a_trusted_proxy_is_the_client(proxied: Stack) -> None:
    """What a client writes to the left of what the proxies appended is not believed, and inner
    trusted proxies (10.0.0.0/8 here) are passed over."""
    chains = [f"203.0.113.{n}, 198.51.100.7" for n in range(1, 4)]
    chains.append("203.0.113.9, 198.51.100.8, 10.1.2.3")
    statuses, entries = user_creations(proxied, "127.0.0.1", chains)
    assert statuses == [201, 201, 429, 201]
    assert [e["remote"] for e in entries] == ["198.51.100.7"] * 3 + ["198.51.100.8"]
    assert "203.0.113." not in proxied.log("nginx")


def test_from_an_untrusted_address_forwarded_for_changes_nothing(proxied: Stack) -> None:
    forged = [f"198.51.100.{n}" for n in range(20, 24)]
    statuses, entries = user_creations(proxied, "127.0.0.2", forged)
    assert statuses == [201, 201, 429, 429]
    assert [(e["remote"], e["peer"]) for e in entries] == [("127.0.0.2", "127.0.0.2")] * 4


def test_behind_a_trusted_proxy_uploads_in_flight_count_per_forwarded_address(
    proxied: Stack,
) -> None:
    status, _, user = create_user(proxied, "127.0.0.1", "198.51.100.30")
    assert status == 201
    held = hold(proxied, user, "127.0.0.1", ["198.51.100.31", "203.0.113.5, 198.51.100.31"])
    assert refused(proxied, user, "127.0.0.1", "198.51.100.31")
    assert stored(proxied, user, "127.0.0.1", "198.51.100.32")
    finish(held)


# ---- links: PUBLIC_BASE_URL, not the Host header ------------------------------------------------


def test_with_a_public_base_url_the_host_header_does_not_reach_the_links(direct: Stack) -> None:
    status, _, user = create_user(direct, "127.0.4.4")
    assert status == 201
    hostile = {"Host": "attacker.example", "Authorization": f"Bearer {user['token']}"}
    status, headers, body = send(
        direct,
        "POST",
        f"/record?user={user['id']}&name=take.wav",
        headers={**hostile, "Content-Type": "audio/wav"},
        body=pcm16(0.5),
    )
    assert status == 201, body
    assert json.loads(body)["url"] == headers["Location"]
    assert headers["Location"].startswith(f"{PUBLIC_BASE_URL}/record?id=")
    status, headers, _ = send(
        direct,
        "POST",
        "/uploads",
        headers={
            **hostile,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "100",
            "Upload-Metadata": f"user {base64.b64encode(user['id'].encode()).decode()}",
        },
    )
    assert status == 201
    assert headers["Location"].startswith(f"{PUBLIC_BASE_URL}/uploads/")
