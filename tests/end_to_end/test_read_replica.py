"""Downloads read on a streaming replica (DATABASE_READ_URL), and on the primary whatever the
replica cannot answer: what it has not replayed yet, and everything while it is down.

A real primary and a real hot standby of it (pg_basebackup -R) of this module's own, on free
loopback ports; the service through the real gateway, get_record's DATABASE_READ_URL the replica's.
Replication lag is made at will: replay is paused on the replica (WAL still arrives, nothing of it
is applied) while the primary takes uploads. The replica logs every statement, which tells what was
read there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import falcon.testing
import pytest
import requests
import sqlalchemy as sa

from common.config import Settings
from common.storage.db import create_engine, migrate
from devstack.private_postgres import PrivatePostgres, postgres_bin
from devstack.stack import Stack
from functions.get_record.app import create_app
from functions.get_record.read_side import REPLICA_REST_S, create_read_engine
from tests.helpers import pcm16
from tests.stacks import UNLIMITED, gateway, needs_nginx, new_user, records_of, upload

pytestmark = [
    needs_nginx,
    pytest.mark.skipif(
        postgres_bin() is None or os.geteuid() != 0,
        reason="needs PostgreSQL's server binaries (apt-get install postgresql) and root to run "
        "them as the postgres user",
    ),
]

SECRET = f"replica-password-{uuid.uuid4().hex[:8]}"
"""In the replica's URL (trust authentication never asks for it): it must never reach a log."""
CHUNK_BYTES = 256 * 1024
REPLICA_SETTINGS = ("log_statement=all",)
CHUNK_QUERY = "FROM record_chunks"
WARNING = "replica unavailable"


class Servers:
    def __init__(self, primary: PrivatePostgres, replica: PrivatePostgres) -> None:
        self.primary, self.replica = primary, replica
        self.read_url = f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:{replica.port}/postgres"

    def chunk_reads_on_replica(self) -> int:
        """Statements on chunk rows the replica has run so far."""
        return self.replica.log.read_text(errors="replace").count(CHUNK_QUERY)

    def replica_has_record(self, record_id: str) -> bool:
        return bool(self.replica.query("SELECT count(*) FROM records WHERE id = %s", record_id))

    def replica_has_user(self, user_id: str) -> bool:
        return bool(self.replica.query("SELECT count(*) FROM users WHERE id = %s", user_id))


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    binaries = postgres_bin()
    assert binaries is not None
    base = Path(f"/tmp/audiosvc-replica-{uuid.uuid4().hex[:8]}")
    base.mkdir(mode=0o755)
    started: list[PrivatePostgres] = []
    try:
        primary = PrivatePostgres(base / "primary", binaries)
        started.append(primary)
        primary.start()
        migrate(primary.url)
        replica = PrivatePostgres(base / "replica", binaries, primary=primary)
        started.append(replica)
        replica.start(*REPLICA_SETTINGS)
        replica.wait_replayed(primary)
        yield Servers(primary, replica)
    finally:
        for server in reversed(started):
            server.stop_if_running()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with gateway(
        tmp_path_factory.mktemp("replica"),
        servers.primary.url,
        DATABASE_READ_URL=servers.read_url,
        CHUNK_BYTES=str(CHUNK_BYTES),
        **UNLIMITED,
    ) as stack:
        yield stack


@pytest.fixture(autouse=True)
def replica_in_step(servers: Servers) -> Iterator[None]:
    """Every test starts and ends with the replica up, replaying, and caught up."""

    def restore() -> None:
        if not servers.replica.running():
            servers.replica.start(*REPLICA_SETTINGS)
        servers.replica.resume_replay()
        servers.replica.wait_replayed(servers.primary)

    restore()
    yield
    restore()


def uncached(url: str) -> str:
    """`url` in a form the gateway's record cache leaves to get_record (the record id in
    capitals), so that every download here is read by get_record, repeats included."""
    record_id = url.split("id=", 1)[1].split("&", 1)[0]
    return url.replace(record_id, record_id.upper())


