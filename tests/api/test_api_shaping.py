"""_summary (true, text, data, false) and _elements on read, vread and search (R4 search.html#summary,
#elements), over HTTP on both backends."""

from __future__ import annotations

FHIR_JSON = {"Content-Type": "application/fhir+json"}
SUBSETTED = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED")
DIV = '<div xmlns="http://www.w3.org/1999/xhtml">Ana Ramos</div>'


def make(fhir, resource: dict) -> dict:
    r = fhir.post(resource["resourceType"], json=resource, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    return r.json()


def subsetted(resource: dict) -> bool:
    return any((t.get("system"), t.get("code")) == SUBSETTED for t in resource.get("meta", {}).get("tag", []))


def entries(bundle: dict, mode: str = "match") -> list[dict]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def patient(tag: str) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": tag}],
            "meta": {"tag": [{"system": "urn:test:tag", "code": tag}]},
            "text": {"status": "generated", "div": DIV},
            "extension": [{"url": "http://example.org/ext", "valueString": "x"}],
            "name": [{"family": "Ramos", "given": ["Ana"],
                      "extension": [{"url": "http://example.org/n", "valueString": "y"}]}],
            "birthDate": "2015-04-02", "gender": "female",
            "maritalStatus": {"text": "unmarried"},
            "contact": [{"name": {"family": "Ramos", "given": ["Rosa"]}}],
            "link": [{"other": {"reference": "Patient/someone-else", "display": "twin"}, "type": "seealso"}]}


def test_read_summary_true(fhir, tag):
    made = make(fhir, patient(tag))
    pid = made["id"]
    r = fhir.get(f"Patient/{pid}", params={"_summary": "true"})
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == 'W/"1"'
    got = r.json()
    assert got["id"] == pid and got["meta"]["versionId"] == "1"
    assert got["name"] == [{"family": "Ramos", "given": ["Ana"]}]  # Element.extension is not summary
    assert got["birthDate"] == "2015-04-02" and got["gender"] == "female" and got["identifier"]
    assert got["link"] == [{"other": {"reference": "Patient/someone-else", "display": "twin"}, "type": "seealso"}]
    for gone in ("text", "contact", "maritalStatus", "extension"):
        assert gone not in got, gone
    assert subsetted(got)
    assert {"system": "urn:test:tag", "code": tag} in got["meta"]["tag"]  # the resource's own tags stay
    full = fhir.get(f"Patient/{pid}").json()  # the plain read is untouched
    assert not subsetted(full) and full["contact"] and full["text"]["div"] == DIV
    assert fhir.get(f"Patient/{pid}/_history/1", params={"_summary": "true"}).json() == got


def test_careplan_summary_text_and_data(fhir, tag):
    pid = make(fhir, {"resourceType": "Patient", "identifier": [{"value": tag}]})["id"]
    cp = make(fhir, {"resourceType": "CarePlan", "status": "active", "intent": "plan", "title": "ICP",
                     "text": {"status": "generated", "div": DIV},
                     "subject": {"reference": f"Patient/{pid}"},
                     "note": [{"text": "private note"}],
                     "activity": [{"detail": {"status": "in-progress", "description": "PT twice a week"}}]})
    summary = fhir.get(f"CarePlan/{cp['id']}", params={"_summary": "true"}).json()
    assert summary["title"] == "ICP" and summary["subject"] == {"reference": f"Patient/{pid}"}
    assert "note" not in summary and "activity" not in summary and "text" not in summary
    text = fhir.get(f"CarePlan/{cp['id']}", params={"_summary": "text"}).json()
    assert text["text"]["div"] == DIV
    assert set(text) == {"resourceType", "id", "meta", "text", "status", "intent", "subject"}  # + mandatory
    assert subsetted(text)
    data = fhir.get(f"CarePlan/{cp['id']}", params={"_summary": "data"}).json()
    assert "text" not in data and data["note"] and data["activity"] and subsetted(data)
    full = fhir.get(f"CarePlan/{cp['id']}", params={"_summary": "false"}).json()
    assert full == fhir.get(f"CarePlan/{cp['id']}").json() and not subsetted(full)
    # nothing to remove → nothing is tagged
    bare = make(fhir, {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                       "subject": {"reference": f"Patient/{pid}"}})
    got = fhir.get(f"CarePlan/{bare['id']}", params={"_summary": "data"}).json()
    assert got == fhir.get(f"CarePlan/{bare['id']}").json() and not subsetted(got)


def test_choice_type_summary(fhir, tag):
    obs = make(fhir, {"resourceType": "Observation", "status": "final", "code": {"text": tag},
                      "valueQuantity": {"value": 12.5, "unit": "kg"}, "note": [{"text": "n"}]})
    got = fhir.get(f"Observation/{obs['id']}", params={"_summary": "true"}).json()
    assert got["valueQuantity"] == {"value": 12.5, "unit": "kg"} and got["code"] == {"text": tag}
    assert "note" not in got and subsetted(got)
    only = fhir.get(f"Observation/{obs['id']}", params={"_elements": "value[x]"}).json()
    assert only["valueQuantity"] and "note" not in only and "code" in only  # code is mandatory


