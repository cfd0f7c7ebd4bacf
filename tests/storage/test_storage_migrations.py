"""The Alembic migrations create exactly the schema that storage/schema.py describes, on both backends,
and running them twice is harmless."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from fhir_server.storage import migrate
from fhir_server.storage.db import sqlalchemy_url
from fhir_server.storage.schema import include_object, metadata


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.sqlite3'}"
    return request.getfixturevalue("pg_url")


def test_migrations_match_schema(empty_db_url):
    migrate.upgrade(empty_db_url)
    migrate.upgrade(empty_db_url)  # idempotent
    engine = create_engine(sqlalchemy_url(empty_db_url))
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            assert {"resource", "resource_history", "idx_token", "idx_reference", "idx_date"} <= tables
            diff = compare_metadata(MigrationContext.configure(conn, opts={"include_object": include_object}),
                                    metadata)
            assert diff == [], diff
            if conn.dialect.name == "postgresql":  # the full-text index and function of migration 0004
                names = {i["name"] for i in inspect(conn).get_indexes("idx_text")}
                assert "ix_idx_text_tsv" in names
                assert conn.exec_driver_sql("SELECT cares_text_match('fever cough', 'cou fe')").scalar() is True
                assert conn.exec_driver_sql("SELECT cares_text_match('fever cough', 'ever')").scalar() is False
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0007"
    finally:
        engine.dispose()
