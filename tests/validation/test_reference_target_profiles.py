"""Reference target profiles (R4 ``ElementDefinition.type.targetProfile``) for targets on this server: the
validator's ``targets`` argument (``Type/id`` -> the profiles the stored target claims, None when absent) and the
registry helpers that decide when a write needs it."""

from __future__ import annotations

import copy

import pytest

from fhir_server.interactions.profile_checks import relative_references
from fhir_server.validation.profile import validate_against
from fhir_server.validation.registry import BASE, ProfileRegistry
from fhir_server.validation.validator import validate

CT = "http://example.org/StructureDefinition/test-careteam"
CT_CHILD = "http://example.org/StructureDefinition/test-careteam-child"
CP = "http://example.org/StructureDefinition/test-careplan"
CP_MIXED = "http://example.org/StructureDefinition/test-careplan-mixed"
EXT = "http://example.org/StructureDefinition/test-team-extension"
PAT_EXT = "http://example.org/StructureDefinition/test-patient-with-team"
UNKNOWN = "http://example.org/StructureDefinition/not-loaded-careteam"
NARRATIVE = '<div xmlns="http://www.w3.org/1999/xhtml">A plan</div>'


def _sd(url: str, rtype: str, elements: list[dict], base: str | None = None, kind: str = "resource") -> dict:
    return {"resourceType": "StructureDefinition", "url": url, "name": url.rsplit("/", 1)[1].replace("-", ""),
            "status": "active", "fhirVersion": "4.0.1", "kind": kind, "abstract": False, "type": rtype,
            "baseDefinition": base or BASE + rtype, "derivation": "constraint",
            "differential": {"element": [{"id": rtype, "path": rtype}, *elements]}}


@pytest.fixture(scope="module")
def reg() -> ProfileRegistry:
    r = ProfileRegistry(vendored=False)
    r.add(_sd(CT, "CareTeam", [{"id": "CareTeam.name", "path": "CareTeam.name", "min": 1}]))
    r.add(_sd(CT_CHILD, "CareTeam", [{"id": "CareTeam.status", "path": "CareTeam.status", "min": 1}], base=CT))
    r.add(_sd(CP, "CarePlan", [{"id": "CarePlan.careTeam", "path": "CarePlan.careTeam",
                                "type": [{"code": "Reference", "targetProfile": [CT]}]}]))
    r.add(_sd(CP_MIXED, "CarePlan", [
        {"id": "CarePlan.author", "path": "CarePlan.author",
         "type": [{"code": "Reference", "targetProfile": [BASE + "Practitioner", CT, UNKNOWN]}]},
        {"id": "CarePlan.careTeam", "path": "CarePlan.careTeam",
         "type": [{"code": "Reference", "targetProfile": [BASE + "CareTeam", CT]}]}]))
    r.add(_sd(EXT, "Extension", [
        {"id": "Extension.url", "path": "Extension.url", "fixedUri": EXT},
        {"id": "Extension.value[x]", "path": "Extension.value[x]",
         "type": [{"code": "Reference", "targetProfile": [CT]}]}], kind="complex-type"))
    r.add(_sd(PAT_EXT, "Patient", [
        {"id": "Patient.extension:team", "path": "Patient.extension", "sliceName": "team",
         "type": [{"code": "Extension", "profile": [EXT]}]}]))
    return r


def _careplan(*teams: str) -> dict:
    return {"resourceType": "CarePlan", "text": {"status": "generated", "div": NARRATIVE}, "status": "active",
            "intent": "plan", "subject": {"reference": "Patient/p1"}, "careTeam": [{"reference": t} for t in teams]}


def _ref_issues(issues) -> list:
    return [i for i in issues if "target profile" in i.diagnostics or "must reference" in i.diagnostics]


def test_target_claiming_the_profile_is_accepted(reg):
    issues = validate(_careplan("CareTeam/ct1"), profiles=[CP], targets={"CareTeam/ct1": [CT]}, registry=reg)
    assert [i for i in issues if i.severity in ("error", "fatal", "warning")] == [], issues


