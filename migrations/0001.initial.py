"""Users, records and the MP3 bytes as fixed-size chunk rows.

One migration set serves PostgreSQL and the embedded SQLite file; the DDL differs only in column
types, so each step picks its dialect from the DB-API connection it is given.
"""

import sqlite3

from yoyo import step

__depends__: set[str] = set()

POSTGRESQL = [
    """
    CREATE TABLE users (
        id uuid PRIMARY KEY,
        name text NOT NULL UNIQUE,
        token_hash bytea NOT NULL CHECK (length(token_hash) = 32),
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE records (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id),
        name text,
        channels integer NOT NULL CHECK (channels > 0),
        sample_rate integer NOT NULL CHECK (sample_rate > 0),
        duration_ms bigint NOT NULL CHECK (duration_ms >= 0),
        size bigint NOT NULL CHECK (size > 0),
        sha256 char(64) NOT NULL,
        chunk_bytes integer NOT NULL CHECK (chunk_bytes > 0),
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX records_user_created ON records (user_id, created_at DESC, id DESC)",
    """
    CREATE TABLE record_chunks (
        record_id uuid NOT NULL
            REFERENCES records (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
        seq integer NOT NULL CHECK (seq >= 0),
        data bytea NOT NULL,
        PRIMARY KEY (record_id, seq)
    )
    """,
    # MP3 does not compress: store chunks out of line without trying pglz on every write.
    "ALTER TABLE record_chunks ALTER COLUMN data SET STORAGE EXTERNAL",
]

SQLITE = [
    """
    CREATE TABLE users (
        id CHAR(32) PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        token_hash BLOB NOT NULL CHECK (length(token_hash) = 32),
        created_at DATETIME NOT NULL
    )
    """,
    """
    CREATE TABLE records (
        id CHAR(32) PRIMARY KEY,
        user_id CHAR(32) NOT NULL REFERENCES users (id),
        name TEXT,
        channels INTEGER NOT NULL CHECK (channels > 0),
        sample_rate INTEGER NOT NULL CHECK (sample_rate > 0),
        duration_ms INTEGER NOT NULL CHECK (duration_ms >= 0),
        size INTEGER NOT NULL CHECK (size > 0),
        sha256 CHAR(64) NOT NULL,
        chunk_bytes INTEGER NOT NULL CHECK (chunk_bytes > 0),
        created_at DATETIME NOT NULL
    )
    """,
    "CREATE INDEX records_user_created ON records (user_id, created_at DESC, id DESC)",
    """
    CREATE TABLE record_chunks (
        record_id CHAR(32) NOT NULL
            REFERENCES records (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
        seq INTEGER NOT NULL CHECK (seq >= 0),
        data BLOB NOT NULL,
        PRIMARY KEY (record_id, seq)
    ) WITHOUT ROWID
    """,
]


def _is_sqlite(conn):
    return isinstance(conn, sqlite3.Connection)


def apply(conn):
    cursor = conn.cursor()
    for statement in SQLITE if _is_sqlite(conn) else POSTGRESQL:
        cursor.execute(statement)


def rollback(conn):
    cursor = conn.cursor()
    for table in ("record_chunks", "records", "users"):
        cursor.execute(f"DROP TABLE {table}")


steps = [step(apply, rollback)]
