"""The CARES program-lifecycle guide over HTTP on both backends (issue 6, point 8 with its part of 9–12): the
enrollment EpisodeOfCare (``cares-enrollment``), the enrollment and termination letters (``cares-letter-enrollment``,
``cares-letter-termination``), the CCM clinical-manager notification (``cares-communication-ccm-notification``), the
Consents (``cares-consent-roi``, ``cares-consent-icp-approval``, ``cares-consent-removal``), the aftercare/transition
plan (``cares-aftercare-plan``), the care coordination activity (``cares-activity``), the CARES team member
(``cares-staff``), the yearly reassessment and six-monthly monitoring reviews (``cares-reassessment``,
``cares-monitoring``), their extensions (``cares-ext-program-*``), value sets, code systems and SearchParameters
(``cares-searchparameters-program``), and the examples under ``profiles/data/examples/program/``.

Appendix M = MassHealth Physician Manual Appendix M (CARES Program Performance Specifications, PHY-176):
§IV staff qualifications, §V training (3 months), §VI.A.1.b yearly reassessment, §VI.A.1.c.v ICP approval,
§VI.B.1 care coordination activities and the monthly qualifying services, §VI.D.1 six-monthly monitoring,
§VIII member assignment (referral/identification date, enrollment effective date, designated care manager, CCM
notification, HIPAA release of information, the enrollment letter within 30 days), §IX.A the 8 reasons for removal of
assignment, §IX.B.1–5 the aftercare/transition plan and its signed consent, §IX.C the termination letter.

Each invalid example breaks one rule; ``manifest.json`` names the rule, the expected issue expression and the
Appendix M section the OperationOutcome must cite.
"""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta

import pytest

from tests.ig.guide import BASE, CS, DEMO, FHIR_JSON, IG, ROOT, SD, VS
from tests.ig.guide import errors as _errors
from tests.ig.guide import validate as _validate

EXAMPLES = ROOT / "profiles" / "data" / "examples" / "program"
MANIFEST = json.loads((EXAMPLES / "manifest.json").read_text(encoding="utf-8"))

ENROLLMENT, CONSENT_REMOVAL, AFTERCARE = SD + "cares-enrollment", SD + "cares-consent-removal", \
    SD + "cares-aftercare-plan"
ENROLLMENT_LETTER, TERMINATION_LETTER, CCM_NOTIFICATION = SD + "cares-letter-enrollment", \
    SD + "cares-letter-termination", SD + "cares-communication-ccm-notification"
EXTENSIONS = tuple(SD + f"cares-ext-program-{n}" for n in ("referral-date", "ccm-enrollment", "removal-reason",
                                                          "removal-consent", "aftercare-content",
                                                          "effective-date", "letter-content",
                                                          "monthly-qualifying", "staff-qualification",
                                                          "staff-training"))
RULE_PROFILES = ("cares-enrollment", "cares-consent-removal", "cares-aftercare-plan", "cares-letter-enrollment",
                 "cares-letter-termination", "cares-communication-ccm-notification",
                 "cares-communication-dcf-notification", "cares-consent-roi",
                 "cares-consent-icp-approval", "cares-activity", "cares-staff", "cares-reassessment",
                 "cares-monitoring", "cares-ext-program-removal-reason")
PROFILE_NAMES = (*RULE_PROFILES[:-1],
                 *(u.rsplit("/", 1)[1] for u in EXTENSIONS))
TERMINOLOGY = ("episodeofcare-type", "removal-reason", "aftercare-content", "consent-category",
               "communication-category", "communication-content", "staff-qualification", "staff-training-topic",
               "episodeofcare-review-type")
SEARCH_PARAMS = {("removal-reason", "EpisodeOfCare"), ("ccm-enrolled", "EpisodeOfCare"),
                 ("referral-date", "EpisodeOfCare"), ("removal-reason", "CarePlan"),
                 ("monthly-qualifying", "Procedure"), ("training-topic", "PractitionerRole")}
REMOVAL_EXT = SD + "cares-ext-program-removal-reason"


