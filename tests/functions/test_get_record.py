"""GET|HEAD /record through falcon.testing: whole file, ranges, conditional requests."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import falcon
import pytest
from falcon.testing import TestClient

from common.storage.records import RecordGone
from functions.add_record.app import create_app as create_add
from functions.get_record.app import create_app as create_get
from tests.helpers import pcm16


@pytest.fixture
def stored(
    add_record_client: TestClient, get_record_client: TestClient, user: dict[str, str]
) -> dict[str, Any]:
    result = add_record_client.simulate_post(
        "/record",
        params={"user": user["id"], "name": 'Запись "1".wav'},
        body=pcm16(3.0),
        headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
    )
    assert result.status_code == 201
    params = {"id": result.json["id"], "user": user["id"]}
    whole = get_record_client.simulate_get("/record", params=params)
    return {"params": params, "body": whole.content, "etag": whole.headers["etag"], "user": user}


def test_whole_file(get_record_client: TestClient, stored: dict[str, Any]) -> None:
    result = get_record_client.simulate_get("/record", params=stored["params"])
    body = result.content
    assert result.status_code == 200
    assert result.headers["content-type"] == "audio/mpeg"
    assert int(result.headers["content-length"]) == len(body)
    assert result.headers["accept-ranges"] == "bytes"
    assert result.headers["etag"] == f'"{hashlib.sha256(body).hexdigest()}"'
    assert result.headers["content-disposition"] == (
        'attachment; filename="______ _1_.mp3"; '
        "filename*=UTF-8''%D0%97%D0%B0%D0%BF%D0%B8%D1%81%D1%8C%20%221%22.mp3"
    )
    assert body[:3] == b"ID3"


def test_chunk_boundaries_are_seamless(settings: Any, engine: Any, user: dict[str, str]) -> None:
    small = replace(settings, chunk_bytes=256 * 1024)
    upload = TestClient(create_add(small, engine)).simulate_post(
        "/record",
        params={"user": user["id"], "token": user["token"]},
        body=pcm16(40.0),
        headers={"Content-Type": "audio/wav"},
    )
    params = {"id": upload.json["id"], "user": user["id"]}
    client = TestClient(create_get(small, engine))
    body = client.simulate_get("/record", params=params).content
    assert len(body) > 3 * 256 * 1024
    for start, stop in [
        (0, 10),
        (256 * 1024 - 5, 256 * 1024 + 5),
        (100, 600_000),
        (len(body) - 7, len(body)),
    ]:
        part = client.simulate_get(
            "/record", params=params, headers={"Range": f"bytes={start}-{stop - 1}"}
        )
        assert part.status_code == 206
        assert part.content == body[start:stop]
        assert part.headers["content-range"] == f"bytes {start}-{stop - 1}/{len(body)}"


@pytest.mark.parametrize("header", ["bytes=0-99", "bytes=100-", "bytes=-100", "bytes=5-5"])
def test_ranges(get_record_client: TestClient, stored: dict[str, Any], header: str) -> None:
    body = stored["body"]
    result = get_record_client.simulate_get(
        "/record", params=stored["params"], headers={"Range": header}
    )
    first, last = header.removeprefix("bytes=").split("-")
    if first == "":
        start, stop = len(body) - int(last), len(body)
    else:
        start, stop = int(first), (int(last) + 1 if last else len(body))
    assert result.status_code == 206
    assert result.content == body[start:stop]
    assert result.headers["content-range"] == f"bytes {start}-{stop - 1}/{len(body)}"
    assert int(result.headers["content-length"]) == stop - start


def test_unsatisfiable_range_is_416(get_record_client: TestClient, stored: dict[str, Any]) -> None:
    size = len(stored["body"])
    result = get_record_client.simulate_get(
        "/record", params=stored["params"], headers={"Range": f"bytes={size}-"}
    )
    assert result.status_code == 416
    assert result.headers["content-range"] == f"bytes */{size}"
    assert result.json["description"]


def test_multiple_ranges_get_the_whole_file(
    get_record_client: TestClient, stored: dict[str, Any]
) -> None:
    result = get_record_client.simulate_get(
        "/record", params=stored["params"], headers={"Range": "bytes=0-1,4-5"}
    )
    assert result.status_code == 200
    assert result.content == stored["body"]


def test_head_sends_headers_only(get_record_client: TestClient, stored: dict[str, Any]) -> None:
    result = get_record_client.simulate_head("/record", params=stored["params"])
    assert result.status_code == 200
    assert result.content == b""
    assert int(result.headers["content-length"]) == len(stored["body"])
    assert result.headers["etag"] == stored["etag"]


def test_if_none_match_is_304(get_record_client: TestClient, stored: dict[str, Any]) -> None:
    for method in (get_record_client.simulate_get, get_record_client.simulate_head):
        result = method(
            "/record", params=stored["params"], headers={"If-None-Match": stored["etag"]}
        )
        assert result.status_code == 304
        assert result.headers["etag"] == stored["etag"]
        assert result.content == b""


def test_if_range(get_record_client: TestClient, stored: dict[str, Any]) -> None:
    params = stored["params"]
    matching = get_record_client.simulate_get(
        "/record", params=params, headers={"Range": "bytes=0-9", "If-Range": stored["etag"]}
    )
    assert matching.status_code == 206
    stale = get_record_client.simulate_get(
        "/record", params=params, headers={"Range": "bytes=0-9", "If-Range": '"stale"'}
    )
    assert stale.status_code == 200
    assert stale.content == stored["body"]


def test_another_users_record_is_404(
    get_record_client: TestClient, stored: dict[str, Any], create_user_client: TestClient
) -> None:
    other = create_user_client.simulate_post("/user", json={"name": f"o-{uuid.uuid4()}"}).json
    for params in (
        {**stored["params"], "user": other["id"]},
        {**stored["params"], "id": str(uuid.uuid4())},
    ):
        result = get_record_client.simulate_get("/record", params=params)
        assert result.status_code == 404
        assert result.json["description"]


@pytest.mark.parametrize(
    "params", [{}, {"id": "x"}, {"user": "x"}, {"id": "1", "user": "2"}, {"id": str(uuid.uuid4())}]
)
def test_missing_or_malformed_ids_are_400(
    get_record_client: TestClient, params: dict[str, str]
) -> None:
    result = get_record_client.simulate_get("/record", params=params)
    assert result.status_code == 400
    assert result.json["description"]


def last_modified(stored: dict[str, Any], get_record_client: TestClient) -> datetime:
    whole = get_record_client.simulate_head("/record", params=stored["params"])
    return falcon.http_date_to_dt(whole.headers["last-modified"])


def rfc850(moment: datetime) -> str:
    return moment.strftime("%A, %d-%b-%y %H:%M:%S GMT")


def asctime(moment: datetime) -> str:
    return moment.strftime("%a %b %e %H:%M:%S %Y")


def test_if_modified_since_not_older_than_the_record_is_304(
    get_record_client: TestClient, stored: dict[str, Any]
) -> None:
    modified = last_modified(stored, get_record_client)
    later = modified + timedelta(days=1)
    dates = [falcon.dt_to_http(modified), falcon.dt_to_http(later), rfc850(later), asctime(later)]
    for method in (get_record_client.simulate_get, get_record_client.simulate_head):
        for date in dates:
            result = method("/record", params=stored["params"], headers={"If-Modified-Since": date})
            assert result.status_code == 304, date
            assert result.headers["etag"] == stored["etag"]
            assert result.headers["last-modified"] == falcon.dt_to_http(modified)
            assert result.content == b""


@pytest.mark.parametrize(
    "date",
    ["Mon, 01 Jan 2024 12:00:00 GMT", "yesterday", "", "Mon, 32 Jan 2024 12:00:00 GMT", "0"],
)
def test_if_modified_since_older_or_malformed_sends_the_file(
    get_record_client: TestClient, stored: dict[str, Any], date: str
) -> None:
    result = get_record_client.simulate_get(
        "/record", params=stored["params"], headers={"If-Modified-Since": date}
    )
    assert result.status_code == 200
    assert result.content == stored["body"]


def test_if_none_match_overrides_if_modified_since(
    get_record_client: TestClient, stored: dict[str, Any]
) -> None:
    later = falcon.dt_to_http(last_modified(stored, get_record_client) + timedelta(days=1))
    result = get_record_client.simulate_get(
        "/record",
        params=stored["params"],
        headers={"If-None-Match": '"other"', "If-Modified-Since": later},
    )
    assert result.status_code == 200
    assert result.content == stored["body"]


def test_if_unmodified_since(get_record_client: TestClient, stored: dict[str, Any]) -> None:
    modified = last_modified(stored, get_record_client)
    for method in (get_record_client.simulate_get, get_record_client.simulate_head):
        earlier = falcon.dt_to_http(modified - timedelta(seconds=1))
        refused = method(
            "/record", params=stored["params"], headers={"If-Unmodified-Since": earlier}
        )
        assert refused.status_code == 412
        for date in (falcon.dt_to_http(modified), "not a date"):
            served = method(
                "/record", params=stored["params"], headers={"If-Unmodified-Since": date}
            )
            assert served.status_code == 200
    refused = get_record_client.simulate_get(
        "/record",
        params=stored["params"],
        headers={"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"},
    )
    assert refused.headers["content-type"] == "application/json"
    assert "If-Unmodified-Since" in refused.json["description"]


def test_if_range_with_a_date(get_record_client: TestClient, stored: dict[str, Any]) -> None:
    modified = last_modified(stored, get_record_client)
    for date in (falcon.dt_to_http(modified), rfc850(modified), asctime(modified)):
        matching = get_record_client.simulate_get(
            "/record", params=stored["params"], headers={"Range": "bytes=0-9", "If-Range": date}
        )
        assert matching.status_code == 206, date
        assert matching.content == stored["body"][:10]
    for date in (
        falcon.dt_to_http(modified + timedelta(seconds=1)),
        falcon.dt_to_http(modified - timedelta(seconds=1)),
        "Mon, 99 Foo 2024 12:00:00 GMT",
    ):
        stale = get_record_client.simulate_get(
            "/record", params=stored["params"], headers={"Range": "bytes=0-9", "If-Range": date}
        )
        assert stale.status_code == 200, date
        assert stale.content == stored["body"]


ABSURD_RANGES = ["bytes=" + "9" * 5000 + "-", "bytes=-" + "9" * 5000, "bytes=0-" + "9" * 5000]


@pytest.mark.parametrize("header", ABSURD_RANGES, ids=["first", "suffix", "last"])
def test_numbers_too_large_to_parse_are_416(
    get_record_client: TestClient, stored: dict[str, Any], header: str
) -> None:
    size = len(stored["body"])
    result = get_record_client.simulate_get(
        "/record", params=stored["params"], headers={"Range": header}
    )
    assert result.status_code == 416
    assert result.headers["content-range"] == f"bytes */{size}"
    assert "too large" in result.json["description"]
    head = get_record_client.simulate_head(
        "/record", params=stored["params"], headers={"Range": header}
    )
    assert head.status_code == 416


def test_leading_zeros_are_not_large_numbers(
    get_record_client: TestClient, stored: dict[str, Any]
) -> None:
    result = get_record_client.simulate_get(
        "/record", params=stored["params"], headers={"Range": "bytes=" + "0" * 5000 + "1-2"}
    )
    assert result.status_code == 206
    assert result.content == stored["body"][1:3]


def test_if_match_makes_if_unmodified_since_ignored(
    get_record_client: TestClient, stored: dict[str, Any]
) -> None:
    """RFC 9110 §13.1.4: with If-Match present, If-Unmodified-Since is not evaluated."""
    earlier = falcon.dt_to_http(last_modified(stored, get_record_client) - timedelta(seconds=1))
    served = get_record_client.simulate_get(
        "/record",
        params=stored["params"],
        headers={"If-Match": stored["etag"], "If-Unmodified-Since": earlier},
    )
    assert served.status_code == 200


@pytest.mark.parametrize(
    ("if_match", "status"),
    [("*", 200), ('"other", {etag}', 200), ('"other"', 412), ("W/{etag}", 412)],
)
def test_if_match_compares_strongly(
    get_record_client: TestClient, stored: dict[str, Any], if_match: str, status: int
) -> None:
    """RFC 9110 §13.1.1, as nginx answers it from the gateway's record cache."""
    answer = get_record_client.simulate_get(
        "/record",
        params=stored["params"],
        headers={"If-Match": if_match.format(etag=stored["etag"])},
    )
    assert answer.status_code == status


def test_a_download_racing_a_delete_is_cut_not_left_short(
    settings: Any, engine: Any, user: dict[str, str]
) -> None:
    """Second security review, finding 6: the record's chunks vanish mid-download. The body
    stops with an error (the server cuts the connection at once) instead of ending short of its
    Content-Length (the gateway then waited 75 s for the rest)."""
    small = replace(settings, chunk_bytes=256 * 1024)
    add = TestClient(create_add(small, engine))
    created = add.simulate_post(
        "/record",
        params={"user": user["id"]},
        body=pcm16(40.0),
        headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
    ).json
    environ = falcon.testing.create_environ(
        "/record", query_string=f"id={created['id']}&user={user['id']}"
    )
    body = iter(create_get(small, engine)(environ, lambda status, headers: None))
    assert next(body)
    gone = add.simulate_delete(
        "/record",
        params={"id": created["id"], "user": user["id"]},
        headers={"Authorization": f"Bearer {user['token']}"},
    )
    assert gone.status_code == 204
    with pytest.raises(RecordGone):
        for _ in body:
            pass
