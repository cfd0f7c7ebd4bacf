"""The CARES referral guide over HTTP on both backends (issue 6, points 6, 7, 9–12): the referral ServiceRequest
(``cares-referral``), the referral fulfilment Task (``cares-referral-task``), the 30-day follow-up Task
(``cares-followup-task``), their extension, value sets, code systems and SearchParameters, and the examples under
``profiles/data/examples/referral/``.

Appendix M = MassHealth Physician Manual Appendix M (CARES Program Performance Specifications, PHY-176):
§III referral practices (standardized referral processes, exchange of health information, follow-up provisions),
§VI.B.1.c–h referrals made while coordinating care, §VI.D.2.a–c follow-up after referral (within 30 days of the
scheduled date of the referral service; the reason documented when it cannot be made).

Each invalid example breaks one rule; ``manifest.json`` names the rule, the expected issue expression and the
Appendix M section the OperationOutcome must cite.
"""

from __future__ import annotations

import copy
import json
import uuid

import pytest

from tests.ig.guide import BASE, CS, DEMO, FHIR_JSON, IG, ROOT, SD, VS
from tests.ig.guide import errors as _errors
from tests.ig.guide import validate as _validate

EXAMPLES = ROOT / "profiles" / "data" / "examples" / "referral"
MANIFEST = json.loads((EXAMPLES / "manifest.json").read_text(encoding="utf-8"))

REFERRAL, REF_TASK, FU_TASK = SD + "cares-referral", SD + "cares-referral-task", SD + "cares-followup-task"
EXT_LATE = SD + "cares-ext-referral-late-scheduling-note"
PROFILES = (REFERRAL, REF_TASK, FU_TASK, EXT_LATE)
VALUE_SETS = ("referral-type", "referral-task-status", "referral-business-status", "task-code", "task-output-type",
              "followup-status", "followup-not-done-reason")
CODE_SYSTEMS = ("referral-type", "referral-business-status", "task-code", "task-output-type",
                "followup-not-done-reason")
SEARCH_PARAMS = {"followup-due": "Task", "scheduled-date": "Task", "status-reason": "Task",
                 "service-received": "Task", "service-met-needs": "Task", "referral-type": "ServiceRequest"}