def _load(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def _valid_resources() -> list[dict]:
    return [e["resource"] for e in _load("valid-program-transaction.json")["entry"]]


def _example(rid: str) -> dict:
    res = copy.deepcopy(next(r for r in _valid_resources() if r["id"] == rid))
    del res["id"]
    return res


def _keys(oo: dict) -> set[str]:
    """The keys of the failed invariants ("constraint <key> failed")."""
    return {i["diagnostics"].split("constraint ", 1)[1].split(" ", 1)[0] for i in _errors(oo)
            if "constraint " in i["diagnostics"]}


@pytest.fixture
def examples(fhir) -> dict:
    """The valid example transaction (PUTs with fixed ids: idempotent on the shared test servers)."""
    r = fhir.post("", json=_load("valid-program-transaction.json"), headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    body = r.json()
    assert all(e["response"]["status"][:3] in ("200", "201") for e in body["entry"]), body
    return body


# -- the guide is served ----------------------------------------------------------------------------------------

def test_profiles_are_served_and_searchable(fhir):
    for name in PROFILE_NAMES:
        url = SD + name
        r = fhir.get("StructureDefinition", params={"url": url})
        assert r.status_code == 200, r.text
        found = [e["resource"] for e in r.json().get("entry", [])]
        assert [sd["url"] for sd in found] == [url]
        sd = found[0]
        assert sd["version"] == "0.1.0" and sd["derivation"] == "constraint" and sd["status"] == "active"
        assert fhir.get(f"StructureDefinition/{sd['id']}").json()["url"] == url
    bundle = fhir.get("StructureDefinition", params={"url:below": SD + "cares-ext-program-"}).json()
    assert set(EXTENSIONS) <= {e["resource"]["url"] for e in bundle.get("entry", [])}
    eoc = fhir.get("StructureDefinition", params={"type": "EpisodeOfCare", "url:below": SD}).json()
    assert ENROLLMENT in {e["resource"]["url"] for e in eoc.get("entry", [])}


def test_terminology_and_search_parameters_are_served(fhir):
    for name in TERMINOLOGY:
        assert fhir.get("ValueSet", params={"url": VS + name}).json().get("total") == 1, name
        assert fhir.get("CodeSystem", params={"url": CS + name}).json().get("total") == 1, name
    for code, base in SEARCH_PARAMS:
        r = fhir.get("SearchParameter", params={"code": code, "base": base}).json()
        assert [e["resource"]["url"] for e in r.get("entry", [])] == \
            [f"{BASE}/SearchParameter/cares-{base.lower()}-{code}"], (code, r)
    cs = fhir.get("metadata").json()
    params = {rt["type"]: {p["name"] for p in rt.get("searchParam", [])} for rt in cs["rest"][0]["resource"]}
    assert {"removal-reason", "ccm-enrolled", "referral-date"} <= params["EpisodeOfCare"]
    assert "removal-reason" in params["CarePlan"]
    assert "monthly-qualifying" in params["Procedure"]


def test_removal_reason_value_set_has_the_eight_reasons_of_ix_a(fhir):
    """Appendix M §IX.A.1–8: exactly eight removal reasons, each citing its item."""
    r = fhir.get("ValueSet/$expand", params={"url": VS + "removal-reason"})
    assert r.status_code == 200, r.text
    codes = r.json()["expansion"]["contains"]
    assert len(codes) == 8
    cs = fhir.get("CodeSystem", params={"url": CS + "removal-reason"}).json()["entry"][0]["resource"]
    assert [c["definition"].rsplit("§IX.A.", 1)[1][0] for c in cs["concept"]] == [str(n) for n in range(1, 9)]
    for name in TERMINOLOGY:
        r = fhir.get("ValueSet/$expand", params={"url": VS + name})
        assert r.status_code == 200 and r.json()["expansion"]["contains"], name


def test_demo_episodeofcare_type_is_in_the_value_set(fhir):
    """The demo data set's EpisodeOfCare type code is kept (the guide formalises it)."""
    wanted = set()
    for path in sorted(DEMO.glob("child-*.json")):
        for e in json.loads(path.read_text(encoding="utf-8"))["entry"]:
            if e["resource"]["resourceType"] == "EpisodeOfCare":
                wanted |= {(c["system"], c["code"]) for t in e["resource"]["type"] for c in t["coding"]}
    assert wanted == {(CS + "episodeofcare-type", "cares")}
    r = fhir.get("ValueSet/$validate-code", params={"url": VS + "episodeofcare-type",
                                                    "system": CS + "episodeofcare-type", "code": "cares"})
    assert next(p for p in r.json()["parameter"] if p["name"] == "result")["valueBoolean"] is True


# -- traceability: every constrained element cites Appendix M ------------------------------------------------------

@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_constrained_element_cites_appendix_m(name):
    sd = json.loads((IG / f"{name}.json").read_text(encoding="utf-8"))
    for el in sd["differential"]["element"]:
        constrained = set(el) - {"id", "path", "short", "definition", "comment"}
        if el["path"].endswith(".url") or el.get("max") == "0":
            continue  # the fixed extension url / a prohibited element: structure, not a program rule
        if constrained:
            assert "Appendix M §" in el.get("requirements", ""), el["id"]
        for c in el.get("constraint", []):
            assert c["key"].startswith("cares-") and "Appendix M §" in c["human"]
            assert "Appendix M §" in c["requirements"], c["key"]
            assert "source" not in c or c["source"].startswith("http"), c["key"]


# -- valid examples --------------------------------------------------------------------------------------------

def test_valid_examples_are_stored_and_validate(fhir, examples):
    for res in _valid_resources():
        stored = fhir.get(f"{res['resourceType']}/{res['id']}").json()
        for profile in res["meta"].get("profile", []):
            if profile.startswith(SD + "cares-patient"):
                continue  # another profile of the guide (issue 6 point 1)
            oo = _validate(fhir, stored, profile)
            assert _errors(oo) == [], (res["id"], oo)
        if res["resourceType"] != "Patient":  # a second Patient would repeat the member id
            r = fhir.post(res["resourceType"], json=_example(res["id"]), headers=FHIR_JSON)
            assert r.status_code == 201, (res["id"], r.text)


# -- invalid examples: one per Appendix M rule --------------------------------------------------------------------

@pytest.mark.parametrize("case", MANIFEST["invalid"], ids=[c["file"][8:-5] for c in MANIFEST["invalid"]])
def test_invalid_example_is_rejected_with_the_rule_and_its_section(fhir, examples, case):
    resource = _load(case["file"])
    assert case["profile"] in resource["meta"]["profile"]
    r = fhir.post(resource["resourceType"], json=resource, headers=FHIR_JSON)
    assert r.status_code == 422, (case["file"], r.text)

    def hits(oo: dict) -> list[dict]:
        return [i for i in _errors(oo) if i.get("expression") == [case["expression"]]
                and case["source"] in i["diagnostics"]]

    assert hits(r.json()), (case, r.json())
    assert hits(_validate(fhir, resource, case["profile"])), case
    assert hits(_validate(fhir, resource)), case
    # the rule is the only error: each example breaks one rule
    others = [i for i in _errors(r.json()) if i not in hits(r.json())]
    assert others == [], others


def test_every_rule_has_an_invalid_example():
    """Each cares-* error invariant of the program profiles is exercised by at least one invalid example; a warning
    (which never rejects) by a test named in the manifest's otherTests."""
    keys: dict[str, set[str]] = {"error": set(), "warning": set()}
    for name in RULE_PROFILES:
        sd = json.loads((IG / f"{name}.json").read_text(encoding="utf-8"))
        for el in sd["differential"]["element"]:
            for c in el.get("constraint", []):
                keys[c["severity"]].add(c["key"])
    assert keys["error"] <= {c["rule"] for c in MANIFEST["invalid"]}
    assert keys["warning"] <= {c["rule"].split(" ", 1)[0] for c in MANIFEST["otherTests"]}


def test_enrollment_lifecycle(fhir, examples):
    """An assignment removed with a reason and a termination date passes; each of the 8 reasons is accepted; a
    cancelled enrollment may carry a reason; referral date equal to the effective date passes (§VIII, §IX.A)."""
    eoc = _example("cares-ex-enrollment-removed")
    for code in ("no-longer-eligible", "conditions-no-longer-managed", "icp-goals-met", "needs-met-without-cares",
                 "family-not-interested", "masshealth-ineligible", "moved-out-of-state", "member-chose-unassignment"):
        eoc["extension"][1]["valueCodeableConcept"] = {"coding": [{"system": CS + "removal-reason", "code": code}]}
        assert _errors(_validate(fhir, eoc)) == [], code
    eoc["status"] = "cancelled"
    del eoc["period"]["end"]
    assert fhir.post("EpisodeOfCare", json=eoc, headers=FHIR_JSON).status_code == 201
    active = _example("cares-ex-enrollment")
    active["extension"][0]["valueDate"] = active["period"]["start"]
    assert fhir.post("EpisodeOfCare", json=active, headers=FHIR_JSON).status_code == 201
    # the removal reason carried as free text only is not one of the 8 reasons
    eoc["extension"][1]["valueCodeableConcept"] = {"text": "moved to Texas"}
    assert _errors(_validate(fhir, eoc)), "a removal reason without a code must fail the required binding"


def test_aftercare_consent_must_be_a_cares_removal_consent(fhir, examples):
    """The aftercare plan's removalConsent must reach a Consent claiming cares-consent-removal (§IX.B.1)."""
    plain = _example("cares-ex-consent-removal")
    del plain["meta"]["profile"]
    r = fhir.post("Consent", json=plain, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    plan = _example("cares-ex-aftercare-plan")
    plan["extension"][1]["valueReference"] = {"reference": f"Consent/{r.json()['id']}"}
    bad = fhir.post("CarePlan", json=plan, headers=FHIR_JSON)
    assert bad.status_code == 422, bad.text
    assert any(CONSENT_REMOVAL in i["diagnostics"] for i in _errors(bad.json())), bad.json()


def test_a_training_not_done_yet_is_recorded_and_overdue_is_a_warning(fhir, examples):
    """Appendix M §V.A: trainings are completed within three months of employment. A new team member's trainings are
    recorded before they are done (no completion date); once the deadline (employment + 3 months, or a later ``due``)
    has passed, the staff record is stored with the cares-stf-7 warning; a late completion stays an error
    (cares-stf-4)."""
    staff = _example("cares-ex-staff-scm")
    trainings = [e for e in staff["extension"] if e["url"] == SD + "cares-ext-program-staff-training"]
    trainings[-1]["extension"] = [x for x in trainings[-1]["extension"] if x["url"] != "completed"]
    want_oo = {**FHIR_JSON, "Prefer": "return=OperationOutcome"}

    def post(start: date, due: date | None = None) -> set[str]:
        staff["period"] = {"start": start.isoformat()}
        for x in trainings[:-1]:
            next(v for v in x["extension"] if v["url"] == "completed")["valueDate"] = start.isoformat()
        trainings[-1]["extension"] = [x for x in trainings[-1]["extension"] if x["url"] != "due"]
        if due:
            trainings[-1]["extension"].append({"url": "due", "valueDate": due.isoformat()})
        r = fhir.post("PractitionerRole", json=staff, headers=want_oo)
        assert r.status_code == 201, r.text
        return {i["diagnostics"].split("constraint ", 1)[1].split(" ", 1)[0]
                for i in _errors(r.json(), "warning") if "constraint " in i["diagnostics"]}

    today = date.today()
    assert "cares-stf-7" not in post(today - timedelta(days=30))  # new: due within the three months
    assert "cares-stf-7" in post(today - timedelta(days=120))  # three months passed, not done
    assert "cares-stf-7" not in post(today - timedelta(days=120), due=today + timedelta(days=10))  # later deadline
    assert "cares-stf-7" in post(today - timedelta(days=200), due=today - timedelta(days=1))


def test_deadline_boundaries(fhir, examples):
    """The 30-day letters (§VIII, §IX.C) and the 3-month training deadline (§V.A) are inclusive, counted by day; a
    training completed after 3 months passes when a later relevant update of the requirements set its deadline."""
    letter = _example("cares-ex-letter-enrollment")
    letter["sent"] = "2026-04-01T23:00:00-04:00"  # 2026-03-02 + 30 days
    assert _keys(_validate(fhir, letter)) == set()
    letter["sent"] = "2026-04-02T00:30:00-04:00"
    assert _keys(_validate(fhir, letter)) == {"cares-enl-1"}
    term = _example("cares-ex-letter-termination")
    term["sent"] = "2026-01-30"  # 2025-12-31 + 30 days
    assert _keys(_validate(fhir, term)) == set()
    term["sent"] = "2026-01-31"
    assert _keys(_validate(fhir, term)) == {"cares-tml-1"}
    staff = _example("cares-ex-staff-scm")
    staff["extension"][1]["extension"][1]["valueDate"] = "2025-12-02"  # 2025-09-02 + 3 months
    assert _keys(_validate(fhir, staff)) == set()
    staff["extension"][1]["extension"][1]["valueDate"] = "2026-02-10"
    assert _keys(_validate(fhir, staff)) == {"cares-stf-4"}
    staff["extension"][1]["extension"].append({"url": "due", "valueDate": "2026-03-01"})
    assert _keys(_validate(fhir, staff)) == set()
    assert fhir.post("PractitionerRole", json=staff, headers=FHIR_JSON).status_code == 201


def test_monthly_qualifying_codes_are_the_code_systems(fhir):
    """cares-act-1 lists the codes that can count as a monthly qualifying service; they are exactly the
    care-coordination-activity codes with property monthly-qualifying = true (Appendix M §VI.B.1.a.ii, b, f)."""
    cs = json.loads((ROOT / "terminology" / "data" / "cares" / "care-coordination-activity.json").read_text(
        encoding="utf-8"))["entry"][0]["resource"]
    qualifying = {c["code"] for c in cs["concept"]
                  if any(p["code"] == "monthly-qualifying" and p.get("valueBoolean") for p in c.get("property", []))}
    sd = json.loads((IG / "cares-activity.json").read_text(encoding="utf-8"))
    expr = next(c["expression"] for c in sd["differential"]["element"][0]["constraint"] if c["key"] == "cares-act-1")
    listed = set(expr.split("code in (", 1)[1].split(")", 1)[0].replace("'", "").replace(" ", "").split("|"))
    assert listed == qualifying and "on-call-triage" not in listed
    # every qualifying code may be counted; a non-qualifying one may not
    act = _example("cares-ex-activity-regular-contact")
    for c in cs["concept"]:
        act["code"] = {"coding": [{"system": CS + "care-coordination-activity", "code": c["code"]}]}
        keys = _keys(_validate(fhir, act))
        assert ("cares-act-1" in keys) == (c["code"] not in qualifying), (c["code"], keys)


# -- SearchParameters (worklists, issue 6 point 10) ---------------------------------------------------------------

def _ids(fhir, rtype: str, params: dict) -> list[str]:
    r = fhir.get(rtype, params={**params, "_count": "100"}, headers={"Prefer": "handling=strict"})
    assert r.status_code == 200, r.text
    return sorted(e["resource"]["id"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match")


def test_worklist_search_parameters(fhir, examples, tag):
    org = {"resourceType": "Organization", "name": f"CARES provider {tag}"}
    r = fhir.post("Organization", json=org, headers=FHIR_JSON)
    assert r.status_code == 201
    mine = {"organization": f"Organization/{r.json()['id']}"}
    org_ref = {"reference": mine["organization"]}
    made = {}
    for name, rid, code in (("active", "cares-ex-enrollment", None),
                            ("moved", "cares-ex-enrollment-removed", "moved-out-of-state"),
                            ("met", "cares-ex-enrollment-removed", "icp-goals-met")):
        eoc = _example(rid)
        eoc["managingOrganization"] = {"reference": mine["organization"]}
        if code:
            eoc["extension"][1]["valueCodeableConcept"] = {"coding": [{"system": CS + "removal-reason", "code": code}]}
        r = fhir.post("EpisodeOfCare", json=eoc, headers=FHIR_JSON)
        assert r.status_code == 201, r.text
        made[name] = r.json()["id"]
    assert _ids(fhir, "EpisodeOfCare", {**mine, "removal-reason": f"{CS}removal-reason|moved-out-of-state"}) == \
        [made["moved"]]
    assert _ids(fhir, "EpisodeOfCare", {**mine, "removal-reason": "icp-goals-met"}) == [made["met"]]
    assert _ids(fhir, "EpisodeOfCare", {**mine, "ccm-enrolled": "true"}) == [made["active"]]
    assert _ids(fhir, "EpisodeOfCare", {**mine, "referral-date": "ge2026-01-01"}) == [made["active"]]
    assert _ids(fhir, "EpisodeOfCare", {**mine, "status": "finished"}) == sorted([made["moved"], made["met"]])
    acts = {}
    for rid in ("cares-ex-activity-regular-contact", "cares-ex-activity-on-call"):
        act = _example(rid)
        act["performer"] = [{"actor": {"reference": "Practitioner/cares-ex-prog-cm"}, "onBehalfOf": org_ref}]
        r = fhir.post("Procedure", json=act, headers=FHIR_JSON)
        assert r.status_code == 201, r.text
        acts[rid] = r.json()["id"]
    found = _ids(fhir, "Procedure", {"subject": "Patient/cares-ex-prog-child", "monthly-qualifying": "true",
                                     "date": "ge2026-03-01"})
    assert acts["cares-ex-activity-regular-contact"] in found and acts["cares-ex-activity-on-call"] not in found
    assert acts["cares-ex-activity-on-call"] in _ids(fhir, "Procedure", {"subject": "Patient/cares-ex-prog-child",
                                                                         "monthly-qualifying": "false"})
    staff = _example("cares-ex-staff-scm")
    staff["organization"] = org_ref
    staff["extension"] = staff["extension"][:3]  # two §V.A trainings only
    r = fhir.post("PractitionerRole", json=staff, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    topic = f"{CS}staff-training-topic|equity-implicit-bias"
    assert _ids(fhir, "PractitionerRole", {**mine, "training-topic": topic}) == [r.json()["id"]]
    assert _ids(fhir, "PractitionerRole", {**mine, "training-topic": "educational-systems"}) == []
    assert _ids(fhir, "CarePlan", {"subject": "Patient/cares-ex-prog-child",
                                   "removal-reason": "icp-goals-met"}) != []


# -- the demo data set against the profiles -----------------------------------------------------------------------

#: What the demo data set (fhir_server/demo/child-*.json) misses, by profile and rule: nothing. The enrollments carry
#: the referral/identification date and the CCM enrollment flag (§VIII), the enrollment letters and the CCM notification
#: carry each required content as a coded payload part (cares-enl-2, cares-ccm-1) and the letters the enrollment
#: effective date (§VIII); each of these resources claims its profile (tests/demo/test_demo_server_load.py).
DEMO_MISSES: dict[tuple[str, str], int] = {}
#: (resource type, category / type code) -> the profile a demo resource is checked against
DEMO_PROFILES = {("EpisodeOfCare", "cares"): "cares-enrollment", ("Consent", "64292-6"): "cares-consent-roi",
                 ("Communication", "enrollment-letter"): "cares-letter-enrollment",
                 ("Communication", "ccm-notification"): "cares-communication-ccm-notification"}


def test_demo_program_resources_against_the_profiles(fhir):
    misses: dict[tuple[str, str], int] = {}
    checked: dict[str, int] = {}
    for path in sorted(DEMO.glob("child-*.json")):
        for e in json.loads(path.read_text(encoding="utf-8"))["entry"]:
            res = e["resource"]
            concepts = res.get("category") or res.get("type") or []
            codes = [c.get("code") for cc in concepts if isinstance(cc, dict) for c in cc.get("coding", [])]
            for name in {DEMO_PROFILES[(res["resourceType"], c)] for c in codes if (res["resourceType"], c) in
                         DEMO_PROFILES}:
                checked[name] = checked.get(name, 0) + 1
                for i in _errors(_validate(fhir, res, SD + name)):
                    diag = i["diagnostics"]
                    key = diag.split("constraint ", 1)[1].split(" ", 1)[0] if "constraint " in diag else \
                        i["expression"][0]
                    misses[(name, key)] = misses.get((name, key), 0) + 1
    assert checked == {"cares-enrollment": 5, "cares-consent-roi": 5, "cares-letter-enrollment": 5,
                       "cares-communication-ccm-notification": 1}, checked
    # no other rule is missed (counts as of this writing; a demo fix may lower them)
    assert set(misses) <= set(DEMO_MISSES), misses
    assert all(n <= DEMO_MISSES[k] for k, n in misses.items()), misses


def test_manifest_names_tests_that_exist():
    """The traceability data of the examples (Appendix M section → rule → test) names tests of this module."""
    cases = {c["file"][8:-5] for c in MANIFEST["invalid"]}
    for entry in [*MANIFEST["invalid"], *MANIFEST["otherTests"]]:
        path, _, name = entry["test"].partition("::")
        assert path == "tests/ig/test_ig_program.py" and entry["source"].startswith("Appendix M §"), entry
        func, _, case = name.partition("[")
        assert callable(globals().get(func)), entry
        assert not case or case[:-1] in cases, entry