@pytest.mark.parametrize("claimed", [[CT + "|1.0.0"], ["http://example.org/other", CT_CHILD], [CT_CHILD + "|2"]])
def test_versioned_and_derived_claims_are_accepted(reg, claimed):
    issues = validate(_careplan("CareTeam/ct1"), profiles=[CP], targets={"CareTeam/ct1": claimed}, registry=reg)
    assert _ref_issues(issues) == [], issues


@pytest.mark.parametrize("claimed", [[], ["http://example.org/other"], [CT + "-not"]])
def test_target_not_claiming_the_profile_is_an_error(reg, claimed):
    cp = _careplan("CareTeam/ok", "CareTeam/bad")
    issues = validate(cp, profiles=[CP], targets={"CareTeam/ok": [CT], "CareTeam/bad": claimed}, registry=reg)
    errors = [i for i in issues if i.severity == "error"]
    assert len(errors) == 1, issues
    e = errors[0]
    assert e.code in ("structure", "invalid") and e.expression == ("CarePlan.careTeam[1]",)
    assert "CarePlan.careTeam" in e.diagnostics and CT in e.diagnostics and "CareTeam/bad" in e.diagnostics
    assert validate_against(cp, CP, registry=reg, targets={"CareTeam/ok": [CT], "CareTeam/bad": claimed})[0] \
        .expression == ("CarePlan.careTeam[1]",)


def test_target_not_on_this_server_is_a_warning(reg):
    issues = validate(_careplan("CareTeam/gone"), profiles=[CP], targets={"CareTeam/gone": None}, registry=reg)
    assert [i.severity for i in issues if i.severity in ("error", "fatal")] == []
    warnings = [i for i in issues if i.severity == "warning"]
    assert len(warnings) == 1 and warnings[0].expression == ("CarePlan.careTeam[0]",), issues
    assert "could not be checked: CareTeam/gone is not on this server" in warnings[0].diagnostics
    assert CT in warnings[0].diagnostics


def test_references_not_in_targets_are_not_checked(reg):
    cp = _careplan("CareTeam/unlisted", "http://other.example.org/fhir/CareTeam/x", "#team")
    cp["contained"] = [{"resourceType": "CareTeam", "id": "team"}]
    for targets in (None, {}, {"CareTeam/other": []}):
        issues = validate(cp, profiles=[CP], targets=targets, registry=reg)
        assert _ref_issues(issues) == [] and [i for i in issues if i.severity == "error"] == [], issues


def test_no_check_without_a_profile_or_when_the_base_type_is_allowed(reg):
    targets = {"CareTeam/ct1": [], "Practitioner/pr1": [], "CareTeam/ct2": []}
    assert _ref_issues(validate(_careplan("CareTeam/ct1"), targets=targets, registry=reg)) == []
    cp = _careplan("CareTeam/ct1")  # careTeam allows the base CareTeam too: any CareTeam will do
    cp["author"] = {"reference": "Practitioner/pr1"}  # author: base Practitioner, or a CareTeam with the profile
    issues = validate(cp, profiles=[CP_MIXED], targets=targets, registry=reg)
    assert _ref_issues(issues) == [], issues
    cp["author"] = {"reference": "CareTeam/ct2"}
    errors = [i for i in validate(cp, profiles=[CP_MIXED], targets=targets, registry=reg) if i.severity == "error"]
    assert [e.expression for e in errors] == [("CarePlan.author",)], errors
    # a target profile the registry does not know satisfies the element when claimed
    ok = validate(cp, profiles=[CP_MIXED], targets={"CareTeam/ct2": [UNKNOWN]}, registry=reg)
    assert [i for i in ok if i.severity == "error"] == [], ok


def test_wrong_target_type_is_reported_once(reg):
    cp = _careplan()
    cp["careTeam"] = [{"reference": "Patient/p1"}]
    issues = validate(cp, profiles=[CP], targets={"Patient/p1": []}, registry=reg)
    errors = [i for i in issues if i.severity == "error"]
    assert len(errors) == 1 and "not allowed" in errors[0].diagnostics, issues


