"""Read, vread, create, update, delete, patch and their headers (FHIR R4 http.html), on both backends."""

from __future__ import annotations

import email.utils

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def patient(tag: str, **extra) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": tag}],
            "name": [{"family": "Ramos", "given": ["Ana"]}], "birthDate": "2015-04-02", **extra}


def test_create_read_headers(fhir, tag):
    r = fhir.post("Patient", json=patient(tag), headers=FHIR_JSON)
    assert r.status_code == 201
    assert r.headers["content-type"] == "application/fhir+json; charset=utf-8"
    body = r.json()
    pid = body["id"]
    assert body["meta"]["versionId"] == "1"
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"].endswith(f"/fhir/Patient/{pid}/_history/1")
    assert email.utils.parsedate_to_datetime(r.headers["last-modified"]).year >= 2026
    got = fhir.get(f"Patient/{pid}")
    assert got.status_code == 200
    assert got.json() == body
    assert got.headers["etag"] == 'W/"1"'
    assert got.headers["last-modified"] == r.headers["last-modified"]


def test_create_ignores_client_id_and_sets_meta(fhir, tag):
    r = fhir.post("Patient", json=patient(tag, id="client-chosen", meta={"versionId": "99", "tag": [
        {"system": "urn:t", "code": "x"}]}), headers=FHIR_JSON)
    assert r.status_code == 201
    b = r.json()
    assert b["id"] != "client-chosen"
    assert b["meta"]["versionId"] == "1"
    assert b["meta"]["tag"] == [{"system": "urn:t", "code": "x"}]


def test_update_versions_and_vread(fhir, tag):
    pid = fhir.post("Patient", json=patient(tag), headers=FHIR_JSON).json()["id"]
    for n in (2, 3):
        r = fhir.put(f"Patient/{pid}", json=patient(tag, id=pid, gender="female" if n == 2 else "male"))
        assert r.status_code == 200
        assert r.json()["meta"]["versionId"] == str(n)
        assert r.headers["etag"] == f'W/"{n}"'
        assert r.headers["location"].endswith(f"/Patient/{pid}/_history/{n}")
    v2 = fhir.get(f"Patient/{pid}/_history/2")
    assert v2.status_code == 200 and v2.json()["gender"] == "female"
    assert v2.headers["etag"] == 'W/"2"'
    assert fhir.get(f"Patient/{pid}/_history/7").status_code == 404
    assert fhir.get(f"Patient/{pid}/_history/x").status_code == 404
    assert fhir.get(f"Patient/{pid}").json()["gender"] == "male"


def test_update_as_create_with_client_id(fhir, tag):
    r = fhir.put(f"Patient/cc-{tag}", json=patient(tag, id=f"cc-{tag}"))
    assert r.status_code == 201
    assert r.json()["id"] == f"cc-{tag}"
    assert r.headers["etag"] == 'W/"1"'


