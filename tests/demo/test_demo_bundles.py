"""The demo data set: transaction shape, references, and the CARES content each child must carry.

Every Patient, RelatedPerson, CareTeam, Goal, ICP and emergency-plan CarePlan, ICP health-summary Composition,
referral ServiceRequest and follow-up Task, enrollment EpisodeOfCare, release-of-information Consent, enrollment letter
and CCM notification Communication, and each CARES staff PractitionerRole of the shared bundle claims its CARES guide
profile (``profiles/data/ig/``) in ``meta.profile``; ``test_demo_server_load.py`` checks over HTTP that each one
validates with no error.

Program rules checked here are the ones in MassHealth Physician Manual Appendix M (PHY-176):
ICP contents §VI.A.1.c, care team §VI.A.1.c.vi(1), emergency plan §VI.A.1.c.vi(5), first-line contact
§VI.B.1.a, 30-day referral follow-up §VI.D.2, transition to adulthood §VI.C, 60-day ICP and 30-day
enrollment letter, referral date, CCM notification and release of information §VIII, staff qualifications §IV.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_server.demo import DEMO_DIR, SHARED_BUNDLE, bundle_paths, load_bundles

ROOT = Path(__file__).resolve().parents[2]
SID_MEMBER = "http://cares-fhir.org/fhir/sid/masshealth-member-id"
CS = "http://cares-fhir.org/fhir/CodeSystem/"
CS_ROLE = CS + "care-team-role"
CS_CAREPLAN = CS + "careplan-category"
SD = "http://cares-fhir.org/fhir/StructureDefinition/"
EXT_EMERGENCY_PLAN = SD + "cares-ext-icp-emergency-plan"
# The CARES profile every resource of these kinds claims (CarePlans by category; see the README).
PROFILE_OF = {"Patient": "cares-patient", "RelatedPerson": "cares-relatedperson", "CareTeam": "cares-careteam",
              "Goal": "cares-goal", "Composition": "cares-icp-health-summary", "ServiceRequest": "cares-referral",
              "Task": "cares-followup-task", "EpisodeOfCare": "cares-enrollment"}
PLAN_PROFILE_OF = {"icp": "cares-icp", "emergency-plan": "cares-emergency-plan"}
# Consents and Communications by category code.
CATEGORY_PROFILE_OF = {("Consent", "64292-6"): "cares-consent-roi",
                       ("Communication", "enrollment-letter"): "cares-letter-enrollment",
                       ("Communication", "ccm-notification"): "cares-communication-ccm-notification",
                       ("Communication", "icp-shared"): "cares-icp-shared"}
# The CARES program's own staff (Appendix M §IV), by PractitionerRole code, and the qualifications cares-staff
# requires of the role (cares-stf-2, cares-stf-3; None: any code of the staff-qualification code system).
CARES_STAFF_ROLES: dict[str, set[str] | None] = {"program-director": {"md", "do", "np", "pa"},
                                                 "senior-care-manager": {"rn", "np", "social-worker",
                                                                         "masters-relevant"},
                                                 "care-coordinator": None, "family-support-staff": None}
AS_OF = date(2026, 6, 15)  # "today" in the demo's story

BUNDLES = dict(load_bundles())
SHARED = BUNDLES[SHARED_BUNDLE]
CHILDREN = {name: b for name, b in BUNDLES.items() if name != SHARED_BUNDLE}
CHILD_IDS = sorted(CHILDREN)

# Codes from published terminologies used by the demo, as reviewed: a new code must be added here on purpose.
REVIEWED = {
    "http://snomed.info/sct": {
        "128188000": "Cerebral palsy", "84757009": "Epilepsy", "444932008": "Dependence on ventilator",
        "40739000": "Dysphagia", "235595009": "Gastroesophageal reflux disease", "67531005": "Spina bifida",
        "230745008": "Hydrocephalus", "41040004": "Complete trisomy 21 syndrome",
        "78275009": "Obstructive sleep apnea syndrome", "40930008": "Hypothyroidism",
        "110359009": "Intellectual disability", "76670001": "Duchenne muscular dystrophy",
        "298382003": "Scoliosis deformity of spine", "716186003": "No known allergy", "111088007": "Latex",
        "3457005": "Patient referral", "26643006": "Oral route", "127490009": "Gastrostomy route",
        "127492001": "Nasal route", "447694001": "Respiratory tract route",
    },
    "http://hl7.org/fhir/sid/icd-10-cm": {
        "P27.1": "Bronchopulmonary dysplasia originating in the perinatal period",
        "Z99.11": "Dependence on respirator [ventilator] status", "Z93.0": "Tracheostomy status",
        "Z93.1": "Gastrostomy status", "G80.0": "Spastic quadriplegic cerebral palsy",
        "G40.909": "Epilepsy, unspecified, not intractable, without status epilepticus",
        "K21.9": "Gastro-esophageal reflux disease without esophagitis",
        "Q05.4": "Unspecified spina bifida with hydrocephalus",
        "N31.9": "Neuromuscular dysfunction of bladder, unspecified", "Q90.9": "Down syndrome, unspecified",
        "Z87.74": "Personal history of (corrected) congenital malformations of heart and circulatory system",
        "G47.33": "Obstructive sleep apnea (adult) (pediatric)", "E03.9": "Hypothyroidism, unspecified",
        "F70": "Mild intellectual disabilities", "G71.01": "Duchenne or Becker muscular dystrophy",
        "I42.0": "Dilated cardiomyopathy", "J96.12": "Chronic respiratory failure with hypercapnia",
        "M41.40": "Neuromuscular scoliosis, site unspecified", "R13.12": "Dysphagia, oropharyngeal phase",
    },
    "http://www.nlm.nih.gov/research/umls/rxnorm": {
        "19831": "budesonide", "4603": "furosemide", "435": "albuterol", "7646": "omeprazole",
        "114477": "levetiracetam", "6960": "midazolam", "1292": "baclofen", "723": "amoxicillin",
        "32675": "oxybutynin", "10582": "levothyroxine", "41126": "fluticasone", "29046": "lisinopril",
    },
    "http://loinc.org": {
        "LA28865-6": "Longitudinal care-coordination focused care team", "64292-6": "Release of information consent",
        "60591-5": "Patient summary Document",
    },
}


# ------------------------------------------------------------------------------------------ helpers
def resources(bundle: dict[str, Any], rtype: str | None = None) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if rtype is None or e["resource"]["resourceType"] == rtype]


def by_urn(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


def urn_of(bundle: dict[str, Any], resource: dict[str, Any]) -> str:
    return next(e["fullUrl"] for e in bundle["entry"] if e["resource"] is resource)


def shared_ids() -> dict[str, dict[str, Any]]:
    return {e["request"]["url"]: e["resource"] for e in SHARED["entry"]}


def codes(concepts: list[dict[str, Any]] | dict[str, Any], system: str) -> set[str]:
    if isinstance(concepts, dict):
        concepts = [concepts]
    return {c["code"] for cc in concepts for c in cc.get("coding", []) if c.get("system") == system}


def references(value: Any):
    """Every ``reference`` string inside ``value`` (Reference elements anywhere)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "reference" and isinstance(v, str):
                yield v
            else:
                yield from references(v)
    elif isinstance(value, list):
        for v in value:
            yield from references(v)


