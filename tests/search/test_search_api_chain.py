"""Composite parameters, chaining to any depth and reverse chaining (_has) over HTTP on both backends."""

from __future__ import annotations

from tests.search.api_helpers import error, found, get, make

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def _bp(fhir, tag: str, systolic: float, diastolic: float) -> str:
    return make(fhir, {"resourceType": "Observation", "status": "final", "identifier": [{"value": tag}],
                       "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
                       "component": [
                           {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                            "valueQuantity": {"value": systolic, "system": UCUM, "code": "mm[Hg]"}},
                           {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                            "valueQuantity": {"value": diastolic, "system": UCUM, "code": "mm[Hg]"}}]})


def test_composite_same_element(fhir, tag):
    high = _bp(fhir, tag, 150, 70)   # systolic high
    low = _bp(fhir, tag, 110, 95)    # diastolic 95: 'systolic > 100' holds, but not on the 95 component
    q = {"identifier": tag}
    assert found(fhir, "Observation", {**q, "component-code-value-quantity": f"{LOINC}|8480-6$gt140"}) == [high]
    # both components exist in `low` (8480-6 and a value > 90) but not on the same component
    assert found(fhir, "Observation", {**q, "component-code-value-quantity": f"{LOINC}|8480-6$gt90"}) == sorted(
        [high, low])
    assert found(fhir, "Observation", {**q, "component-code-value-quantity": f"{LOINC}|8480-6$gt120"}) == [high]
    assert found(fhir, "Observation", {**q, "component-code-value-quantity": f"{LOINC}|8462-4$gt90"}) == [low]
    assert found(fhir, "Observation", {**q, "component-code-value-quantity": f"8462-4$lt80|{UCUM}|mm[Hg]"}) == [high]
    assert found(fhir, "Observation", {**q, "component-code-value-quantity":
                                       f"{LOINC}|8480-6$gt140,{LOINC}|8462-4$gt90"}) == sorted([high, low])
    # the resource-level composite on Observation.code / value
    w = make(fhir, {"resourceType": "Observation", "status": "final", "identifier": [{"value": tag}],
                    "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
                    "valueQuantity": {"value": 60.5, "system": UCUM, "code": "kg"}})
    assert found(fhir, "Observation", {**q, "code-value-quantity": f"{LOINC}|29463-7$60.5"}) == [w]
    assert found(fhir, "Observation", {**q, "code-value-quantity": f"{LOINC}|29463-7$gt61"}) == []
    assert found(fhir, "Observation", {**q, "combo-code-value-quantity": f"{LOINC}|8480-6$ge150"}) == [high]
    assert found(fhir, "Observation", {**q, "combo-code-value-quantity": "29463-7$ge60||kg"}) == [w]
    page = get(fhir, "Observation", {**q, "component-code-value-quantity": f"{LOINC}|8480-6$gt90",
                                     "_count": "1", "_total": "accurate"})
    assert page["total"] == 2 and len(page["entry"]) == 1


def test_composite_errors(fhir):
    for value in ("8480-6", "8480-6$1$2", "8480-6$abc", "8480-6$"):
        body = error(fhir, "Observation", {"component-code-value-quantity": value})
        assert "component-code-value-quantity" in body["issue"][0]["diagnostics"]
    body = error(fhir, "Observation", {"subject:Patient.identifier:of-type": "a|b|c"})
    assert body["issue"][0]["code"] == "not-supported"


def _family(fhir, tag: str) -> dict[str, str]:
    org = make(fhir, {"resourceType": "Organization", "name": f"Clinic{tag}"})
    pat = make(fhir, {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": tag}],
                      "name": [{"family": f"Smith{tag}"}], "birthDate": "2012-05-01",
                      "managingOrganization": {"reference": f"Organization/{org}"}})
    old = make(fhir, {"resourceType": "Patient", "name": [{"family": f"Jones{tag}"}], "birthDate": "1990-01-01"})
    sr = make(fhir, {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                     "subject": {"reference": f"Patient/{pat}"}, "identifier": [{"value": tag}]})
    sr_old = make(fhir, {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                         "subject": {"reference": f"Patient/{old}"}, "identifier": [{"value": tag}]})
    task = make(fhir, {"resourceType": "Task", "status": "requested", "intent": "order",
                       "focus": {"reference": f"ServiceRequest/{sr}"}, "identifier": [{"value": tag}]})
    task_old = make(fhir, {"resourceType": "Task", "status": "requested", "intent": "order",
                           "focus": {"reference": f"ServiceRequest/{sr_old}"}, "identifier": [{"value": tag}]})
    cp = make(fhir, {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                     "subject": {"reference": f"Patient/{pat}"}, "identifier": [{"value": tag}]})
    cp_old = make(fhir, {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                         "subject": {"reference": f"Patient/{old}"}, "identifier": [{"value": tag}]})
    return {"org": org, "pat": pat, "old": old, "sr": sr, "sr_old": sr_old, "task": task, "task_old": task_old,
            "cp": cp, "cp_old": cp_old}


