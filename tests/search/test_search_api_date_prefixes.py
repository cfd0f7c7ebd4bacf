"""Date ge/le with ranges that straddle the search value (R4 search.html#prefix); found by the oracle."""

from __future__ import annotations

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def _put(fhir, resource: dict) -> None:
    r = fhir.put(f"{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON)
    assert r.status_code in (200, 201), r.text


def _ids(fhir, rtype: str, **params: str) -> set[str]:
    r = fhir.get(rtype, params=params)
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"}


def test_date_ge_le_straddling_ranges_follow_r4(fhir, tag):
    ident = f"urn:oracle:bug|{tag}"
    _put(fhir, {"resourceType": "Patient", "id": f"{tag}-y", "birthDate": "2024",
                "identifier": [{"system": "urn:oracle:bug", "value": tag}]})
    _put(fhir, {"resourceType": "Observation", "id": f"{tag}-o", "status": "final", "code": {"text": "x"},
                "effectivePeriod": {"start": "2024-03-01"}, "identifier": [{"system": "urn:oracle:bug", "value": tag}]})
    # the year 2024 is neither above 2024-12-31 nor inside it; an open period from 2024-03-01 is
    # neither below 2024-03-01 nor inside it
    assert _ids(fhir, "Patient", identifier=ident, birthdate="ge2024-12-31") == set()
    assert _ids(fhir, "Patient", identifier=ident, birthdate="le2024-01-01") == set()
    assert _ids(fhir, "Observation", identifier=ident, date="le2024-03-01") == set()
    # the unambiguous cases (sanity: these already pass)
    assert _ids(fhir, "Patient", identifier=ident, birthdate="ge2024-12-30") == {f"{tag}-y"}
    assert _ids(fhir, "Observation", identifier=ident, date="ge2024-03-01") == {f"{tag}-o"}


