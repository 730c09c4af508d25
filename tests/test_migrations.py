"""Migrations: idempotent, and the schema matches the tables the code uses, on both databases."""

from __future__ import annotations

import sqlalchemy as sa

from common.db import metadata, migrate


def test_migrate_twice_is_a_no_op(any_database_url: str) -> None:
    migrate(any_database_url)
    migrate(any_database_url)


def test_schema_matches_the_code(any_database_url: str) -> None:
    engine = sa.create_engine(any_database_url)
    try:
        inspector = sa.inspect(engine)
        for table in metadata.tables.values():
            columns = {column["name"] for column in inspector.get_columns(table.name)}
            assert columns == set(table.columns.keys()), table.name
    finally:
        engine.dispose()
