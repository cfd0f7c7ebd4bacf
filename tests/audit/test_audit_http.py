"""The audit trail end to end, through the FHIR API of a server with authorization on (SQLite and PostgreSQL):
a read, a search, a denial and a write by a patient-facing app's token leave AuditEvents naming the client, the
user, the patient and the outcome, which a ``system/AuditEvent.rs`` token finds by patient, agent, entity and
date — and which hold neither the resource's content nor the token."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from fhir_server.audit.event import CLIENT_SYSTEM
from tests.audit.support import poll_events as _events
from tests.conftest import LiveServer, mint


def _client(server: LiveServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.base + "/", timeout=60,
                        headers={"Accept": "application/fhir+json", "Authorization": f"Bearer {token}"})



def _subtypes(events: list[dict[str, Any]]) -> list[str]:
    return sorted(s["code"] for e in events for s in e.get("subtype", []))


def test_patient_token_read_search_denial_and_write_are_audited(auth_server: LiveServer, admin: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:10]
    family = f"Zaudit{tag}"
    pid = admin.post("Patient", json={"resourceType": "Patient", "name": [{"family": family}],
                                      "birthDate": "2015-04-02"}).json()["id"]
    other = admin.post("Patient", json={"resourceType": "Patient", "name": [{"family": "Other"}]}).json()["id"]
    t0 = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 2))
    token = mint(auth_server, "patient/*.cruds launch/patient", patient=pid, fhir_user=f"RelatedPerson/rp-{tag}",
                 username=f"parent-{tag}", client_id=f"app-{tag}")
    with _client(auth_server, token) as app:
        assert app.get(f"Patient/{pid}").status_code == 200
        assert app.get("Observation", params={"code:text": f"weight-{tag}"}).status_code == 200
        assert app.get(f"Patient/{other}").status_code == 404
        r = app.post("Observation", json={"resourceType": "Observation", "status": "final",
                                          "code": {"text": f"weight-{tag}"}, "subject": {"reference": f"Patient/{pid}"},
                                          "valueQuantity": {"value": 17.5, "unit": "kg"}})
        assert r.status_code == 201, r.text
        oid = r.json()["id"]
    auditor = _client(auth_server, mint(auth_server, "system/AuditEvent.rs", client_id=f"auditor-{tag}"))
    with auditor:
        # the read: client, user, patient, outcome
        [read] = _events(auditor, f"patient=Patient/{pid}&subtype=read")
        assert read["type"]["code"] == "rest" and read["action"] == "R" and read["outcome"] == "0"
        user, app_agent = read["agent"]
        assert user["who"] == {"reference": f"RelatedPerson/rp-{tag}"} and user["altId"] == f"parent-{tag}"
        assert user["requestor"] is True and user["network"]["address"] == "127.0.0.1"
        assert app_agent["who"]["identifier"] == {"system": CLIENT_SYSTEM, "value": f"app-{tag}"}
        assert [e["what"]["reference"] for e in read["entity"]] == [f"Patient/{pid}"]
        # everything this user did, by agent; the create was written in its own transaction
        mine = _events(auditor, f"agent=RelatedPerson/rp-{tag}", until=lambda ev: len(ev) >= 4)
        assert _subtypes(mine) == ["create", "read", "read", "search-type"]
        [denied] = [e for e in mine if e["outcome"] != "0"]
        assert denied["outcome"] == "4" and denied["outcomeDesc"].startswith("HTTP 404")
        assert [e["what"]["reference"] for e in denied["entity"]] == [f"Patient/{other}"]
        [created] = _events(auditor, f"entity=Observation/{oid}")
        assert created["action"] == "C" and created["subtype"][0]["code"] == "create"
        assert {e["what"]["reference"] for e in created["entity"]} == {f"Observation/{oid}", f"Patient/{pid}"}
        assert len(_events(auditor, f"agent=RelatedPerson/rp-{tag}&date=ge{t0}", until=lambda ev: len(ev) >= 4)) == 4
        assert _events(auditor, f"agent=RelatedPerson/rp-{tag}&date=lt2000-01-01", wait=0) == []
        # no content, no token
        text = str(mine)
        assert family not in text and "17.5" not in text and token not in text


def test_requests_without_a_valid_token_are_audited(auth_server: LiveServer, admin: httpx.Client) -> None:
    t0 = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
    bogus = f"bogus-{uuid.uuid4().hex}"
    assert httpx.get(f"{auth_server.base}/Patient", headers={"Authorization": f"Bearer {bogus}"}).status_code == 401
    with _client(auth_server, mint(auth_server, "system/AuditEvent.rs")) as auditor:
        events = _events(auditor, f"outcome=4&date=ge{t0}&type=rest",
                         until=lambda ev: any("invalid-token" in e.get("outcomeDesc", "") for e in ev))
    [ev, *_] = [e for e in events if "invalid-token" in e.get("outcomeDesc", "")]
    assert ev["outcomeDesc"] == "HTTP 401, reason invalid-token"
    assert ev["agent"][0]["requestor"] is True and ev["agent"][0]["network"]["address"] == "127.0.0.1"
    assert bogus not in str(events)
