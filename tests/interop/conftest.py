"""Fixtures for the interop proofs: unmodified SMART client libraries against a live server with authorization on.

``smart_world`` sets up, through the FHIR API (the ``admin`` fixture), a child (Patient), the child's PCP
(Practitioner) on the child's CareTeam and the child's CarePlan, and — through the authorization server's own
Python functions, as ``cares-fhir users add`` / ``clients add`` do — a login user for the PCP. Each test registers
its own client (its redirect URI depends on the app under test).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest

from fhir_server.storage.db import Database, create_database
from tests.conftest import LiveServer

T = TypeVar("T")


def run_db(server: LiveServer, fn: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``fn`` with a connection pool on ``server``'s database (as the CLI does)."""
    async def run() -> T:
        db = create_database(server.settings.database_url, pool_size=1)
        await db.open()
        try:
            return await fn(db)
        finally:
            await db.close()

    # on a thread of its own: Playwright's sync API keeps an event loop running on the test's thread
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


@dataclass
class SmartWorld:
    server: LiveServer
    patient_id: str
    practitioner_id: str
    careplan_id: str
    careplan_title: str
    username: str
    password: str

    def register_client(self, redirect_uri: str, scope: str) -> str:
        """A public SMART app client (PKCE, no secret) allowed ``scope``; its client_id."""
        from fhir_server.auth import clients

        async def add(db: Database) -> str:
            client, _ = await clients.register(db, name="interop test app", redirect_uris=[redirect_uri],
                                               scope=scope, auth_method="none")
            return client.client_id

        return run_db(self.server, add)


def _create(http: httpx.Client, body: dict[str, Any]) -> str:
    r = http.post(body["resourceType"], json=body, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture
def smart_world(auth_server: LiveServer, admin: httpx.Client) -> SmartWorld:  # noqa: F811 (the fixture)
    from fhir_server.auth import users

    tag = secrets.token_hex(4)
    practitioner = _create(admin, {"resourceType": "Practitioner", "name": [{"family": f"Interop{tag}",
                                                                              "given": ["Pat"]}]})
    patient = _create(admin, {"resourceType": "Patient", "name": [{"family": f"Child{tag}", "given": ["Ana"]}],
                              "birthDate": "2015-04-02"})
    _create(admin, {"resourceType": "CareTeam", "status": "active", "subject": {"reference": f"Patient/{patient}"},
                    "participant": [{"member": {"reference": f"Practitioner/{practitioner}"}}]})
    title = f"Interop care plan {tag}"
    careplan = _create(admin, {"resourceType": "CarePlan", "status": "active", "intent": "plan", "title": title,
                               "subject": {"reference": f"Patient/{patient}"}})
    username, password = f"pcp-{tag}", secrets.token_urlsafe(16)

    async def add_user(db: Database) -> None:
        await users.add(db, username=username, password=password, fhir_user=f"Practitioner/{practitioner}",
                        display="Interop PCP")

    run_db(auth_server, add_user)
    return SmartWorld(auth_server, patient, practitioner, careplan, title, username, password)