def _load(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def _valid_resources() -> list[dict]:
    return [e["resource"] for e in _load("valid-referral-transaction.json")["entry"]]


def _example(rid: str) -> dict:
    return copy.deepcopy(next(r for r in _valid_resources() if r["id"] == rid))


@pytest.fixture
def examples(fhir) -> dict:
    """The valid example transaction (PUTs with fixed ids: idempotent on the shared test servers)."""
    r = fhir.post("", json=_load("valid-referral-transaction.json"), headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    body = r.json()
    assert all(e["response"]["status"][:3] in ("200", "201") for e in body["entry"]), body
    return body


def _member(fhir, tag: str) -> str:
    """A new CARES member (a copy of the example child with its own member id): keeps a test's data apart."""
    p = _example("cares-ex-ref-child")
    del p["id"]
    p["identifier"][0]["value"] = f"9{int(tag, 16) % 10**11:011d}"
    r = fhir.post("Patient", json=p, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    return f"Patient/{r.json()['id']}"


# -- the guide is served ----------------------------------------------------------------------------------------

def test_profiles_are_served_and_searchable(fhir):
    for url in PROFILES:
        r = fhir.get("StructureDefinition", params={"url": url})
        assert r.status_code == 200, r.text
        found = [e["resource"] for e in r.json().get("entry", [])]
        assert [sd["url"] for sd in found] == [url]
        sd = found[0]
        assert sd["version"] == "0.1.0" and sd["derivation"] == "constraint" and sd["status"] == "active"
        assert fhir.get(f"StructureDefinition/{sd['id']}").json()["url"] == url
    bundle = fhir.get("StructureDefinition", params={"url:below": SD + "cares-referral"}).json()
    assert {REFERRAL, REF_TASK} <= {e["resource"]["url"] for e in bundle.get("entry", [])}
    tasks = fhir.get("StructureDefinition", params={"type": "Task", "url:below": SD}).json()
    assert {REF_TASK, FU_TASK} <= {e["resource"]["url"] for e in tasks.get("entry", [])}


def test_terminology_and_search_parameters_are_served(fhir):
    for name in VALUE_SETS:
        r = fhir.get("ValueSet", params={"url": VS + name}).json()
        assert r.get("total") == 1, (name, r)
    for name in CODE_SYSTEMS:
        r = fhir.get("CodeSystem", params={"url": CS + name}).json()
        assert r.get("total") == 1, (name, r)
    for code, base in SEARCH_PARAMS.items():
        r = fhir.get("SearchParameter", params={"code": code, "base": base}).json()
        assert [e["resource"]["url"] for e in r.get("entry", [])] == \
            [f"{BASE}/SearchParameter/cares-{base.lower()}-{code}"], (code, r)
    cs = fhir.get("metadata").json()
    params = {rt["type"]: {p["name"] for p in rt.get("searchParam", [])} for rt in cs["rest"][0]["resource"]}
    assert {c for c, b in SEARCH_PARAMS.items() if b == "Task"} <= params["Task"]
    assert "referral-type" in params["ServiceRequest"]


def test_demo_referral_type_codes_are_in_the_value_set(fhir):
    """The demo data set's referral-type and task-code codes are kept (the guide formalises them)."""
    wanted: set[tuple[str, str]] = set()
    for path in sorted(DEMO.glob("child-*.json")):
        for e in json.loads(path.read_text(encoding="utf-8"))["entry"]:
            res = e["resource"]
            if res["resourceType"] not in ("ServiceRequest", "Task"):
                continue
            for cc in [*res.get("category", []), res.get("code") or {}]:
                for c in cc.get("coding", []):
                    if c.get("system") in (CS + "referral-type", CS + "task-code"):
                        wanted.add((c["system"], c["code"]))
    assert len(wanted) >= 7
    for system, code in sorted(wanted):
        vs = VS + system.rsplit("/", 1)[1]
        r = fhir.get("ValueSet/$validate-code", params={"url": vs, "system": system, "code": code})
        assert r.status_code == 200, r.text
        result = next(p for p in r.json()["parameter"] if p["name"] == "result")
        assert result["valueBoolean"] is True, (system, code, r.json())


# -- traceability: every constrained element cites Appendix M ------------------------------------------------------

@pytest.mark.parametrize("name", ["cares-referral", "cares-referral-task", "cares-followup-task",
                                  "cares-ext-referral-late-scheduling-note"])
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


# -- valid examples --------------------------------------------------------------------------------------------

def test_valid_examples_are_stored_and_validate(fhir, examples):
    locations = [e["response"]["location"] for e in examples["entry"]]
    assert any(loc.startswith("Task/cares-ex-followup-neurology") for loc in locations), locations
    for res in _valid_resources():
        stored = fhir.get(f"{res['resourceType']}/{res['id']}").json()
        for profile in res["meta"].get("profile", []):
            if profile.startswith(SD + "cares-patient"):
                continue  # another profile of the guide (issue 6 point 1)
            oo = _validate(fhir, stored, profile)
            assert _errors(oo) == [], (res["id"], oo)
        # posted again without an id (a new resource): 201
        fresh = copy.deepcopy(res)
        del fresh["id"]
        r = fhir.post(res["resourceType"], json=fresh, headers=FHIR_JSON)
        assert r.status_code == 201, (res["id"], r.text)


def test_valid_examples_in_a_transaction_with_urn_uuids(fhir, tag):
    """The same example chain POSTed as a new child: Patient → referral → referral Task + follow-up Task."""
    ids = {rid: f"urn:uuid:{uuid.uuid4()}" for rid in ("child", "sr", "rt", "fu")}
    child = _example("cares-ex-ref-child")
    child["identifier"][0]["value"] = f"8{int(tag, 16) % 10**11:011d}"
    sr, rt, fu = (_example(x) for x in ("cares-ex-referral-neurology", "cares-ex-referral-task-neurology",
                                        "cares-ex-followup-neurology"))
    sr["subject"] = rt["for"] = fu["for"] = {"reference": ids["child"]}
    rt["focus"] = fu["focus"] = {"reference": ids["sr"]}
    entries = [(ids[k], r) for k, r in (("child", child), ("sr", sr), ("rt", rt), ("fu", fu))]
    for _, r in entries:
        del r["id"]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": full, "resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
        for full, r in entries]}
    r = fhir.post("", json=bundle, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    assert [e["response"]["status"][:3] for e in r.json()["entry"]] == ["201"] * 4


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
    # $validate (with the profile named) reports the same error; without the profile, from meta.profile
    assert hits(_validate(fhir, resource, case["profile"])), case
    assert hits(_validate(fhir, resource)), case
    # and the rule is the only error: each example breaks one rule (cares-fu-2 also fails for a non-boolean answer)
    others = [i for i in _errors(r.json()) if i not in hits(r.json())]
    assert all("cares-fu-2" in i["diagnostics"] for i in others), others


def test_every_rule_has_an_invalid_example():
    """Each cares-* invariant of the profiles is exercised by at least one invalid example."""
    keys = set()
    for name in ("cares-referral", "cares-referral-task", "cares-followup-task"):
        sd = json.loads((IG / f"{name}.json").read_text(encoding="utf-8"))
        keys |= {c["key"] for el in sd["differential"]["element"] for c in el.get("constraint", [])}
    tested = {c["rule"] for c in MANIFEST["invalid"]}
    assert keys - {"cares-ref-2"} <= tested, keys - tested


def test_period_occurrence_needs_a_start(fhir, examples):
    """cares-ref-2: a Period occurrence carries the scheduled date in start (Appendix M §VI.D.2.b)."""
    sr = _example("cares-ex-referral-neurology")
    del sr["id"], sr["occurrenceDateTime"]
    sr["occurrencePeriod"] = {"end": "2026-05-30"}
    r = fhir.post("ServiceRequest", json=sr, headers=FHIR_JSON)
    assert r.status_code == 422
    assert any("cares-ref-2" in i["diagnostics"] and "Appendix M §VI.D.2.b" in i["diagnostics"]
               for i in _errors(r.json())), r.json()
    sr["occurrencePeriod"] = {"start": "2026-05-20", "end": "2026-05-30"}
    assert fhir.post("ServiceRequest", json=sr, headers=FHIR_JSON).status_code == 201


def test_followup_boundaries(fhir, examples):
    """Due exactly 30 days after the scheduled date passes; a dateTime scheduled date is compared by day; a late
    follow-up with a coded reason passes (Appendix M §VI.D.2.b)."""
    fu = _example("cares-ex-followup-neurology")
    del fu["id"]
    fu["restriction"]["period"] = {"start": "2026-05-20T10:00:00-04:00", "end": "2026-06-19"}
    assert fhir.post("Task", json=fu, headers=FHIR_JSON).status_code == 201
    fu["restriction"]["period"] = {"start": "2026-05-20T10:00:00-04:00", "end": "2026-06-20T09:00:00-04:00"}
    r = fhir.post("Task", json=fu, headers=FHIR_JSON)
    assert r.status_code == 422 and any("cares-fu-1" in i["diagnostics"] for i in _errors(r.json()))
    fu["restriction"]["period"] = {"start": "2026-05-20", "end": "2026-06-19"}
    fu["executionPeriod"] = {"start": "2026-06-24T10:00:00-04:00", "end": "2026-06-24T10:30:00-04:00"}
    fu["statusReason"] = {"coding": [{"system": CS + "followup-not-done-reason", "code": "service-rescheduled"}],
                          "text": "Family away until 2026-06-23 (unexpected circumstance)."}
    assert fhir.post("Task", json=fu, headers=FHIR_JSON).status_code == 201


def test_focus_must_be_a_cares_referral(fhir, examples):
    """The follow-up and referral Tasks' focus must reach a ServiceRequest that claims cares-referral."""
    plain = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
             "subject": {"reference": "Patient/cares-ex-ref-child"}}
    r = fhir.post("ServiceRequest", json=plain, headers=FHIR_JSON)
    assert r.status_code == 201
    for rid in ("cares-ex-followup-neurology", "cares-ex-referral-task-neurology"):
        task = _example(rid)
        del task["id"]
        task["focus"] = {"reference": f"ServiceRequest/{r.json()['id']}"}
        bad = fhir.post("Task", json=task, headers=FHIR_JSON)
        assert bad.status_code == 422, bad.text
        assert any(i.get("expression") == ["Task.focus"] and REFERRAL in i["diagnostics"]
                   for i in _errors(bad.json())), bad.json()


# -- SearchParameters (worklists, issue 6 point 10) ---------------------------------------------------------------

def _ids(fhir, rtype: str, params: dict) -> list[str]:
    r = fhir.get(rtype, params={**params, "_count": "100"}, headers={"Prefer": "handling=strict"})
    assert r.status_code == 200, r.text
    return sorted(e["resource"]["id"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match")


def test_worklist_search_parameters(fhir, examples, tag):
    member = _member(fhir, tag)
    made: dict[str, str] = {}

    def post(name: str, resource: dict) -> None:
        r = fhir.post(resource["resourceType"], json=resource, headers=FHIR_JSON)
        assert r.status_code == 201, r.text
        made[name] = r.json()["id"]

    for name, rid in (("sr-neuro", "cares-ex-referral-neurology"), ("sr-food", "cares-ex-referral-nutrition"),
                      ("sr-neuro2", "cares-ex-referral-neurology")):
        sr = _example(rid)
        del sr["id"]
        sr["subject"] = {"reference": member}
        if name == "sr-neuro2":  # a second neurology referral, scheduled a day later
            sr["occurrenceDateTime"] = "2026-05-21T10:00:00-04:00"
        post(name, sr)
    done = _example("cares-ex-followup-neurology")
    failed = _example("cares-ex-followup-nutrition")
    unmet = _example("cares-ex-followup-neurology")
    unmet["output"][1]["valueBoolean"] = False
    unmet["restriction"]["period"] = {"start": "2026-05-21", "end": "2026-06-10"}
    for name, task, sr in (("done", done, "sr-neuro"), ("failed", failed, "sr-food"), ("unmet", unmet, "sr-neuro2")):
        del task["id"]
        task["for"] = {"reference": member}
        task["focus"] = {"reference": f"ServiceRequest/{made[sr]}"}
        post(name, task)

    mine = {"subject": member}
    assert _ids(fhir, "Task", {**mine, "followup-due": "le2026-06-30"}) == sorted([made["done"], made["unmet"]])
    assert _ids(fhir, "Task", {**mine, "followup-due": "gt2026-07-01"}) == [made["failed"]]
    assert _ids(fhir, "Task", {**mine, "followup-due": "2026-06-10"}) == [made["unmet"]]
    assert _ids(fhir, "Task", {**mine, "scheduled-date": "2026-05-20"}) == [made["done"]]
    assert _ids(fhir, "Task", {**mine, "scheduled-date": "ge2026-05-21"}) == sorted([made["failed"], made["unmet"]])
    assert _ids(fhir, "Task", {**mine, "status-reason": f"{CS}followup-not-done-reason|member-unreachable"}) == \
        [made["failed"]]
    assert _ids(fhir, "Task", {**mine, "service-received": "true"}) == sorted([made["done"], made["unmet"]])
    assert _ids(fhir, "Task", {**mine, "service-met-needs": "false"}) == [made["unmet"]]
    assert _ids(fhir, "Task", {**mine, "code": f"{CS}task-code|referral-follow-up", "_sort": "followup-due"}) == \
        sorted([made["done"], made["failed"], made["unmet"]])
    r = fhir.get("Task", params={**mine, "_sort": "followup-due"}).json()
    assert [e["resource"]["id"] for e in r["entry"]] == [made["unmet"], made["done"], made["failed"]]
    # the referral: CARES referral type, and its scheduled date through the R4 parameter occurrence
    assert _ids(fhir, "ServiceRequest", {"subject": member, "referral-type": f"{CS}referral-type|hrsn"}) == \
        [made["sr-food"]]
    assert _ids(fhir, "ServiceRequest", {"subject": member, "referral-type": "specialty-care"}) == \
        sorted([made["sr-neuro"], made["sr-neuro2"]])
    assert _ids(fhir, "ServiceRequest", {"subject": member, "occurrence": "ge2026-06-01"}) == [made["sr-food"]]
    # worklist: follow-ups of HRSN referrals (chained through focus)
    assert _ids(fhir, "Task", {**mine, "focus:ServiceRequest.referral-type": "hrsn"}) == [made["failed"]]


# -- the demo data set against the profiles -----------------------------------------------------------------------

#: What the demo referrals / follow-up Tasks (fhir_server/demo/child-*.json) miss, by rule: the completed follow-ups
#: record the outcome as free text, not the two boolean answers (cares-fu-2, §VI.D.2.a); the referrals scheduled
#: more than 30 days out document it in ``note``, not in the case-note extension (cares-ref-3, §VI.D.2.c).
DEMO_MISSES = {("ServiceRequest", "cares-ref-3"): 4, ("Task", "cares-fu-2"): 5}


def test_demo_referrals_and_followups_against_the_profiles(fhir):
    misses: dict[tuple[str, str], int] = {}
    checked = 0
    for path in sorted(DEMO.glob("child-*.json")):
        for e in json.loads(path.read_text(encoding="utf-8"))["entry"]:
            res = e["resource"]
            profile = {"ServiceRequest": REFERRAL, "Task": FU_TASK}.get(res["resourceType"])
            if profile is None:
                continue
            checked += 1
            for i in _errors(_validate(fhir, res, profile)):
                key = i["diagnostics"].split("constraint ", 1)[-1].split(" ", 1)[0] if "constraint" in \
                    i["diagnostics"] else i["expression"][0]
                misses[(res["resourceType"], key)] = misses.get((res["resourceType"], key), 0) + 1
    assert checked == 22
    # no other rule is missed (counts as of this writing: DEMO_MISSES; a demo fix may lower them)
    assert set(misses) <= set(DEMO_MISSES), misses
    assert all(n <= DEMO_MISSES[k] for k, n in misses.items()), misses


def test_manifest_names_tests_that_exist():
    """The traceability data of the examples (Appendix M section → rule → test) names tests of this module."""
    cases = {c["file"][8:-5] for c in MANIFEST["invalid"]}
    for entry in [*MANIFEST["invalid"], *MANIFEST["otherTests"]]:
        path, _, name = entry["test"].partition("::")
        assert path == "tests/ig/test_ig_referral.py" and entry["source"].startswith("Appendix M §"), entry
        func, _, case = name.partition("[")
        assert callable(globals().get(func)), entry
        assert not case or case[:-1] in cases, entry
