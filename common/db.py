"""Database access: tables (SQLAlchemy Core), one engine per worker process, migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from yoyo import get_backend, read_migrations

from common.config import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("token_hash", sa.LargeBinary, nullable=False),
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

record_chunks = sa.Table(
    "record_chunks",
    metadata,
    sa.Column(
        "record_id", sa.Uuid, sa.ForeignKey("records.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)


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
        connect_args={"connect_timeout": 5, "cursor_factory": BinaryCursor},
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


def migrate(url: str) -> None:
    """Apply every pending migration under yoyo's lock (`make migrate`, compose's migrate)."""
    sa_url = sa.make_url(url)
    if sa_url.get_backend_name() == "sqlite" and sa_url.database:
        Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
    backend = get_backend(url)
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))


def main() -> None:
    settings = Settings.from_env()
    migrate(settings.database_url)
    print(f"migrations applied to {sa.make_url(settings.database_url).render_as_string()}")


if __name__ == "__main__":
    main()
