"""The CARES member, family, care team and goal guide over HTTP on both backends (issue 6, points 1, 3, 5 and their
part of 9, 11, 12): the profiles ``cares-patient`` (derived from US Core 5.0.1 us-core-patient),
``cares-relatedperson``, ``cares-careteam``, ``cares-goal``, the extension ``cares-ext-member-guardianship-status``,
the code systems / value sets ``care-team-role``, ``care-team-first-line-role``, ``goal-domain``, ``goal-term``,
``member-relationship``, ``member-guardianship-status``, and the examples under
``profiles/data/examples/member-team-goal/``.

Appendix M = MassHealth Physician Manual Appendix M (CARES Program Performance Specifications, PHY-176):
§VI.A.1.a.i (guardianship status in the member's history), §VI.A.1.c.vi(1) (care team members with name and contact
information), §VI.A.1.c.vi(2)(ii) (long- and short-term clinical, functional, developmental, social and aspirational
goals, specific and time-specific), §VI.A.1.b.ii(1)(a) (progress toward goals at reassessment), §VI.B.1.a (exactly
one designated first-line contact, a care coordinator or senior care manager), §VI.B.1.b (24/7 phone line), §VI.C
(transition stages by age: birth date), §VIII (MassHealth member; the ICP in the family's primary language).

Each invalid example breaks one rule; ``manifest.json`` names the rule, the expected issue expression and the
Appendix M section the OperationOutcome must cite.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest

from tests.ig.guide import CS, FHIR_JSON, IG, ROOT, SD, VS, validate
from tests.ig.guide import errors as _errors

EXAMPLES = ROOT / "profiles" / "data" / "examples" / "member-team-goal"
TX = ROOT / "terminology" / "data" / "cares"
MANIFEST = json.loads((EXAMPLES / "manifest.json").read_text(encoding="utf-8"))

PROFILE_IDS = ("cares-patient", "cares-relatedperson", "cares-careteam", "cares-goal",
               "cares-ext-member-guardianship-status")
BY_TYPE = {"Patient": SD + "cares-patient", "RelatedPerson": SD + "cares-relatedperson",
           "CareTeam": SD + "cares-careteam", "Goal": SD + "cares-goal"}
VALUE_SETS = ("care-team-role", "care-team-first-line-role", "goal-domain", "goal-term", "member-relationship",
              "member-guardianship-status")
CODE_SYSTEMS = ("care-team-role", "goal-domain", "goal-term", "member-guardianship-status")
US_CORE_PATIENT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
CITE = re.compile(r"Appendix M §[IVX]+(\.[A-Za-z0-9()]+)*")
PATIENT_REF, PARENT_REF = "Patient/cares-example-member", "RelatedPerson/cares-example-parent"


def _load(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def _rewrite(resource: dict, refs: dict[str, str]) -> dict:
    """The example without its id, with the example references pointing at the resources the test created."""
    text = json.dumps({k: v for k, v in resource.items() if k != "id"})
    for old, new in refs.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    return json.loads(text)


def _post(fhir, resource: dict):
    return fhir.post(resource["resourceType"], json=resource, headers=FHIR_JSON)


def _validate(fhir, resource: dict, profile: str) -> dict:
    return validate(fhir, resource, profile, bare=True)  # the profile comes from the parameter only


@pytest.fixture
def family(fhir) -> dict[str, str]:
    """The valid example member and parent, created on the server: example reference -> server reference."""
    r = _post(fhir, _rewrite(_load("valid-patient.json"), {}))
    assert r.status_code == 201, r.text
    refs = {PATIENT_REF: f"Patient/{r.json()['id']}"}
    r = _post(fhir, _rewrite(_load("valid-relatedperson.json"), refs))
    assert r.status_code == 201, r.text
    refs[PARENT_REF] = f"RelatedPerson/{r.json()['id']}"
    return refs


# -- the guide's resources are served ----------------------------------------------------------------------------

@pytest.mark.parametrize("sid", PROFILE_IDS)
def test_profiles_are_readable_and_searchable_by_url(fhir, sid):
    r = fhir.get(f"StructureDefinition/{sid}")
    assert r.status_code == 200, r.text
    sd = r.json()
    assert sd["url"] == SD + sid and sd["version"] == "0.1.0" and sd["derivation"] == "constraint"
    found = fhir.get("StructureDefinition", params={"url": SD + sid}).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [sid]


def test_member_profile_derives_from_us_core_patient(fhir):
    """cares-patient is based on US Core 5.0.1 us-core-patient (vendored in profiles/data/uscore/): US Core's own
    requirements (gender 1..1, name 1..*) are inherited and enforced."""
    assert fhir.get("StructureDefinition/cares-patient").json()["baseDefinition"] == US_CORE_PATIENT
    patient = _load("valid-patient.json")
    del patient["gender"], patient["name"]
    oo = _validate(fhir, patient, SD + "cares-patient")
    assert {"Patient.gender", "Patient.name"} <= {e for i in _errors(oo) for e in i.get("expression", [])}, oo


def test_only_the_vendored_us_core_version_is_known(fhir):
    """profiles/data/uscore/ is US Core 5.0.1: a resource claiming another US Core version (us-core-patient|9.0.0,
    where gender is optional) is not checked against 5.0.1 (unknown profile: a warning), 5.0.1 itself is."""
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "1"}],
               "name": [{"family": "Example"}]}
    for version, status in (("9.0.0", 201), ("5.0.1", 422)):
        r = fhir.post("Patient", json={**patient, "meta": {"profile": [f"{US_CORE_PATIENT}|{version}"]}},
                      headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"})
        assert r.status_code == status, r.text
        if status == 201:
            assert any("unknown profile" in i["diagnostics"] or "not known" in i["diagnostics"]
                       for i in r.json()["issue"]), r.text
        else:
            assert "Patient.gender" in r.text


@pytest.mark.parametrize("vid", VALUE_SETS)
def test_value_sets_are_served_and_expand(fhir, vid):
    found = fhir.get("ValueSet", params={"url": VS + vid}).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [vid]
    r = fhir.get("ValueSet/$expand", params={"url": VS + vid})
    assert r.status_code == 200, r.text
    codes = {c["code"] for c in r.json()["expansion"]["contains"]}
    expected = {"care-team-role": {"care-coordinator", "senior-care-manager", "first-line-contact", "pcp",
                                   "ccm-clinical-manager", "csn-nurse", "state-agency-personnel", "parent-guardian"},
                "care-team-first-line-role": {"care-coordinator", "senior-care-manager"},
                "goal-domain": {"clinical", "functional", "developmental", "social", "aspirational"},
                "goal-term": {"long-term", "short-term"},
                "member-relationship": {"MTH", "FTH", "GUARD"},
                "member-guardianship-status": {"parent-natural-guardian", "court-appointed-guardian"}}[vid]
    assert expected <= codes, codes
    if vid == "care-team-first-line-role":
        assert codes == expected  # Appendix M §VI.B.1.a: only these two may be the first-line contact


@pytest.mark.parametrize("cid", CODE_SYSTEMS)
def test_code_systems_are_served(fhir, cid):
    found = fhir.get("CodeSystem", params={"url": CS + cid}).json()
    (entry,) = found["entry"]
    assert entry["resource"]["content"] == "complete" and entry["resource"]["version"] == "0.1.0"


# -- valid examples ------------------------------------------------------------------------------------------------

def test_valid_examples_are_created_and_validate(fhir, family):
    """Each valid example, POSTed with its meta.profile (enforced on write), is created; $validate against the
    profile (given as a parameter, meta.profile stripped) finds no error."""
    for name in ("valid-patient.json", "valid-relatedperson.json", "valid-careteam.json", "valid-goal.json"):
        resource = _rewrite(_load(name), family)
        r = _post(fhir, resource)
        assert r.status_code == 201, (name, r.text)
        assert r.json()["meta"]["profile"] == resource["meta"]["profile"]
        assert _errors(_validate(fhir, resource, resource["meta"]["profile"][0])) == [], name


def test_valid_careteam_references_resolve_to_the_family(fhir, family):
    created = _post(fhir, _rewrite(_load("valid-careteam.json"), family)).json()
    assert created["subject"]["reference"] == family[PATIENT_REF]
    parent = next(p for p in created["participant"] if p["member"]["reference"] == family[PARENT_REF])
    assert fhir.get(parent["member"]["reference"]).json()["telecom"]  # contact details on the RelatedPerson


# -- invalid examples: one per Appendix M rule ---------------------------------------------------------------------

@pytest.mark.parametrize("case", MANIFEST["invalid"], ids=[c["file"] for c in MANIFEST["invalid"]])
def test_invalid_example_is_rejected_with_the_rule(fhir, family, case):
    resource = _rewrite(_load(case["file"]), family)
    assert resource["meta"]["profile"] == [case["profile"]]
    r = _post(fhir, resource)
    assert r.status_code == 422, r.text
    errors = _errors(r.json())
    hits = [i for i in errors if case["expression"] in i.get("expression", [])]
    assert hits, (case, errors)
    assert any(case["rule"] in i["diagnostics"] or case["rule"].split(":")[-1] in i["diagnostics"]
               or case["source"] in i["diagnostics"] for i in hits), (case, hits)
    assert any("Appendix M §" in i["diagnostics"] for i in hits), hits  # the OperationOutcome cites the rule
    # $validate with the profile parameter agrees
    oo = _validate(fhir, resource, case["profile"])
    assert case["expression"] in {e for i in _errors(oo) for e in i.get("expression", [])}, oo


def test_first_line_contact_errors_cite_the_section(fhir, family):
    resource = _rewrite(_load("invalid-careteam-no-first-line-contact.json"), family)
    (issue,) = [i for i in _errors(_post(fhir, resource).json()) if "cares-ct-1" in i["diagnostics"]]
    assert issue["expression"] == ["CareTeam"] and "Appendix M §VI.B.1.a" in issue["diagnostics"]


def test_update_cannot_drop_the_first_line_contact(fhir, family):
    created = _post(fhir, _rewrite(_load("valid-careteam.json"), family)).json()
    created["participant"][0]["role"] = created["participant"][0]["role"][:1]
    r = fhir.put(f"CareTeam/{created['id']}", json=created, headers=FHIR_JSON)
    assert r.status_code == 422 and "cares-ct-1" in r.text
    assert fhir.get(f"CareTeam/{created['id']}").json()["meta"]["versionId"] == "1"


def test_warnings_do_not_block(fhir, family):
    """cares-ct-3 (member.display) and cares-goal-3 (achievementStatus of an active goal older than the yearly
    reassessment) are warnings."""
    team = _rewrite(_load("valid-careteam.json"), family)
    del team["participant"][-1]["member"]["display"]
    goal = _rewrite(_load("valid-goal.json"), family)
    del goal["achievementStatus"]
    goal["startDate"] = (date.today() - timedelta(days=400)).isoformat()
    for resource, key in ((team, "cares-ct-3"), (goal, "cares-goal-3")):
        r = fhir.post(resource["resourceType"], json=resource,
                      headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"})
        assert r.status_code == 201, r.text
        assert any(key in i["diagnostics"] for i in r.json()["issue"] if i["severity"] == "warning"), r.text


def test_a_new_active_goal_needs_no_achievement_status(fhir, family):
    """Appendix M §VI.A.1.b.ii(1)(a): progress is determined at the yearly reassessment (§VI.A.1.b), so an active goal
    that started less than a year ago has no achievement status yet and gets no cares-goal-3 warning."""
    goal = _rewrite(_load("valid-goal.json"), family)
    del goal["achievementStatus"]
    goal["startDate"] = (date.today() - timedelta(days=30)).isoformat()
    for target in goal["target"]:
        target["dueDate"] = (date.today() + timedelta(days=180)).isoformat()
    r = fhir.post("Goal", json=goal, headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"})
    assert r.status_code == 201, r.text
    assert "cares-goal-3" not in r.text


# -- the demo children against these profiles ----------------------------------------------------------------------

def test_demo_resources_validate_against_the_profiles(fhir):
    """Every demo Patient, RelatedPerson, CareTeam and Goal (5 children: 5 + 7 + 5 + 18) conforms (no error)."""
    from fhir_server.demo import load_bundles

    passed: dict[str, int] = {}
    failures = []
    for name, bundle in load_bundles():
        for entry in bundle["entry"]:
            resource = entry["resource"]
            profile = BY_TYPE.get(resource["resourceType"])
            if profile is None:
                continue
            errors = _errors(_validate(fhir, resource, profile))
            if errors:
                failures.append((name, resource["resourceType"], errors))
            else:
                passed[resource["resourceType"]] = passed.get(resource["resourceType"], 0) + 1
    assert failures == []
    assert passed == {"Patient": 5, "RelatedPerson": 7, "CareTeam": 5, "Goal": 18}


def test_demo_codes_are_in_the_code_systems():
    """The demo data's care-team-role, goal-domain and goal-term codes are all defined (no demo change needed)."""
    from fhir_server.demo import load_bundles

    defined = {}
    for f in ("care-team-role.json", "goal-domain.json", "goal-term.json"):
        for e in json.loads((TX / f).read_text(encoding="utf-8"))["entry"]:
            if e["resource"]["resourceType"] == "CodeSystem":
                defined[e["resource"]["url"]] = {c["code"] for c in e["resource"]["concept"]}
    used: set[tuple[str, str]] = set()

    def walk(x) -> None:
        if isinstance(x, dict):
            if x.get("system") in defined and "code" in x:
                used.add((x["system"], x["code"]))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for _, bundle in load_bundles():
        walk(bundle)
    assert len(used) > 20
    assert [u for u in used if u[1] not in defined[u[0]]] == []


