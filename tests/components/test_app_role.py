"""The functions' database role reads and writes the service's rows and can do nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from common.storage.db import grant_app_role, libpq_url, users, utc_now


@pytest.fixture
def app_url(database_url: str) -> Iterator[str]:
    """A role of this test's own, granted by grant_app_role; dropped afterwards."""
    role, password = f"audiosvc_app_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    grant_app_role(database_url, role, password)
    grant_app_role(database_url, role, password)  # idempotent: the migrate job runs it each start
    owner = sa.make_url(database_url)
    yield owner.set(username=role, password=password).render_as_string(hide_password=False)
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(psycopg.sql.Identifier(role)))
        conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(role)))


def test_the_role_reads_and_writes_rows(app_url: str) -> None:
    engine = sa.create_engine(app_url)
    try:
        with engine.begin() as conn:
            user_id = uuid.uuid4()
            conn.execute(
                users.insert().values(
                    id=user_id, name=f"r-{user_id}", token_hash=bytes(32), created_at=utc_now()
                )
            )
            conn.execute(users.update().where(users.c.id == user_id).values(name=f"s-{user_id}"))
            assert (
                conn.execute(sa.select(users.c.name).where(users.c.id == user_id)).scalar_one()
                == f"s-{user_id}"
            )
            conn.execute(users.delete().where(users.c.id == user_id))
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE record_chunks",
        "ALTER TABLE users ADD COLUMN x int",
        "CREATE TABLE stolen (x int)",
        "TRUNCATE users",
        "SELECT * FROM _yoyo_migration",
        "CREATE ROLE another",
        "CREATE DATABASE another",
        "CREATE SCHEMA stolen",
    ],
)
def test_the_role_can_do_nothing_else(app_url: str, statement: str) -> None:
    with (
        psycopg.connect(libpq_url(app_url), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement)
