"""End to end: nginx in front of three gunicorn functions, PostgreSQL and ffmpeg, all real."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from common.http.app import size_text
from tests.helpers import decoded_seconds, multipart, pcm16, probe
from tests.stacks import Gateway, gateway_under_test, needs_nginx

pytestmark = needs_nginx


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Gateway]:
    with gateway_under_test(
        request, MAX_UPLOAD_BYTES=str(8 * 1024 * 1024), GUNICORN_WORKERS="2"
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def account(stack: Gateway) -> dict[str, str]:
    result = requests.post(f"{stack.url}/user", json={"name": f"e2e-{uuid.uuid4()}"}, timeout=10)
    assert result.status_code == 201
    return dict(result.json())


def decoded(mp3: bytes, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "got.mp3"
    path.write_bytes(mp3)
    return {**probe(path), "seconds": decoded_seconds(path)}


def test_multipart_upload_and_download(
    stack: Gateway, account: dict[str, str], tmp_path: Path
) -> None:
    wav = pcm16(5.0, 44100, 2)
    result = requests.post(
        f"{stack.url}/record",
        data={"user": account["id"], "token": account["token"]},
        files={"file": ("take one.wav", wav, "audio/wav")},
        timeout=60,
    )
    assert result.status_code == 201, result.text
    url = result.json()["url"]
    assert (
        url == f"http://127.0.0.1:{stack.port}/record?id={result.json()['id']}&user={account['id']}"
    )
    assert result.headers["Location"] == url
    download = requests.get(url, timeout=30)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "audio/mpeg"
    assert 'filename="take one.mp3"' in download.headers["Content-Disposition"]
    info = decoded(download.content, tmp_path)
    assert (info["codec_name"], info["channels"], info["sample_rate"]) == ("mp3", "2", "44100")
    assert info["seconds"] == pytest.approx(5.0, rel=0.01)


def test_a_chunked_multipart_upload_is_stored(stack: Gateway, account: dict[str, str]) -> None:
    """curl -H 'Transfer-Encoding: chunked' -F ... : no Content-Length through the gateway."""
    body, content_type = multipart(
        {"user": account["id"], "token": account["token"]},
        [("file", "chunked.wav", pcm16(1.0, 44100, 2))],
    )
    pieces = (body[start : start + 4096] for start in range(0, len(body), 4096))
    result = requests.post(
        f"{stack.url}/record", data=pieces, headers={"Content-Type": content_type}, timeout=60
    )
    assert result.request.headers.get("Transfer-Encoding") == "chunked"
    assert result.status_code == 201, result.text


def test_raw_upload_with_bearer_keeps_the_host_port_the_client_used(
    stack: Gateway, account: dict[str, str], tmp_path: Path
) -> None:
    """The links carry the Host the client sent, as the contract says when PUBLIC_BASE_URL is
    empty; where it is set (the compose stack, as production) they carry it, whatever the Host."""
    wav = pcm16(2.0, 96000, 1)
    result = requests.post(
        f"{stack.url}/record",
        params={"user": account["id"]},
        data=wav,
        headers={
            "Content-Type": "audio/wav",
            "Host": "audio.test:8080",
            "Authorization": f"Bearer {account['token']}",
        },
        timeout=60,
    )
    assert result.status_code == 201, result.text
    base = (stack.public_base_url or "http://audio.test:8080").rstrip("/")
    assert result.json()["url"].startswith(f"{base}/record?id=")
    assert result.headers["Location"] == result.json()["url"]
    download = requests.get(
        f"{stack.url}/record", params={"id": result.json()["id"], "user": account["id"]}, timeout=30
    )
    info = decoded(download.content, tmp_path)
    assert (info["channels"], info["sample_rate"]) == ("1", "48000")
    assert info["seconds"] == pytest.approx(2.0, abs=0.06)


def test_ranges_head_and_304_through_the_gateway(stack: Gateway, account: dict[str, str]) -> None:
    created = requests.post(
        f"{stack.url}/record",
        params={"user": account["id"], "token": account["token"]},
        data=pcm16(3.0),
        headers={"Content-Type": "audio/x-wav"},
        timeout=60,
    )
    url = created.json()["url"]
    whole = requests.get(url, timeout=30)
    part = requests.get(url, headers={"Range": "bytes=-1000"}, timeout=30)
    assert part.status_code == 206
    assert part.content == whole.content[-1000:]
    head = requests.head(url, timeout=30)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(whole.content))
    assert head.content == b""
    cached = requests.get(url, headers={"If-None-Match": whole.headers["ETag"]}, timeout=30)
    assert cached.status_code == 304
    assert cached.headers["ETag"] == whole.headers["ETag"]
    beyond = requests.get(url, headers={"Range": f"bytes={len(whole.content)}-"}, timeout=30)
    assert beyond.status_code == 416
    absurd = requests.get(url, headers={"Range": "bytes=-" + "9" * 5000}, timeout=30)
    assert absurd.status_code == 416
    assert absurd.json()["description"]
    since = requests.get(
        url, headers={"If-Modified-Since": whole.headers["Last-Modified"]}, timeout=30
    )
    assert since.status_code == 304
    assert since.headers["Last-Modified"] == whole.headers["Last-Modified"]
    dated = {"Range": "bytes=0-9", "If-Range": whole.headers["Last-Modified"]}
    assert requests.get(url, headers=dated, timeout=30).content == whole.content[:10]


def test_another_users_record_is_404(stack: Gateway, account: dict[str, str]) -> None:
    created = requests.post(
        f"{stack.url}/record",
        params={"user": account["id"], "token": account["token"]},
        data=pcm16(1.0),
        headers={"Content-Type": "audio/wav"},
        timeout=60,
    )
    other = requests.post(
        f"{stack.url}/user", json={"name": f"other-{uuid.uuid4()}"}, timeout=10
    ).json()
    result = requests.get(
        f"{stack.url}/record", params={"id": created.json()["id"], "user": other["id"]}, timeout=30
    )
    assert result.status_code == 404
    assert result.json()["description"]


def error_requests(
    url: str, account: dict[str, str], upload_limit: int
) -> list[tuple[str, dict[str, Any], int, str]]:
    auth = {"user": account["id"], "token": account["token"]}
    return [
        (
            "POST",
            {"url": f"{url}/user", "data": b"{", "headers": {"Content-Type": "application/json"}},
            400,
            "not valid JSON",
        ),
        ("POST", {"url": f"{url}/user", "json": {"name": "x" * 65}}, 400, "at most 64 characters"),
        (
            "POST",
            {
                "url": f"{url}/user",
                "data": b"[" * 10_000 + b"]" * 10_000,
                "headers": {"Content-Type": "application/json"},
            },
            400,
            "nested too deeply",
        ),
        (
            "POST",
            {
                "url": f"{url}/user",
                "data": b'{"name": "\xed\xa0\x80"}',
                "headers": {"Content-Type": "application/json"},
            },
            400,
            "not valid UTF-8",
        ),
        ("POST", {"url": f"{url}/user", "json": {"name": "\ud800"}}, 400, "lone surrogates"),
        (
            "POST",
            {"url": f"{url}/user", "json": {"name": "a\u202eb"}},
            400,
            "bidirectional controls",
        ),
        ("POST", {"url": f"{url}/user", "data": b"name=x"}, 415, "application/json"),
        (
            "POST",
            {"url": f"{url}/user", "json": {"name": "x", "pad": "x" * 70000}},
            413,
            "the body may be at most 64 KiB (65536 bytes)",
        ),
        (
            "POST",
            {
                "url": f"{url}/record",
                "params": {"token": account["token"]},
                "data": pcm16(0.1),
                "headers": {"Content-Type": "audio/wav"},
            },
            400,
            "user is required",
        ),
        (
            "POST",
            {
                "url": f"{url}/record",
                "params": {"user": account["id"]},
                "data": pcm16(0.1),
                "headers": {"Content-Type": "audio/wav"},
            },
            401,
            "the token is missing: send it as Authorization: Bearer",
        ),
        (
            "POST",
            {
                "url": f"{url}/record",
                "params": auth,
                "data": b"plain text, not audio",
                "headers": {"Content-Type": "audio/wav"},
            },
            415,
            "not a RIFF/WAVE file",
        ),
        (
            "POST",
            {
                "url": f"{url}/record",
                "params": auth,
                "data": b"RIFF\x04\x00\x00\x00WAVE",
                "headers": {"Content-Type": "audio/wav"},
            },
            422,
            "no fmt chunk",
        ),
        (
            "POST",
            {
                "url": f"{url}/record",
                "params": auth,
                "data": bytes(upload_limit + 1),
                "headers": {"Content-Type": "audio/wav"},
            },
            413,
            "may be at most",
        ),
        ("GET", {"url": f"{url}/record", "params": {"id": "nope"}}, 400, "id must be a UUID"),
        (
            "GET",
            {"url": f"{url}/record", "params": {"id": str(uuid.uuid4()), "user": account["id"]}},
            404,
            "no such record for this user",
        ),
        ("GET", {"url": f"{url}/elsewhere"}, 404, "no such path"),
        ("PUT", {"url": f"{url}/record"}, 405, "not allowed on this path"),
        ("DELETE", {"url": f"{url}/user"}, 405, "not allowed on this path"),
        ("POST", {"url": f"{url}/records"}, 405, "not allowed on this path"),
        ("POST", {"url": f"{url}/"}, 405, "not allowed on this path"),
        ("DELETE", {"url": f"{url}/static/index.html"}, 405, "not allowed on this path"),
        (
            "GET",
            {"url": f"{url}/records", "params": {"user": account["id"]}},
            401,
            "the token is missing: send it as Authorization: Bearer",
        ),
        (
            "GET",
            {"url": f"{url}/records", "params": {**auth, "limit": "0"}},
            400,
            "limit must be an integer",
        ),
        (
            "GET",
            {"url": f"{url}/records", "params": {**auth, "limit": "9" * 5000}},
            400,
            "limit must be an integer",
        ),
        (
            "DELETE",
            {"url": f"{url}/record", "params": {"id": str(uuid.uuid4()), "user": account["id"]}},
            401,
            "the token is missing: send it as Authorization: Bearer",
        ),
        (
            "DELETE",
            {"url": f"{url}/record", "params": {**auth, "id": str(uuid.uuid4())}},
            404,
            "no such record for this user",
        ),
    ]


def test_every_error_is_json_with_a_reason(stack: Gateway, account: dict[str, str]) -> None:
    for method, kwargs, status, reason in error_requests(
        stack.url, account, stack.max_upload_bytes
    ):
        result = requests.request(method, timeout=30, **kwargs)
        assert result.status_code == status, (method, kwargs["url"], result.text)
        assert result.headers["Content-Type"].startswith("application/json")
        body = result.json()
        assert body["title"], body
        assert reason in body["description"], (kwargs["url"], body)
        if status == 401:
            assert result.headers["WWW-Authenticate"] == "Bearer"
        if status == 405:
            assert result.headers["Allow"] in ("POST", "GET, HEAD, POST, DELETE", "GET, HEAD")


def test_a_function_down_gives_502_json_then_recovers(
    stack: Gateway, account: dict[str, str]
) -> None:
    stack.stop_function("create_user")
    try:
        result = requests.post(f"{stack.url}/user", json={"name": "nobody"}, timeout=10)
        assert result.status_code == 502
        assert result.json()["title"] == "Bad Gateway"
    finally:
        stack.start_function("create_user")
    stack.wait_function("create_user")
    result = requests.post(f"{stack.url}/user", json={"name": f"back-{uuid.uuid4()}"}, timeout=10)
    assert result.status_code == 201


def test_server_tokens_are_hidden(stack: Gateway) -> None:
    result = requests.get(f"{stack.url}/nothing", timeout=10)
    assert result.headers["Server"] == "nginx"


def test_request_ids_and_operations_routes(stack: Gateway) -> None:
    refused = requests.get(f"{stack.url}/nothing", timeout=10)
    assert len(refused.headers["X-Request-ID"]) == 32
    created = requests.post(f"{stack.url}/user", json={"name": f"ops-{uuid.uuid4()}"}, timeout=10)
    request_id = created.headers["X-Request-ID"]
    assert len(request_id) == 32
    assert f'"request_id": "{request_id}"' in stack.log("create_user")
    for path in ("/metrics", "/healthz"):
        assert requests.get(f"{stack.url}{path}", timeout=10).status_code == 404
    assert json.loads(stack.function_get("create_user", "/healthz")) == {"status": "ok"}
    metrics = stack.function_get("create_user", "/metrics")
    assert (
        'audiosvc_requests_total{function="create_user",method="POST",route="/user",status="201"}'
        in metrics
    )


def declared_too_large(stack: Gateway, request_line: str, content_type: str, length: int) -> Any:
    """The gateway's answer to a request whose Content-Length alone is past the path's limit
    (nginx answers before any body byte)."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as conn:
        conn.sendall(
            f"{request_line} HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        answer = b""
        while piece := conn.recv(65536):
            answer += piece
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"413", head
    return json.loads(body)


def test_the_gateways_own_413_names_the_limit(stack: Gateway, account: dict[str, str]) -> None:
    """Past the gateway's body limit nginx answers itself, in the words add_record and
    create_user use: the limit from MAX_UPLOAD_BYTES, in binary units."""
    limit = stack.max_upload_bytes
    upload = declared_too_large(
        stack, f"POST /record?user={account['id']}", "audio/wav", limit + 65537
    )
    assert upload["description"] == f"the WAV may be at most {size_text(limit)}"
    resumable = declared_too_large(
        stack,
        "PATCH /uploads/00000000-0000-0000-0000-000000000000",
        "application/offset+octet-stream",
        limit + 65537,
    )
    assert resumable["description"] == f"the WAV may be at most {size_text(limit)}"
    user = declared_too_large(stack, "POST /user", "application/json", 65537)
    assert user["description"] == "the body may be at most 64 KiB (65536 bytes)"
