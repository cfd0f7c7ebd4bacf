"""Transaction and batch (FHIR R4 http.html#transaction)."""

from __future__ import annotations

import uuid

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def tx(*entries: dict, kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(full_url: str, resource: dict, **request) -> dict:
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"], **request}}


def count(fhir, rtype: str, **params) -> int:
    return fhir.get(rtype, params={**params, "_total": "accurate", "_count": "0"}).json()["total"]


def test_transaction_rewrites_urn_references_everywhere(fhir, tag):
    p, cp, goal = urn(), urn(), urn()
    bundle = tx(
        post(cp, {"resourceType": "CarePlan", "status": "active", "intent": "plan", "identifier": [{"value": tag}],
                  "subject": {"reference": p}, "goal": [{"reference": goal}],
                  "text": {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">'
                                                         f'<a href="{p}">child</a></div>'},
                  "extension": [{"url": "urn:test:ext", "valueReference": {"reference": p}}],
                  "contained": [{"resourceType": "Provenance", "id": "prov", "recorded": "2026-01-01T00:00:00Z",
                                 "target": [{"reference": p}], "agent": [{"who": {"display": "x"}}]}]}),
        post(p, {"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": tag}]}),
        post(goal, {"resourceType": "Goal", "lifecycleStatus": "active", "description": {"text": "walk"},
                    "subject": {"reference": p}}),
    )
    r = fhir.post("", json=bundle, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses == ["201 Created"] * 3
    pid = out["entry"][1]["response"]["location"].split("/")[1]
    goal_id = out["entry"][2]["response"]["location"].split("/")[1]
    cp_id = out["entry"][0]["response"]["location"].split("/")[1]
    careplan = fhir.get(f"CarePlan/{cp_id}").json()
    assert careplan["subject"]["reference"] == f"Patient/{pid}"
    assert careplan["goal"][0]["reference"] == f"Goal/{goal_id}"
    assert careplan["extension"][0]["valueReference"]["reference"] == f"Patient/{pid}"
    assert careplan["contained"][0]["target"][0]["reference"] == f"Patient/{pid}"
    assert f"Patient/{pid}" in careplan["text"]["div"] and "urn:uuid" not in careplan["text"]["div"]
    assert out["entry"][0]["response"]["etag"] == 'W/"1"'
    assert out["entry"][0]["resource"]["id"] == cp_id
    found = fhir.get("CarePlan", params={"subject": f"Patient/{pid}"}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [cp_id]


def test_transaction_is_atomic_and_names_failing_entry(fhir, tag):
    p = urn()
    bundle = tx(
        post(p, {"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": tag}]}),
        post(urn(), {"resourceType": "Observation", "status": "final", "code": {"text": tag},
                     "subject": {"reference": p}}),
        post(urn(), {"resourceType": "Observation", "status": "not-a-status-code-at-all!!", "code": 7}),
    )
    r = fhir.post("", json=bundle, headers=FHIR_JSON)
    assert 400 <= r.status_code < 500
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome"
    assert "entry[2]" in oo["issue"][0]["diagnostics"]
    assert count(fhir, "Patient", identifier=f"urn:test:mrn|{tag}") == 0


def test_transaction_failing_if_match_rolls_back(fhir, tag):
    pid = fhir.post("Patient", json={"resourceType": "Patient", "identifier": [{"value": tag}]},
                    headers=FHIR_JSON).json()["id"]
    bundle = tx(
        post(urn(), {"resourceType": "Patient", "identifier": [{"value": tag + "-new"}]}),
        {"resource": {"resourceType": "Patient", "id": pid, "gender": "male"},
         "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": 'W/"9"'}},
    )
    r = fhir.post("", json=bundle, headers=FHIR_JSON)
    assert r.status_code == 412
    assert "entry[1]" in r.json()["issue"][0]["diagnostics"]
    assert count(fhir, "Patient", identifier=tag + "-new") == 0
    assert fhir.get(f"Patient/{pid}").json()["meta"]["versionId"] == "1"


