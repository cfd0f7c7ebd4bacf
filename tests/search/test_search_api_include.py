"""_include / _revinclude with :iterate and *, and compartment search — over HTTP on both backends."""

from __future__ import annotations

from tests.search.api_helpers import all_ids, error, get, ids, make


def _plan(fhir, tag: str) -> dict[str, str]:
    org = make(fhir, {"resourceType": "Organization", "name": f"Org{tag}"})
    doc = make(fhir, {"resourceType": "Practitioner", "name": [{"family": f"Doc{tag}"}]})
    pat = make(fhir, {"resourceType": "Patient", "identifier": [{"value": tag}],
                      "managingOrganization": {"reference": f"Organization/{org}"},
                      "generalPractitioner": [{"reference": f"Practitioner/{doc}"}]})
    team = make(fhir, {"resourceType": "CareTeam", "subject": {"reference": f"Patient/{pat}"},
                       "participant": [{"member": {"reference": f"Practitioner/{doc}"}}]})
    cp = make(fhir, {"resourceType": "CarePlan", "status": "active", "intent": "plan", "identifier": [{"value": tag}],
                     "subject": {"reference": f"Patient/{pat}"}, "careTeam": [{"reference": f"CareTeam/{team}"}]})
    goal = make(fhir, {"resourceType": "Goal", "lifecycleStatus": "active", "description": {"text": "walk"},
                       "subject": {"reference": f"Patient/{pat}"}})
    sr = make(fhir, {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                     "subject": {"reference": f"Patient/{pat}"}, "requester": {"reference": f"Practitioner/{doc}"}})
    task = make(fhir, {"resourceType": "Task", "status": "requested", "intent": "order",
                       "focus": {"reference": f"ServiceRequest/{sr}"}, "for": {"reference": f"Patient/{pat}"}})
    other = make(fhir, {"resourceType": "Patient", "identifier": [{"value": "x" + tag}]})
    return {"org": org, "doc": doc, "pat": pat, "team": team, "cp": cp, "goal": goal, "sr": sr, "task": task,
            "other": other}


def test_include_iterate_and_wildcard(fhir, tag):
    f = _plan(fhir, tag)
    b = get(fhir, "CarePlan", {"identifier": tag, "_include": "CarePlan:care-team"})
    assert ids(b) == [f["cp"]] and ids(b, "include") == [f["team"]]
    # :iterate follows the included CareTeam on to its participants
    b = get(fhir, "CarePlan", [("identifier", tag), ("_include", "CarePlan:care-team"),
                               ("_include:iterate", "CareTeam:participant")])
    assert sorted(ids(b, "include")) == sorted([f["team"], f["doc"]])
    # without :iterate an include of another type is refused (it would never apply to the matches)
    error(fhir, "CarePlan", [("identifier", tag), ("_include", "CareTeam:participant")])
    # * : every reference parameter of the type
    b = get(fhir, "Patient", {"identifier": tag, "_include": "Patient:*"})
    assert sorted(ids(b, "include")) == sorted([f["org"], f["doc"]])
    b = get(fhir, "CarePlan", {"identifier": tag, "_include": "*"})
    assert sorted(ids(b, "include")) == sorted([f["pat"], f["team"]])
    # revinclude iterate: the patient's service requests, then the tasks on them
    b = get(fhir, "Patient", [("identifier", tag), ("_revinclude", "ServiceRequest:subject"),
                              ("_revinclude:iterate", "Task:focus")])
    assert ids(b) == [f["pat"]] and sorted(ids(b, "include")) == sorted([f["sr"], f["task"]])
    b = get(fhir, "Patient", {"identifier": tag, "_revinclude": "Goal:*"})
    assert ids(b, "include") == [f["goal"]]
    # iterate through _include then _revinclude, without repeating resources
    b = get(fhir, "Task", [("_id", f["task"]), ("_include", "Task:focus"), ("_include:iterate", "ServiceRequest:*"),
                           ("_revinclude:iterate", "CarePlan:subject")])
    inc = ids(b, "include")
    assert len(inc) == len(set(inc))
    assert sorted(inc) == sorted([f["sr"], f["pat"], f["doc"], f["cp"]])
    assert all(e["search"]["mode"] in ("match", "include") for e in b["entry"])


def test_include_errors(fhir):
    for params, named in (({"_revinclude": "*"}, "_revinclude"),
                          ({"_include": "Patient:name"}, "_include"),
                          ({"_include:foo": "Patient:organization"}, "_include:foo"),
                          ({"_include": "Observation:subject"}, "_include")):
        body = error(fhir, "Patient", params)
        assert named in body["issue"][0]["diagnostics"]


def test_compartment(fhir, tag):
    f = _plan(fhir, tag)
    pat = f["pat"]
    assert sorted(all_ids(fhir, f"Patient/{pat}/CarePlan", {})) == [f["cp"]]
    assert sorted(all_ids(fhir, f"Patient/{pat}/Task", {})) == [f["task"]]
    assert all_ids(fhir, f"Patient/{f['other']}/CarePlan", {}) == []
    assert all_ids(fhir, f"Patient/{pat}/CarePlan", {"status": "completed"}) == []
    b = get(fhir, f"Patient/{pat}/CarePlan", {"_include": "CarePlan:care-team"})
    assert ids(b, "include") == [f["team"]]
    assert b["link"][0]["url"].split("?")[0].endswith(f"Patient/{pat}/CarePlan")
    everything = {f["cp"], f["team"], f["goal"], f["sr"], f["task"], pat}
    assert set(all_ids(fhir, f"Patient/{pat}/*", {})) == everything
    paged = all_ids(fhir, f"Patient/{pat}/*", {"_count": "2"})
    assert len(paged) == len(set(paged)) == len(everything) and set(paged) == everything
    b = get(fhir, f"Patient/{pat}/*", {"_count": "2", "_total": "accurate", "_sort": "-_lastUpdated"})
    assert b["total"] == len(everything) and ids(b) == [f["task"], f["sr"]]
    types = {e["resource"]["resourceType"] for e in get(fhir, f"Patient/{pat}/*", {})["entry"]}
    assert types == {"CarePlan", "CareTeam", "Goal", "ServiceRequest", "Task", "Patient"}
    assert {e["fullUrl"].rsplit("/", 2)[1] for e in get(fhir, f"Patient/{pat}/*", {})["entry"]} == types
    error(fhir, f"Patient/{pat}/Organization", {})
    error(fhir, f"Patient/{pat}/*", {"status": "active"})
    error(fhir, f"Patient/{pat}/Nope", {}, status=404)
