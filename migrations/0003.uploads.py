"""Resumable uploads (tus 1.0.0): an upload's state, and the WAV bytes it has received so far.

`uploads` holds what the protocol needs across requests (length, owner, file name, expiry, whether
its WAV header has been checked, the record it became) and the lock that keeps two PATCHes of one
upload apart: a PATCH takes it by writing its own id and a lease, renews the lease as bytes
arrive, and clears it when it ends.

`upload_chunks` holds the received bytes, one row per piece written, keyed by the piece's first
byte. On PostgreSQL it is UNLOGGED: these bytes are temporary (they become an MP3, then go), so
they stay out of the WAL and off the replicas; a PostgreSQL crash empties the table, and every
upload in flight then resumes from byte 0 (HEAD reports the offset from the pieces present).
"""

import sqlite3

from yoyo import step

__depends__ = {"0002.pending-records"}

TABLES = [
    """
    CREATE TABLE uploads (
        id {uuid} PRIMARY KEY,
        user_id {uuid} NOT NULL REFERENCES users (id),
        length {bigint} NOT NULL CHECK (length > 0),
        name {text},
        created_at {timestamp} NOT NULL,
        expires_at {timestamp} NOT NULL,
        wav_ok {boolean} NOT NULL DEFAULT {false},
        record_id {uuid},
        patch_id {uuid},
        patch_until {timestamp}
    )
    """,
    "CREATE INDEX uploads_user ON uploads (user_id)",
    "CREATE INDEX uploads_expires ON uploads (expires_at)",
    """
    CREATE {unlogged}TABLE upload_chunks (
        upload_id {uuid} NOT NULL,
        start {bigint} NOT NULL CHECK (start >= 0),
        data {bytes} NOT NULL,
        PRIMARY KEY (upload_id, start)
    ){chunk_table_options}
    """,
]

POSTGRESQL = {
    "uuid": "uuid",
    "text": "text",
    "bytes": "bytea",
    "bigint": "bigint",
    "timestamp": "timestamptz",
    "boolean": "boolean",
    "false": "false",
    "unlogged": "UNLOGGED ",
    "chunk_table_options": "",
}

SQLITE = {
    "uuid": "CHAR(32)",
    "text": "TEXT",
    "bytes": "BLOB",
    "bigint": "INTEGER",
    "timestamp": "DATETIME",
    "boolean": "BOOLEAN",
    "false": "0",
    "unlogged": "",
    "chunk_table_options": " WITHOUT ROWID",
}

# WAV bytes on their way to ffmpeg: stored out of line, not compressed on every write.
POSTGRESQL_ONLY = ["ALTER TABLE upload_chunks ALTER COLUMN data SET STORAGE EXTERNAL"]


def apply(conn):
    cursor = conn.cursor()
    if isinstance(conn, sqlite3.Connection):
        statements = [table.format(**SQLITE) for table in TABLES]
    else:
        statements = [table.format(**POSTGRESQL) for table in TABLES] + POSTGRESQL_ONLY
    for statement in statements:
        cursor.execute(statement)


def rollback(conn):
    cursor = conn.cursor()
    for table in ("upload_chunks", "uploads"):
        cursor.execute(f"DROP TABLE {table}")


steps = [step(apply, rollback)]
