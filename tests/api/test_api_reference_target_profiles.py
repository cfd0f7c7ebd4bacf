"""Reference target profiles on write (R4 ``ElementDefinition.type.targetProfile``), over HTTP on both backends:
a CarePlan profile whose ``careTeam`` must reference a CareTeam conforming to a CareTeam profile is enforced
against the ``meta.profile`` the referenced CareTeam stored on this server claims."""

from __future__ import annotations

import pytest

FHIR_JSON = {"Content-Type": "application/fhir+json"}
WANT_OO = {**FHIR_JSON, "Prefer": "return=OperationOutcome"}
BASE = "http://hl7.org/fhir/StructureDefinition/"


def _sd(url: str, sid: str, rtype: str, elements: list[dict]) -> dict:
    return {"resourceType": "StructureDefinition", "id": sid, "url": url, "name": sid.replace("-", ""),
            "status": "active", "fhirVersion": "4.0.1", "kind": "resource", "abstract": False, "type": rtype,
            "baseDefinition": BASE + rtype, "derivation": "constraint",
            "differential": {"element": [{"id": rtype, "path": rtype}, *elements]}}


@pytest.fixture
def profiles(fhir, tag) -> tuple[str, str]:
    """(CareTeam profile, CarePlan profile whose careTeam must conform to it), stored through the API."""
    ct = f"http://example.org/StructureDefinition/cares-careteam-{tag}"
    cp = f"http://example.org/StructureDefinition/cares-careplan-{tag}"
    for sd in (_sd(ct, f"ct-{tag}", "CareTeam", [{"id": "CareTeam.name", "path": "CareTeam.name", "min": 1}]),
               _sd(cp, f"cp-{tag}", "CarePlan", [{"id": "CarePlan.careTeam", "path": "CarePlan.careTeam",
                                                  "type": [{"code": "Reference", "targetProfile": [ct]}]}])):
        r = fhir.put(f"StructureDefinition/{sd['id']}", json=sd, headers=FHIR_JSON)
        assert r.status_code in (200, 201), r.text
    return ct, cp


