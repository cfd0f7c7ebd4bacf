"""The meta search parameters over HTTP on both backends: _tag, _profile, _security, _source (R4
search.html#all), together with _id and _lastUpdated."""

from __future__ import annotations

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def _ids(fhir, rtype: str, **params: str) -> set[str]:
    r = fhir.get(rtype, params=params)
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"}


def test_meta_parameters(fhir, tag):
    meta = {"tag": [{"system": "urn:tags", "code": tag}],
            "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}],
            "profile": [f"http://example.org/StructureDefinition/unknown-{tag}"],
            "source": f"http://ehr.example.org/{tag}#1"}
    a = fhir.post("Basic", json={"resourceType": "Basic", "code": {"text": tag}, "meta": meta},
                  headers=FHIR_JSON).json()["id"]
    b = fhir.post("Basic", json={"resourceType": "Basic", "code": {"text": tag},
                                 "meta": {"tag": [{"system": "urn:tags", "code": tag}]}},
                  headers=FHIR_JSON).json()["id"]
    assert _ids(fhir, "Basic", _tag=f"urn:tags|{tag}") == {a, b}
    assert _ids(fhir, "Basic", _tag=f"urn:tags|{tag}",
                _security="http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R") == {a}
    assert _ids(fhir, "Basic", _profile=f"http://example.org/StructureDefinition/unknown-{tag}") == {a}
    assert _ids(fhir, "Basic", _source=f"http://ehr.example.org/{tag}#1") == {a}
    assert _ids(fhir, "Basic", _tag=f"urn:tags|{tag}", **{"_tag:not": "urn:tags|other"}) == {a, b}
    assert _ids(fhir, "Basic", _id=f"{a},{b}", _tag=f"urn:tags|{tag}", _lastUpdated="gt2020-01-01") == {a, b}
