"""Quota reservations of the records being made.

A pending record now says whose it is and how many MP3 bytes it will take at least (known from its
WAV's header and the body's length before ffmpeg starts). An upload is refused (507) before its
conversion when what the user has stored, what their other uploads in progress have reserved and
its own least size do not fit the quota: a user near the quota who sends many uploads at once no
longer has them all converted only for the last ones to be refused at the commit.

Rows of an earlier release's writers get no owner and reserve nothing.
"""

import sqlite3

from yoyo import step

__depends__ = {"0003.uploads"}


def apply(conn):
    uuid = "CHAR(32)" if isinstance(conn, sqlite3.Connection) else "uuid"
    cursor = conn.cursor()
    cursor.execute(f"ALTER TABLE pending_records ADD COLUMN user_id {uuid}")
    cursor.execute(
        "ALTER TABLE pending_records ADD COLUMN reserved_bytes BIGINT NOT NULL DEFAULT 0"
    )
    cursor.execute("CREATE INDEX pending_records_user ON pending_records (user_id)")


def rollback(conn):
    cursor = conn.cursor()
    cursor.execute("DROP INDEX pending_records_user")
    cursor.execute("ALTER TABLE pending_records DROP COLUMN reserved_bytes")
    cursor.execute("ALTER TABLE pending_records DROP COLUMN user_id")


steps = [step(apply, rollback)]
