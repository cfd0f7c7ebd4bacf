"""The AuditEvent builder (``fhir_server.audit.event.build``): for each kind of event, the result validates against
base R4, carries the expected codes, agents and entities, and holds neither resource content nor a token."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from fhir_server.audit import AuditRecord
from fhir_server.audit.event import CLIENT_SYSTEM, build
from fhir_server.auth.access import Access
from fhir_server.auth.scopes import Scopes
from fhir_server.validation.validator import validate

DCM = "http://dicom.nema.org/resources/ontology/DCM"
REST = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SECRET = "s3cr3t-T0ken-value-never-logged"


def user_access(**kw: Any) -> Access:
    base = dict(client_id="growth-chart", scopes=Scopes.parse("patient/*.rs launch/patient"), patient="p1",
                fhir_user="RelatedPerson/rp9", username="maria", token_id="abcdef0123456789", source="10.1.2.3")
    base.update(kw)
    return Access(**base)


def assert_valid(event: dict[str, Any]) -> None:
    errors = [i for i in validate(event) if i.severity in ("error", "fatal")]
    assert not errors, errors


def codes(event: dict[str, Any]) -> tuple[str, str, list[str]]:
    return (event["type"]["system"], event["type"]["code"], [s["code"] for s in event.get("subtype", [])])


def entities(event: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [e for e in event.get("entity", []) if e["role"]["code"] == role]


def test_read_by_a_user_token() -> None:
    ev = build(AuditRecord("R", "read", rtype="Observation", rid="o1", patients=("p1",), access=user_access(),
                           source="10.1.2.3"))
    assert_valid(ev)
    assert codes(ev) == (REST, "rest", ["read"])
    assert ev["subtype"][0]["system"] == INTERACTION
    assert ev["action"] == "R" and ev["outcome"] == "0" and "outcomeDesc" not in ev
    assert ev["recorded"].endswith("Z")
    user, client = ev["agent"]
    assert user["who"] == {"reference": "RelatedPerson/rp9"} and user["altId"] == "maria"
    assert user["requestor"] is True and user["network"] == {"address": "10.1.2.3", "type": "2"}
    assert client["who"]["identifier"] == {"system": CLIENT_SYSTEM, "value": "growth-chart"}
    assert client["requestor"] is False and "network" not in client
    assert client["policy"] == ["urn:cares-fhir:token:abcdef0123456789"]
    assert ev["source"]["observer"]["display"] == "CARES FHIR"
    assert ev["source"]["type"][0]["code"] == "4"
    [res] = entities(ev, "4")
    assert res["what"] == {"reference": "Observation/o1"} and res["type"]["code"] == "Observation"
    [pat] = entities(ev, "1")
    assert pat["what"] == {"reference": "Patient/p1"}


def test_read_of_the_patient_itself_is_one_patient_entity() -> None:
    ev = build(AuditRecord("R", "vread", rtype="Patient", rid="p1", patients=("p1",), access=user_access()))
    assert_valid(ev)
    assert codes(ev)[2] == ["vread"]
    assert [e["what"]["reference"] for e in ev["entity"]] == ["Patient/p1"]
    assert ev["entity"][0]["role"]["code"] == "1"


def test_search_has_the_query_entity() -> None:
    query = "code=http://loinc.org|8302-2&patient=p1&_count=10"
    ev = build(AuditRecord("R", "search-type", rtype="Observation", query=query, patients=("p1",),
                           access=user_access()))
    assert_valid(ev)
    assert codes(ev)[2] == ["search-type"]
    [q] = entities(ev, "24")
    assert base64.b64decode(q["query"]).decode() == query
    assert q["type"] == {"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}
    assert "name" not in q  # sev-1: name or query, not both
    assert [e["what"]["reference"] for e in entities(ev, "1")] == ["Patient/p1"]


@pytest.mark.parametrize(("interaction", "code"), [("search-compartment", "search"), ("history-instance",
                         "history-instance"), ("history-type", "history-type"), ("history-system", "history-system"),
                         ("transaction", "transaction"), ("batch", "batch")])
def test_other_rest_interactions(interaction: str, code: str) -> None:
    ev = build(AuditRecord("R", interaction, rtype="Observation" if "system" not in interaction else None,
                           query="_since=2024-01-01", access=user_access()))
    assert_valid(ev)
    assert codes(ev) == (REST, "rest", [code])


@pytest.mark.parametrize(("action", "interaction", "status"), [("C", "create", 201), ("U", "update", 200),
                         ("U", "patch", 200), ("D", "delete", 204), ("D", "delete-conditional", 200)])
def test_writes(action: str, interaction: str, status: int) -> None:
    ev = build(AuditRecord(action, interaction, status=status, rtype="CarePlan", rid="cp1", patients=("p1", "p2"),
                           access=user_access()))
    assert_valid(ev)
    assert ev["action"] == action
    assert codes(ev)[2] == [interaction.removesuffix("-conditional")]
    assert [e["what"]["reference"] for e in entities(ev, "1")] == ["Patient/p1", "Patient/p2"]


def test_operation_names_the_operation() -> None:
    ev = build(AuditRecord("E", "operation-validate", rtype="Patient", query="mode=create", access=user_access()))
    assert_valid(ev)
    assert codes(ev)[2] == ["operation"]
    assert any(e.get("name") == "$validate" for e in ev["entity"])


def test_backend_service_client_is_the_requestor() -> None:
    access = Access(client_id="nightly-export", scopes=Scopes.parse("system/*.rs"), token_id="0011223344556677",
                    source="192.0.2.7")
    ev = build(AuditRecord("R", "search-type", rtype="Patient", query="", access=access, source="192.0.2.7"))
    assert_valid(ev)
    [client] = ev["agent"]
    assert client["requestor"] is True and client["network"]["address"] == "192.0.2.7"
    assert client["who"]["identifier"]["value"] == "nightly-export"


def test_denied_by_scope() -> None:
    ev = build(AuditRecord("R", "denied", "4", 403, rtype="Observation", rid="o1", access=user_access(),
                           detail={"reason": "forbidden", "permission": "r"}))
    assert_valid(ev)
    assert codes(ev)[2] == ["read"]
    assert ev["outcome"] == "4" and ev["outcomeDesc"] == "HTTP 403, reason forbidden, permission r"


def test_denied_without_a_token() -> None:
    ev = build(AuditRecord("E", "denied", "4", 401, source="127.0.0.1", detail={"reason": "invalid-token"}))
    assert_valid(ev)
    assert codes(ev) == (REST, "rest", []) and ev["outcome"] == "4"
    [anonymous] = ev["agent"]
    assert anonymous["requestor"] is True and anonymous["network"] == {"address": "127.0.0.1", "type": "2"}
    assert "entity" not in ev


def test_login_and_failed_login() -> None:
    ok = build(AuditRecord("E", "login", client_id="growth-chart", username="maria", fhir_user="Practitioner/d1",
                           source="::1"))
    assert_valid(ok)
    assert codes(ok) == ("http://dicom.nema.org/resources/ontology/DCM", "110114", ["110122"])
    assert ok["outcome"] == "0"
    assert ok["agent"][0]["who"] == {"reference": "Practitioner/d1"} and ok["agent"][0]["altId"] == "maria"
    assert ok["agent"][1]["who"]["identifier"]["value"] == "growth-chart"
    bad = build(AuditRecord("E", "login-failed", status=401, client_id="growth-chart", username="maria",
                            detail={"reason": "bad-credentials", "password": "hunter2"}))
    assert_valid(bad)
    assert codes(bad)[1:] == ("110114", ["110122"]) and bad["outcome"] == "4"
    assert "hunter2" not in orjson.dumps(bad).decode()  # only whitelisted detail codes reach outcomeDesc
    assert bad["agent"][0]["who"] == {"display": "maria"}


def test_token_issue_and_denial() -> None:
    ok = build(AuditRecord("E", "token", client_id="growth-chart", username="maria", fhir_user="RelatedPerson/rp9",
                           patients=("p1",)))
    assert_valid(ok)
    assert ok["type"]["code"] == "110114"
    assert ok["subtype"] == [{"system": "urn:ihe:event-type-code", "code": "ITI-71", "display": "Get Access Token"}]
    assert [e["what"]["reference"] for e in entities(ok, "1")] == ["Patient/p1"]
    denied = build(AuditRecord("E", "token-denied", status=400, client_id="growth-chart",
                               detail={"error": "invalid_grant", "error_description": "code p1 reused " + SECRET}))
    assert_valid(denied)
    assert denied["outcome"] == "4" and denied["outcomeDesc"] == "HTTP 400, error invalid_grant"
    assert SECRET not in orjson.dumps(denied).decode()


def test_unknown_event_is_still_recorded() -> None:
    ev = build(AuditRecord("E", "something-new", client_id="x"))
    assert_valid(ev)
    assert ev["type"]["code"] == "110113"


def test_no_resource_content_or_token() -> None:
    """The record carries only ids; even a detail stuffed with content or a token does not leak."""
    ev = build(AuditRecord("U", "update", rtype="Patient", rid="p1", patients=("p1",), access=user_access(),
                           detail={"body": '{"name":[{"family":"Ramos"}]}', "token": SECRET}))
    text = orjson.dumps(ev).decode()
    assert "Ramos" not in text and SECRET not in text
