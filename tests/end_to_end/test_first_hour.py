"""A newcomer's first commands: `make test` with no PostgreSQL listening, and `make run`'s start-up
mistakes, each ending in one line that says what to do (never a traceback), and a stack that
listens on loopback unless asked otherwise."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
import sqlalchemy as sa

from common.storage.db import libpq_url
from devstack.private_postgres import postgres_bin
from devstack.stack import ROOT, free_port

DEAD_SERVER = "postgresql+psycopg://postgres@127.0.0.1:{port}/test"


def devstack(port: int, database_url: str, *args: str, **env: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": database_url, **env}
    return subprocess.Popen(
        [sys.executable, "-m", "devstack", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def refused(port: int, database_url: str, **env: str) -> str:
    """What `make run` says when it stops at once: its one line (asserted to be one)."""
    process = devstack(port, database_url, **env)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1, (out, err)
    assert "Traceback" not in err
    assert "serving" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_psycopg2_url_is_one_line_naming_the_driver_to_use() -> None:
    line = refused(free_port(), "postgresql://postgres@127.0.0.1:5432/audio")
    assert line.startswith("DATABASE_URL must start postgresql+psycopg://")
    assert "psycopg2" in line


def test_no_server_at_the_url_is_one_line() -> None:
    line = refused(free_port(), DEAD_SERVER.format(port=free_port()))
    assert "cannot be reached" in line
    assert "leave DATABASE_URL unset for the embedded SQLite file" in line


def test_a_busy_port_is_one_line_naming_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = refused(port, f"sqlite:///{tmp_path / 'audio.sqlite3'}")
    assert line == (
        f"port {port} is already in use on 127.0.0.1: stop what listens there, or pick another"
        f" port: PORT={port + 1} make run"
    )


def other_address() -> str | None:
    """This machine's address on its default route (nothing is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.fixture
def new_database(database_url: str) -> Iterator[str]:
    """The URL of a database that does not exist yet on the test server; dropped afterwards."""
    name = f"audiosvc_first_{uuid.uuid4().hex[:8]}"
    url = sa.make_url(database_url).set(database=name).render_as_string(hide_password=False)
    yield url
    server = sa.make_url(database_url).set(database="postgres").render_as_string(False)
    with psycopg.connect(libpq_url(server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_database_is_created_then_the_stack_serves_on_loopback_only(
    new_database: str,
) -> None:
    port = free_port()
    process = devstack(port, new_database)
    try:
        assert process.stdout is not None
        created = process.stdout.readline().strip()
        assert created.startswith(f"created database {sa.make_url(new_database).database} at")
        serving = process.stdout.readline().strip()
        run_dir = ROOT / ".run" / str(port)
        assert serving.startswith(f"serving on http://127.0.0.1:{port} through ")
        assert f"logs in {run_dir};" in serving  # each stack's files apart, by port
        assert (run_dir / "nginx.conf").exists() or "dispatcher" in serving
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
        address = other_address()
        if address is not None:
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://{address}:{port}/", timeout=10)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        shutil.rmtree(ROOT / ".run" / str(port), ignore_errors=True)
    assert process.returncode == 0, err


@pytest.mark.skipif(
    postgres_bin() is None, reason="needs PostgreSQL's server binaries (apt-get install postgresql)"
)
def test_make_test_with_no_server_listening_starts_a_throwaway_one() -> None:
    """PostgreSQL installed but nothing answering at TEST_DATABASE_URL: the suite says so in one
    line and runs against a cluster of its own (here: one test of it, on both databases)."""
    dead = DEAD_SERVER.format(port=free_port())
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/components/test_migrations.py::test_schema_matches_the_code",
        ],
        cwd=ROOT,
        env={**os.environ, "TEST_DATABASE_URL": dead},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    port = sa.make_url(dead).port
    assert f"no PostgreSQL answers at 127.0.0.1:{port} (TEST_DATABASE_URL): this run uses a" in (
        result.stdout
    )
    assert "2 passed" in result.stdout


def test_make_compose_up_without_docker_is_one_line_after_the_hint(tmp_path: Path) -> None:
    """On a machine with no Docker at all, `make compose-up` ends with the helper's hint and one
    line of its own, not a traceback."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("sh", "dirname", "mkdir"):
        found = shutil.which(tool)
        assert found is not None
        (tools / tool).symlink_to(found)
    result = subprocess.run(
        [sys.executable, "-m", "devstack.compose", "up"],
        cwd=ROOT,
        env={**os.environ, "PATH": str(tools), "ENGINE_STATE": str(tmp_path / "engine")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-2:] == [
        "dockerd not found: apt-get install --no-install-recommends docker.io",
        "make compose-up stopped: docker/engine/ensure failed (status 1); its last line above"
        " says why",
    ]


def test_a_setting_the_gateway_refuses_is_one_line(tmp_path: Path) -> None:
    sqlite = f"sqlite:///{tmp_path / 'audio.sqlite3'}"
    line = refused(free_port(), sqlite, TRUSTED_PROXIES="10.0.0.0/8; evil")
    assert line.startswith("TRUSTED_PROXIES must be IP addresses or CIDR ranges")
    line = refused(free_port(), sqlite, LISTEN_ADDRESS="::")
    assert line == "LISTEN_ADDRESS must be an IPv4 address (0.0.0.0 for every interface), not '::'"
