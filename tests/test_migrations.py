"""Migrations: idempotent, and the schema matches the tables the code uses, on both databases."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
import sqlalchemy as sa

from common.db import NotUtf8Error, metadata, migrate
from devstack.databases import DEFAULT_SERVER_URL


def test_migrate_twice_is_a_no_op(any_database_url: str) -> None:
    migrate(any_database_url)
    assert migrate(any_database_url) == 0


def test_a_database_not_in_utf8_is_refused_with_the_way_out() -> None:
    server = sa.make_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL))
    name = f"audiosvc_ascii_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
                    "TEMPLATE template0"
                )
            )
        url = server.set(database=name).render_as_string(hide_password=False)
        with pytest.raises(NotUtf8Error, match=r"encoded SQL_ASCII.*ENCODING 'UTF8'"):
            migrate(url)
        libpq_url = server.set(drivername="postgresql", database=name)
        with psycopg.connect(libpq_url.render_as_string(hide_password=False)) as conn:
            tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert tables.fetchone() == (0,)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def test_schema_matches_the_code(any_database_url: str) -> None:
    engine = sa.create_engine(any_database_url)
    try:
        inspector = sa.inspect(engine)
        for table in metadata.tables.values():
            columns = {column["name"] for column in inspector.get_columns(table.name)}
            assert columns == set(table.columns.keys()), table.name
    finally:
        engine.dispose()
