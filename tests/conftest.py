"""Test fixtures: live CARES FHIR servers on SQLite and on PostgreSQL, reached over real HTTP.

``server``/``fhir``: servers with authorization off (the FHIR behaviour tests). ``auth_server``/``admin``: servers
with SMART authorization on (tests/auth, tests/audit, tests/interop share them; one PostgreSQL database of their own),
and ``mint`` stores an access token straight into such a server's database.

Every test that takes the ``fhir`` fixture runs once per backend. PostgreSQL is used when a server
answers at ``CARES_FHIR_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``): the
suite creates a throwaway database and drops it at the end. Without PostgreSQL those runs are
skipped — unless ``CI`` is set, where a missing PostgreSQL is an error.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from fhir_server.app import create_app
from fhir_server.auth import tokens
from fhir_server.config import Settings
from fhir_server.storage.db import create_database

PG_ADMIN = os.environ.get("CARES_FHIR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "fhir-examples"
if not EXAMPLES.exists():  # CI lays shared/ beside the clone
    EXAMPLES = Path(os.environ.get("CARES_FHIR_EXAMPLES", "../shared/fhir-examples")).resolve()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving the app on a thread with its own event loop."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host=settings.host, port=settings.port, log_level="warning",
                                access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base(self) -> str:
        return self.settings.fhir_base

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001
        return False


def _server(url: str) -> LiveServer:
    port = _free_port()
    return LiveServer(Settings(host="127.0.0.1", port=port, database_url=url, pool_size=12, no_auth=True,
                               max_body_bytes=2 * 1024 * 1024, max_json_depth=40, max_count=200)).start()


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("db") / "cares.sqlite3"
    srv = _server(f"sqlite:///{path}")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but {PG_ADMIN} does not answer")
        pytest.skip("PostgreSQL not reachable (set CARES_FHIR_TEST_PG)")
    import psycopg

    name = f"cares_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server(pg_url: str) -> Iterator[LiveServer]:
    srv = _server(pg_url)
    yield srv
    srv.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest) -> LiveServer:
    return request.getfixturevalue(f"{'sqlite' if request.param == 'sqlite' else 'pg'}_server")


@pytest.fixture
def fhir(server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client on the FHIR base URL of a live server (one test run per backend)."""
    with httpx.Client(base_url=server.base + "/", headers={"Accept": "application/fhir+json"},
                      timeout=60) as c:
        yield c


@pytest.fixture
def tag() -> str:
    """A value unique to this test, to keep its data apart from other tests' on a shared server."""
    return uuid.uuid4().hex[:12]


# -- servers with SMART authorization on ---------------------------------------------------------------------------

def _auth_server(url: str) -> LiveServer:
    return LiveServer(Settings(host="127.0.0.1", port=_free_port(), database_url=url, pool_size=6, no_auth=False,
                               max_body_bytes=2 * 1024 * 1024, max_json_depth=40, max_count=200,
                               auth_rate_per_minute=100_000)).start()


@contextmanager
def _sibling_database(pg_url: str, suffix: str) -> Iterator[str]:
    """A throwaway PostgreSQL database beside ``pg_url``'s (dropped afterwards); yields its SQLAlchemy URL."""
    import psycopg

    admin_url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    base, name = admin_url.rsplit("/", 1)
    own = name + suffix
    with psycopg.connect(f"{base}/postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{own}"')
    try:
        yield f"{pg_url.rsplit('/', 1)[0]}/{own}"
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{own}" WITH (FORCE)')


@pytest.fixture(scope="session")
def auth_sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = _auth_server(f"sqlite:///{tmp_path_factory.mktemp('authdb') / 'auth.sqlite3'}")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def auth_pg_server(pg_url: str) -> Iterator[LiveServer]:
    with _sibling_database(pg_url, "_auth") as url:  # the open test servers share the other one
        srv = _auth_server(url)
        yield srv
        srv.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def auth_server(request: pytest.FixtureRequest) -> LiveServer:
    """A live server with authorization on (one test run per backend)."""
    return request.getfixturevalue(f"auth_{'sqlite' if request.param == 'sqlite' else 'pg'}_server")


def mint(server: LiveServer, scope: str, *, patient: str | None = None, fhir_user: str | None = None,
         username: str | None = None, client_id: str = "test-client", ttl_seconds: int = 3600) -> str:
    """An access token with ``scope`` (and launch patient / user) written into ``server``'s database (for tests that
    do not exercise the OAuth flows; the flows have their own tests)."""
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
    """A FHIR client on ``auth_server`` holding a ``system/*.cruds`` token (sets up test data)."""
    token = mint(auth_server, "system/*.cruds", client_id="test-admin")
    with httpx.Client(base_url=auth_server.base + "/", timeout=60,
                      headers={"Accept": "application/fhir+json", "Authorization": f"Bearer {token}"}) as c:
        yield c
