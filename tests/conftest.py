"""Fixtures: a throwaway PostgreSQL database per test run, settings, the functions' test clients."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest
from sqlalchemy.engine import Engine

from common.config import Settings
from common.storage.db import create_engine, migrate
from devstack.databases import DEFAULT_SERVER_URL, server_for_tests, throwaway_database
from devstack.pgbouncer import pgbouncer
from functions.add_record.app import create_app as add_record_app
from functions.create_user.app import create_app as create_user_app
from functions.get_record.app import create_app as get_record_app


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The suite's PostgreSQL server: TEST_DATABASE_URL's when one answers there, else a throwaway
    cluster of this machine's binaries (said in one line), else one line and the run stops."""
    server = os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL)
    with contextlib.ExitStack() as resources:
        try:
            url, said = resources.enter_context(server_for_tests(server, "TEST_DATABASE_URL"))
        except SystemExit as stop:
            pytest.exit(str(stop), returncode=2)
        if said:
            plugins = request.config.pluginmanager
            capture = plugins.get_plugin("capturemanager")
            with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
                print(f"\n{said}", flush=True)
        yield url


@pytest.fixture(scope="session")
def database_url(postgres_server: str) -> Iterator[str]:
    """A database of this run's own on the suite's server, dropped at the end; with
    TEST_DATABASE_POOLER=pgbouncer, reached through a PgBouncer in transaction mode."""
    with throwaway_database(postgres_server, "audiosvc_test") as url:
        if os.environ.get("TEST_DATABASE_POOLER") == "pgbouncer":
            with pgbouncer(url) as pooled:
                yield pooled
        else:
            yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'audio.sqlite3'}"
    migrate(url)
    return url


@pytest.fixture(params=["postgresql", "sqlite"])
def any_database_url(request: pytest.FixtureRequest) -> str:
    """Both databases the service supports, for tests that must hold on each."""
    return str(
        request.getfixturevalue("database_url" if request.param == "postgresql" else "sqlite_url")
    )


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(database_url: str, spool_dir: Path) -> Settings:
    return Settings(database_url=database_url, spool_dir=str(spool_dir), ffmpeg_timeout_s=60)


@pytest.fixture
def create_user_client(settings: Settings, engine: Engine) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_user_app(settings, engine))


@pytest.fixture
def add_record_client(settings: Settings, engine: Engine) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(add_record_app(settings, engine))


@pytest.fixture
def get_record_client(settings: Settings, engine: Engine) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(get_record_app(settings, engine))


@pytest.fixture
def user(create_user_client: falcon.testing.TestClient) -> dict[str, str]:
    result = create_user_client.simulate_post("/user", json={"name": f"user-{uuid.uuid4()}"})
    assert result.status_code == 201
    return dict(result.json)