# -- traceability ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sid", PROFILE_IDS)
def test_every_constrained_element_cites_appendix_m(sid):
    """Each differential element (except an extension's url / nested extension) and each invariant cites its
    Appendix M section, so the guide's traceability table can be generated from the profiles."""
    sd = json.loads((IG / f"{sid}.json").read_text(encoding="utf-8"))
    assert CITE.search(sd["purpose"]), sd["purpose"]
    for el in sd["differential"]["element"]:
        if el["path"] in ("Extension.url", "Extension.extension"):
            continue
        assert CITE.search(el.get("requirements", "")), el["id"]
        for c in el.get("constraint", []):
            assert c["key"].startswith("cares-") and CITE.search(c["requirements"]) and CITE.search(c["human"]), c


def test_every_invalid_example_names_its_rule_and_section():
    keys = {c["key"] for sid in PROFILE_IDS
            for el in json.loads((IG / f"{sid}.json").read_text(encoding="utf-8"))["differential"]["element"]
            for c in el.get("constraint", []) if c["severity"] == "error"}
    covered = {c["rule"] for c in MANIFEST["invalid"]}
    assert keys <= covered, keys - covered  # every error invariant has an invalid example
    assert all(CITE.fullmatch(c["source"]) for c in MANIFEST["invalid"]), MANIFEST["invalid"]
    files = {p.name for p in EXAMPLES.glob("invalid-*.json")}
    assert files == {c["file"] for c in MANIFEST["invalid"]}
    assert {p.name for p in EXAMPLES.glob("valid-*.json")} == {c["file"] for c in MANIFEST["valid"]}
    assert {c["profile"] for c in MANIFEST["valid"]} == set(BY_TYPE.values())


