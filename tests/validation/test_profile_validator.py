"""The profile validator's API and engine rules (``validator.validate``, ``profile.validate_against``,
``ProfileRegistry``, invariants, bindings, must-support, timing)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonpatch
import orjson
import pytest

from fhir_server.outcome import Issue
from fhir_server.validation import bindings, invariants
from fhir_server.validation.profile import validate_against
from fhir_server.validation.registry import ProfileRegistry, default_registry
from fhir_server.validation.validator import validate

DATA = Path(__file__).parent / "data"
BASES = json.loads((DATA / "broken" / "bases.json").read_text(encoding="utf-8"))
CP = "http://cares.example.org/fhir/StructureDefinition/cares-careplan"
PAT = "http://cares.example.org/fhir/StructureDefinition/cares-patient"
EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "fhir-examples"


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    reg = ProfileRegistry()
    for f in sorted((DATA / "profiles").glob("*.json")):
        reg.add(json.loads(f.read_text(encoding="utf-8")))
    return reg


def _careplan() -> dict:
    return copy.deepcopy(BASES["careplan"])


def test_unknown_profile_is_a_warning(registry):
    issues = validate(BASES["patient"], profiles=["http://example.org/nope"], registry=registry)
    assert [(i.severity, i.code) for i in issues if "unknown profile" in i.diagnostics] == [("warning", "not-found")]
    assert validate_against(BASES["patient"], "http://example.org/nope", registry=registry)[0].severity == "warning"


def test_profile_for_another_type(registry):
    issues = validate_against(BASES["patient"], CP, registry=registry)
    assert [i.code for i in issues] == ["structure"]
    assert "cannot conform" in issues[0].diagnostics


def test_validate_against_returns_issues(registry):
    cp = _careplan()
    cp["intent"] = "order"
    issues = validate_against(cp, CP, registry=registry)
    assert all(isinstance(i, Issue) for i in issues)
    assert [(i.code, i.expression) for i in issues] == [("value", ("CarePlan.intent",))]
    assert CP in issues[0].diagnostics and "CaresCarePlan" in issues[0].diagnostics


def test_registry_add_get_remove():
    reg = ProfileRegistry(vendored=False)
    sd = json.loads((DATA / "profiles" / "cares-careplan.json").read_text(encoding="utf-8"))
    assert reg.get(CP) is None
    reg.add(sd)
    assert reg.get(CP) is sd and reg.get(CP + "|1.0") is sd
    assert reg.type_of(CP) == "CarePlan"
    assert validate(_careplan(), profiles=[CP], registry=reg) == []
    reg.remove(CP)
    assert reg.get(CP) is None
    assert "unknown profile" in validate(_careplan(), profiles=[CP], registry=reg)[-1].diagnostics
    with pytest.raises(ValueError):
        reg.add({"resourceType": "Patient"})


def test_registry_knows_base_vendored_and_constraint_types():
    from profiles import extension_definitions, other_profiles

    assert (len(other_profiles()), len(extension_definitions())) == (44, 393)
    reg = default_registry()
    for url in ("http://hl7.org/fhir/StructureDefinition/CarePlan", "http://hl7.org/fhir/StructureDefinition/bp",
                "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "http://hl7.org/fhir/StructureDefinition/SimpleQuantity"):
        assert reg.get(url) is not None, url


def test_runtime_profile_change_invalidates_caches():
    reg = ProfileRegistry(vendored=False)
    sd = json.loads((DATA / "profiles" / "cares-careplan.json").read_text(encoding="utf-8"))
    reg.add(sd)
    assert validate(_careplan(), profiles=[CP], registry=reg) == []
    stricter = copy.deepcopy(sd)
    stricter["differential"]["element"].append({"id": "CarePlan.note", "path": "CarePlan.note", "max": "0"})
    reg.add(stricter)
    issues = validate(_careplan(), profiles=[CP], registry=reg)
    assert [(i.code, i.expression) for i in issues] == [("structure", ("CarePlan.note",))]


def test_strict_must_support(registry):
    cp = _careplan()
    del cp["description"]
    assert validate(cp, profiles=[CP], registry=registry) == []
    issues = validate(cp, profiles=[CP], strict_must_support=True, registry=registry)
    assert [(i.severity, i.expression) for i in issues] == [("information", ("CarePlan.description",))]


def test_exact_expression_of_nested_element(registry):
    cp = _careplan()
    cp["activity"][2]["detail"]["performer"] = [{"reference": "Device/d1"}]
    issues = validate(cp, profiles=[CP], registry=registry)
    assert ("CarePlan.activity[2].detail.performer[0]",) in {i.expression for i in issues}


def test_cares_source_in_message(registry):
    cp = _careplan()
    del cp["title"]
    [issue] = [i for i in validate(cp, profiles=[CP], registry=registry) if i.code == "invariant"]
    assert "cares-cp-1" in issue.diagnostics and "SHALL have a title" in issue.diagnostics
    assert "[source: Appendix M §4.2]" in issue.diagnostics


def test_base_invariant_reported_once_with_profiles(registry):
    cp = _careplan()
    cp["period"]["end"] = "2000-01-01"
    issues = validate(cp, profiles=[CP, CP], registry=registry)
    assert [i.diagnostics.split(":")[1].strip() for i in issues if i.code == "invariant"] == ["constraint per-1 failed"]


def test_invalid_json_shapes_do_not_crash(registry):
    weird = {"resourceType": "CarePlan", "status": 3, "intent": ["plan"], "subject": "Patient/1",
             "activity": [{"detail": "x"}, 7, {"detail": {"performer": {"reference": 5}}}],
             "period": {"start": {"x": 1}}, "extension": [{"url": 5}, "y"], "contained": [{"resourceType": 1}]}
    issues = validate(weird, profiles=[CP], registry=registry)
    assert any(i.severity == "error" for i in issues)


def test_unsupported_fhirpath_is_skipped_and_recorded(registry):
    reg = ProfileRegistry(vendored=False)
    reg.add({"resourceType": "StructureDefinition", "url": "http://example.org/odd", "name": "Odd",
             "type": "Patient", "derivation": "constraint",
             "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
             "differential": {"element": [
                 {"id": "Patient", "path": "Patient",
                  "constraint": [{"key": "odd-1", "severity": "error", "human": "odd",
                                  "expression": "name.all(noSuchFunction())"},
                                 {"key": "odd-2", "severity": "error", "human": "unparsable",
                                  "expression": "name.where("}]}]}})
    issues = validate(BASES["patient"], profiles=["http://example.org/odd"], registry=reg)
    assert [i for i in issues if i.severity == "error"] == []
    skipped = {k for k, _, _ in invariants.SKIPPED_INVARIANTS}
    assert {"odd-1", "odd-2"} <= skipped


def test_native_invariants_agree_with_fhirpathpy():
    samples = [({"family": "x"}, None), ({"id": "a"}, None), ("2020", None), (None, {"extension": [{"url": "u"}]}),
               (True, None), ({"id": "a", "extension": [{"url": "u", "valueString": "x"}]}, None)]
    expr = invariants.NATIVE["ele-1"][0]
    for data, ext in samples:
        got = invariants.evaluate_fhirpath("ele-1", expr, data, ext, "Element", {}, {})
        if data is None:
            continue  # fhirpathpy does not see children of a value-less primitive (its ele-1 would be false)
        assert got == [invariants.NATIVE["ele-1"][1](data, ext)], (data, ext, got)
    expr = invariants.NATIVE["ext-1"][0]
    for data in ({"url": "u", "valueString": "x"}, {"url": "u", "extension": [{"url": "a", "valueInteger": 1}]},
                 {"url": "u", "valueString": "x", "extension": [{"url": "a", "valueInteger": 1}]}, {"url": "u"}):
        got = invariants.evaluate_fhirpath("ext-1", expr, data, None, "Extension", {}, {})
        assert got == [invariants.NATIVE["ext-1"][1](data, None)], data


def test_guards_agree_with_fhirpathpy_on_the_corpus(monkeypatch):
    """Every invariant the guards decide without fhirpathpy gives the same answer with fhirpathpy."""
    monkeypatch.setattr(invariants, "VERIFY_GUARDS", True)
    monkeypatch.setattr(invariants, "GUARD_DISAGREEMENTS", [])
    files = sorted((EXAMPLES / "examples").glob("*.json"))
    for f in files:
        validate(orjson.loads(f.read_bytes()))
    for r in BASES.values():
        validate(r)
    for case in json.loads((DATA / "broken" / "cases.json").read_text(encoding="utf-8")):
        validate(jsonpatch.apply_patch(copy.deepcopy(BASES[case["base"]]), case["patch"]))
    assert invariants.GUARD_DISAGREEMENTS == []


def test_guard_shapes():
    g = invariants.guard_of
    assert g("contained.contained.empty()")({}) is True
    assert g("contained.contained.empty()")({"contained": []}) is False
    assert g("name.exists() or telecom.exists()") is None
    assert g("detail.empty() or reference.empty()")({"detail": {}}) is True
    assert g("value.exists() implies unit.exists()")({}) is True
    assert g("value.count() > 0 or x.empty()")({"x": 1}) is False
    assert g("contained.count().empty()") is None  # count() makes a value out of nothing: no guard


class _FakeTerminology:
    def __init__(self, result):
        self.result, self.calls = result, []

    def __call__(self, vs, *, system=None, code=None, display=None):
        from types import SimpleNamespace

        self.calls.append((vs, system, code))
        return SimpleNamespace(result=self.result(vs, system, code), message="fake says so", display=None)


@pytest.fixture
def fake_terminology():
    def use(result):
        fake = _FakeTerminology(result)
        bindings.set_validate_code(fake)
        return fake

    yield use
    bindings.set_validate_code(None)


def test_required_binding_error(fake_terminology, registry):
    fake_terminology(lambda vs, system, code: code != "bogus")
    obs = copy.deepcopy(BASES["bp"])
    obs["status"] = "bogus"
    issues = [i for i in validate(obs, registry=registry) if i.code == "code-invalid"]
    assert [(i.severity, i.expression) for i in issues] == [("error", ("Observation.status",))]
    assert "observation-status" in issues[0].diagnostics


def test_extensible_binding_warning(fake_terminology, registry):
    fake_terminology(lambda vs, system, code: code != "odd" if "observation-category" in vs else True)
    obs = copy.deepcopy(BASES["bodyweight"])
    obs["category"][0]["coding"][0]["code"] = "odd"
    issues = [i for i in validate(obs, profiles=["http://cares.example.org/fhir/StructureDefinition/cares-observation"],
                                  registry=registry) if i.code == "code-invalid"]
    assert [(i.severity, i.expression) for i in issues] == [("warning", ("Observation.category[0]",))]


def test_codeable_concept_one_good_coding_is_enough(fake_terminology, registry):
    fake_terminology(lambda vs, system, code: code == "vital-signs" if "observation-category" in vs else True)
    obs = copy.deepcopy(BASES["bodyweight"])
    obs["category"][0]["coding"].insert(0, {"system": "http://example.org", "code": "other"})
    issues = validate(obs, profiles=["http://cares.example.org/fhir/StructureDefinition/cares-observation"],
                      registry=registry)
    assert [i for i in issues if i.code == "code-invalid"] == []


def test_unknown_result_is_not_an_error(fake_terminology, registry):
    fake_terminology(lambda vs, system, code: None)
    issues = validate(BASES["bp"], registry=registry)
    assert issues and all(i.severity == "warning" and i.code == "informational" for i in issues)
    assert all("fake says so" in i.diagnostics for i in issues)


def test_preferred_and_example_bindings_are_not_checked(fake_terminology):
    fake = fake_terminology(lambda vs, system, code: False)
    assert bindings.check_binding({"strength": "preferred", "valueSet": "x"}, "code", "a") == []
    assert bindings.check_binding({"strength": "example", "valueSet": "x"}, "code", "a") == []
    assert fake.calls == []


@pytest.mark.skipif(not bindings.available(), reason="terminology.validate_code is not available")
def test_real_terminology_required_binding(registry):
    obs = copy.deepcopy(BASES["bp"])
    obs["status"] = "bogus"
    assert ("error", "code-invalid", ("Observation.status",)) in {
        (i.severity, i.code, i.expression) for i in validate(obs, registry=registry)}
    obs["status"] = "final"
    assert [i for i in validate(obs, registry=registry) if i.severity == "error"] == []


# Timing lives in bench/validate.py (no timed assertions in tests).


def test_profile_whose_differential_does_not_apply():
    reg = ProfileRegistry(vendored=False)
    reg.add({"resourceType": "StructureDefinition", "url": "http://example.org/bad", "type": "Patient",
             "derivation": "constraint", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
             "differential": {"element": [{"id": "Patient.nonsense", "path": "Patient.nonsense", "min": 1}]}})
    issues = validate(BASES["patient"], profiles=["http://example.org/bad"], registry=reg)
    assert [(i.severity, i.code) for i in issues if "cannot be used" in i.diagnostics] == [("error", "processing")]
    assert validate_against(BASES["patient"], "http://example.org/bad", registry=reg)[0].code == "processing"


def test_many_warnings_are_cut_without_an_error():
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": f"urn:uuid:00000000-0000-0000-0000-{i:012d}",
                         "resource": {"resourceType": "Basic", "code": {"text": "x"}}} for i in range(150)]}
    issues = validate(bundle)
    assert not any(i.severity == "error" for i in issues)
    assert issues[-1].severity == "information" and "left out" in issues[-1].diagnostics
