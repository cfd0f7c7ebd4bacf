"""Fixtures of the oracle tests: which backend a live server runs on, and a server on a fresh,
never-analyzed PostgreSQL database (for the plan-stability reproduction)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import PG_ADMIN, LiveServer, _server


@pytest.fixture
def backend(server: LiveServer) -> str:
    """'postgres' or 'sqlite': the backend of the server behind the ``fhir`` fixture."""
    return "postgres" if server.settings.database_url.startswith("postgresql") else "sqlite"


@pytest.fixture
def fresh_pg(pg_url: str) -> Iterator[httpx.Client]:
    """A client on a server of its own over a new, empty PostgreSQL database (dropped afterwards)."""
    import psycopg

    name = f"cares_oracle_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    srv = _server(pg_url.rsplit("/", 1)[0] + "/" + name)
    try:
        with httpx.Client(base_url=srv.base + "/", timeout=120) as client:
            yield client
    finally:
        srv.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
