"""The per-user quota of stored MP3 bytes (contract v1.2): 507, nothing stored, counted per user."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from falcon.testing import TestClient
from sqlalchemy.engine import Engine

from common.config import Settings
from functions.add_record.app import create_app
from tests.helpers import pcm16

ONE_SECOND = pcm16(1.0)


def post(client: TestClient, user: dict[str, str], body: bytes) -> Any:
    return client.simulate_post(
        "/record",
        params={"user": user["id"]},
        body=body,
        headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
    )


def used(get_record_client: TestClient, user: dict[str, str]) -> int:
    listing = get_record_client.simulate_get(
        "/records",
        params={"user": user["id"]},
        headers={"Authorization": f"Bearer {user['token']}"},
    )
    assert listing.status_code == 200
    return int(listing.json["used"])


def test_an_upload_that_would_pass_the_quota_is_507_and_stores_nothing(
    settings: Settings,
    engine: Engine,
    add_record_client: TestClient,
    get_record_client: TestClient,
    user: dict[str, str],
    create_user_client: TestClient,
) -> None:
    first = post(add_record_client, user, ONE_SECOND)
    assert first.status_code == 201
    size = used(get_record_client, user)
    tight = TestClient(create_app(replace(settings, user_quota_bytes=size + size // 2), engine))
    refused = post(tight, user, ONE_SECOND)
    assert refused.status_code == 507, refused.text
    assert refused.json["title"] == "Quota exceeded"
    assert f"stored {size} of {size + size // 2} bytes" in refused.json["description"]
    assert used(get_record_client, user) == size
    other = create_user_client.simulate_post("/user", json={"name": f"other-{user['id']}"}).json
    assert post(tight, other, ONE_SECOND).status_code == 201, "the quota is per user"


def test_a_user_with_no_room_left_is_refused_before_the_body_is_read(
    settings: Settings, engine: Engine, add_record_client: TestClient, user: dict[str, str]
) -> None:
    assert post(add_record_client, user, ONE_SECOND).status_code == 201
    full = TestClient(create_app(replace(settings, user_quota_bytes=1), engine))
    refused = post(full, user, b"not even a WAV")
    assert refused.status_code == 507, refused.text
    assert "nothing more fits" in refused.json["description"]
