"""What a function's answers carry whatever the route, and the host they will not echo.

Each check here fails when its guard is removed: the security-headers middleware, the Host and
X-Forwarded-Host check of the base URL.
"""

from __future__ import annotations

import uuid

import pytest
from falcon.testing import TestClient
from sqlalchemy.engine import Engine

from tests.helpers import nothing_stored, pcm16

SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def test_every_function_answer_has_the_security_headers(
    create_user_client: TestClient,
    add_record_client: TestClient,
    get_record_client: TestClient,
    user: dict[str, str],
) -> None:
    answers = [
        create_user_client.simulate_post("/user", json={"name": f"h-{uuid.uuid4()}"}),
        create_user_client.simulate_post("/user", body=b"{"),
        add_record_client.simulate_post(
            "/record", params={"user": "x"}, body=b"", headers={"Content-Type": "audio/wav"}
        ),
        get_record_client.simulate_get(
            "/record", params={"id": str(uuid.uuid4()), "user": user["id"]}
        ),
        get_record_client.simulate_get(
            "/records",
            params={"user": user["id"]},
            headers={"Authorization": f"Bearer {user['token']}"},
        ),
        get_record_client.simulate_get("/healthz"),
    ]
    for answer in answers:
        assert {name: answer.headers.get(name) for name in SECURITY} == SECURITY, answer.status


@pytest.mark.parametrize(
    "host",
    ["evil.example/phish?", "a b", 'x"y', "host:port:extra", "exa mple.org:8080"],
)
def test_a_forwarded_host_that_is_not_a_host_is_refused_and_never_echoed(
    add_record_client: TestClient, user: dict[str, str], engine: Engine, host: str
) -> None:
    with nothing_stored(engine):
        result = add_record_client.simulate_post(
            "/record",
            params={"user": user["id"]},
            body=pcm16(0.2),
            headers={
                "Content-Type": "audio/wav",
                "Authorization": f"Bearer {user['token']}",
                "Host": "gw.test:8080",
                "X-Forwarded-Host": host,
            },
        )
        assert result.status_code == 400, result.text
        assert result.json["title"] == "Bad Host header"
        assert "location" not in result.headers
