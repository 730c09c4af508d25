"""Database access: tables (SQLAlchemy Core), one engine per worker process, migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from yoyo import get_backend, read_migrations

from common.config import AppRole, Settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("token_hash", sa.LargeBinary, nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

records = sa.Table(
    "records",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("channels", sa.Integer, nullable=False),
    sa.Column("sample_rate", sa.Integer, nullable=False),
    sa.Column("duration_ms", sa.BigInteger, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("chunk_bytes", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# A chunk's record_id is its record's id, or a pending record's (see common/storage/records.py):
# chunks are committed before the record row that makes them visible, so no foreign key.
record_chunks = sa.Table(
    "record_chunks",
    metadata,
    sa.Column("record_id", sa.Uuid, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

pending_records = sa.Table(
    "pending_records",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("user_id", sa.Uuid, nullable=True, index=True),
    sa.Column("reserved_bytes", sa.BigInteger, nullable=False, server_default="0"),
)

uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("length", sa.BigInteger, nullable=False),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("wav_ok", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("record_id", sa.Uuid, nullable=True),
    sa.Column("patch_id", sa.Uuid, nullable=True),
    sa.Column("patch_until", sa.DateTime(timezone=True), nullable=True),
)

# The WAV bytes an upload has received, a row per piece written, keyed by its first byte.
upload_chunks = sa.Table(
    "upload_chunks",
    metadata,
    sa.Column("upload_id", sa.Uuid, primary_key=True),
    sa.Column("start", sa.BigInteger, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)


def delete_with_chunks(
    conn: sa.Connection, rows: sa.Delete, key: sa.Column[Any], chunk_key: sa.Column[Any]
) -> list[Any]:
    """Delete `rows` and the chunk rows whose `chunk_key` is one of their `key`s, in `conn`'s
    transaction (chunks have no foreign key to cascade by: see record_chunks); the keys deleted."""
    deleted = list(conn.execute(rows.returning(key)).scalars())
    if deleted:
        conn.execute(sa.delete(chunk_key.table).where(chunk_key.in_(deleted)))
    return deleted


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_engine(url: str, pool_size: int = 8) -> Engine:
    """Build the engine of one worker process (call it after fork, never at import time)."""
    sa_url = sa.make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        engine = sa.create_engine(sa_url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(
        sa_url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=2,
        pool_timeout=10,
        connect_args={
            "connect_timeout": 5,
            "cursor_factory": BinaryCursor,
            # No server-side prepared statements: through a pooler in transaction mode (PgBouncer
            # before 1.21) the next transaction may run on another server connection, which has
            # not prepared them or has its own of the same name. Each query is parsed anew.
            "prepare_threshold": None,
        },
    )


class BinaryCursor(psycopg.Cursor[Any]):
    """A cursor receiving results in PostgreSQL's binary format.

    In the default text format every bytea (the MP3 chunks) is hex-encoded by the server and
    decoded again here: twice the bytes on the wire and a pass over each on both sides.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.format = psycopg.pq.Format.BINARY


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as psycopg's own connection string."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class NotUtf8Error(RuntimeError):
    """The database cannot hold every name the service accepts (any script, Cyrillic too)."""


def require_utf8(url: str) -> None:
    """Refuse a PostgreSQL database whose encoding is not UTF8 (SQL_ASCII, LATIN1, ...)."""
    # psycopg directly: on such a database text arrives as bytes, which SQLAlchemy's own start-up
    # queries (the server version) cannot even parse.
    with psycopg.connect(libpq_url(url), connect_timeout=10) as conn:
        row = conn.execute("SHOW server_encoding").fetchone()
    value = row[0] if row else b""
    encoding = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    if encoding != "UTF8":
        database = sa.make_url(url).database
        raise NotUtf8Error(
            f"database {database!r} is encoded {encoding}, but the service stores names in any "
            f"script and needs UTF8: create it with ENCODING 'UTF8' (initdb --encoding=UTF8, or "
            f"CREATE DATABASE {database} ENCODING 'UTF8' TEMPLATE template0)"
        )


def migrate(url: str) -> int:
    """Apply every pending migration under yoyo's lock; return how many were applied."""
    sa_url = sa.make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        if sa_url.database:
            Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        require_utf8(url)
    backend = get_backend(url)
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return len(pending)


def grant_app_role(url: str, role: str, password: str) -> None:
    """Create or update the functions' login role: it reads and writes the service's rows, no more.

    The migrate job, connected as the schema's owner, runs this after the migrations, so every
    table a migration adds is granted on the next run. The role owns nothing and cannot change the
    schema (no CREATE on it since PostgreSQL 15), create roles or databases, or read yoyo's tables.
    """
    name = psycopg.sql.Identifier(role)
    with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is None:
            conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(name))
        conn.execute(
            psycopg.sql.SQL(
                "ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS "
                "PASSWORD {}"
            ).format(name, psycopg.sql.Literal(password))
        )
        database = conn.execute("SELECT current_database()").fetchone()
        assert database is not None  # noqa: S101 - PostgreSQL always answers this
        conn.execute(
            psycopg.sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                psycopg.sql.Identifier(database[0]), name
            )
        )
        conn.execute(psycopg.sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name))
        tables = psycopg.sql.SQL(", ").join(
            psycopg.sql.Identifier(table.name) for table in metadata.sorted_tables
        )
        conn.execute(
            psycopg.sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(tables, name)
        )


def main() -> None:
    """`python -m common.storage.db` (`make migrate`, compose's migrate job).

    With DATABASE_APP_ROLE and DATABASE_APP_PASSWORD set, it also makes that role the functions'
    (grant_app_role); DATABASE_URL is then the owner's, and the functions get the role's URL.
    """
    settings = Settings.from_env()
    role = AppRole.from_env()
    target = sa.make_url(settings.database_url).render_as_string()
    try:
        applied = migrate(settings.database_url)
        if role:
            grant_app_role(settings.database_url, role.name, role.password)
    except NotUtf8Error as error:
        raise SystemExit(f"migrate: {error}") from None
    except psycopg.OperationalError as error:
        raise SystemExit(f"migrate: cannot reach the database {target}: {error}") from None
    print(f"{applied} migration(s) applied to {target}" if applied else f"{target} is up to date")
    if role:
        print(f"role {role.name} may read and write the service's rows, and nothing else")


if __name__ == "__main__":
    main()
