"""GET /records and DELETE /record through falcon.testing, on the real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from falcon.testing import TestClient
from sqlalchemy.engine import Engine

from tests.helpers import multipart, pcm16, probe, stored_rows


def upload(
    client: TestClient,
    user: dict[str, str],
    name: str | None = None,
    seconds: float = 0.5,
    channels: int = 2,
) -> dict[str, Any]:
    params = {"user": user["id"], **({"name": name} if name else {})}
    result = client.simulate_post(
        "/record",
        params=params,
        body=pcm16(seconds, 22050, channels),
        headers={
            "Content-Type": "audio/wav",
            "Authorization": f"Bearer {user['token']}",
            "Host": "gw.test:8080",
        },
    )
    assert result.status_code == 201, result.text
    return dict(result.json)


def listing(client: TestClient, user: dict[str, str], **params: str) -> Any:
    return client.simulate_get(
        "/records",
        params={"user": user["id"], **params},
        headers={"Authorization": f"Bearer {user['token']}", "Host": "gw.test:8080"},
    )


def test_list_is_newest_first_with_the_facts(
    add_record_client: TestClient, get_record_client: TestClient, user: dict[str, str]
) -> None:
    first = upload(add_record_client, user, "one.wav", seconds=1.0, channels=1)
    second = upload(add_record_client, user, None, seconds=0.5)
    result = listing(get_record_client, user)
    assert result.status_code == 200
    records = result.json["records"]
    assert [entry["id"] for entry in records] == [second["id"], first["id"]]
    assert result.json["next"] is None
    entry = records[1]
    assert entry["name"] == "one.wav"
    assert records[0]["name"] is None
    assert entry["url"] == first["url"]
    assert (entry["channels"], entry["sample_rate"]) == (1, 22050)
    assert entry["duration_ms"] == pytest.approx(1000, abs=60)
    assert entry["size"] > 0
    assert datetime.fromisoformat(entry["created_at"].replace("Z", "+00:00")).tzinfo is not None


def test_the_listing_shows_the_quota_and_what_is_used(
    add_record_client: TestClient,
    get_record_client: TestClient,
    user: dict[str, str],
    settings: Any,
) -> None:
    empty = listing(get_record_client, user)
    assert (empty.json["quota"], empty.json["used"]) == (settings.user_quota_bytes, 0)
    upload(add_record_client, user, "one.wav")
    upload(add_record_client, user, "two.wav")
    result = listing(get_record_client, user, limit="1")
    assert result.json["used"] == sum(
        entry["size"] for entry in listing(get_record_client, user).json["records"]
    )
    assert result.json["used"] > 0


def test_pages_follow_the_cursor(
    add_record_client: TestClient, get_record_client: TestClient, user: dict[str, str]
) -> None:
    ids = [upload(add_record_client, user)["id"] for _ in range(5)]
    seen: list[str] = []
    params: dict[str, str] = {"limit": "2"}
    while True:
        page = listing(get_record_client, user, **params).json
        seen += [entry["id"] for entry in page["records"]]
        assert len(page["records"]) <= 2
        if page["next"] is None:
            break
        params = {"limit": "2", "before": page["next"]}
    assert seen == ids[::-1]


def test_token_as_query_parameter(get_record_client: TestClient, user: dict[str, str]) -> None:
    result = get_record_client.simulate_get(
        "/records", params={"user": user["id"], "token": user["token"]}
    )
    assert result.status_code == 200
    assert (result.json["records"], result.json["next"]) == ([], None)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "x"},
        {"before": "nope"},
        {"before": str(uuid.uuid4())},
    ],
)
def test_malformed_parameters_are_400(
    get_record_client: TestClient, user: dict[str, str], params: dict[str, str]
) -> None:
    result = listing(get_record_client, user, **params)
    assert result.status_code == 400
    assert result.json["description"]


def test_listing_needs_the_token(get_record_client: TestClient, user: dict[str, str]) -> None:
    for headers in ({}, {"Authorization": f"Bearer {uuid.uuid4()}"}, {"Authorization": "Bearer x"}):
        result = get_record_client.simulate_get(
            "/records", params={"user": user["id"]}, headers=headers
        )
        assert result.status_code == 401
        assert result.headers["www-authenticate"] == "Bearer"


def test_delete_removes_the_record_and_its_bytes(
    add_record_client: TestClient,
    get_record_client: TestClient,
    user: dict[str, str],
    engine: Engine,
) -> None:
    record = upload(add_record_client, user, seconds=2.0)
    params = {"id": record["id"], "user": user["id"]}
    auth = {"Authorization": f"Bearer {user['token']}"}
    assert add_record_client.simulate_delete("/record", params=params).status_code == 401
    result = add_record_client.simulate_delete("/record", params=params, headers=auth)
    assert result.status_code == 204
    assert result.content == b""
    assert get_record_client.simulate_get("/record", params=params).status_code == 404
    assert stored_rows(engine, uuid.UUID(record["id"])) == (0, 0)
    again = add_record_client.simulate_delete("/record", params=params, headers=auth)
    assert again.status_code == 404


def test_another_user_cannot_delete(
    add_record_client: TestClient, user: dict[str, str], create_user_client: TestClient
) -> None:
    record = upload(add_record_client, user)
    other = create_user_client.simulate_post("/user", json={"name": f"o-{uuid.uuid4()}"}).json
    result = add_record_client.simulate_delete(
        "/record",
        params={"id": record["id"], "user": other["id"]},
        headers={"Authorization": f"Bearer {other['token']}"},
    )
    assert result.status_code == 404


@pytest.mark.parametrize("params", [{}, {"id": "x", "user": "y"}, {"user": "U"}])
def test_delete_with_bad_ids_is_400(
    add_record_client: TestClient, user: dict[str, str], params: dict[str, str]
) -> None:
    params = {key: value.replace("U", user["id"]) for key, value in params.items()}
    result = add_record_client.simulate_delete(
        "/record", params=params, headers={"Authorization": f"Bearer {user['token']}"}
    )
    assert result.status_code == 400


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "9" * 5000},
        {"limit": "1" + "0" * 5000},
        {"limit": "-" + "9" * 5000},
        {"limit": "1e999999"},
        {"limit": "\u0661"},
        {"before": "9" * 5000},
        {"before": "f" * 5000},
        {"before": str(uuid.uuid4()) + "0" * 5000},
    ],
    ids=[
        "limit-digits",
        "limit-power",
        "limit-negative",
        "limit-exponent",
        "limit-arabic-digit",
        "before-digits",
        "before-hex",
        "before-tail",
    ],
)
def test_absurd_paging_parameters_are_400(
    get_record_client: TestClient, user: dict[str, str], params: dict[str, str]
) -> None:
    result = listing(get_record_client, user, **params)
    assert result.status_code == 400
    assert result.json["title"] == "Malformed parameter"
    assert next(iter(params)) in result.json["description"]


NAMES = [
    ("long", "y" * 300 + ".wav", "y" * 251 + ".wav", "y" * 251),
    ("long, no extension", "ж" * 400, "ж" * 255, "ж" * 255),
    ("bidi controls", "\u202eevil\u2066 \u200fname\u2069.wav", "evil name.wav", "evil name"),
    ("only bidi controls", "\u202a\u202b\u200e", None, None),
    ("not UTF-8", "%FF%FE.wav", "\ufffd\ufffd.wav", "\ufffd\ufffd"),
    ("encoded surrogate", "%ED%A0%80x.wav", "\ufffd\ufffd\ufffdx.wav", "\ufffd\ufffd\ufffdx"),
]


@pytest.mark.parametrize(("case", "sent", "stored", "stem"), NAMES, ids=[case[0] for case in NAMES])
def test_file_names_are_cleaned_never_refused(
    add_record_client: TestClient,
    get_record_client: TestClient,
    user: dict[str, str],
    case: str,
    sent: str,
    stored: str | None,
    stem: str | None,
) -> None:
    result = add_record_client.simulate_post(
        "/record",
        query_string=f"user={user['id']}&name={sent}",
        body=pcm16(0.5, 22050, 1),
        headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
    )
    assert result.status_code == 201, result.text
    entry = listing(get_record_client, user).json["records"][0]
    assert entry["id"] == result.json["id"]
    assert entry["name"] == stored
    download = get_record_client.simulate_head(
        "/record", params={"id": entry["id"], "user": user["id"]}
    )
    disposition = download.headers["content-disposition"]
    expected = quote(stem, safe="!#$&+-.^_`|~") if stem else entry["id"]
    assert disposition.endswith(f"filename*=UTF-8''{expected}.mp3")


def test_a_long_multipart_file_name_is_cut_and_becomes_the_title(
    add_record_client: TestClient,
    get_record_client: TestClient,
    user: dict[str, str],
    tmp_path: Path,
) -> None:
    form, content_type = multipart(
        {"user": user["id"], "token": user["token"]},
        [("file", "\u202e" + "t" * 300 + ".wav", pcm16(0.5, 22050, 1))],
    )
    result = add_record_client.simulate_post(
        "/record", body=form, headers={"Content-Type": content_type}
    )
    assert result.status_code == 201, result.text
    assert listing(get_record_client, user).json["records"][0]["name"] == "t" * 251 + ".wav"
    mp3 = tmp_path / "got.mp3"
    mp3.write_bytes(
        get_record_client.simulate_get(
            "/record", params={"id": result.json["id"], "user": user["id"]}
        ).content
    )
    assert probe(mp3)["TAG:title"] == "t" * 251