def _careteam(fhir, tag: str, claims: list[str]) -> str:
    team = {"resourceType": "CareTeam", "name": f"team {tag}", **({"meta": {"profile": claims}} if claims else {})}
    r = fhir.post("CareTeam", json=team, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    return f"CareTeam/{r.json()['id']}"


def _careplan(cp: str, team_ref: str) -> dict:
    return {"resourceType": "CarePlan", "meta": {"profile": [cp]}, "status": "active", "intent": "plan",
            "subject": {"reference": "Patient/whoever"}, "careTeam": [{"reference": team_ref}]}


def _issues(body: dict, *severities: str) -> list[dict]:
    assert body["resourceType"] == "OperationOutcome", body
    return [i for i in body["issue"] if i["severity"] in severities]


def test_careteam_claiming_the_profile_is_accepted(fhir, tag, profiles):
    ct, cp = profiles
    team = _careteam(fhir, tag, [ct])
    r = fhir.post("CarePlan", json=_careplan(cp, team), headers=WANT_OO)
    assert r.status_code == 201, r.text
    assert [i for i in _issues(r.json(), "error", "warning") if "careTeam" in i["diagnostics"]] == [], r.text


def test_careteam_not_claiming_the_profile_is_rejected(fhir, tag, profiles):
    ct, cp = profiles
    team = _careteam(fhir, tag, [])
    r = fhir.post("CarePlan", json=_careplan(cp, team), headers=FHIR_JSON)
    assert r.status_code == 422, r.text
    errors = _issues(r.json(), "error")
    assert [i.get("expression") for i in errors] == [["CarePlan.careTeam[0]"]], errors
    assert ct in errors[0]["diagnostics"] and team in errors[0]["diagnostics"], errors
    assert fhir.get("CarePlan", params={"care-team": team}).json().get("total", 0) == 0
    # $validate reports the same error (200), and says nothing once the target claims the profile
    r = fhir.post("CarePlan/$validate", json=_careplan(cp, team), headers=FHIR_JSON)
    assert r.status_code == 200 and [i.get("expression") for i in _issues(r.json(), "error")] \
        == [["CarePlan.careTeam[0]"]], r.text
    fhir.put(team, json={"resourceType": "CareTeam", "id": team.split("/")[1], "name": "x",
                         "meta": {"profile": [ct]}}, headers=FHIR_JSON).raise_for_status()
    r = fhir.post("CarePlan", json=_careplan(cp, team), headers=FHIR_JSON)
    assert r.status_code == 201, r.text


def test_update_and_patch_are_checked(fhir, tag, profiles):
    ct, cp = profiles
    good, bad = _careteam(fhir, tag, [ct]), _careteam(fhir, tag, ["http://example.org/other"])
    r = fhir.post("CarePlan", json=_careplan(cp, good), headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    plan = r.json()
    r = fhir.put(f"CarePlan/{plan['id']}", json={**plan, "careTeam": [{"reference": bad}]}, headers=FHIR_JSON)
    assert r.status_code == 422, r.text
    r = fhir.patch(f"CarePlan/{plan['id']}", json=[{"op": "replace", "path": "/careTeam/0/reference", "value": bad}],
                   headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 422, r.text
    assert [i.get("expression") for i in _issues(r.json(), "error")] == [["CarePlan.careTeam[0]"]], r.text
    assert fhir.get(f"CarePlan/{plan['id']}").json()["meta"]["versionId"] == "1"


def test_careteam_not_on_this_server_is_a_warning(fhir, tag, profiles):
    ct, cp = profiles
    missing = f"CareTeam/missing-{tag}"
    r = fhir.post("CarePlan", json=_careplan(cp, missing), headers=WANT_OO)
    assert r.status_code == 201, r.text
    warnings = _issues(r.json(), "warning")
    assert any(f"could not be checked: {missing} is not on this server" in i["diagnostics"]
               and i.get("expression") == ["CarePlan.careTeam[0]"] for i in warnings), r.text
    deleted = _careteam(fhir, tag, [ct])  # a deleted target is not on this server either
    assert fhir.delete(deleted).status_code in (200, 204)
    r = fhir.post("CarePlan", json=_careplan(cp, deleted), headers=WANT_OO)
    assert r.status_code == 201 and any("not on this server" in i["diagnostics"]
                                        for i in _issues(r.json(), "warning")), r.text


def test_transaction_sees_its_own_targets(fhir, tag, profiles):
    ct, cp = profiles
    urn = "urn:uuid:" + f"{tag:0<32}"[:8] + "-0000-4000-8000-" + f"{tag:0<12}"[:12]
    plan = {**_careplan(cp, urn), "id": f"plan-{tag}"}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": plan, "request": {"method": "PUT", "url": f"CarePlan/plan-{tag}"}},
        {"fullUrl": urn, "resource": {"resourceType": "CareTeam", "name": tag, "meta": {"profile": [ct]}},
         "request": {"method": "POST", "url": "CareTeam"}}]}
    r = fhir.post("", json=bundle, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    bundle["entry"][1]["resource"]["meta"] = {"profile": ["http://example.org/other"]}
    bundle["entry"][0]["resource"] = {**plan, "id": f"plan2-{tag}"}
    bundle["entry"][0]["request"]["url"] = f"CarePlan/plan2-{tag}"
    r = fhir.post("", json=bundle, headers=FHIR_JSON)
    assert r.status_code == 422, r.text
    assert fhir.get(f"CarePlan/plan2-{tag}").status_code == 404


@pytest.mark.parametrize("team_claims, status", [("profile", 200), ("other", 422)])
def test_transaction_checks_a_target_written_by_a_later_entry(fhir, tag, profiles, team_claims, status):
    """Both entries are POSTs, so they run in Bundle order: the CarePlan is checked before its CareTeam is stored.
    The CareTeam the transaction is about to write is the target checked (as for an ICP entry before the entry of
    its emergency plan, Appendix M §VI.A.1.c.vi(5)) — not a "not on this server" warning."""
    ct, cp = profiles
    urn = "urn:uuid:" + f"{tag:0<32}"[:8] + "-1111-4000-8000-" + f"{tag:0<12}"[:12]
    claim = ct if team_claims == "profile" else "http://example.org/other"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _careplan(cp, urn), "request": {"method": "POST", "url": "CarePlan"}},
        {"fullUrl": urn, "resource": {"resourceType": "CareTeam", "name": tag, "meta": {"profile": [claim]},
                                      "identifier": [{"system": "urn:test", "value": tag}]},
         "request": {"method": "POST", "url": "CareTeam"}}]}
    r = fhir.post("", json=bundle, headers=WANT_OO)
    assert r.status_code == status, r.text
    stored = fhir.get("CareTeam", params={"identifier": f"urn:test|{tag}", "_total": "accurate"}).json()["total"]
    if status == 422:
        assert any("CarePlan.careTeam[0]" in (i.get("expression") or [""])[0] for i in _issues(r.json(), "error"))
        assert stored == 0
    else:
        assert stored == 1
        outcome = r.json()["entry"][0]["response"].get("outcome") or {"resourceType": "OperationOutcome", "issue": []}
        assert not any("not on this server" in i.get("diagnostics", "") for i in outcome["issue"]), r.text
