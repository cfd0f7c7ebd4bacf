"""The FHIR endpoint calls the audit trail (``fhir_server.audit.record``) for every interaction and denial, with
the patients concerned; writes pass their transaction's connection. ``record`` is replaced by a recorder here
(the audit trail's own tests check what it stores)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fhir_server import audit
from tests.auth.enforce_data import Dataset, client, dataset
from tests.conftest import LiveServer, mint


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[audit.AuditRecord, Any]]:
    seen: list[tuple[audit.AuditRecord, Any]] = []

    async def fake(svc: Any, rec: audit.AuditRecord, conn: Any = None) -> None:
        seen.append((rec, conn))

    monkeypatch.setattr(audit, "record", fake)
    return seen


def _one(calls: list, interaction: str) -> tuple[audit.AuditRecord, Any]:
    found = [(r, c) for r, c in calls if r.interaction == interaction]
    assert len(found) == 1, [r.interaction for r, _ in calls]
    return found[0]


def test_reads_searches_and_denials_are_recorded(auth_server: LiveServer, calls: list) -> None:
    ds: Dataset = dataset(auth_server)
    with client(auth_server, mint(auth_server, "patient/*.rs", patient=ds.a.patient, client_id="audit-app")) as c:
        calls.clear()
        assert c.get(f"CarePlan/{ds.a.ids['CarePlan'][0]}").status_code == 200  # fast path
        rec, conn = _one(calls, "read")
        assert (rec.action, rec.outcome, rec.rtype, rec.patients, conn) == ("R", "0", "CarePlan", (ds.a.patient,), None)
        assert rec.access is not None and rec.access.client_id == "audit-app" and rec.access.source == "127.0.0.1"
        calls.clear()
        assert c.get(f"CarePlan/{ds.a.ids['CarePlan'][0]}", params={"_summary": "true"}).status_code == 200
        assert _one(calls, "read")[0].patients == (ds.a.patient,)
        calls.clear()
        assert c.get("Observation", params={"code:text": "weight"}).status_code == 200
        rec, _ = _one(calls, "search-type")
        assert rec.query == "code%3Atext=weight" and rec.patients == (ds.a.patient,)
        calls.clear()
        assert c.get(f"Patient/{ds.b.patient}").status_code == 404
        rec, _ = _one(calls, "denied")
        assert (rec.outcome, rec.status, rec.rtype, rec.rid) == ("4", 404, "Patient", ds.b.patient)
        calls.clear()
        assert c.post("Observation", json={"resourceType": "Observation"}).status_code == 403
        rec, _ = _one(calls, "denied")
        assert (rec.outcome, rec.status, rec.action) == ("4", 403, "C")
    calls.clear()
    assert httpx.get(f"{auth_server.base}/Patient").status_code == 401
    rec, _ = _one(calls, "denied")
    assert (rec.outcome, rec.status, rec.access) == ("4", 401, None)
    calls.clear()
    assert httpx.get(f"{auth_server.base}/metadata").status_code == 200
    assert calls == []


def test_writes_are_recorded_in_their_transaction(auth_server: LiveServer, calls: list) -> None:
    ds: Dataset = dataset(auth_server)
    with client(auth_server, mint(auth_server, "patient/Observation.cruds", patient=ds.a.patient)) as c:
        obs = {"resourceType": "Observation", "status": "final", "code": {"text": "audit"},
               "subject": {"reference": f"Patient/{ds.a.patient}"}}
        calls.clear()
        r = c.post("Observation", json=obs)
        assert r.status_code == 201
        oid = r.json()["id"]
        rec, conn = _one(calls, "create")
        assert (rec.action, rec.rid, rec.patients) == ("C", oid, (ds.a.patient,)) and conn is not None
        calls.clear()
        assert c.put(f"Observation/{oid}", json={**obs, "id": oid, "status": "amended"}).status_code == 200
        rec, conn = _one(calls, "update")
        assert rec.action == "U" and conn is not None
        calls.clear()
        assert c.delete(f"Observation/{oid}").status_code == 204
        rec, conn = _one(calls, "delete")
        assert rec.action == "D" and conn is not None
        calls.clear()
        tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": obs, "request": {"method": "POST", "url": "Observation"}},
            {"resource": obs, "request": {"method": "POST", "url": "Observation"}},
            {"request": {"method": "GET", "url": "Observation?code:text=audit"}}]}
        assert c.post("", json=tx).status_code == 200
        creates = [(r, cn) for r, cn in calls if r.interaction == "create"]
        assert len(creates) == 2 and creates[0][1] is creates[1][1] is not None
        assert len([r for r, _ in calls if r.interaction == "search-type"]) == 1
