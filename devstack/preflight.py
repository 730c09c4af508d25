"""What `make run` checks before it starts anything, so that each expected mistake ends in one line
that says what to do (a SystemExit with that line), not a traceback."""

from __future__ import annotations

import errno
import ipaddress
import socket

import psycopg
import sqlalchemy as sa

from common.storage.db import NotUtf8Error, libpq_url, migrate


def port_is_free(host: str, port: int) -> None:
    """SystemExit when host is not an IPv4 address of this machine's, or something already
    listens on host:port (another stack, another server)."""
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise SystemExit(
            f"LISTEN_ADDRESS must be an IPv4 address (0.0.0.0 for every interface), not {host!r}"
        ) from None
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise SystemExit(
                    f"port {port} is already in use on {host}: stop what listens there, or pick"
                    f" another port: PORT={port + 1} make run"
                ) from None
            raise SystemExit(f"cannot listen on {host}:{port}: {error.strerror}") from None


def database_exists(url: str) -> str | None:
    """Make sure DATABASE_URL's PostgreSQL database exists, creating it when the server lets this
    role; what was done, in a line, or None when nothing was needed (or the URL is SQLite's).
    SystemExit with the way out when the server cannot be reached or the database made."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    try:
        psycopg.connect(libpq_url(url), connect_timeout=5).close()
        return None
    except psycopg.OperationalError as error:
        if f'database "{parsed.database}" does not exist' not in str(error):
            raise SystemExit(
                f"PostgreSQL at {where} (DATABASE_URL) cannot be reached: {_first_line(error)}."
                " Start it, fix DATABASE_URL, or leave DATABASE_URL unset for the embedded SQLite"
                " file"
            ) from None
    server = parsed.set(database="postgres").render_as_string(hide_password=False)
    try:
        with psycopg.connect(libpq_url(server), autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                psycopg.sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(
                    psycopg.sql.Identifier(parsed.database or "")
                )
            )
    except psycopg.Error as error:
        raise SystemExit(
            f"database {parsed.database} does not exist at {where}, and it could not be created"
            f" ({_first_line(error)}): createdb -h {parsed.host or 'localhost'} -p"
            f" {parsed.port or 5432} -U {parsed.username or 'postgres'} -E UTF8 {parsed.database}"
        ) from None
    return f"created database {parsed.database} at {where}"


def migrated(url: str) -> None:
    """Apply the migrations; SystemExit with one line when the database refuses them."""
    try:
        migrate(url)
    except NotUtf8Error as error:
        raise SystemExit(str(error)) from None
    except (sa.exc.SQLAlchemyError, psycopg.Error) as error:
        raise SystemExit(f"the migrations could not be applied: {_first_line(error)}") from None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0].removeprefix("FATAL:  ").rstrip(".")