def test_extension_reference_target_profile(reg):
    pat = {"resourceType": "Patient", "extension": [{"url": EXT, "valueReference": {"reference": "CareTeam/ct1"}}]}
    errors = [i for i in validate(pat, profiles=[PAT_EXT], targets={"CareTeam/ct1": []}, registry=reg)
              if i.severity == "error"]
    assert len(errors) == 1 and errors[0].expression == ("Patient.extension[0].valueReference",), errors
    assert _ref_issues(validate(pat, profiles=[PAT_EXT], targets={"CareTeam/ct1": [CT]}, registry=reg)) == []


def test_registry_knows_which_profiles_need_targets(reg):
    assert reg.target_profile_types(CP) == {"CareTeam"}
    assert reg.target_profile_types(CP_MIXED) == {"CareTeam"}
    assert reg.target_profile_types(PAT_EXT) == {"CareTeam"}  # through the extension it names
    assert reg.target_profile_types(CT) == frozenset()
    assert reg.target_profile_types(BASE + "CarePlan") == frozenset()
    assert reg.target_profile_types("http://example.org/unknown") == frozenset()
    assert reg.derives_from(CT_CHILD, CT) and reg.derives_from(CT_CHILD + "|1", CT + "|2")
    assert reg.derives_from(CT, BASE + "CareTeam") and not reg.derives_from(CT, CT_CHILD)


def test_registry_changes_drop_the_cached_answer():
    r = ProfileRegistry(vendored=False)
    sd = _sd(CP, "CarePlan", [{"id": "CarePlan.careTeam", "path": "CarePlan.careTeam",
                               "type": [{"code": "Reference", "targetProfile": [CT]}]}])
    r.add(sd)
    assert r.target_profile_types(CP) == frozenset()  # the CareTeam profile is not known yet
    r.add(_sd(CT, "CareTeam", []))
    assert r.target_profile_types(CP) == {"CareTeam"}
    r.remove(CT)
    assert r.target_profile_types(CP) == frozenset()


def test_relative_references_walk():
    cp = _careplan("CareTeam/a", "CareTeam/a", "CareTeam/b/_history/2", "http://x.org/fhir/CareTeam/c", "#d",
                   "urn:uuid:0b0b0b0b-0000-0000-0000-000000000000", "NotAType/e")
    cp["activity"] = [{"detail": {"performer": [{"reference": "Practitioner/p"}], "status": "scheduled"}}]
    cp["contained"] = [copy.deepcopy(_careplan("CareTeam/f"))]
    assert relative_references(cp) == ["Patient/p1", "CareTeam/a", "Practitioner/p", "CareTeam/f"]
    assert relative_references(cp, {"CareTeam"}) == ["CareTeam/a", "CareTeam/f"]


def test_resolved_types_follow_inherited_invariants_and_extension_values():
    """The stored targets an invariant's ``resolve()`` needs: plain paths (cares-ct-4 ``participant.member``),
    ``extension('<url>').value`` (cares-icp-6, the enrollment), and invariants a derived profile inherits."""
    import copy
    import json
    from pathlib import Path

    from fhir_server.validation.registry import ProfileRegistry

    ig = Path(__file__).resolve().parents[2] / "profiles" / "data" / "ig"
    reg = ProfileRegistry()
    for name in ("cares-patient", "cares-careteam", "cares-icp", "cares-ext-icp-enrollment", "cares-enrollment"):
        reg.add(json.loads((ig / f"{name}.json").read_text(encoding="utf-8")))
    sd = "http://cares-fhir.org/fhir/StructureDefinition/"
    team = reg.resolved_types(sd + "cares-careteam")
    assert {"Practitioner", "PractitionerRole", "RelatedPerson", "Organization"} <= team
    assert "EpisodeOfCare" in reg.resolved_types(sd + "cares-icp")
    assert "Patient" in reg.resolved_types(sd + "cares-enrollment")
    child = copy.deepcopy(json.loads((ig / "cares-careteam.json").read_text(encoding="utf-8")))
    child.update(url="http://example.org/StructureDefinition/child-team", baseDefinition=sd + "cares-careteam",
                 differential={"element": [{"id": "CareTeam.name", "path": "CareTeam.name", "min": 1}]})
    reg.add(child)
    assert reg.resolved_types(child["url"]) == team
