"""Migrations: idempotent, and the schema matches the tables the code uses, on both databases."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from common.storage.db import NotUtf8Error, libpq_url, metadata, migrate


def test_migrate_twice_is_a_no_op(any_database_url: str) -> None:
    migrate(any_database_url)
    assert migrate(any_database_url) == 0


def test_a_database_not_in_utf8_is_refused_with_the_way_out(postgres_server: str) -> None:
    server = sa.make_url(postgres_server)
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
        with psycopg.connect(libpq_url(url)) as conn:
            tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert tables.fetchone() == (0,)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def test_schema_matches_the_code(any_database_url: str) -> None:
    """Columns, nullability, keys, uniqueness and cascades: what the code relies on."""
    engine = sa.create_engine(any_database_url)
    try:
        inspector = sa.inspect(engine)
        for table in metadata.tables.values():
            # Nullability of the non-key columns: SQLite lets a non-integer PRIMARY KEY hold NULL.
            columns = {
                c["name"]: c["nullable"] or c["name"] in table.primary_key.columns
                for c in inspector.get_columns(table.name)
            }
            assert columns == {c.name: c.nullable or c.primary_key for c in table.columns}
            primary = inspector.get_pk_constraint(table.name)["constrained_columns"]
            assert primary == [c.name for c in table.primary_key.columns], table.name
            unique = {
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)
            } | {tuple(i["column_names"]) for i in inspector.get_indexes(table.name) if i["unique"]}
            assert {(c.name,) for c in table.columns if c.unique} <= unique, table.name
            keys = foreign_keys(engine, inspector, table.name)
            expected = {
                ((k.parent.name,), k.column.table.name, k.ondelete) for k in table.foreign_keys
            }
            assert keys == expected, table.name
    finally:
        engine.dispose()


def foreign_keys(engine: sa.Engine, inspector: sa.Inspector, table: str) -> set[tuple[Any, ...]]:
    """(columns, referred table, ON DELETE action) of each foreign key of `table`."""
    if engine.dialect.name == "sqlite":
        # SQLAlchemy's SQLite reflection misses ON DELETE when DEFERRABLE follows it.
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(f"PRAGMA foreign_key_list({table})").mappings()
            return {
                (
                    (row["from"],),
                    row["table"],
                    None if row["on_delete"] == "NO ACTION" else row["on_delete"],
                )
                for row in rows
            }
    return {
        (tuple(k["constrained_columns"]), k["referred_table"], k["options"].get("ondelete"))
        for k in inspector.get_foreign_keys(table)
    }
