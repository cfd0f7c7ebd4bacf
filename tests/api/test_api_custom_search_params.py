"""Custom SearchParameter resources (issue 4, point 1): registered when written, searchable at once for
new writes, existing resources indexed by ``$reindex``, checked before they are stored (422), gone
when deleted or retired, listed in the CapabilityStatement. Restarts and the CLI: tests/cli/test_cli_reindex.py."""

from __future__ import annotations

FHIR_JSON = {"Content-Type": "application/fhir+json"}
CAT = "http://cares.example.org/CodeSystem/careplan-category"


def sp(tag: str, **over) -> dict:
    code = f"cares-category-test-{tag}"
    out = {"resourceType": "SearchParameter", "url": f"http://cares.example.org/fhir/SearchParameter/{code}",
           "name": "CaresCategoryTest", "status": "active", "description": "CARES care plan category (test)",
           "code": code, "base": ["CarePlan"], "type": "token", "expression": "CarePlan.category"}
    out.update(over)
    return out


def careplan(tag: str, code: str | None = None) -> dict:
    return {"resourceType": "CarePlan", "status": "active", "intent": "plan",
            "subject": {"reference": f"Patient/p-{tag}"},
            "category": [{"coding": [{"system": CAT, "code": code or tag}]}]}


def make(fhir, resource: dict) -> str:
    r = fhir.post(resource["resourceType"], json=resource, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def matches(fhir, tag: str, value: str | None = None, **headers: str) -> list[str]:
    r = fhir.get("CarePlan", params={f"cares-category-test-{tag}": value or f"{CAT}|{tag}"}, headers=headers)
    assert r.status_code == 200, r.text
    return sorted(e["resource"]["id"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match")


def outcome_text(bundle: dict) -> str:
    return " ".join(i.get("diagnostics", "") for e in bundle.get("entry", []) if e["search"]["mode"] == "outcome"
                    for i in e["resource"]["issue"])


def listed(fhir, rtype: str) -> dict[str, dict]:
    cs = fhir.get("metadata").json()
    res = next(r for r in cs["rest"][0]["resource"] if r["type"] == rtype)
    return {p["name"]: p for p in res["searchParam"]}


def test_custom_param_indexes_new_writes_and_reindex_catches_up(fhir, tag):
    code = f"cares-category-test-{tag}"
    before = make(fhir, careplan(tag))
    other = make(fhir, careplan(tag, code=f"other-{tag}"))
    unknown = fhir.get("CarePlan", params={code: f"{CAT}|{tag}"}).json()
    assert code in outcome_text(unknown)  # not a parameter yet: ignored with a warning

    sid = make(fhir, sp(tag))
    after = make(fhir, careplan(tag))
    assert matches(fhir, tag) == [after]  # new writes are indexed at once; older ones not yet
    assert matches(fhir, tag, tag) == [after]  # code without system

    r = fhir.post("CarePlan/$reindex")
    assert r.status_code == 200, r.text
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome" and oo["issue"][0]["severity"] == "information"
    assert "Reindexed" in oo["issue"][0]["diagnostics"] and "CarePlan" in oo["issue"][0]["diagnostics"]
    assert matches(fhir, tag) == sorted([before, after])
    assert matches(fhir, tag, f"{CAT}|other-{tag}") == [other]
    assert matches(fhir, tag, f"{CAT}|other-{tag},{CAT}|{tag}") == sorted([before, after, other])

    # an update of an old resource keeps it indexed with the parameter
    moved = careplan(tag, code=f"other-{tag}")
    moved["id"] = before
    assert fhir.put(f"CarePlan/{before}", json=moved, headers=FHIR_JSON).status_code == 200
    assert matches(fhir, tag) == [after]

    assert fhir.delete(f"SearchParameter/{sid}").status_code == 204
    lenient = fhir.get("CarePlan", params={code: f"{CAT}|{tag}"})
    assert lenient.status_code == 200 and code in outcome_text(lenient.json())
    strict = fhir.get("CarePlan", params={code: f"{CAT}|{tag}"}, headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400 and strict.json()["resourceType"] == "OperationOutcome"


def test_invalid_search_parameter_is_422_and_not_stored(fhir, tag):
    for bad in ({"expression": "CarePlan.nosuchElement"},
                {"expression": "CarePlan.category.where(foo("},
                {"expression": "CarePlan.title.substring(1)"},
                {"expression": "Patient.name"},  # no branch applies to the base
                {"code": f"bad code {tag}"}):
        resource = sp(tag, **bad)
        r = fhir.post("SearchParameter", json=resource, headers=FHIR_JSON)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"
        stored = fhir.get("SearchParameter", params={"url": resource["url"], "_summary": "count"}).json()
        assert stored["total"] == 0
    assert f"cares-category-test-{tag}" in outcome_text(
        fhir.get("CarePlan", params={f"cares-category-test-{tag}": tag}).json())
    # an invalid update leaves the stored one in force
    sid = make(fhir, sp(tag))
    cp = make(fhir, careplan(tag))
    r = fhir.put(f"SearchParameter/{sid}", json={**sp(tag, expression="CarePlan.nosuch"), "id": sid},
                 headers=FHIR_JSON)
    assert r.status_code == 422
    assert matches(fhir, tag) == [cp]
    # a retired or draft one need not compile... a retired one is stored but not in force
    r = fhir.put(f"SearchParameter/{sid}", json={**sp(tag, status="retired", expression="CarePlan.nosuch"),
                                                  "id": sid}, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    strict = fhir.get("CarePlan", params={f"cares-category-test-{tag}": tag}, headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert fhir.delete(f"SearchParameter/{sid}").status_code == 204


def test_duplicate_code_or_url_is_422(fhir, tag):
    sid = make(fhir, sp(tag))
    try:
        same_code = sp(tag, url=f"http://cares.example.org/fhir/SearchParameter/other-{tag}")
        assert fhir.post("SearchParameter", json=same_code, headers=FHIR_JSON).status_code == 422
        same_url = sp(tag, code=f"other-{tag}")
        assert fhir.post("SearchParameter", json=same_url, headers=FHIR_JSON).status_code == 422
        # the same resource updated is fine, and a new expression applies to new writes
        r = fhir.put(f"SearchParameter/{sid}", json={**sp(tag, expression="CarePlan.category | CarePlan.activity"
                                                                              ".detail.code"), "id": sid},
                     headers=FHIR_JSON)
        assert r.status_code == 200, r.text
        cp = make(fhir, {**careplan(tag, code=f"none-{tag}"), "activity": [
            {"detail": {"status": "scheduled", "code": {"coding": [{"system": CAT, "code": tag}]}}}]})
        assert matches(fhir, tag) == [cp]
    finally:
        assert fhir.delete(f"SearchParameter/{sid}").status_code == 204


def test_overriding_an_r4_parameter_and_deleting_it_restores_r4(fhir, tag):
    cp = make(fhir, {**careplan(tag), "title": f"plan-{tag}"})
    assert fhir.get("CarePlan", params={"category": f"{CAT}|{tag}"}).json()["total"] == 1
    r = fhir.post("SearchParameter", json=sp(tag, code="category", expression="CarePlan.title", type="string",
                                             base=["CarePlan"]), headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    try:
        assert listed(fhir, "CarePlan")["category"]["type"] == "string"
    finally:
        assert fhir.delete(f"SearchParameter/{r.json()['id']}").status_code == 204
    assert listed(fhir, "CarePlan")["category"]["type"] == "token"
    assert [e["resource"]["id"] for e in fhir.get("CarePlan", params={"category": f"{CAT}|{tag}"}).json()["entry"]] \
        == [cp]


def test_capability_statement_lists_custom_param(fhir, tag):
    code = f"cares-category-test-{tag}"
    assert code not in listed(fhir, "CarePlan")
    sid = make(fhir, sp(tag))
    entry = listed(fhir, "CarePlan")[code]
    assert entry == {"name": code, "type": "token", "definition": sp(tag)["url"]}
    retired = fhir.patch(f"SearchParameter/{sid}", json=[{"op": "replace", "path": "/status", "value": "retired"}],
                         headers={"Content-Type": "application/json-patch+json"})
    assert retired.status_code == 200, retired.text
    assert code not in listed(fhir, "CarePlan")
    active = fhir.patch(f"SearchParameter/{sid}", json=[{"op": "replace", "path": "/status", "value": "active"}],
                        headers={"Content-Type": "application/json-patch+json"})
    assert active.status_code == 200
    assert code in listed(fhir, "CarePlan")
    assert fhir.delete(f"SearchParameter/{sid}").status_code == 204
    assert code not in listed(fhir, "CarePlan")


def test_transaction_with_search_parameter_indexes_later_entries(fhir, tag):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6c3a3ef4-7c7b-4a6e-9b39-000000000001", "resource": sp(tag),
         "request": {"method": "POST", "url": "SearchParameter"}},
        {"fullUrl": "urn:uuid:6c3a3ef4-7c7b-4a6e-9b39-000000000002", "resource": careplan(tag),
         "request": {"method": "POST", "url": "CarePlan"}}]}
    r = fhir.post("", json=bundle, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    sid, cp = (e["response"]["location"].split("/")[1] for e in r.json()["entry"])
    assert matches(fhir, tag) == [cp]
    assert fhir.delete(f"SearchParameter/{sid}").status_code == 204


def test_reindex_routes(fhir):
    assert fhir.get("CarePlan/$reindex").status_code == 405
    assert fhir.post("NoSuchType/$reindex").status_code == 404
    r = fhir.post("CarePlan/$everything")
    assert r.status_code == 404 and r.json()["issue"][0]["code"] == "not-supported"
    assert fhir.post("$meta").status_code == 404
    assert fhir.post("Patient/x/$reindex").status_code == 404


def test_search_parameter_from_a_failed_transaction_is_not_in_force(fhir, tag):
    code = f"rb{tag.replace('-', '')[:20]}".lower()
    sp = {"resourceType": "SearchParameter", "id": f"sp-{tag}", "url": f"http://example.org/sp/{tag}",
          "name": code, "status": "active", "description": "rolled back", "code": code, "base": ["Basic"],
          "type": "string", "expression": "Basic.code.text"}
    failing = {"resource": {"resourceType": "Patient", "id": f"p-{tag}"},
               "request": {"method": "PUT", "url": f"Patient/p-{tag}", "ifMatch": 'W/"99"'}}  # 412
    strict = {"Prefer": "handling=strict"}
    r = fhir.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": sp, "request": {"method": "PUT", "url": f"SearchParameter/sp-{tag}"}}, failing]})
    assert r.status_code >= 400
    assert fhir.get("Basic", params={code: "x"}, headers=strict).status_code == 400  # not in force
    assert fhir.put(f"SearchParameter/sp-{tag}", json=sp).status_code == 201
    assert fhir.get("Basic", params={code: "x"}, headers=strict).status_code == 200
    r = fhir.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": f"SearchParameter/sp-{tag}"}}, failing]})
    assert r.status_code >= 400
    assert fhir.get("Basic", params={code: "x"}, headers=strict).status_code == 200  # the delete was undone