def test_care_team_members_on_this_server_have_contact_information(fhir, family):
    """cares-ct-4 (Appendix M §VI.A.1.c.vi(1): name and contact information of each care team member) against the
    stored members: a practitioner stored without telecom or address rejects the team (422, nothing written); once
    the practitioner has a phone number the same team is stored. A member not on this server cannot be checked."""
    bare = {"resourceType": "Practitioner", "name": [{"family": "Okonkwo", "given": ["Ifeoma"]}]}
    r = _post(fhir, bare)
    assert r.status_code == 201, r.text
    nurse = r.json()
    team = _rewrite(_load("valid-careteam.json"), family)
    team["participant"][4]["member"] = {"reference": f"Practitioner/{nurse['id']}", "display": "Ifeoma Okonkwo, RN"}
    before = fhir.get("CareTeam", params={"_summary": "count"}).json()["total"]
    r = _post(fhir, team)
    assert r.status_code == 422 and "cares-ct-4" in r.text and "Appendix M §VI.A.1.c.vi(1)" in r.text, r.text
    assert fhir.get("CareTeam", params={"_summary": "count"}).json()["total"] == before
    nurse["telecom"] = [{"system": "phone", "value": "978-555-0101", "use": "work"}]
    assert fhir.put(f"Practitioner/{nurse['id']}", json=nurse, headers=FHIR_JSON).status_code == 200
    r = _post(fhir, team)
    assert r.status_code == 201, r.text
    team["participant"][4]["member"]["reference"] = "Practitioner/not-on-this-server"
    assert _post(fhir, team).status_code == 201
