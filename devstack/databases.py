"""Throwaway PostgreSQL databases, for the test suite and the benchmark."""

from __future__ import annotations

import shutil
import subprocess
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


def unreachable(server_url: str, variable: str) -> bool:
    """True when no PostgreSQL listens where `server_url` points; SystemExit with one line when
    one does but will not let the URL's role in (the URL, not the server, needs fixing)."""
    try:
        psycopg.connect(libpq_url(server_url), connect_timeout=3).close()
    except psycopg.OperationalError as error:
        text = str(error)
        if "Connection refused" in text or "No such file or directory" in text:
            return True
        where = _where(server_url)
        first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        raise SystemExit(
            f"PostgreSQL at {where} refused {variable}: {first}; fix {variable}"
        ) from None
    return False


@contextmanager
def server_for_tests(server_url: str, variable: str) -> Iterator[tuple[str, str | None]]:
    """(the server URL to use, a line saying what was done or None): `server_url` when a server
    answers there; otherwise a throwaway cluster of this machine's PostgreSQL binaries, removed on
    exit. SystemExit with one line naming `variable` when there are none, or the cluster fails."""
    if not unreachable(server_url, variable):
        yield server_url, None
        return
    parsed = sa.make_url(server_url)
    where = _where(server_url)
    binaries = postgres_bin()
    if binaries is None:
        raise SystemExit(
            f"no PostgreSQL answers at {where} ({variable}) and none is installed to start one:"
            f" start a server there, or set {variable} to one you may create databases on"
        )
    base = Path(tempfile.mkdtemp(prefix="audiosvc-postgres-"))
    base.chmod(0o755)
    cluster: PrivatePostgres | None = None
    try:
        try:
            cluster = PrivatePostgres(base / "cluster", binaries)
            cluster.start()
        except subprocess.CalledProcessError as failed:
            detail = (failed.stderr or b"").decode(errors="replace").strip().splitlines()
            raise SystemExit(
                f"no PostgreSQL answers at {where} ({variable}), and a throwaway cluster of"
                f" {binaries} would not start: {detail[-1] if detail else failed}"
            ) from None
        url = cluster.url.rsplit("/", 1)[0] + "/" + (parsed.database or "postgres")
        if parsed.database and parsed.database != "postgres":
            with psycopg.connect(libpq_url(cluster.url), autocommit=True) as conn:
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
        if cluster is not None:
            cluster.stop_if_running()
        shutil.rmtree(base, ignore_errors=True)


def _where(server_url: str) -> str:
    parsed = sa.make_url(server_url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