def test_chains(fhir, tag):
    f = _family(fhir, tag)
    q = {"identifier": tag}
    assert found(fhir, "CarePlan", {**q, "subject.name": f"smith{tag}"}) == [f["cp"]]
    assert found(fhir, "CarePlan", {**q, "subject:Patient.name": f"jones{tag}"}) == [f["cp_old"]]
    assert found(fhir, "CarePlan", {**q, "subject:Patient.birthdate": "ge2010"}) == [f["cp"]]
    assert found(fhir, "CarePlan", {**q, "subject:Patient.birthdate": "lt2010,ge2012-05"}) == sorted(
        [f["cp"], f["cp_old"]])
    assert found(fhir, "CarePlan", {**q, "subject:Patient._id": f["old"]}) == [f["cp_old"]]
    assert found(fhir, "Task", {"focus:ServiceRequest.subject:Patient.identifier": f"urn:mrn|{tag}"}) == [f["task"]]
    assert found(fhir, "Task", {"focus.subject.identifier": f"urn:mrn|{tag}"}) == [f["task"]]
    # three levels, and a chain ANDed with a chain
    assert found(fhir, "Task", {"focus:ServiceRequest.subject:Patient.organization.name": f"clinic{tag}"}) == [
        f["task"]]
    assert found(fhir, "Task", [("focus:ServiceRequest.subject:Patient.birthdate", "ge2000"),
                                ("focus:ServiceRequest.subject:Patient.name", f"jones{tag}")]) == []
    # modifiers inside chains
    assert found(fhir, "CarePlan", {**q, "subject:Patient.name:exact": f"Smith{tag}"}) == [f["cp"]]
    assert found(fhir, "CarePlan", {**q, "subject:Patient.organization:missing": "true"}) == [f["cp_old"]]
    # a chain through a deleted resource finds nothing
    assert fhir.delete(f"Organization/{f['org']}").status_code in (200, 204)
    assert found(fhir, "Patient", {"organization.name": f"clinic{tag}"}) == []


def test_has(fhir, tag):
    f = _family(fhir, tag)
    assert found(fhir, "Patient", {"_has:CarePlan:subject:identifier": tag}) == sorted([f["pat"], f["old"]])
    assert found(fhir, "Patient", {"_has:ServiceRequest:subject:_id": f["sr"]}) == [f["pat"]]
    # nested: patients with a service request that has a task with this id
    assert found(fhir, "Patient", {"_has:ServiceRequest:subject:_has:Task:focus:_id": f["task_old"]}) == [f["old"]]
    # _has whose inner parameter is chained
    assert found(fhir, "ServiceRequest", {"_has:Task:focus:focus:ServiceRequest.subject:Patient.name":
                                          f"smith{tag}"}) == [f["sr"]]
    assert found(fhir, "Organization", {"_has:Patient:organization:identifier": f"urn:mrn|{tag}"}) == [f["org"]]
    assert found(fhir, "Patient", [("_has:CarePlan:subject:identifier", tag),
                                   ("_has:ServiceRequest:subject:_id", f["sr_old"])]) == [f["old"]]


def test_chain_errors(fhir):
    for params, named in (({"name.family": "x"}, "name.family"),
                          ({"organization:Patient.name": "x"}, "organization:Patient.name"),
                          ({"general-practitioner.name:zzz": "x"}, "general-practitioner.name:zzz"),
                          ({"_has:Observation:code:code": "1"}, "_has:Observation:code:code"),
                          ({"_has:Observation:subject": "1"}, "_has:Observation:subject"),
                          ({"organization.partof.partof.partof.partof.partof.partof.name": "x"},
                           "organization.partof.partof.partof.partof.partof.partof.name")):
        body = error(fhir, "Patient", params)
        assert named in body["issue"][0]["diagnostics"], body
        assert body["issue"][0]["expression"] == [named]
    # an unknown chained parameter: ignored with a warning (lenient), 400 under handling=strict
    r = fhir.get("Patient", params={"organization.nope": "x"}, headers={"Prefer": "handling=strict"})
    assert r.status_code == 400
    b = get(fhir, "Patient", {"organization.nope": "x", "_count": "1"})
    assert b["entry"][-1]["search"]["mode"] == "outcome"
