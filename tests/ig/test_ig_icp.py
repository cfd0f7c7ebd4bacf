"""The CARES Individual Care Plan guide over HTTP on both backends (issue 6, points 2 and 4 with their part of 9, 11,
12): the profiles ``cares-icp`` (CarePlan), ``cares-emergency-plan`` (CarePlan) and ``cares-icp-health-summary``
(Composition), the extensions ``cares-ext-icp-*``, the code systems / value sets ``careplan-category``,
``care-coordination-activity``, ``icp-approval-method``, ``icp-health-summary-section``, ``icp-transition-type``, and
the examples under ``profiles/data/examples/icp/``.

Appendix M = MassHealth Physician Manual Appendix M (CARES Program Performance Specifications, PHY-176):
§VI.A.1 (ICP developed from the comprehensive assessment), §VI.A.1.b (periodic reassessment), §VI.A.1.c.ii–iii (goals,
actions, concrete interventions, responsible persons, potential barriers), §VI.A.1.c.v (signed or otherwise approved;
verbal approval: accommodation need or reason, signature within three months), §VI.A.1.c.vi (shared with the PCP)
and its contents (1) care team, (2) health summary (i)–(vii), (3) action steps per goal with the responsible team
member and accessibility requirements, (4) upcoming transitions and continuity strategies, (5) the emergency plan.

Each invalid example breaks one rule; ``manifest.json`` names the rule, the expected issue expression and the
Appendix M section the OperationOutcome must cite.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from tests.ig.guide import CS, DEMO, FHIR_JSON, IG, ROOT, SD, VS, validate
from tests.ig.guide import errors as _errors

WANT_OO = {**FHIR_JSON, "Prefer": "return=OperationOutcome"}
EXAMPLES = ROOT / "profiles" / "data" / "examples" / "icp"
TX = ROOT / "terminology" / "data" / "cares"
MANIFEST = json.loads((EXAMPLES / "manifest.json").read_text(encoding="utf-8"))

ICP, EP, HS = SD + "cares-icp", SD + "cares-emergency-plan", SD + "cares-icp-health-summary"
EXTENSIONS = tuple(f"cares-ext-icp-{n}" for n in ("emergency-plan", "health-summary", "assessment", "approval",
                                                  "pcp-shared", "transition", "accessibility", "barrier",
                                                  "key-provider", "enrollment"))
PROFILE_IDS = ("cares-icp", "cares-emergency-plan", "cares-icp-health-summary", "cares-icp-shared", *EXTENSIONS)
TERMINOLOGY = ("careplan-category", "care-coordination-activity", "icp-approval-method", "icp-health-summary-section",
               "icp-transition-type")
CITE = re.compile(r"Appendix M §[IVX]+(\.[A-Za-z0-9()]+)*")


def _load(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def _validate(fhir, resource: dict, profile: str) -> dict:
    return validate(fhir, resource, profile, bare=True)  # the profile comes from the parameter only


def _known(fhir, url: str) -> bool:
    r = fhir.get("StructureDefinition", params={"url": url})
    assert r.status_code == 200, r.text
    return r.json().get("total", len(r.json().get("entry", []))) > 0


_LOADED: set[str] = set()


def _claims_known_profiles(fhir, resource: dict) -> dict:
    """The example resource claiming only profiles this server knows (the member / care team / goal profiles belong
    to another part of the guide; a target claiming a profile is only meaningful when the server checks it)."""
    profiles = resource.get("meta", {}).get("profile", [])
    keep = [p for p in profiles if _known(fhir, p)]
    out = copy.deepcopy(resource)
    if keep:
        out["meta"]["profile"] = keep
    elif profiles:
        out["meta"].pop("profile")
    return out


@pytest.fixture
def valid(fhir) -> dict:
    """The valid transaction, stored once per server (fixed ids icp-ex-*)."""
    bundle = _load("valid-icp-transaction.json")
    bundle["entry"] = [{**e, "resource": _claims_known_profiles(fhir, e["resource"])} for e in bundle["entry"]]
    key = str(fhir.base_url)
    if key not in _LOADED:
        r = fhir.post("", json=bundle, headers=FHIR_JSON)
        assert r.status_code == 200, r.text
        assert all(e["response"]["status"][:3] in ("200", "201") for e in r.json()["entry"]), r.text
        _LOADED.add(key)
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"] for e in bundle["entry"]}


# -- the conformance resources are served ------------------------------------------------------------------------

@pytest.mark.parametrize("sid", PROFILE_IDS)
def test_profiles_readable_and_searchable(fhir, sid):
    r = fhir.get(f"StructureDefinition/{sid}")
    assert r.status_code == 200, r.text
    sd = r.json()
    assert sd["url"] == SD + sid and sd["version"] == "0.1.0" and sd["derivation"] == "constraint"
    found = fhir.get("StructureDefinition", params={"url": SD + sid}).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [sid]


@pytest.mark.parametrize("tid", TERMINOLOGY)
def test_terminology_readable_and_searchable(fhir, tid):
    for rtype, base in (("CodeSystem", CS), ("ValueSet", VS)):
        r = fhir.get(f"{rtype}/{tid}")
        assert r.status_code == 200, r.text
        found = fhir.get(rtype, params={"url": base + tid}).json()
        assert [e["resource"]["id"] for e in found.get("entry", [])] == [tid]


def test_icp_profiles_found_by_type_search(fhir):
    found = fhir.get("StructureDefinition", params={"type": "CarePlan", "_count": "100"}).json()
    urls = {e["resource"]["url"] for e in found.get("entry", [])}
    assert {ICP, EP} <= urls


# -- the valid examples --------------------------------------------------------------------------------------------

def test_valid_transaction_stored_and_validates(fhir, valid):
    for key, profile in (("CarePlan/icp-ex-icp", ICP), ("CarePlan/icp-ex-emergency-plan", EP),
                         ("Composition/icp-ex-health-summary", HS)):
        r = fhir.get(key)
        assert r.status_code == 200, r.text
        assert profile in r.json()["meta"]["profile"]
        oo = _validate(fhir, valid[key], profile)
        assert _errors(oo) == [], oo
        warnings = [i for i in _errors(oo, "warning") if "dom-6" not in i["diagnostics"]]  # narrative: best practice
        assert warnings == [], oo  # every checked target is on the server and claims its profile


@pytest.mark.parametrize("key", ["CarePlan/icp-ex-icp", "CarePlan/icp-ex-emergency-plan",
                                 "Composition/icp-ex-health-summary"])
def test_valid_examples_created_with_profile_checks(fhir, valid, key):
    resource = copy.deepcopy(valid[key])
    resource.pop("id")
    r = fhir.post(resource["resourceType"], json=resource, headers=WANT_OO)
    assert r.status_code == 201, r.text
    assert _errors(r.json()) == []


def test_draft_icp_needs_no_approval_yet(fhir, valid):
    """cares-icp-2 applies once the ICP is active (Appendix M §VI.A.1.c.v): a draft is written before approval."""
    icp = copy.deepcopy(valid["CarePlan/icp-ex-icp"])
    icp.pop("id")
    icp["status"] = "draft"
    icp["extension"] = [e for e in icp["extension"] if not e["url"].endswith(("-approval", "-pcp-shared"))]
    r = fhir.post("CarePlan", json=icp, headers=FHIR_JSON)
    assert r.status_code == 201, r.text


def _with_approval(icp: dict, parts: list[dict]) -> dict:
    out = copy.deepcopy(icp)
    out.pop("id")
    for e in out["extension"]:
        if e["url"] == SD + "cares-ext-icp-approval":
            e["extension"] = [p for p in e["extension"] if p["url"] in ("approver",)] + parts
    return out


VERBAL = {"url": "method", "valueCoding": {"system": CS + "icp-approval-method", "code": "verbal"}}


@pytest.mark.parametrize("parts", [
    [VERBAL, {"url": "date", "valueDateTime": "2026-03-12"},
     {"url": "accommodationNeed", "valueString": "Mother is blind; approval read aloud and given verbally"}],
    [VERBAL, {"url": "date", "valueDateTime": "2026-11-30T10:00:00-05:00"},
     {"url": "noSignatureReason", "valueString": "Approved by phone during an inpatient stay"},
     {"url": "signatureDueDate", "valueDate": "2027-02-28"}],
    [VERBAL, {"url": "date", "valueDateTime": "2026-03-12"},
     {"url": "noSignatureReason", "valueString": "Approved by phone during an inpatient stay"},
     {"url": "signatureDueDate", "valueDate": "2026-06-12"}, {"url": "signatureDate", "valueDateTime": "2026-04-02"}],
], ids=["verbal-accommodation", "verbal-due-end-of-february", "verbal-due-exactly-3-months"])
def test_verbal_approval_forms_accepted(fhir, valid, parts):
    """Appendix M §VI.A.1.c.v(1)(c): a verbal approval with an accommodation need needs no signature; without one,
    the reason and a signature due no later than three months after the verbal approval."""
    r = fhir.post("CarePlan", json=_with_approval(valid["CarePlan/icp-ex-icp"], parts), headers=FHIR_JSON)
    assert r.status_code == 201, r.text


def test_active_icp_not_shared_with_pcp_is_a_warning(fhir, valid):
    """cares-icp-4 (Appendix M §VI.A.1.c.vi) is a warning: sharing with the PCP follows activation."""
    icp = copy.deepcopy(valid["CarePlan/icp-ex-icp"])
    icp.pop("id")
    icp["extension"] = [e for e in icp["extension"] if not e["url"].endswith("-pcp-shared")]
    r = fhir.post("CarePlan", json=icp, headers=WANT_OO)
    assert r.status_code == 201, r.text
    warnings = [i for i in _errors(r.json(), "warning") if "cares-icp-4" in i["diagnostics"]]
    assert warnings and "Appendix M §VI.A.1.c.vi" in warnings[0]["diagnostics"], r.text
    oo = _validate(fhir, icp, ICP)
    assert any("cares-icp-4" in i["diagnostics"] for i in _errors(oo, "warning")), oo


# -- every invalid example is rejected with the intended issue ------------------------------------------------------

@pytest.mark.parametrize("case", MANIFEST["invalid"], ids=[c["file"][8:-5] for c in MANIFEST["invalid"]])
def test_invalid_example_rejected(fhir, valid, case):
    resource = _claims_known_profiles(fhir, _load(case["file"]))
    assert case["profile"] in resource["meta"]["profile"]
    r = fhir.post(resource["resourceType"], json=resource, headers=FHIR_JSON)
    assert r.status_code == 422, f"{case['file']}: {r.status_code} {r.text}"
    want = [i for i in _errors(r.json()) if i.get("expression") == [case["expression"]]]
    assert want, f"{case['file']}: no error at {case['expression']}: {r.text}"
    assert any(case["source"] in i["diagnostics"] for i in want), f"{case['file']}: {case['source']} not cited"
    assert any(case["profile"] in i["diagnostics"] or SD in i["diagnostics"] for i in want), r.text
    # $validate with the profile as a parameter agrees
    oo = _validate(fhir, resource, case["profile"])
    assert any(i.get("expression") == [case["expression"]] and case["source"] in i["diagnostics"]
               for i in _errors(oo)), f"{case['file']}: $validate disagrees: {oo}"


# -- the guide's own consistency ------------------------------------------------------------------------------------

def _my_files() -> list[Path]:
    """The StructureDefinitions of this part of the guide."""
    paths = [*IG.glob("cares-icp*.json"), *IG.glob("cares-emergency-plan*.json"), *IG.glob("cares-ext-icp-*.json")]
    return sorted(p for p in paths if '"StructureDefinition"' in p.read_text(encoding="utf-8")[:200])


def test_every_constrained_element_cites_appendix_m():
    """Traceability: every differential element that constrains something, and every invariant, names its Appendix M
    section (``requirements``; invariants also in ``human`` and their own ``requirements``)."""
    files = _my_files()
    assert {p.stem for p in files} == set(PROFILE_IDS)
    for path in files:
        sd = json.loads(path.read_text(encoding="utf-8"))
        assert CITE.search(sd["description"] + sd["purpose"]), path.name
        for el in sd["differential"]["element"]:
            constrains = set(el) - {"id", "path", "sliceName", "short", "definition"}
            if constrains and not el["path"].endswith(".url") and el.get("max") != "0":
                assert CITE.search(el.get("requirements", "")), f"{path.name}: {el['id']} cites no Appendix M section"
            for c in el.get("constraint", []):
                assert CITE.search(c["human"]) and CITE.search(c["requirements"]), f"{path.name}: {c['key']}"


def test_manifest_covers_every_cares_invariant_with_an_invalid_example():
    keys = set()
    for path in _my_files():
        for el in json.loads(path.read_text(encoding="utf-8"))["differential"]["element"]:
            keys |= {c["key"] for c in el.get("constraint", []) if c["severity"] == "error"}
    covered = {c["rule"] for c in MANIFEST["invalid"]}
    assert keys <= covered, keys - covered


def _codes(name: str) -> set[str]:
    bundle = json.loads((TX / f"{name}.json").read_text(encoding="utf-8"))
    cs = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "CodeSystem")
    return {c["code"] for c in cs["concept"]}


def test_demo_codes_are_in_the_code_systems():
    """The demo data's careplan-category and care-coordination-activity codes are defined (issue 6 point 9)."""
    used: dict[str, set[str]] = {"careplan-category": set(), "care-coordination-activity": set()}

    def walk(v):
        if isinstance(v, dict):
            system = v.get("system")
            if isinstance(system, str) and system.startswith(CS) and system[len(CS):] in used:
                used[system[len(CS):]].add(v["code"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    for path in DEMO.glob("*.json"):
        walk(json.loads(path.read_text(encoding="utf-8")))
    for name, codes in used.items():
        assert codes and codes <= _codes(name), (name, codes - _codes(name))


def test_code_lookup_and_validate_code(fhir):
    r = fhir.get("CodeSystem/$validate-code", params={"url": CS + "icp-approval-method", "code": "verbal"})
    assert r.status_code == 200, r.text
    assert any(p["name"] == "result" and p["valueBoolean"] for p in r.json()["parameter"]), r.text
    r = fhir.get("ValueSet/$validate-code", params={"url": VS + "careplan-category", "system": CS + "careplan-category",
                                                    "code": "nonsense"})
    assert r.status_code == 200 and any(p["name"] == "result" and not p["valueBoolean"]
                                        for p in r.json()["parameter"]), r.text


# -- worklist search parameters (issue 6 point 10) -------------------------------------------------------------------

def test_icp_search_parameters(fhir, valid, tag):
    """icp-approval-method, icp-signature-due (Appendix M §VI.A.1.c.v(1)(c)), icp-pcp-shared (§VI.A.1.c.vi) and
    icp-emergency-plan (§VI.A.1.c.vi(5))."""
    icp = _with_approval(valid["CarePlan/icp-ex-icp"], [
        VERBAL, {"url": "date", "valueDateTime": "2026-03-12"},
        {"url": "noSignatureReason", "valueString": "Approved by phone during an inpatient stay"},
        {"url": "signatureDueDate", "valueDate": "2026-06-10"}])
    icp["identifier"] = [{"system": "urn:test", "value": tag}]
    icp["extension"] = [e for e in icp["extension"] if not e["url"].endswith("-pcp-shared")]
    assert fhir.post("CarePlan", json=icp, headers=FHIR_JSON).status_code == 201

    def ids(**params) -> int:
        r = fhir.get("CarePlan", params={"identifier": f"urn:test|{tag}", **params})
        assert r.status_code == 200, r.text
        return len(r.json().get("entry", []))
    assert ids(**{"icp-approval-method": "verbal"}) == 1
    assert ids(**{"icp-approval-method": CS + "icp-approval-method|signature"}) == 0
    assert ids(**{"icp-signature-due": "le2026-06-12"}) == 1
    assert ids(**{"icp-signature-due": "lt2026-06-10"}) == 0
    assert ids(**{"icp-pcp-shared:missing": "true"}) == 1
    assert ids(**{"icp-emergency-plan": "CarePlan/icp-ex-emergency-plan"}) == 1
    r = fhir.get("CarePlan", params={"_id": "icp-ex-icp", "icp-pcp-shared": "ge2026-03-13"})
    assert len(r.json().get("entry", [])) == 1, r.text
