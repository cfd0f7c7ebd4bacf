"""Authentication (401) and scope (403) enforcement on the FHIR endpoint, AuditEvent rules, $reindex, the fast
read path — live servers with authorization on, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from fhir_server.auth import tokens
from fhir_server.storage.db import create_database
from tests.auth.enforce_data import client, dataset
from tests.conftest import LiveServer, mint


def _is_401(r: httpx.Response, token_sent: bool) -> None:
    assert r.status_code == 401, r.text
    www = r.headers["www-authenticate"]
    assert www.startswith('Bearer realm="CARES FHIR"')
    assert ('error="invalid_token"' in www) == token_sent
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome"
    assert oo["issue"][0]["code"] == ("security" if token_sent else "login")


def test_metadata_needs_no_token(auth_server: LiveServer) -> None:
    r = httpx.get(auth_server.base + "/metadata")
    assert r.status_code == 200
    assert r.json()["resourceType"] == "CapabilityStatement"


@pytest.mark.parametrize("path", ["Patient", "Patient/x", "Patient/x/_history", "_history", "$reindex"])
def test_no_token_is_401(auth_server: LiveServer, path: str) -> None:
    ds = dataset(auth_server)
    real = path.replace("/x", f"/{ds.a.patient}")
    _is_401(httpx.get(f"{auth_server.base}/{real}"), False)


def test_unknown_malformed_expired_revoked_tokens_are_401(auth_server: LiveServer) -> None:
    ds = dataset(auth_server)
    url = f"{auth_server.base}/Patient/{ds.a.patient}"
    _is_401(httpx.get(url, headers={"Authorization": "Bearer not-a-token"}), True)
    _is_401(httpx.get(url, headers={"Authorization": "Basic dXNlcjpwdw=="}), True)
    good = mint(auth_server, "system/*.cruds")
    assert httpx.get(url, headers={"Authorization": f"Bearer {good}"}).status_code == 200
    _is_401(httpx.get(url, headers={"Authorization": f"Bearer {good[:-2]}xx"}), True)  # tampered
    expired = mint(auth_server, "system/*.cruds", ttl_seconds=-1)
    _is_401(httpx.get(url, headers={"Authorization": f"Bearer {expired}"}), True)
    revoked = mint(auth_server, "system/*.cruds")

    async def revoke() -> None:
        db = create_database(auth_server.settings.database_url, pool_size=1)
        await db.open()
        try:
            await tokens.revoke(db, revoked)
        finally:
            await db.close()

    asyncio.run(revoke())
    tokens._cache.clear()  # the live server runs in this process: a revocation elsewhere is seen within 5 s
    _is_401(httpx.get(url, headers={"Authorization": f"Bearer {revoked}"}), True)
    _is_401(httpx.post(f"{auth_server.base}/Patient", json={"resourceType": "Patient"},
                       headers={"Authorization": f"Bearer {revoked}"}), True)


def test_missing_scope_per_interaction_is_403(auth_server: LiveServer) -> None:
    ds = dataset(auth_server)
    pid = ds.a.patient
    obs = ds.a.ids["Observation"][0]
    only_obs_read = mint(auth_server, "system/Observation.r")
    with client(auth_server, only_obs_read) as c:
        assert c.get(f"Observation/{obs}").status_code == 200
        assert c.get(f"Observation/{obs}/_history/1").status_code == 200
        cases = [
            c.get(f"Patient/{pid}"),  # read of another type
            c.get("Observation", params={"subject": f"Patient/{pid}"}),  # search needs s
            c.get(f"Observation/{obs}/_history"),  # history needs s
            c.get("Observation/_history"),
            c.get("_history"),
            c.post("Observation", json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
            c.put(f"Observation/{obs}", json={"resourceType": "Observation", "id": obs, "status": "final",
                                              "code": {"text": "x"}}),
            c.patch(f"Observation/{obs}", content=b'[{"op":"replace","path":"/status","value":"amended"}]',
                    headers={"Content-Type": "application/json-patch+json"}),
            c.delete(f"Observation/{obs}"),
            c.get(f"Patient/{pid}/Observation"),
            c.post("$reindex"),
        ]
        for r in cases:
            assert r.status_code == 403, (r.request.method, r.request.url, r.text)
            assert r.json()["issue"][0]["code"] == "forbidden"
    with client(auth_server, mint(auth_server, "system/Observation.s")) as c:
        assert c.get(f"Observation/{obs}").status_code == 403  # read needs r
        assert c.get("Observation", params={"_id": obs}).status_code == 200


def test_update_that_creates_needs_create_too(auth_server: LiveServer) -> None:
    body = {"resourceType": "Basic", "id": f"upd-{dataset(auth_server).tag}", "code": {"text": "x"}}
    with client(auth_server, mint(auth_server, "system/Basic.u")) as c:
        assert c.put(f"Basic/{body['id']}", json=body).status_code == 403
    with client(auth_server, mint(auth_server, "system/Basic.cu")) as c:
        assert c.put(f"Basic/{body['id']}", json=body).status_code == 201
    with client(auth_server, mint(auth_server, "system/Basic.u")) as c:
        assert c.put(f"Basic/{body['id']}", json=body).status_code == 200


def test_v1_scopes_map_to_v2(auth_server: LiveServer) -> None:
    ds = dataset(auth_server)
    with client(auth_server, mint(auth_server, "system/Patient.read")) as c:
        assert c.get(f"Patient/{ds.a.patient}").status_code == 200
        assert c.get("Patient", params={"_id": ds.a.patient}).status_code == 200
        assert c.post("Patient", json={"resourceType": "Patient"}).status_code == 403
    with client(auth_server, mint(auth_server, "system/Basic.write")) as c:
        assert c.post("Basic", json={"resourceType": "Basic", "code": {"text": "x"}}).status_code == 201
        assert c.get("Basic").status_code == 403


def test_reindex_needs_system_all(auth_server: LiveServer) -> None:
    with client(auth_server, mint(auth_server, "system/*.rs")) as c:
        assert c.post("Basic/$reindex").status_code == 403
    with client(auth_server, mint(auth_server, "patient/*.cruds", patient="x")) as c:
        assert c.post("Basic/$reindex").status_code == 403
    with client(auth_server, mint(auth_server, "system/*.cruds")) as c:
        assert c.post("Basic/$reindex").status_code == 200


def test_validate_needs_only_a_valid_token(auth_server: LiveServer) -> None:
    with client(auth_server, mint(auth_server, "patient/Observation.rs", patient="nobody")) as c:
        r = c.post("Patient/$validate", json={"resourceType": "Patient"})
        assert r.status_code == 200, r.text
    assert httpx.post(f"{auth_server.base}/Patient/$validate", json={"resourceType": "Patient"}).status_code == 401


def test_auditevent_is_read_only_and_auditor_only(auth_server: LiveServer) -> None:
    ds = dataset(auth_server)
    event = {"resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded": "2024-01-01T00:00:00Z",
             "agent": [{"requestor": True}], "source": {"observer": {"display": "x"}}}
    with client(auth_server, mint(auth_server, "system/*.cruds")) as c:
        assert c.post("AuditEvent", json=event).status_code == 403
        assert c.put("AuditEvent/x1", json={**event, "id": "x1"}).status_code == 403
        assert c.delete("AuditEvent/x1").status_code == 403
        assert c.get("AuditEvent").status_code == 200
    with client(auth_server, mint(auth_server, "patient/*.cruds", patient=ds.a.patient)) as c:
        assert c.get("AuditEvent").status_code == 403
    with client(auth_server, mint(auth_server, "user/*.cruds", username=f"nobody-{ds.tag}",
                                  fhir_user=f"Practitioner/{ds.a.practitioner}")) as c:
        assert c.get("AuditEvent").status_code == 403
    username = f"auditor-{ds.tag}"
    _add_user(auth_server, username, ["auditor"], f"Practitioner/{ds.a.practitioner}")
    with client(auth_server, mint(auth_server, "user/AuditEvent.rs", username=username,
                                  fhir_user=f"Practitioner/{ds.a.practitioner}")) as c:
        assert c.get("AuditEvent").status_code == 200
        assert c.post("AuditEvent", json=event).status_code == 403


def _add_user(server: LiveServer, username: str, roles: list[str], fhir_user: str) -> None:
    """A login user row (the OAuth helper's CLI makes real ones; the password hash is irrelevant here)."""
    import json
    import time

    async def run() -> None:
        db = create_database(server.settings.database_url, pool_size=1)
        await db.open()
        try:
            async with db.write() as c:
                await c.run("INSERT INTO oauth_user (username, password_hash, fhir_user, display, roles, created_at, "
                            "disabled) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                            (username, "x", fhir_user, username, json.dumps(roles), time.time_ns() // 1000, False))
        finally:
            await db.close()

    asyncio.run(run())


def test_fast_read_path_enforces(auth_server: LiveServer) -> None:
    """A plain GET by id (the fast path: no query, ordinary headers) is checked like any read."""
    ds = dataset(auth_server)
    with client(auth_server, mint(auth_server, "patient/*.rs", patient=ds.a.patient)) as c:
        assert c.get(f"Patient/{ds.a.patient}").status_code == 200
        assert c.get(f"CarePlan/{ds.a.ids['CarePlan'][0]}").status_code == 200
        r = c.get(f"Patient/{ds.b.patient}")
        assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
        assert c.get(f"CarePlan/{ds.b.ids['CarePlan'][0]}").status_code == 404
    with client(auth_server, mint(auth_server, "patient/Observation.rs", patient=ds.a.patient)) as c:
        assert c.get(f"Patient/{ds.a.patient}").status_code == 403
    assert httpx.get(f"{auth_server.base}/Patient/{ds.a.patient}").status_code == 401


def test_authorization_is_on_by_default_and_no_auth_reaches_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from fhir_server.cli import _settings
    from fhir_server.config import Settings

    monkeypatch.delenv("CARES_FHIR_NO_AUTH", raising=False)
    assert Settings().no_auth is False
    args = argparse.Namespace(database_url=None, no_auth=False)
    assert _settings(args).no_auth is False
    args.no_auth = True
    assert _settings(args).no_auth is True
