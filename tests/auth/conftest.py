"""Fixtures for the SMART authorization tests: live servers with authorization ON (SQLite and PostgreSQL),
and ``mint`` — an access token stored straight into a server's database (for enforcement tests that do not
exercise the OAuth flows; the flows have their own tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from fhir_server.auth import tokens
from fhir_server.config import Settings
from fhir_server.storage.db import create_database
from tests.conftest import LiveServer, _free_port


def _auth_server(url: str) -> LiveServer:
    port = _free_port()
    return LiveServer(Settings(host="127.0.0.1", port=port, database_url=url, pool_size=8, no_auth=False,
                               max_body_bytes=2 * 1024 * 1024, max_json_depth=40, max_count=200,
                               auth_rate_per_minute=100_000)).start()


@pytest.fixture(scope="session")
def auth_sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = _auth_server(f"sqlite:///{tmp_path_factory.mktemp('authdb') / 'auth.sqlite3'}")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def auth_pg_server(pg_url: str) -> Iterator[LiveServer]:
    import psycopg

    # a database of its own: the open test servers share the other one
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    base, name = admin.rsplit("/", 1)
    auth_name = name + "_auth"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{auth_name}"')
    srv = _auth_server(f"{pg_url.rsplit('/', 1)[0]}/{auth_name}")
    yield srv
    srv.stop()
    with psycopg.connect(f"{base}/postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{auth_name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def auth_server(request: pytest.FixtureRequest) -> LiveServer:
    """A live server with authorization on (one test run per backend)."""
    return request.getfixturevalue(f"auth_{'sqlite' if request.param == 'sqlite' else 'pg'}_server")


def mint(server: LiveServer, scope: str, *, patient: str | None = None, fhir_user: str | None = None,
         username: str | None = None, client_id: str = "test-client", ttl_seconds: int = 3600) -> str:
    """An access token with ``scope`` (and launch patient / user) written into ``server``'s database."""
    async def run() -> str:
        db = create_database(server.settings.database_url, pool_size=1)
        await db.open()
        try:
            token, _ = await tokens.issue(db, kind="access", client_id=client_id, scope=scope,
                                          ttl_seconds=ttl_seconds, username=username, patient=patient,
                                          fhir_user=fhir_user)
            return token
        finally:
            await db.close()

    return asyncio.run(run())


@pytest.fixture
def admin(auth_server: LiveServer) -> Iterator[httpx.Client]:
    """A FHIR client on ``auth_server`` holding a ``system/*.*`` token (sets up test data)."""
    token = mint(auth_server, "system/*.cruds", client_id="test-admin")
    with httpx.Client(base_url=auth_server.base + "/", timeout=60,
                      headers={"Accept": "application/fhir+json", "Authorization": f"Bearer {token}"}) as c:
        yield c
