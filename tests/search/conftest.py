"""Fixtures for the search tests: the test database on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy

from tests.search.search_data import PG_URL, Db, PgDb, SqliteDb, load, load_real, pg_available


def _make_db(backend: str, tmp_path_factory: pytest.TempPathFactory,
             loader: Callable[[sqlalchemy.Engine], None]) -> Iterator[Db]:
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("search") / "search.db"
        engine = sqlalchemy.create_engine(f"sqlite:///{path}")
        loader(engine)
        engine.dispose()
        d = SqliteDb(path)
        yield d
        d.close()
        return
    if not pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable at " + PG_URL)
        pytest.skip("PostgreSQL is not reachable at " + PG_URL)
    import psycopg

    schema = f"search_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        engine = sqlalchemy.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"),
                                          connect_args={"options": f"-c search_path={schema}"})
        loader(engine)
        engine.dispose()
        d = PgDb(schema)
        yield d
        d.close()
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Db]:
    """The hand-written test data (``search_data.RESOURCES``)."""
    yield from _make_db(request.param, tmp_path_factory, load)


@pytest.fixture(scope="session")
def real_registry():  # noqa: ANN201
    from fhir_server.indexing import SearchParamRegistry

    return SearchParamRegistry.default()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def real_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, real_registry) -> Iterator[Db]:
    """``search_data.REAL_RESOURCES`` indexed by the real indexer."""
    yield from _make_db(request.param, tmp_path_factory, lambda engine: load_real(engine, real_registry))
