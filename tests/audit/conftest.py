"""Live servers with authorization on for the audit trail's HTTP tests (``auth_server``, ``admin``), like
``tests/auth``'s but with databases of their own: re-importing ``tests/auth``'s session fixtures here would make a
worker that runs both directories create the same PostgreSQL database twice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fhir_server.config import Settings
from tests.auth.conftest import admin  # noqa: F401  (a system/*.cruds client on auth_server)
from tests.conftest import LiveServer, _free_port


def _auth_server(url: str) -> LiveServer:
    """As ``tests/auth``'s, with a small pool (PostgreSQL's 100 connections are shared by parallel test runs)."""
    return LiveServer(Settings(host="127.0.0.1", port=_free_port(), database_url=url, pool_size=3, no_auth=False,
                               max_body_bytes=2 * 1024 * 1024, max_json_depth=40, max_count=200,
                               auth_rate_per_minute=100_000)).start()


@pytest.fixture(scope="session")
def audit_sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = _auth_server(f"sqlite:///{tmp_path_factory.mktemp('auditdb') / 'audit.sqlite3'}")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def audit_pg_server(pg_url: str) -> Iterator[LiveServer]:
    import psycopg

    admin_url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    base, name = admin_url.rsplit("/", 1)
    own = name + "_audit"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{own}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{own}"')
    srv = _auth_server(f"{pg_url.rsplit('/', 1)[0]}/{own}")
    yield srv
    srv.stop()
    with psycopg.connect(f"{base}/postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{own}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def auth_server(request: pytest.FixtureRequest) -> LiveServer:
    """A live server with authorization on (one test run per backend)."""
    return request.getfixturevalue(f"audit_{'sqlite' if request.param == 'sqlite' else 'pg'}_server")