def test_if_match(fhir, tag):
    pid = fhir.post("Patient", json=patient(tag), headers=FHIR_JSON).json()["id"]
    bad = fhir.put(f"Patient/{pid}", json=patient(tag, id=pid), headers={"If-Match": 'W/"5"'})
    assert bad.status_code == 412
    assert bad.json()["resourceType"] == "OperationOutcome"
    ok = fhir.put(f"Patient/{pid}", json=patient(tag, id=pid), headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == 'W/"2"'
    stale = fhir.put(f"Patient/{pid}", json=patient(tag, id=pid), headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert fhir.get(f"Patient/{pid}").json()["meta"]["versionId"] == "2"


def test_conditional_read_headers(fhir, tag):
    r = fhir.post("Patient", json=patient(tag), headers=FHIR_JSON)
    pid = r.json()["id"]
    assert fhir.get(f"Patient/{pid}", headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert fhir.get(f"Patient/{pid}", headers={"If-None-Match": 'W/"0"'}).status_code == 200
    assert fhir.get(f"Patient/{pid}", headers={"If-Modified-Since": r.headers["last-modified"]}).status_code == 304
    assert fhir.get(f"Patient/{pid}",
                    headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200


def test_delete_then_gone_history_and_recreate(fhir, tag):
    pid = fhir.post("Patient", json=patient(tag), headers=FHIR_JSON).json()["id"]
    d = fhir.delete(f"Patient/{pid}")
    assert d.status_code == 204
    assert d.headers["etag"] == 'W/"2"'
    gone = fhir.get(f"Patient/{pid}")
    assert gone.status_code == 410
    assert gone.json()["resourceType"] == "OperationOutcome"
    h = fhir.get(f"Patient/{pid}/_history").json()
    assert [e["request"]["method"] for e in h["entry"]] == ["DELETE", "POST"]
    assert "resource" not in h["entry"][0]
    assert fhir.get(f"Patient/{pid}/_history/2").status_code == 410
    assert fhir.get(f"Patient/{pid}/_history/1").status_code == 200
    again = fhir.put(f"Patient/{pid}", json=patient(tag, id=pid))
    assert again.status_code == 201
    assert again.json()["meta"]["versionId"] == "3"
    assert fhir.get(f"Patient/{pid}").status_code == 200
    assert fhir.delete("Patient/does-not-exist-" + tag).status_code == 404


def test_prefer_return(fhir, tag):
    minimal = fhir.post("Patient", json=patient(tag), headers={**FHIR_JSON, "Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b""
    assert "location" in minimal.headers and minimal.headers["etag"] == 'W/"1"'
    oo = fhir.post("Patient", json=patient(tag), headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"})
    assert oo.status_code == 201 and oo.json()["resourceType"] == "OperationOutcome"
    rep = fhir.post("Patient", json=patient(tag), headers={**FHIR_JSON, "Prefer": "return=representation"})
    assert rep.json()["resourceType"] == "Patient"


def test_json_patch(fhir, tag):
    pid = fhir.post("Patient", json=patient(tag), headers=FHIR_JSON).json()["id"]
    ops = [{"op": "replace", "path": "/birthDate", "value": "2016-01-01"},
           {"op": "add", "path": "/gender", "value": "female"}]
    ct = {"Content-Type": "application/json-patch+json"}
    r = fhir.patch(f"Patient/{pid}", json=ops, headers={**ct, "If-Match": 'W/"1"'})
    assert r.status_code == 200
    assert r.json()["birthDate"] == "2016-01-01" and r.json()["gender"] == "female"
    assert r.json()["meta"]["versionId"] == "2"
    assert fhir.patch(f"Patient/{pid}", json=ops, headers={**ct, "If-Match": 'W/"1"'}).status_code == 412
    bad_value = fhir.patch(f"Patient/{pid}", json=[{"op": "replace", "path": "/birthDate", "value": "soon"}],
                           headers=ct)
    assert bad_value.status_code == 400
    failing = fhir.patch(f"Patient/{pid}", json=[{"op": "test", "path": "/gender", "value": "male"}], headers=ct)
    assert failing.status_code == 422
    assert fhir.patch(f"Patient/{pid}", json=ops, headers=FHIR_JSON).status_code == 415
    assert fhir.get(f"Patient/{pid}").json()["meta"]["versionId"] == "2"


def test_format_and_pretty(fhir, tag):
    pid = fhir.post("Patient", json=patient(tag), headers=FHIR_JSON).json()["id"]
    compact = fhir.get(f"Patient/{pid}")
    assert b"\n" not in compact.content
    pretty = fhir.get(f"Patient/{pid}", params={"_pretty": "true"})
    assert b"\n  " in pretty.content and pretty.json() == compact.json()
    assert fhir.get(f"Patient/{pid}", params={"_format": "json"}).status_code == 200
    assert fhir.get(f"Patient/{pid}", params={"_format": "application/fhir+json"}).status_code == 200
    xml = fhir.get(f"Patient/{pid}", params={"_format": "xml"})
    assert xml.status_code == 406 and xml.json()["resourceType"] == "OperationOutcome"
    assert fhir.get(f"Patient/{pid}", headers={"Accept": "application/fhir+xml"}).status_code == 406
    assert fhir.get(f"Patient/{pid}", headers={"Accept": "application/json"}).status_code == 200


def test_metadata(fhir):
    r = fhir.get("metadata")
    assert r.status_code == 200
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    assert "application/fhir+json" in cs["format"]
    res = {x["type"]: x for x in cs["rest"][0]["resource"]}
    assert len(res) > 140 and "CarePlan" in res and "Task" in res
    cp = res["CarePlan"]
    assert {i["code"] for i in cp["interaction"]} >= {"read", "vread", "update", "patch", "delete", "create",
                                                      "search-type", "history-instance", "history-type"}
    assert cp["conditionalDelete"] == "multiple" and cp["conditionalCreate"] is True
    names = {p["name"] for p in cp["searchParam"]}
    assert {"subject", "status", "category", "date", "_id", "_lastUpdated"} <= names
    assert "CarePlan:subject" in cp["searchInclude"]
    assert "ServiceRequest:based-on" in cp["searchRevInclude"] and "Task:based-on" in cp["searchRevInclude"]
    assert {"transaction", "batch", "history-system"} <= {i["code"] for i in cs["rest"][0]["interaction"]}
