"""$validate (R4 resource-operation-validate.html) and profile enforcement on write, over HTTP on both
backends. Profiles are authored here as differentials and stored through the API, like any client would."""

from __future__ import annotations

import pytest

FHIR_JSON = {"Content-Type": "application/fhir+json"}
WANT_OO = {**FHIR_JSON, "Prefer": "return=OperationOutcome"}


def _issues(body: dict, *severities: str) -> list[dict]:
    assert body["resourceType"] == "OperationOutcome", body
    return [i for i in body["issue"] if not severities or i["severity"] in severities]


def _profile(tag: str) -> tuple[str, dict]:
    """A Patient profile: birthDate and an identifier required, gender fixed to 'female'."""
    url = f"http://example.org/fhir/StructureDefinition/test-patient-{tag}"
    sd = {"resourceType": "StructureDefinition", "id": f"test-patient-{tag}", "url": url,
          "name": "TestPatient", "status": "active", "fhirVersion": "4.0.1", "kind": "resource", "abstract": False,
          "type": "Patient", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
          "derivation": "constraint",
          "differential": {"element": [
              {"id": "Patient", "path": "Patient"},
              {"id": "Patient.identifier", "path": "Patient.identifier", "min": 1},
              {"id": "Patient.gender", "path": "Patient.gender", "fixedCode": "female"},
              {"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1}]}}
    return url, sd


@pytest.fixture
def profile(fhir, tag) -> str:
    url, sd = _profile(tag)
    r = fhir.put(f"StructureDefinition/{sd['id']}", json=sd, headers=FHIR_JSON)
    assert r.status_code in (200, 201), r.text
    return url


def test_validate_valid_resource_all_ok(fhir):
    r = fhir.post("Patient/$validate", json={"resourceType": "Patient", "gender": "male"}, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    assert _issues(r.json(), "error", "fatal") == []


def test_validate_reports_errors_with_expression_but_answers_200(fhir):
    bad = {"resourceType": "Patient", "contact": [{"gender": "male"}]}  # pat-1: contact needs a detail
    r = fhir.post("Patient/$validate", json=bad, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    errors = _issues(r.json(), "error")
    assert any("pat-1" in i["diagnostics"] and i.get("expression") == ["Patient.contact[0]"] for i in errors), errors


def test_validate_parameters_form_and_modes(fhir):
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}},
        {"name": "mode", "valueCode": "create"}]}
    r = fhir.post("Observation/$validate", json=params, headers=FHIR_JSON)
    assert r.status_code == 200 and _issues(r.json(), "error") == [], r.text
    params["parameter"][1] = {"name": "mode", "valueCode": "update"}  # an update needs an id
    r = fhir.post("Observation/$validate", json=params, headers=FHIR_JSON)
    assert [i["expression"] for i in _issues(r.json(), "error")] == [["Observation.id"]]
    params["parameter"][1] = {"name": "mode", "valueCode": "bogus"}
    r = fhir.post("Observation/$validate", json=params, headers=FHIR_JSON)
    assert r.status_code == 400 and "mode" in r.text


def test_validate_instance_level(fhir):
    created = fhir.post("Patient", json={"resourceType": "Patient", "gender": "other"}, headers=FHIR_JSON).json()
    r = fhir.post(f"Patient/{created['id']}/$validate", headers=FHIR_JSON)  # the stored resource
    assert r.status_code == 200 and _issues(r.json(), "error") == [], r.text
    changed = {**created, "contact": [{"gender": "male"}]}
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": changed},
                                                           {"name": "mode", "valueCode": "update"}]}
    r = fhir.post(f"Patient/{created['id']}/$validate", json=params, headers=FHIR_JSON)
    assert any("pat-1" in i["diagnostics"] for i in _issues(r.json(), "error")), r.text
    r = fhir.post(f"Patient/{created['id']}/$validate", json={"resourceType": "Parameters", "parameter": [
        {"name": "mode", "valueCode": "delete"}]}, headers=FHIR_JSON)
    assert r.status_code == 200 and _issues(r.json(), "error") == []
    assert fhir.post("Patient/does-not-exist-xyz/$validate", headers=FHIR_JSON).status_code == 404


