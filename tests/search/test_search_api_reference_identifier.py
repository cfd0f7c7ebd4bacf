"""The reference ``:identifier`` modifier (R4 search.html#reference) over HTTP on both backends:
``subject:identifier=[system]|value`` matches on Reference.identifier, in chains and ``_has`` too."""

from __future__ import annotations

from tests.search.api_helpers import error, found, get, make

SYS = "urn:oid:2.16.840.1.113883.4.3.25"


def _data(fhir, tag: str) -> dict[str, str]:
    pat = make(fhir, {"resourceType": "Patient", "identifier": [{"value": tag}]})
    out = {"pat": pat}
    # logical reference only
    out["logical"] = make(fhir, {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                                 "identifier": [{"value": tag}],
                                 "subject": {"identifier": {"system": SYS, "value": f"mrn-{tag}"}}})
    # literal reference and identifier
    out["both"] = make(fhir, {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                              "identifier": [{"value": tag}],
                              "subject": {"reference": f"Patient/{pat}", "type": "Patient",
                                          "identifier": {"system": SYS, "value": f"mrn-{tag}"}}})
    # identifier without a system
    out["nosys"] = make(fhir, {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                               "identifier": [{"value": tag}],
                               "subject": {"identifier": {"value": f"mrn-{tag}"}}})
    # another identifier value
    out["other"] = make(fhir, {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                               "identifier": [{"value": tag}],
                               "subject": {"identifier": {"system": SYS, "value": f"other-{tag}"}}})
    # literal reference, no identifier
    out["literal"] = make(fhir, {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                                 "identifier": [{"value": tag}], "subject": {"reference": f"Patient/{pat}"}})
    return out


def test_reference_identifier(fhir, tag):
    d = _data(fhir, tag)
    q = {"identifier": tag}
    mrn = f"mrn-{tag}"
    assert found(fhir, "ServiceRequest", {**q, "subject:identifier": f"{SYS}|{mrn}"}) == sorted(
        [d["logical"], d["both"]])
    assert found(fhir, "ServiceRequest", {**q, "subject:identifier": mrn}) == sorted(
        [d["logical"], d["both"], d["nosys"]])
    assert found(fhir, "ServiceRequest", {**q, "subject:identifier": f"|{mrn}"}) == [d["nosys"]]
    assert found(fhir, "ServiceRequest", {**q, "subject:identifier": f"{SYS}|"}) == sorted(
        [d["logical"], d["both"], d["other"]])
    assert found(fhir, "ServiceRequest", {**q, "subject:identifier": f"{SYS}|nope-{tag}"}) == []
    assert found(fhir, "ServiceRequest", {**q, "subject:identifier": f"urn:other|{mrn}"}) == []
    assert found(fhir, "ServiceRequest", {**q, "subject:identifier": f"{mrn},other-{tag}"}) == sorted(
        [d["logical"], d["both"], d["nosys"], d["other"]])
    # 'patient' is subject.where(resolve() is Patient): only the reference typed Patient
    assert found(fhir, "ServiceRequest", {**q, "patient:identifier": mrn}) == [d["both"]]
    # the literal reference still works as before, and a literal reference alone has no identifier
    assert found(fhir, "ServiceRequest", {**q, "subject": f"Patient/{d['pat']}"}) == sorted([d["both"], d["literal"]])
    assert d["literal"] not in found(fhir, "ServiceRequest", {**q, "subject:identifier": f"{SYS}|"})
    page = get(fhir, "ServiceRequest", {**q, "subject:identifier": mrn, "_total": "accurate"})
    assert page["total"] == 3


def test_reference_identifier_in_chain_and_has(fhir, tag):
    d = _data(fhir, tag)
    task = make(fhir, {"resourceType": "Task", "status": "requested", "intent": "order",
                       "identifier": [{"value": tag}], "focus": {"reference": f"ServiceRequest/{d['logical']}"}})
    make(fhir, {"resourceType": "Task", "status": "requested", "intent": "order",
                "identifier": [{"value": tag}], "focus": {"reference": f"ServiceRequest/{d['literal']}"}})
    q = {"identifier": tag}
    assert found(fhir, "Task", {**q, "focus:ServiceRequest.subject:identifier": f"{SYS}|mrn-{tag}"}) == [task]
    assert found(fhir, "Task", {**q, "focus:ServiceRequest.subject:identifier": f"{SYS}|other-{tag}"}) == []
    # _has: the Patient some ServiceRequest's subject points at, with that subject identifier
    assert found(fhir, "Patient", {"_has:ServiceRequest:subject:subject:identifier": f"mrn-{tag}"}) == [d["pat"]]


def test_reference_identifier_update_and_delete(fhir, tag):
    sr = {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "identifier": [{"value": tag}],
          "subject": {"identifier": {"system": SYS, "value": f"a-{tag}"}}}
    rid = make(fhir, sr)
    q = {"identifier": tag}
    assert found(fhir, "ServiceRequest", {**q, "subject:identifier": f"a-{tag}"}) == [rid]
    sr = {**sr, "id": rid, "subject": {"identifier": {"system": SYS, "value": f"b-{tag}"}}}
    r = fhir.put(f"ServiceRequest/{rid}", json=sr, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 200, r.text
    assert found(fhir, "ServiceRequest", {**q, "subject:identifier": f"a-{tag}"}) == []
    assert found(fhir, "ServiceRequest", {**q, "subject:identifier": f"b-{tag}"}) == [rid]
    assert fhir.delete(f"ServiceRequest/{rid}").status_code in (200, 204)
    assert found(fhir, "ServiceRequest", {**q, "subject:identifier": f"b-{tag}"}) == []


def test_reference_identifier_errors(fhir):
    body = error(fhir, "ServiceRequest", {"subject:identifier": "a|b|c"})
    assert "subject:identifier" in body["issue"][0]["diagnostics"]
    body = error(fhir, "ActivityDefinition", {"composed-of:identifier": "x"})
    assert body["issue"][0]["code"] == "not-supported"