def test_elements_read_and_search(fhir, tag):
    made = make(fhir, patient(tag))
    pid = made["id"]
    got = fhir.get(f"Patient/{pid}", params={"_elements": "name,birthDate"}).json()
    assert set(got) == {"resourceType", "id", "meta", "name", "birthDate"}
    assert got["name"][0]["extension"]  # requested elements come whole
    assert subsetted(got)
    assert fhir.get(f"Patient/{pid}/_history/1", params={"_elements": "name,birthDate"}).json() == got
    # unknown names are ignored, as HAPI FHIR does; a Type.element prefix is accepted
    odd = fhir.get(f"Patient/{pid}", params={"_elements": "Patient.gender,noSuchThing"})
    assert odd.status_code == 200 and set(odd.json()) == {"resourceType", "id", "meta", "gender"}
    b = fhir.get("Patient", params={"identifier": f"urn:test:mrn|{tag}", "_elements": "name,birthDate"})
    assert b.status_code == 200, b.text
    [match] = entries(b.json())
    assert match == got
    assert any("_elements" in link["url"] for link in b.json()["link"] if link["relation"] == "self")


def test_includes_unaffected_by_elements(fhir, tag):
    dr = make(fhir, {"resourceType": "Practitioner", "name": [{"family": "Okafor"}], "gender": "male",
                     "text": {"status": "generated", "div": DIV}})
    pid = make(fhir, {"resourceType": "Patient", "identifier": [{"value": tag}]})["id"]
    sr = make(fhir, {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                     "subject": {"reference": f"Patient/{pid}"}, "requester": {"reference": f"Practitioner/{dr['id']}"},
                     "note": [{"text": "call mum"}]})
    params = {"subject": f"Patient/{pid}", "_include": "ServiceRequest:requester"}
    b = fhir.get("ServiceRequest", params={**params, "_elements": "status"}).json()
    [match], [inc] = entries(b), entries(b, "include")
    assert match["id"] == sr["id"] and match["status"] == "active" and "note" not in match and subsetted(match)
    assert set(match) == {"resourceType", "id", "meta", "status", "intent", "subject"}
    assert inc == fhir.get(f"Practitioner/{dr['id']}").json() and not subsetted(inc)
    # _summary applies to the included resources too
    s = fhir.get("ServiceRequest", params={**params, "_summary": "true"}).json()
    [match], [inc] = entries(s), entries(s, "include")
    assert "note" not in match and "requester" in match and subsetted(match)
    assert "text" not in inc and inc["name"] == [{"family": "Okafor"}] and subsetted(inc)
    # without the parameters the search is the stored JSON, untagged
    plain = fhir.get("ServiceRequest", params=params).json()
    assert not any(subsetted(r) for r in entries(plain) + entries(plain, "include"))
    assert entries(plain)[0]["note"] == [{"text": "call mum"}]


def test_search_summary_modes(fhir, tag):
    make(fhir, patient(tag))
    q = {"identifier": f"urn:test:mrn|{tag}"}
    [t] = entries(fhir.get("Patient", params={**q, "_summary": "true"}).json())
    assert "contact" not in t and "text" not in t and t["name"] and subsetted(t)
    [x] = entries(fhir.get("Patient", params={**q, "_summary": "text"}).json())
    assert set(x) == {"resourceType", "id", "meta", "text"}
    [d] = entries(fhir.get("Patient", params={**q, "_summary": "data"}).json())
    assert "text" not in d and d["contact"] and subsetted(d)
    [f] = entries(fhir.get("Patient", params={**q, "_summary": "false"}).json())
    assert f["text"] and not subsetted(f)
    count = fhir.get("Patient", params={**q, "_summary": "count"}).json()
    assert count["total"] == 1 and "entry" not in count


def test_pretty_with_summary(fhir, tag):
    pid = make(fhir, patient(tag))["id"]
    r = fhir.get(f"Patient/{pid}", params={"_summary": "true", "_pretty": "true"})
    assert r.status_code == 200 and "\n  " in r.text
    assert "contact" not in r.json() and subsetted(r.json())
    s = fhir.get("Patient", params={"identifier": f"urn:test:mrn|{tag}", "_elements": "name", "_pretty": "true"})
    assert "\n  " in s.text
    [e] = entries(s.json())
    assert set(e) == {"resourceType", "id", "meta", "name"}


def test_bad_summary(fhir, tag):
    pid = make(fhir, {"resourceType": "Patient", "identifier": [{"value": tag}]})["id"]
    for path, params in ((f"Patient/{pid}", {"_summary": "maybe"}), (f"Patient/{pid}/_history/1", {"_summary": "x"}),
                         (f"Patient/{pid}", {"_summary": "count"}), (f"Patient/{pid}", {"_elements": ""}),
                         ("Patient", {"_summary": "maybe"}), ("Patient/does-not-exist", {"_summary": "maybe"})):
        r = fhir.get(path, params=params)
        assert r.status_code == 400, (path, params, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"
    assert fhir.get(f"Patient/{pid}", params=[("_summary", "true"), ("_summary", "text")]).status_code == 400


def test_batch_read_with_summary(fhir, tag):
    pid = make(fhir, patient(tag))["id"]
    batch = {"resourceType": "Bundle", "type": "batch",
             "entry": [{"request": {"method": "GET", "url": f"Patient/{pid}?_summary=true"}},
                       {"request": {"method": "GET", "url": f"Patient/{pid}?_elements=gender"}}]}
    r = fhir.post("", json=batch, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    first, second = (e["resource"] for e in r.json()["entry"])
    assert "contact" not in first and first["name"] and subsetted(first)
    assert set(second) == {"resourceType", "id", "meta", "gender"}