def test_validate_bad_requests(fhir):
    assert fhir.post("Patient/$validate", headers=FHIR_JSON).status_code == 400  # nothing to validate
    r = fhir.post("Patient/$validate", json={"resourceType": "Observation", "status": "final",
                                             "code": {"text": "x"}}, headers=FHIR_JSON)
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    assert fhir.post("NoSuchType/$validate", json={"resourceType": "Patient"}, headers=FHIR_JSON).status_code == 404
    assert fhir.post("Patient/$no-such-op", json={}, headers=FHIR_JSON).status_code == 404
    r = fhir.post("Patient/$validate", content=b"{not json", headers=FHIR_JSON)
    assert r.status_code == 400


def test_validate_against_a_stored_profile(fhir, profile):
    patient = {"resourceType": "Patient", "gender": "male"}
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient},
                                                          {"name": "profile", "valueCanonical": profile}]}
    r = fhir.post("Patient/$validate", json=params, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    errors = _issues(r.json(), "error")
    expressions = sorted(e for i in errors for e in i.get("expression", []))
    assert "Patient.birthDate" in expressions and "Patient.identifier" in expressions, errors
    assert "Patient.gender" in expressions, errors  # fixed value
    assert all(profile in i["diagnostics"] or "TestPatient" in i["diagnostics"] for i in errors), errors


def test_write_enforces_declared_profile(fhir, profile):
    bad = {"resourceType": "Patient", "meta": {"profile": [profile]}, "gender": "female"}
    r = fhir.post("Patient", json=bad, headers=FHIR_JSON)
    assert r.status_code == 422, r.text
    assert {"Patient.birthDate", "Patient.identifier"} <= {e for i in _issues(r.json(), "error")
                                                           for e in i.get("expression", [])}
    good = {**bad, "birthDate": "2015-02-03", "identifier": [{"system": "urn:x", "value": "1"}]}
    r = fhir.post("Patient", json=good, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    # update and patch are checked too: removing the birthDate is refused, nothing is written
    stored = r.json()
    r = fhir.put(f"Patient/{stored['id']}", json={k: v for k, v in stored.items() if k != "birthDate"},
                 headers=FHIR_JSON)
    assert r.status_code == 422
    r = fhir.patch(f"Patient/{stored['id']}", json=[{"op": "remove", "path": "/birthDate"}],
                   headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 422
    assert fhir.get(f"Patient/{stored['id']}").json()["meta"]["versionId"] == "1"


def test_unknown_profile_is_a_warning(fhir, tag):
    p = {"resourceType": "Patient", "meta": {"profile": [f"http://example.org/unknown/{tag}"]}}
    r = fhir.post("Patient", json=p, headers=WANT_OO)
    assert r.status_code == 201, r.text
    warnings = _issues(r.json(), "warning")
    assert any(tag in i["diagnostics"] for i in warnings), r.json()


def test_profile_in_a_transaction_is_enforced_atomically(fhir, profile, tag):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Basic", "code": {"text": tag}}, "request": {"method": "POST", "url": "Basic"}},
        {"resource": {"resourceType": "Patient", "meta": {"profile": [profile]}},
         "request": {"method": "POST", "url": "Patient"}}]}
    r = fhir.post("", json=bundle, headers=FHIR_JSON)
    assert r.status_code == 422, r.text
    assert fhir.get("Basic", params={"code:text": tag}).json().get("total", 0) == 0


def test_stored_profile_is_searchable(fhir, profile):
    r = fhir.get("StructureDefinition", params={"url": profile})
    assert r.status_code == 200 and [e["resource"]["url"] for e in r.json()["entry"]] == [profile]


def test_profile_from_a_failed_transaction_is_not_kept(fhir, tag):
    url, sd = _profile(f"rolled-back-{tag}")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": sd, "request": {"method": "PUT", "url": f"StructureDefinition/{sd['id']}"}},
        {"resource": {"resourceType": "Patient"}, "request": {"method": "PUT", "url": "Patient/x",
                                                             "ifMatch": 'W/"99"'}}]}  # fails: 412
    r = fhir.post("", json=bundle, headers=FHIR_JSON)
    assert r.status_code >= 400, r.text
    assert fhir.get(f"StructureDefinition/{sd['id']}").status_code == 404
    # the profile was registered while the transaction ran; the rollback took it back out
    claims = {"resourceType": "Patient", "meta": {"profile": [url]}}
    r = fhir.post("Patient", json=claims, headers=WANT_OO)
    assert r.status_code == 201, r.text
    assert any("unknown profile" in i["diagnostics"] for i in _issues(r.json(), "warning")), r.json()