def download(url: str, **headers: str) -> requests.Response:
    answer = requests.get(uncached(url), headers=headers, timeout=30)
    assert answer.status_code in (200, 206), answer.text
    return answer


def listed(stack: Stack, user: dict[str, str]) -> list[str]:
    answer = records_of(stack, user)
    assert answer.status_code == 200, answer.text
    return [record["id"] for record in answer.json()["records"]]


def warnings_in(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if WARNING in line]


def test_the_replica_is_a_hot_standby_of_the_primary(servers: Servers) -> None:
    """It answers queries, and has the schema through WAL alone (it was never migrated itself)."""
    engine = sa.create_engine(servers.read_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar_one() is True
            assert conn.execute(sa.text("SELECT count(*) FROM records")).scalar_one() >= 0
    finally:
        engine.dispose()


def test_a_fresh_upload_downloads_at_once_while_the_replica_lags(
    stack: Stack, servers: Servers
) -> None:
    user = new_user(stack)
    servers.replica.wait_replayed(servers.primary)
    servers.replica.pause_replay()
    created = upload(stack, user, pcm16(2.0)).json()
    assert not servers.replica_has_record(created["id"]), "the replica was meant to lag"

    fresh = download(created["url"])
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] == f'"{hashlib.sha256(fresh.content).hexdigest()}"'
    head = requests.head(uncached(created["url"]), timeout=30)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(fresh.content))
    assert listed(stack, user) == [created["id"]], "the listing is read on the primary"

    servers.replica.resume_replay()
    servers.replica.wait_replayed(servers.primary)
    assert servers.replica_has_record(created["id"])
    assert listed(stack, user) == [created["id"]]
    before = servers.chunk_reads_on_replica()
    assert download(created["url"]).content == fresh.content
    assert servers.chunk_reads_on_replica() > before, "the chunks were not read on the replica"
    part = download(created["url"], Range="bytes=100-")
    assert part.status_code == 206
    assert part.content == fresh.content[100:]


def test_a_user_newer_than_the_replica_is_served_by_the_primary(
    stack: Stack, servers: Servers
) -> None:
    servers.replica.pause_replay()
    user = new_user(stack)
    assert not servers.replica_has_user(user["id"])
    assert listed(stack, user) == []
    created = upload(stack, user, pcm16(1.0)).json()
    # The replica does not know this user: the listing is the primary's, new record and all.
    assert listed(stack, user) == [created["id"]]
    assert download(created["url"]).status_code == 200
    wrong = records_of(stack, {"id": user["id"], "token": str(uuid.uuid4())})
    assert wrong.status_code == 401


def test_a_record_deleted_while_the_replica_lags_is_gone_at_once(
    stack: Stack, servers: Servers
) -> None:
    """Second security review, finding 4: the replica, paused, still has the record and its
    chunks after DELETE answered 204; neither a download nor the listing may show it."""
    user = new_user(stack)
    created = upload(stack, user, pcm16(2.0)).json()
    servers.replica.wait_replayed(servers.primary)
    assert download(created["url"]).status_code == 200
    servers.replica.pause_replay()
    deleted = requests.delete(
        f"{stack.url}/record",
        params={"id": created["id"], "user": user["id"]},
        headers={"Authorization": f"Bearer {user['token']}"},
        timeout=30,
    )
    assert deleted.status_code == 204
    assert servers.replica_has_record(created["id"]), "the replica was meant to lag"
    assert requests.get(created["url"], timeout=30).status_code == 404
    assert requests.head(uncached(created["url"]), timeout=30).status_code == 404
    assert listed(stack, user) == []


def test_a_record_that_exists_nowhere_is_404(stack: Stack) -> None:
    user = new_user(stack)
    answer = requests.get(
        f"{stack.url}/record", params={"id": str(uuid.uuid4()), "user": user["id"]}, timeout=30
    )
    assert answer.status_code == 404
    assert answer.json()["title"] == "Not found"


