"""Users, records and the MP3 bytes as fixed-size chunk rows.

One migration set serves PostgreSQL and the embedded SQLite file. The tables are written once; only
the column types and each dialect's storage clauses differ, so each step fills them in for the
dialect of the DB-API connection it is given.
"""

import sqlite3

from yoyo import step

__depends__: set[str] = set()

TABLES = [
    """
    CREATE TABLE users (
        id {uuid} PRIMARY KEY,
        name {text} NOT NULL UNIQUE,
        token_hash {bytes} NOT NULL CHECK (length(token_hash) = 32),
        created_at {timestamp} NOT NULL{now}
    )
    """,
    """
    CREATE TABLE records (
        id {uuid} PRIMARY KEY,
        user_id {uuid} NOT NULL REFERENCES users (id),
        name {text},
        channels {integer} NOT NULL CHECK (channels > 0),
        sample_rate {integer} NOT NULL CHECK (sample_rate > 0),
        duration_ms {bigint} NOT NULL CHECK (duration_ms >= 0),
        size {bigint} NOT NULL CHECK (size > 0),
        sha256 {char64} NOT NULL,
        chunk_bytes {integer} NOT NULL CHECK (chunk_bytes > 0),
        created_at {timestamp} NOT NULL{now}
    )
    """,
    "CREATE INDEX records_user_created ON records (user_id, created_at DESC, id DESC)",
    """
    CREATE TABLE record_chunks (
        record_id {uuid} NOT NULL
            REFERENCES records (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
        seq {integer} NOT NULL CHECK (seq >= 0),
        data {bytes} NOT NULL,
        PRIMARY KEY (record_id, seq)
    ){chunk_table_options}
    """,
]

POSTGRESQL = {
    "uuid": "uuid",
    "text": "text",
    "bytes": "bytea",
    "integer": "integer",
    "bigint": "bigint",
    "char64": "char(64)",
    "timestamp": "timestamptz",
    "now": " DEFAULT now()",
    "chunk_table_options": "",
}

SQLITE = {
    "uuid": "CHAR(32)",
    "text": "TEXT",
    "bytes": "BLOB",
    "integer": "INTEGER",
    "bigint": "INTEGER",
    "char64": "CHAR(64)",
    "timestamp": "DATETIME",
    "now": "",
    "chunk_table_options": " WITHOUT ROWID",
}

# MP3 does not compress: store chunks out of line without trying pglz on every write.
POSTGRESQL_ONLY = ["ALTER TABLE record_chunks ALTER COLUMN data SET STORAGE EXTERNAL"]


def statements(conn):
    if isinstance(conn, sqlite3.Connection):
        return [table.format(**SQLITE) for table in TABLES]
    return [table.format(**POSTGRESQL) for table in TABLES] + POSTGRESQL_ONLY


def apply(conn):
    cursor = conn.cursor()
    for statement in statements(conn):
        cursor.execute(statement)


def rollback(conn):
    cursor = conn.cursor()
    for table in ("record_chunks", "records", "users"):
        cursor.execute(f"DROP TABLE {table}")


steps = [step(apply, rollback)]