def test_transaction_order_delete_post_put_get(fhir, tag):
    old = fhir.post("Patient", json={"resourceType": "Patient", "identifier": [{"value": tag}]},
                    headers=FHIR_JSON).json()["id"]
    keep = fhir.post("Patient", json={"resourceType": "Patient"}, headers=FHIR_JSON).json()["id"]
    bundle = tx(
        {"request": {"method": "GET", "url": f"Patient?identifier={tag}"}},
        {"resource": {"resourceType": "Patient", "id": keep, "gender": "other"},
         "request": {"method": "PUT", "url": f"Patient/{keep}"}},
        post(urn(), {"resourceType": "Patient", "identifier": [{"value": tag}], "gender": "female"}),
        {"request": {"method": "DELETE", "url": f"Patient/{old}"}},
    )
    r = fhir.post("", json=bundle, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["200", "200", "201", "204"]
    # the GET ran last: it sees the new patient and not the deleted one
    searchset = entries[0]["resource"]
    assert [e["resource"]["gender"] for e in searchset["entry"]] == ["female"]


def test_conditional_create_and_references_in_transaction(fhir, tag):
    fhir.post("Practitioner", json={"resourceType": "Practitioner", "identifier": [{"system": "urn:npi",
              "value": tag}]}, headers=FHIR_JSON)
    p = urn()
    bundle = tx(
        post(p, {"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": tag}]},
             ifNoneExist=f"identifier=urn:test:mrn|{tag}"),
        post(urn(), {"resourceType": "CareTeam", "subject": {"reference": p}, "identifier": [{"value": tag}],
                     "participant": [{"member": {"reference": f"Practitioner?identifier=urn:npi|{tag}"}}]}),
    )
    first = fhir.post("", json=bundle, headers=FHIR_JSON)
    assert first.status_code == 200, first.text
    assert first.json()["entry"][0]["response"]["status"].startswith("201")
    second = fhir.post("", json=bundle, headers=FHIR_JSON).json()
    assert second["entry"][0]["response"]["status"].startswith("200")
    pid = first.json()["entry"][0]["response"]["location"].split("/")[1]
    assert second["entry"][0]["response"]["location"].split("/")[1] == pid
    teams = fhir.get("CareTeam", params={"identifier": tag}).json()["entry"]
    assert len(teams) == 2
    for t in teams:
        assert t["resource"]["subject"]["reference"] == f"Patient/{pid}"
        assert t["resource"]["participant"][0]["member"]["reference"].startswith("Practitioner/")
    missing = tx(post(urn(), {"resourceType": "CareTeam", "participant": [
        {"member": {"reference": f"Practitioner?identifier=urn:npi|none-{tag}"}}]}))
    r = fhir.post("", json=missing, headers=FHIR_JSON)
    assert 400 <= r.status_code < 500 and "entry[0]" in r.json()["issue"][0]["diagnostics"]


def test_transaction_prefer_minimal(fhir, tag):
    b = tx(post(urn(), {"resourceType": "Patient", "identifier": [{"value": tag}]}))
    out = fhir.post("", json=b, headers={**FHIR_JSON, "Prefer": "return=minimal"}).json()
    assert "resource" not in out["entry"][0] and out["entry"][0]["response"]["location"].startswith("Patient/")
    full = fhir.post("", json=b, headers=FHIR_JSON).json()
    assert full["entry"][0]["resource"]["identifier"] == [{"value": tag}]


def test_conditional_update_in_transaction(fhir, tag):
    b = tx({"resource": {"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": tag}]},
            "request": {"method": "PUT", "url": f"Patient?identifier=urn:test:mrn|{tag}"}})
    one = fhir.post("", json=b, headers=FHIR_JSON).json()["entry"][0]["response"]
    two = fhir.post("", json=b, headers=FHIR_JSON).json()["entry"][0]["response"]
    assert one["status"].startswith("201") and two["status"].startswith("200")
    assert one["location"].split("/")[1] == two["location"].split("/")[1]
    assert two["etag"] == 'W/"2"'


def test_duplicate_targets_fail(fhir, tag):
    b = tx(*[{"resource": {"resourceType": "Patient", "id": f"d-{tag}"},
              "request": {"method": "PUT", "url": f"Patient/d-{tag}"}} for _ in range(2)])
    assert fhir.post("", json=b, headers=FHIR_JSON).status_code == 400
    assert fhir.get(f"Patient/d-{tag}").status_code == 404


def test_batch_entries_are_independent(fhir, tag):
    b = tx(
        post(urn(), {"resourceType": "Patient", "identifier": [{"value": tag}]}),
        post(urn(), {"resourceType": "Patient", "birthDate": "not a date"}),
        {"request": {"method": "GET", "url": "Patient/definitely-missing"}},
        {"request": {"method": "GET", "url": f"Patient?identifier={tag}"}},
        kind="batch",
    )
    r = fhir.post("", json=b, headers=FHIR_JSON)
    assert r.status_code == 200
    out = r.json()
    assert out["type"] == "batch-response"
    assert [e["response"]["status"][:3] for e in out["entry"]] == ["201", "400", "404", "200"]
    assert out["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert count(fhir, "Patient", identifier=tag) == 1


def test_bad_bundles(fhir):
    assert fhir.post("", json={"resourceType": "Bundle", "type": "collection"}, headers=FHIR_JSON).status_code == 400
    assert fhir.post("", json={"resourceType": "Patient"}, headers=FHIR_JSON).status_code == 400
    bad = {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Patient"}}]}
    assert fhir.post("", json=bad, headers=FHIR_JSON).status_code == 400
    bad = tx({"request": {"method": "GET", "url": "Nope/1"}})
    assert fhir.post("", json=bad, headers=FHIR_JSON).status_code == 404
