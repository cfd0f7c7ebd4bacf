"""History at instance, type and system level with _since, _at, _count and paging."""

from __future__ import annotations

import time

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def all_pages(fhir, url: str, params: dict) -> list[dict]:
    out, page = [], fhir.get(url, params=params).json()
    while True:
        assert page["type"] == "history"
        out += page.get("entry", [])
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not nxt:
            return out
        page = fhir.get(nxt[0]).json()


def test_instance_history_paging_since_at(fhir, tag):
    r = fhir.post("Patient", json={"resourceType": "Patient", "identifier": [{"value": tag}]}, headers=FHIR_JSON)
    pid = r.json()["id"]
    stamps = [r.json()["meta"]["lastUpdated"]]
    for g in ("male", "female", "other", "unknown"):
        time.sleep(0.01)
        u = fhir.put(f"Patient/{pid}", json={"resourceType": "Patient", "id": pid, "gender": g})
        stamps.append(u.json()["meta"]["lastUpdated"])
    entries = all_pages(fhir, f"Patient/{pid}/_history", {"_count": "2"})
    assert [e["resource"]["meta"]["versionId"] for e in entries] == ["5", "4", "3", "2", "1"]
    assert entries[0]["response"]["etag"] == 'W/"5"' and entries[-1]["request"]["method"] == "POST"
    since = fhir.get(f"Patient/{pid}/_history", params={"_since": stamps[3]}).json()
    assert [e["resource"]["meta"]["versionId"] for e in since["entry"]] == ["5", "4"]
    at = fhir.get(f"Patient/{pid}/_history", params={"_at": stamps[2]}).json()
    assert [e["resource"]["meta"]["versionId"] for e in at["entry"]] == ["3"]
    assert fhir.get(f"Patient/{pid}/_history", params={"_since": "not-a-date"}).status_code == 400
    assert fhir.get(f"Patient/missing-{tag}/_history").status_code == 404


def test_type_and_system_history(fhir, tag):
    start = fhir.post("Basic", json={"resourceType": "Basic", "code": {"text": tag}}, headers=FHIR_JSON)
    since = start.json()["meta"]["lastUpdated"]
    fhir.post("Basic", json={"resourceType": "Basic", "code": {"text": tag}}, headers=FHIR_JSON)
    fhir.post("Patient", json={"resourceType": "Patient"}, headers=FHIR_JSON)
    typ = all_pages(fhir, "Basic/_history", {"_since": since, "_count": "1"})
    assert {e["resource"]["resourceType"] for e in typ} == {"Basic"}
    assert len(typ) >= 2
    system = all_pages(fhir, "_history", {"_since": since, "_count": "50"})
    kinds = {e["resource"]["resourceType"] for e in system if "resource" in e}
    assert {"Basic", "Patient"} <= kinds
    stamps = [e["response"]["lastModified"] for e in system]
    assert stamps == sorted(stamps, reverse=True)