def care_plans(bundle: dict[str, Any], category: str) -> list[dict[str, Any]]:
    return [r for r in resources(bundle, "CarePlan") if category in codes(r["category"], CS_CAREPLAN)]


def the_icp(bundle: dict[str, Any]) -> dict[str, Any]:
    (icp,) = care_plans(bundle, "icp")
    return icp


def day(value: str) -> date:
    return date.fromisoformat(value[:10])


def age(birth: str, on: date = AS_OF) -> int:
    b = date.fromisoformat(birth)
    return on.year - b.year - ((on.month, on.day) < (b.month, b.day))


def patient(bundle: dict[str, Any]) -> dict[str, Any]:
    (p,) = resources(bundle, "Patient")
    return p


def ext(res: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The extensions ``SD + name`` of ``res``."""
    return [e for e in res.get("extension", []) if e["url"] == SD + name]


def sub(extension: dict[str, Any], url: str) -> list[Any]:
    """The values of the sub-extensions ``url`` of a complex extension."""
    return [next(v for k, v in e.items() if k.startswith("value")) for e in extension["extension"] if e["url"] == url]


# ------------------------------------------------------------------------------------------ files and shape
def test_demo_files_present_and_in_load_order():
    names = [p.name for p in bundle_paths()]
    assert names[0] == SHARED_BUNDLE
    assert names[1:] == [f"child-{i:02d}-transaction.json" for i in range(1, len(names))]
    assert 4 <= len(CHILDREN) <= 5
    assert (DEMO_DIR / "README.md").is_file()


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_demo_bundle_is_a_transaction_with_requests(name):
    bundle = BUNDLES[name]
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    assert bundle["entry"]
    for e in bundle["entry"]:
        assert "request" in e and e["request"]["method"] in ("POST", "PUT"), e


def test_demo_shared_bundle_is_puts_with_readable_ids():
    seen = set()
    for e in SHARED["entry"]:
        res, req = e["resource"], e["request"]
        assert req["method"] == "PUT"
        assert req["url"] == f"{res['resourceType']}/{res['id']}"
        assert req["url"] not in seen
        seen.add(req["url"])
        assert res["resourceType"] in ("Organization", "Practitioner", "PractitionerRole")
        assert res["id"].islower() and " " not in res["id"] and len(res["id"]) <= 64
    kinds = Counter(r["resourceType"] for r in resources(SHARED))
    assert kinds["Organization"] >= 8 and kinds["Practitioner"] == kinds["PractitionerRole"] >= 10


def test_demo_every_practitioner_has_a_role_name_and_contact():
    ids = shared_ids()
    for res in resources(SHARED, "Practitioner"):
        assert res["name"][0]["family"] and res["name"][0]["given"]
        assert any(t["system"] == "phone" for t in res["telecom"])
        role = ids[f"PractitionerRole/{res['id']}"]
        assert role["practitioner"]["reference"] == f"Practitioner/{res['id']}"
        assert role["organization"]["reference"] in ids
        assert codes(role["code"], CS_ROLE)
    for res in resources(SHARED, "Organization"):
        assert res["name"] and any(t["system"] == "phone" for t in res["telecom"])


def test_demo_shared_bundle_has_the_partner_kinds():
    role_codes = set().union(*(codes(r["code"], CS_ROLE) for r in resources(SHARED, "PractitionerRole")))
    assert {"care-coordinator", "senior-care-manager", "pcp", "specialist", "ccm-clinical-manager", "csn-nurse",
            "school-nurse", "school-personnel", "early-intervention", "program-director"} <= role_codes
    org_text = " ".join(t.get("text", "") for r in resources(SHARED, "Organization") for t in r["type"]).lower()
    for kind in ("cares provider", "hospital", "primary care", "early intervention", "school district", "csn",
                 "durable medical equipment", "ccm"):
        assert kind in org_text, kind


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_child_entries_are_posts_with_uuid_fullurls(name):
    bundle = CHILDREN[name]
    for e in bundle["entry"]:
        assert e["request"]["method"] == "POST"
        assert e["request"]["url"] == e["resource"]["resourceType"]
        assert e["fullUrl"].startswith("urn:uuid:")
        assert "id" not in e["resource"]
    (pat_entry,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    (ident,) = [i for i in pat_entry["resource"]["identifier"] if i["system"] == SID_MEMBER]
    assert pat_entry["request"]["ifNoneExist"] == f"identifier={SID_MEMBER}|{ident['value']}"
    others = [e for e in bundle["entry"] if e is not pat_entry]
    assert all("ifNoneExist" not in e["request"] for e in others)


def test_demo_member_ids_and_fullurls_unique_across_children():
    members = [i["value"] for b in CHILDREN.values() for i in patient(b)["identifier"] if i["system"] == SID_MEMBER]
    assert len(members) == len(set(members)) == len(CHILDREN)
    urls = [e["fullUrl"] for b in CHILDREN.values() for e in b["entry"]]
    assert len(urls) == len(set(urls))


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_demo_every_resource_is_tagged_as_test_data(name):
    for res in resources(BUNDLES[name]):
        tags = {(t["system"], t["code"]) for t in res["meta"]["tag"]}
        assert ("http://terminology.hl7.org/CodeSystem/v3-ActReason", "HTEST") in tags


# ------------------------------------------------------------------------------------------ references
def test_demo_shared_references_resolve_within_the_shared_bundle():
    ids = shared_ids()
    for res in resources(SHARED):
        for target in references(res):
            assert target in ids, f"{res['resourceType']}/{res['id']} -> {target}"


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_child_references_resolve(name):
    """Literal ``Type/id`` references point to a PUT of the shared bundle; ``urn:uuid:`` ones to this bundle."""
    bundle, ids = CHILDREN[name], shared_ids()
    local = by_urn(bundle)
    for e in bundle["entry"]:
        for target in references(e["resource"]):
            if target.startswith("urn:uuid:"):
                assert target in local, f"{e['fullUrl']} -> {target} (not in {name})"
            else:
                assert target in ids, f"{e['fullUrl']} -> {target} (not a shared PUT)"


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_child_resources_are_about_this_child(name):
    bundle = CHILDREN[name]
    pat = urn_of(bundle, patient(bundle))
    for res in resources(bundle):
        for key in ("subject", "patient", "for"):
            if key in res:
                assert res[key]["reference"] == pat, (res["resourceType"], key)


def _without_emergency_plan_link(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_emergency_plan_link(v) for k, v in value.items()
                if not (k == "extension" and isinstance(v, list))} | (
            {"extension": [_without_emergency_plan_link(e) for e in value["extension"]
                           if e.get("url") != EXT_EMERGENCY_PLAN]} if isinstance(value.get("extension"), list) else {})
    if isinstance(value, list):
        return [_without_emergency_plan_link(v) for v in value]
    return value


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_urn_reference_graph_has_no_cycles(name):
    """So a loader that orders entries by their references (instead of pre-assigning ids) also works – except the
    one cycle the CARES guide requires: the ICP names its emergency plan (cares-ext-icp-emergency-plan) and the
    emergency plan is ``partOf`` the ICP. Entries are in dependency order otherwise (targets first)."""
    bundle = CHILDREN[name]
    edges = {e["fullUrl"]: {t for t in references(_without_emergency_plan_link(e["resource"])) if t.startswith("urn:")}
             for e in bundle["entry"]}
    position = {e["fullUrl"]: i for i, e in enumerate(bundle["entry"])}
    for node, targets in edges.items():
        assert all(position[t] < position[node] for t in targets), f"{node} is before a target it references"
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 2:
            return
        assert state.get(node) != 1, f"cycle: {trail + [node]}"
        state[node] = 1
        for nxt in edges[node]:
            visit(nxt, trail + [node])
        state[node] = 2

    for node in edges:
        visit(node, [])


# ------------------------------------------------------------------------------------------ what each child has
@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_child_has_the_expected_kinds(name):
    bundle = CHILDREN[name]
    kinds = Counter(r["resourceType"] for r in resources(bundle))
    assert kinds["Patient"] == 1 and kinds["CareTeam"] == 1 and kinds["EpisodeOfCare"] == 1 and kinds["Consent"] == 1
    for rtype in ("RelatedPerson", "Condition", "AllergyIntolerance", "MedicationStatement", "ServiceRequest",
                  "Task", "Communication"):
        assert kinds[rtype] >= 1, rtype
    assert 2 <= kinds["Goal"] <= 4
    assert kinds["Composition"] == 1 and kinds["ClinicalImpression"] == 1, "ICP health summary and assessment"
    assert set(kinds) <= {"Patient", "RelatedPerson", "Condition", "AllergyIntolerance", "MedicationStatement",
                          "CareTeam", "Goal", "ServiceRequest", "Task", "CarePlan", "EpisodeOfCare", "Consent",
                          "Communication", "Composition", "ClinicalImpression"}
    assert len(care_plans(bundle, "icp")) == 1 and len(care_plans(bundle, "emergency-plan")) == 1


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_resources_claim_their_cares_profiles(name):
    """Each kind the CARES guide profiles claims its profile, and the server's profile rules
    (profiles/data/profile-rules.json) pick the same profile for it; the rest claim none (yet)."""
    from fhir_server.config import Settings
    from fhir_server.interactions.profile_checks import applicable_profiles

    class _Svc:
        settings = Settings()

    for res in resources(CHILDREN[name]):
        rtype = res["resourceType"]
        profile = PROFILE_OF.get(rtype)
        if rtype == "CarePlan":
            profile = PLAN_PROFILE_OF.get(next(iter(codes(res["category"], CS_CAREPLAN))))
        if rtype in ("Consent", "Communication"):
            (profile,) = {CATEGORY_PROFILE_OF.get((rtype, c["code"])) for cc in res["category"] for c in cc["coding"]}
        claimed = res["meta"].get("profile", [])
        assert claimed == ([SD + profile] if profile else []), (rtype, claimed)
        assert applicable_profiles(_Svc(), res) == claimed, (rtype, "a profile rule disagrees with the claim")


def test_demo_cares_staff_claim_cares_staff():
    """The CARES provider's own staff (program director, senior care managers, care coordinators, family support
    staff) claim cares-staff with a qualification fitting the role and an employment start (Appendix M §IV, §V.A);
    partner roles claim no profile."""
    ids = shared_ids()
    staff = 0
    for res in resources(SHARED, "PractitionerRole"):
        roles = codes(res["code"], CS_ROLE) & set(CARES_STAFF_ROLES)
        if not roles:
            assert "profile" not in res["meta"], res["id"]
            continue
        staff += 1
        assert res["meta"]["profile"] == [SD + "cares-staff"], res["id"]
        assert res["organization"]["reference"] == "Organization/quinapoxet-chc-cares"
        quals = {c["code"] for x in res["extension"] if x["url"] == SD + "cares-ext-program-staff-qualification"
                 for c in x["valueCodeableConcept"]["coding"]}
        assert quals, res["id"]
        for role in roles:
            assert CARES_STAFF_ROLES[role] is None or quals & CARES_STAFF_ROLES[role], (res["id"], role, quals)
        assert day(res["period"]["start"]) < AS_OF
        assert ids[res["practitioner"]["reference"]]["resourceType"] == "Practitioner"
    assert staff == 8


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_patient_and_family(name):
    bundle = CHILDREN[name]
    pat = patient(bundle)
    assert pat["birthDate"] and pat["name"][0]["family"]
    assert [c for c in pat["communication"] if c.get("preferred")], "a preferred language"
    assert pat["generalPractitioner"][0]["reference"].startswith("Practitioner/pcp-")
    for rp in resources(bundle, "RelatedPerson"):
        assert rp["relationship"] and rp["name"] and rp["telecom"]
        assert any(t["system"] == "phone" for t in rp["telecom"])


def test_demo_age_variety_and_transition_age_child():
    ages = sorted(age(patient(b)["birthDate"]) for b in CHILDREN.values())
    assert all(a < 21 for a in ages), "CARES serves members younger than 21"
    assert any(16 <= a <= 17 for a in ages), "one child approaching transition to adulthood (Appendix M §VI.C)"
    assert any(a < 3 for a in ages), "one child in early intervention"
    bands = {0 if a < 5 else 1 if a < 12 else 2 if a < 16 else 3 for a in ages}
    assert len(bands) == 4, ages


def test_demo_family_languages():
    preferred = {c["language"]["coding"][0]["code"] for b in CHILDREN.values()
                 for c in patient(b)["communication"] if c.get("preferred")}
    assert "es" in preferred
    assert preferred & {"pt", "pt-BR", "ht"}
    assert "en" in preferred


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_conditions_are_coded_or_texted(name):
    for cond in resources(CHILDREN[name], "Condition"):
        assert cond["code"].get("text")
        assert codes(cond["clinicalStatus"], "http://terminology.hl7.org/CodeSystem/condition-clinical")


def test_demo_only_reviewed_codes_from_published_terminologies():
    used: dict[tuple[str, str], set[str]] = {}
    for bundle in BUNDLES.values():
        stack: list[Any] = [bundle]
        while stack:
            v = stack.pop()
            if isinstance(v, dict):
                if v.get("system") in REVIEWED and "code" in v:
                    used.setdefault((v["system"], v["code"]), set()).add(v.get("display", ""))
                stack.extend(v.values())
            elif isinstance(v, list):
                stack.extend(v)
    for (system, code), displays in used.items():
        assert code in REVIEWED[system], f"unreviewed {system}|{code} {displays}"
        assert displays == {REVIEWED[system][code]}, (system, code, displays)


def test_demo_local_codes_are_documented_in_the_readme():
    readme = (DEMO_DIR / "README.md").read_text(encoding="utf-8")
    used: set[tuple[str, str]] = set()
    for bundle in BUNDLES.values():
        stack: list[Any] = [bundle]
        while stack:
            v = stack.pop()
            if isinstance(v, dict):
                if str(v.get("system", "")).startswith(CS):
                    used.add((v["system"], v["code"]))
                stack.extend(v.values())
            elif isinstance(v, list):
                stack.extend(v)
    for system, code in used:
        assert system.rsplit("/", 1)[1] in readme, system
        assert f"`{code}`" in readme, f"{system}|{code}"


# ------------------------------------------------------------------------------------------ care team
def _participant_roles(team: dict[str, Any]) -> list[tuple[str, set[str]]]:
    return [(p["member"]["reference"], codes(p["role"], CS_ROLE)) for p in team["participant"]]


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_care_team_roles_and_first_line_contact(name):
    bundle = CHILDREN[name]
    (team,) = resources(bundle, "CareTeam")
    roles = _participant_roles(team)
    all_roles = set().union(*(r for _, r in roles))
    assert {"care-coordinator", "senior-care-manager", "pcp", "specialist", "parent-guardian"} <= all_roles
    assert all_roles & {"school-nurse", "school-personnel", "early-intervention"}
    first = [(member, r) for member, r in roles if "first-line-contact" in r]
    assert len(first) == 1, "exactly one designated first-line contact (Appendix M §VI.B.1.a)"
    assert first[0][1] & {"care-coordinator", "senior-care-manager"}, "a care coordinator or senior care manager"
    assert any("§VI.A.1.c.vi(1)" in n["text"] for n in team["note"])


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_care_team_members_have_name_and_contact(name):
    """ICP: name and contact information for care manager(s) and care team members (§VI.A.1.c.vi(1))."""
    bundle, ids, local = CHILDREN[name], shared_ids(), by_urn(CHILDREN[name])
    (team,) = resources(bundle, "CareTeam")
    for p in team["participant"]:
        target = p["member"]["reference"]
        member = ids.get(target) or local[target]
        assert member["name"], target
        if member["resourceType"] != "Patient":
            assert member["telecom"], target
        if target.startswith("Practitioner/"):
            assert p["onBehalfOf"]["reference"] == ids[f"PractitionerRole/{member['id']}"]["organization"]["reference"]


def test_demo_care_teams_cover_all_partner_roles():
    roles = set()
    for bundle in CHILDREN.values():
        (team,) = resources(bundle, "CareTeam")
        roles |= set().union(*(r for _, r in _participant_roles(team)))
    assert {"school-nurse", "school-personnel", "ccm-clinical-manager", "csn-nurse", "early-intervention",
            "family-support-staff", "adult-clinician", "member"} <= roles


# ------------------------------------------------------------------------------------------ ICP and goals
@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_icp(name):
    bundle = CHILDREN[name]
    local, icp = by_urn(bundle), the_icp(bundle)
    assert icp["status"] == "active" and icp["intent"] == "plan"
    assert day(icp["period"]["start"]) < day(icp["period"]["end"])
    assert icp["author"]["reference"].startswith("Practitioner/cares-")
    assert [local[r["reference"]]["resourceType"] for r in icp["careTeam"]] == ["CareTeam"]
    assert {local[r["reference"]]["resourceType"] for r in icp["addresses"]} == {"Condition"}
    goals = [local[g["reference"]] for g in icp["goal"]]
    assert {g["resourceType"] for g in goals} == {"Goal"} and 2 <= len(goals) <= 4
    assert {urn_of(bundle, g) for g in goals} == {urn_of(bundle, g) for g in resources(bundle, "Goal")}
    details = [a["detail"] for a in icp["activity"] if "detail" in a]
    assert details and all(d.get("performer") and d.get("description") for d in details), "responsible persons"
    referred = {a["reference"]["reference"] for a in icp["activity"] if "reference" in a}
    assert referred == {urn_of(bundle, s) for s in resources(bundle, "ServiceRequest")}, "every referral in the ICP"
    assert "§VI.A.1.c" in " ".join(n["text"] for n in icp["note"])
    acted_on = {g["reference"] for d in details for g in d.get("goal", [])}
    assert {g["reference"] for g in icp["goal"]} <= acted_on, "every goal has an action step (§VI.A.1.c.vi(3))"
    barriers = [e for d in details for e in d.get("extension", []) if e["url"] == SD + "cares-ext-icp-barrier"]
    assert barriers and all(b["valueString"] for b in barriers), "potential barriers (§VI.A.1.c.iii)"


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_icp_approval_and_sharing(name):
    """Approved by the member or parent/guardian (§VI.A.1.c.v) after the ICP was written, then shared with the PCP."""
    bundle = CHILDREN[name]
    local, icp = by_urn(bundle), the_icp(bundle)
    (approval,) = ext(icp, "cares-ext-icp-approval")
    (method,) = sub(approval, "method")
    (approver,) = sub(approval, "approver")
    (approved,) = sub(approval, "date")
    assert local[approver["reference"]]["resourceType"] in ("RelatedPerson", "Patient")
    assert day(icp["created"]) <= day(approved) <= AS_OF
    if method["code"] == "verbal":
        (due,) = sub(approval, "signatureDueDate")
        assert sub(approval, "noSignatureReason") or sub(approval, "accommodationNeed")
        assert day(approved) < day(due) <= day(approved) + timedelta(days=92), "signature due within 3 months"
        for signed in sub(approval, "signatureDate"):
            assert day(approved) <= day(signed) <= day(due)
    else:
        assert not sub(approval, "signatureDueDate") and not sub(approval, "noSignatureReason")
    (shared,) = ext(icp, "cares-ext-icp-pcp-shared")
    assert day(approved) <= day(sub(shared, "date")[0]) <= AS_OF
    assert sub(shared, "recipient")[0]["reference"] == patient(bundle)["generalPractitioner"][0]["reference"]


def test_demo_approval_methods_vary():
    methods = {sub(ext(the_icp(b), "cares-ext-icp-approval")[0], "method")[0]["code"] for b in CHILDREN.values()}
    assert {"electronic-signature", "verbal"} <= methods


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_icp_links_emergency_plan_health_summary_and_assessment(name):
    bundle = CHILDREN[name]
    local, icp = by_urn(bundle), the_icp(bundle)
    (ep_link,) = ext(icp, "cares-ext-icp-emergency-plan")
    (plan,) = care_plans(bundle, "emergency-plan")
    assert ep_link["valueReference"]["reference"] == urn_of(bundle, plan)
    (hs_link,) = ext(icp, "cares-ext-icp-health-summary")
    (summary,) = resources(bundle, "Composition")
    assert hs_link["valueReference"]["reference"] == urn_of(bundle, summary)
    (as_link,) = ext(icp, "cares-ext-icp-assessment")
    assessment = local[as_link["valueReference"]["reference"]]
    assert assessment["resourceType"] == "ClinicalImpression" and assessment["status"] == "completed"
    assert day(assessment["date"]) <= day(icp["created"]), "the assessment the ICP was developed from comes first"
    (episode,) = resources(bundle, "EpisodeOfCare")
    assert day(episode["period"]["start"]) <= day(assessment["date"])
    transitions = ext(icp, "cares-ext-icp-transition")
    assert transitions
    for t in transitions:
        (kind,) = sub(t, "type")
        assert sub(t, "description")[0]
        assert kind["coding"][0]["code"] == "none-anticipated" or sub(t, "strategy"), "strategies (§VI.A.1.c.vi(4))"


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_health_summary(name):
    """Appendix M §VI.A.1.c.vi(2)(i)–(vii), one coded section each, written from the child's story."""
    bundle = CHILDREN[name]
    (summary,) = resources(bundle, "Composition")
    assert summary["subject"]["reference"] == urn_of(bundle, patient(bundle))
    sections = {s["code"]["coding"][0]["code"]: s for s in summary["section"]}
    assert set(sections) == {"medical-history", "behavioral-history", "circumstances", "current-services", "goals",
                             "educational-needs", "hrsn-supports", "strengths-preferences", "appeal-rights",
                             "ombudsman"}
    for code, section in sections.items():
        assert section["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml"><p>'), code
        assert len(section["text"]["div"]) > 80, code
    assert {e["reference"] for e in sections["goals"]["entry"]} == {g["reference"] for g in the_icp(bundle)["goal"]}
    assert {e["reference"] for e in sections["medical-history"]["entry"]} <= {urn_of(bundle, c) for c in
                                                                              resources(bundle, "Condition")}
    assert "appeal" in sections["appeal-rights"]["text"]["div"]
    assert "Ombudsman" in sections["ombudsman"]["text"]["div"] and "555-01" in sections["ombudsman"]["text"]["div"]


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_goals_long_and_short_term_with_due_dates(name):
    goals = resources(CHILDREN[name], "Goal")
    terms = set()
    for g in goals:
        assert g["description"]["text"] and g["target"][0]["dueDate"]
        assert day(g["target"][0]["dueDate"]) > day(g["startDate"])
        terms |= codes(g["category"], CS + "goal-term")
    assert terms == {"long-term", "short-term"}, "long- and short-term goals (Appendix M §VI.A.1.c.vi(2)(ii))"


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_emergency_plan(name):
    bundle = CHILDREN[name]
    local = by_urn(bundle)
    (plan,) = care_plans(bundle, "emergency-plan")
    assert [p["reference"] for p in plan["partOf"]] == [urn_of(bundle, the_icp(bundle))]
    supporting = [local[s["reference"]] for s in plan["supportingInfo"]]
    kinds = Counter(s["resourceType"] for s in supporting)
    assert kinds["AllergyIntolerance"] == len(resources(bundle, "AllergyIntolerance")) >= 1
    assert kinds["MedicationStatement"] == len(resources(bundle, "MedicationStatement")) >= 1
    assert plan["activity"] and all(a["detail"]["description"] for a in plan["activity"]), "accommodations"
    assert "§VI.A.1.c.vi(5)" in " ".join(n["text"] for n in plan["note"])
    assert plan["careTeam"][0]["reference"] == urn_of(bundle, resources(bundle, "CareTeam")[0])
    # providers most involved, with contact numbers: the practitioners of the story, their own phone numbers
    ids = shared_ids()
    (team,) = resources(bundle, "CareTeam")
    members = {p["member"]["reference"] for p in team["participant"]}
    providers = ext(plan, "cares-ext-icp-key-provider")
    assert len(providers) >= 3
    for kp in providers:
        (target,) = sub(kp, "provider")
        assert target["reference"] in members, target
        phones = {t["value"] for t in sub(kp, "telecom")}
        assert {t["value"] for t in ids[target["reference"]]["telecom"] if t["system"] == "phone"} <= phones
        assert sub(kp, "name")[0]
    assert any("508-555-0111" in {t["value"] for t in sub(kp, "telecom")} for kp in providers), "24/7 on-call line"
    assert any(r & {"pcp"} for m, r in _participant_roles(team)
               if m in {sub(kp, "provider")[0]["reference"] for kp in providers}), "the PCP is a key provider"


def test_demo_transition_age_child_has_a_transition_plan():
    for bundle in CHILDREN.values():
        plans = care_plans(bundle, "transition-plan")
        if age(patient(bundle)["birthDate"]) >= 16:
            (plan,) = plans
            assert [p["reference"] for p in plan["partOf"]] == [urn_of(bundle, the_icp(bundle))]
            assert "§VI.C" in " ".join(n["text"] for n in plan["note"])
            assert any("adult" in s["code"]["text"].lower() for s in resources(bundle, "ServiceRequest"))
        elif age(patient(bundle)["birthDate"]) < 12:
            assert not plans


# ------------------------------------------------------------------------------------------ referrals
@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_referrals_and_30_day_follow_up_tasks(name):
    bundle, ids = CHILDREN[name], shared_ids()
    (team,) = resources(bundle, "CareTeam")
    coordinators = {m for m, r in _participant_roles(team) if "care-coordinator" in r}
    tasks = resources(bundle, "Task")
    for sr in resources(bundle, "ServiceRequest"):
        assert sr["intent"] == "order" and sr["status"] in ("active", "completed")
        assert sr["requester"]["reference"] in ids
        assert [ids[p["reference"]]["resourceType"] for p in sr["performer"]] == ["Organization"]
        assert sr["reasonCode"][0]["text"]
        scheduled, authored = day(sr["occurrenceDateTime"]), day(sr["authoredOn"])
        assert scheduled >= authored
        late = ext(sr, "cares-ext-referral-late-scheduling-note")
        if (scheduled - authored).days > 30:
            (note,) = late
            assert "§VI.D.2.c" in note["valueAnnotation"]["text"], "more than 30 days out must be documented"
        else:
            assert not late
        follow = [t for t in tasks if t["focus"]["reference"] == urn_of(bundle, sr)]
        assert follow, "every referral has a follow-up Task"
        for t in follow:
            assert t["for"]["reference"] == urn_of(bundle, patient(bundle))
            assert t["owner"]["reference"] in coordinators
            end = date.fromisoformat(t["restriction"]["period"]["end"])
            assert end == scheduled + timedelta(days=30), "due 30 days after the scheduled date (§VI.D.2.b)"
            assert date.fromisoformat(t["restriction"]["period"]["start"]) == scheduled
            if t["status"] == "completed":
                assert day(t["executionPeriod"]["end"]) <= end
                assert sr["status"] == "completed"
                answers = {o["type"]["coding"][0]["code"]: o["valueBoolean"] for o in t["output"]}
                assert set(answers) == {"service-received", "service-met-needs"}, "both answers (§VI.D.2.a)"
                assert t["note"][-1]["text"], "what the family or provider said"
            else:
                assert "output" not in t
    assert {urn for t in tasks for urn in [t["focus"]["reference"]]} <= set(by_urn(bundle))


def test_demo_follow_up_task_status_mix():
    statuses = Counter(t["status"] for b in CHILDREN.values() for t in resources(b, "Task"))
    assert {"requested", "in-progress", "completed"} <= set(statuses), statuses


# ------------------------------------------------------------------------------------------ enrollment timeline
@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_enrollment_timeline(name):
    bundle = CHILDREN[name]
    (episode,) = resources(bundle, "EpisodeOfCare")
    enrolled = day(episode["period"]["start"])
    assert enrolled.year == 2026 and episode["status"] == "active"
    icp = the_icp(bundle)
    assert 0 <= (day(icp["created"]) - enrolled).days <= 60, "ICP within 60 days (Appendix M §VIII)"
    letters = [c for c in resources(bundle, "Communication")
               if "enrollment-letter" in codes(c["category"], CS + "communication-category")]
    assert len(letters) == 1
    assert 0 <= (day(letters[0]["sent"]) - enrolled).days <= 30, "enrollment letter within 30 days (§VIII)"
    parts = {p["extension"][0]["valueCodeableConcept"]["coding"][0]["code"]: p["contentString"]
             for p in letters[0]["payload"]}
    assert set(parts) == {"enrollment-effective-date", "provider-name", "services-overview", "care-manager-contact",
                          "benefits-reminder"}, "each required content as a coded part (cares-enl-2, §VIII)"
    assert str(enrolled) in parts["enrollment-effective-date"] and "does not affect" in parts["benefits-reminder"]
    assert letters[0]["extension"] == [{"url": SD + "cares-ext-program-effective-date", "valueDate": str(enrolled)}]
    (referral,) = [x["valueDate"] for x in episode["extension"] if x["url"] == SD + "cares-ext-program-referral-date"]
    assert day(referral) <= enrolled, "referral/identification date before the effective date (§VIII)"
    for ccm in [c for c in resources(bundle, "Communication")
                if "ccm-notification" in codes(c["category"], CS + "communication-category")]:
        assert 0 <= (day(ccm["sent"]) - enrolled).days <= 30
        flag = [x["valueBoolean"] for x in episode["extension"] if x["url"] == SD + "cares-ext-program-ccm-enrollment"]
        assert flag == [True], "a CCM notification is sent for a member enrolled in CCM (§VIII)"
    (consent,) = resources(bundle, "Consent")
    assert day(consent["dateTime"]) <= day(icp["created"])
    assert by_urn(bundle)[consent["performer"][0]["reference"]]["resourceType"] == "RelatedPerson"


@pytest.mark.parametrize("name", CHILD_IDS)
def test_demo_program_dates_are_in_2026(name):
    bundle = CHILDREN[name]
    stamps = []
    for res in resources(bundle):
        for key in ("authoredOn", "occurrenceDateTime", "created", "sent", "dateTime", "dateAsserted",
                    "recordedDate", "lastModified"):
            if key in res:
                stamps.append(res[key])
        if res["resourceType"] in ("CarePlan", "EpisodeOfCare", "CareTeam"):
            stamps.append(res["period"]["start"])
    assert stamps and all(s.startswith("2026-") for s in stamps), stamps
    for s in stamps:
        if "T" in s:
            assert datetime.fromisoformat(s).tzinfo is not None
