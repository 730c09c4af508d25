"""Records written in short transactions, and tokens that name their user.

An upload's MP3 chunks are now committed as they are made, each in a transaction of its own, into
record_chunks under the id its record will have; the records row that makes them visible comes
last. Until then a pending_records row holds the chunks' lease: while it is renewed they are the
upload's, once it has lapsed (a worker that died) the sweep removes them. Chunks thus exist before
their record row, so the foreign key from record_chunks to records goes; deleting a record deletes
its chunks in the same transaction instead of by cascade.

users.token_hash gets a unique index: a Bearer token is looked up to find its user (an upload
whose user field comes after its file part is authenticated before any byte of the file is kept).
"""

import sqlite3

from yoyo import step

__depends__ = {"0001.initial"}

PENDING = """
    CREATE TABLE pending_records (
        id {uuid} PRIMARY KEY,
        lease_until {timestamp} NOT NULL
    )
"""
PENDING_INDEX = "CREATE INDEX pending_records_lease ON pending_records (lease_until)"
USERS_BY_HASH = "CREATE UNIQUE INDEX users_token_hash ON users (token_hash)"

POSTGRESQL = [
    "ALTER TABLE record_chunks DROP CONSTRAINT record_chunks_record_id_fkey",
    PENDING.format(uuid="uuid", timestamp="timestamptz"),
    PENDING_INDEX,
    USERS_BY_HASH,
]

# SQLite cannot drop a constraint: the table is made again without it (its rows copied over).
SQLITE = [
    """
    CREATE TABLE record_chunks_new (
        record_id CHAR(32) NOT NULL,
        seq INTEGER NOT NULL CHECK (seq >= 0),
        data BLOB NOT NULL,
        PRIMARY KEY (record_id, seq)
    ) WITHOUT ROWID
    """,
    "INSERT INTO record_chunks_new SELECT record_id, seq, data FROM record_chunks",
    "DROP TABLE record_chunks",
    "ALTER TABLE record_chunks_new RENAME TO record_chunks",
    PENDING.format(uuid="CHAR(32)", timestamp="DATETIME"),
    PENDING_INDEX,
    USERS_BY_HASH,
]


def apply(conn):
    cursor = conn.cursor()
    for statement in SQLITE if isinstance(conn, sqlite3.Connection) else POSTGRESQL:
        cursor.execute(statement)


ROLLBACK_POSTGRESQL = [
    "DROP INDEX users_token_hash",
    "DROP TABLE pending_records",
    "DELETE FROM record_chunks WHERE record_id NOT IN (SELECT id FROM records)",
    "ALTER TABLE record_chunks ADD CONSTRAINT record_chunks_record_id_fkey FOREIGN KEY (record_id)"
    " REFERENCES records (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED",
]

ROLLBACK_SQLITE = [
    "DROP INDEX users_token_hash",
    "DROP TABLE pending_records",
    """
    CREATE TABLE record_chunks_old (
        record_id CHAR(32) NOT NULL
            REFERENCES records (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
        seq INTEGER NOT NULL CHECK (seq >= 0),
        data BLOB NOT NULL,
        PRIMARY KEY (record_id, seq)
    ) WITHOUT ROWID
    """,
    "INSERT INTO record_chunks_old SELECT record_id, seq, data FROM record_chunks"
    " WHERE record_id IN (SELECT id FROM records)",
    "DROP TABLE record_chunks",
    "ALTER TABLE record_chunks_old RENAME TO record_chunks",
]


def rollback(conn):
    cursor = conn.cursor()
    sqlite = isinstance(conn, sqlite3.Connection)
    for statement in ROLLBACK_SQLITE if sqlite else ROLLBACK_POSTGRESQL:
        cursor.execute(statement)


steps = [step(apply, rollback)]
