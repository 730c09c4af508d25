"""Throwaway PostgreSQL databases, for the test suite and the benchmark."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import sqlalchemy as sa

from common.storage.db import libpq_url, migrate
from devstack.private_postgres import PrivatePostgres, postgres_bin

DEFAULT_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def throwaway_database(server_url: str, prefix: str) -> Iterator[str]:
    """Create a migrated database on the server of `server_url`; drop it on exit."""
    server = sa.make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = server.set(database=name).render_as_string(hide_password=False)
        try:
            migrate(url)
            yield url
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def answers(server_url: str) -> bool:
    """Whether a PostgreSQL server answers at `server_url` (wrong credentials count: it answers)."""
    try:
        psycopg.connect(libpq_url(server_url), connect_timeout=3).close()
    except psycopg.OperationalError as error:
        return "Connection refused" not in str(error) and "timeout expired" not in str(error)
    return True


@contextmanager
def server_for_tests(server_url: str, variable: str) -> Iterator[tuple[str, str | None]]:
    """(the server URL to use, a line saying what was done or None): `server_url` when a server
    answers there; otherwise a throwaway cluster of this machine's PostgreSQL binaries, removed on
    exit. SystemExit with one line naming `variable` when there are none."""
    if answers(server_url):
        yield server_url, None
        return
    parsed = sa.make_url(server_url)
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    binaries = postgres_bin()
    if binaries is None:
        raise SystemExit(
            f"no PostgreSQL answers at {where} ({variable}) and none is installed to start one:"
            f" start a server there, or set {variable} to one you may create databases on"
        )
    base = Path(tempfile.mkdtemp(prefix="audiosvc-postgres-"))
    base.chmod(0o755)
    cluster = PrivatePostgres(base / "cluster", binaries)
    try:
        cluster.start()
        url = cluster.url.rsplit("/", 1)[0] + "/" + (parsed.database or "postgres")
        with psycopg.connect(libpq_url(cluster.url), autocommit=True) as conn:
            if parsed.database and parsed.database != "postgres":
                conn.execute(
                    psycopg.sql.SQL("CREATE DATABASE {}").format(
                        psycopg.sql.Identifier(parsed.database)
                    )
                )
        yield (
            url,
            (
                f"no PostgreSQL answers at {where} ({variable}): this run uses a throwaway"
                f" PostgreSQL {binaries.parent.name} cluster on 127.0.0.1:{cluster.port}, removed"
                " at its end"
            ),
        )
    finally:
        cluster.stop_if_running()
        shutil.rmtree(base, ignore_errors=True)