def test_a_replica_lost_mid_download_leaves_the_rest_to_the_primary(
    stack: Stack, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    """get_record in this process, so that the download can be held between two chunks."""
    user = new_user(stack)
    created = upload(stack, user, pcm16(40.0)).json()
    servers.replica.wait_replayed(servers.primary)
    expected = download(created["url"]).content
    assert len(expected) > 3 * CHUNK_BYTES
    settings = Settings(database_url=servers.primary.url, database_read_url=servers.read_url)
    engine = create_engine(servers.primary.url, 2)
    read_engine = create_read_engine(servers.read_url, 2)
    try:
        app = create_app(settings, engine, read_engine)
        environ = falcon.testing.create_environ(
            path="/record", query_string=urlencode({"id": created["id"], "user": user["id"]})
        )
        statuses: list[str] = []

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            statuses.append(status)

        body = app(environ, start_response)
        pieces = iter(body)
        before = servers.chunk_reads_on_replica()
        first = next(pieces)
        assert servers.chunk_reads_on_replica() == before + 1, "the first chunk is the replica's"
        servers.replica.stop()
        with caplog.at_level(logging.WARNING):
            rest = b"".join(pieces)
        getattr(body, "close", lambda: None)()
    finally:
        engine.dispose()
        read_engine.dispose()
    assert statuses == ["200 OK"]
    assert first + rest == expected
    warnings = [record.getMessage() for record in caplog.records if WARNING in record.getMessage()]
    assert len(warnings) == 1
    assert SECRET not in warnings[0]
    assert json.loads(warnings[0])["replica"].startswith("postgresql+psycopg://postgres:***@")


def test_a_stopped_replica_is_skipped_with_a_warning(stack: Stack, servers: Servers) -> None:
    user = new_user(stack)
    created = upload(stack, user, pcm16(3.0)).json()
    servers.replica.wait_replayed(servers.primary)
    expected = download(created["url"]).content

    servers.replica.stop()
    started = time.monotonic()
    assert download(created["url"]).content == expected
    assert requests.head(uncached(created["url"]), timeout=30).status_code == 200
    assert download(created["url"], Range="bytes=-100").content == expected[-100:]
    assert listed(stack, user) == [created["id"]]
    missing = requests.get(
        f"{stack.url}/record", params={"id": str(uuid.uuid4()), "user": user["id"]}, timeout=30
    )
    assert missing.status_code == 404
    assert time.monotonic() - started < 10, "the fallback must be quick"
    assert json.loads(stack.function_get("get_record", "/healthz")) == {"status": "ok"}

    log = stack.log("get_record")
    assert SECRET not in log
    warnings = warnings_in(log)
    assert 1 <= len(warnings) <= 2, "one per worker process (2), then the replica rests"
    for warning in warnings:
        assert warning["level"] == "warning"
        assert warning["replica"] == servers.read_url.replace(SECRET, "***")
        assert "refused" in warning["error"] or "closed" in warning["error"]

    # Back up: once its rest is over, the replica serves the chunks again.
    servers.replica.start(*REPLICA_SETTINGS)
    servers.replica.wait_replayed(servers.primary)
    before = servers.chunk_reads_on_replica()
    deadline = time.monotonic() + REPLICA_REST_S + 5
    while servers.chunk_reads_on_replica() == before:
        assert time.monotonic() < deadline, "the replica was not read again after its rest"
        assert download(created["url"]).content == expected
        time.sleep(0.5)


def test_nothing_was_answered_5xx(stack: Stack) -> None:
    """Every request of this module's stack, in get_record's request log."""
    statuses = [
        json.loads(line)["status"]
        for line in stack.log("get_record").splitlines()
        if line.startswith("{") and '"status"' in line and WARNING not in line
    ]
    assert statuses
    assert all(status < 500 for status in statuses), statuses
