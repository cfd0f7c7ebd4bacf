"""Conditional create, update and delete (FHIR R4 http.html#ccreate / #cond-update / #cdelete)."""

from __future__ import annotations

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def patient(tag: str, **extra) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": tag}], **extra}


def ids(fhir, **params) -> list[str]:
    return sorted(e["resource"]["id"] for e in fhir.get("Patient", params=params).json().get("entry", []))


def test_conditional_create(fhir, tag):
    h = {**FHIR_JSON, "If-None-Exist": f"identifier=urn:test:mrn|{tag}"}
    first = fhir.post("Patient", json=patient(tag), headers=h)
    assert first.status_code == 201
    again = fhir.post("Patient", json=patient(tag), headers=h)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert ids(fhir, identifier=f"urn:test:mrn|{tag}") == [first.json()["id"]]
    fhir.post("Patient", json=patient(tag), headers=FHIR_JSON)  # a plain duplicate
    assert fhir.post("Patient", json=patient(tag), headers=h).status_code == 412


def test_conditional_update(fhir, tag):
    url = f"Patient?identifier=urn:test:mrn|{tag}"
    created = fhir.put(url, json=patient(tag, gender="female"))
    assert created.status_code == 201
    pid = created.json()["id"]
    updated = fhir.put(url, json=patient(tag, gender="male"))
    assert updated.status_code == 200
    assert updated.json()["id"] == pid and updated.json()["meta"]["versionId"] == "2"
    assert fhir.put(url, json=patient(tag, id="other-id")).status_code == 400
    fhir.post("Patient", json=patient(tag), headers=FHIR_JSON)
    assert fhir.put(url, json=patient(tag)).status_code == 412


def test_conditional_delete_single_and_multiple(fhir, tag):
    for _ in range(3):
        fhir.post("Patient", json=patient(tag), headers=FHIR_JSON)
    one = fhir.post("Patient", json=patient(tag + "-one"), headers=FHIR_JSON).json()["id"]
    r = fhir.delete("Patient", params={"identifier": f"urn:test:mrn|{tag}-one"})
    assert r.status_code == 200
    assert fhir.get(f"Patient/{one}").status_code == 410
    r = fhir.delete("Patient", params={"identifier": f"urn:test:mrn|{tag}"})
    assert r.status_code == 200
    assert ids(fhir, identifier=f"urn:test:mrn|{tag}") == []
    none = fhir.delete("Patient", params={"identifier": f"urn:test:mrn|nothing-{tag}"})
    assert none.status_code == 200
    assert none.json()["issue"][0]["code"] == "not-found"


def test_conditional_with_unknown_parameter_is_refused(fhir, tag):
    r = fhir.post("Patient", json=patient(tag), headers={**FHIR_JSON, "If-None-Exist": "nonsense=1"})
    assert r.status_code == 400
    assert fhir.delete("Patient", params={"nonsense": "1"}).status_code == 400
