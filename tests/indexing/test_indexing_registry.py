"""The search-parameter registry: R4 coverage, per-type expressions, custom parameters."""

from __future__ import annotations

import pytest

from fhir_server.definitions import resource_types
from fhir_server.indexing import SearchParamRegistry, extract_index_rows


def test_every_r4_expression_compiles() -> None:
    reg = SearchParamRegistry.default()
    assert reg.unsupported == []
    assert set(reg.resource_types()) == set(resource_types())


def test_resource_level_params_apply_to_every_type() -> None:
    reg = SearchParamRegistry.default()
    for rtype in ("Patient", "Task", "Bundle", "Binary"):
        params = reg.params_for(rtype)
        assert {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_content"} <= set(params)
        assert params["_tag"].type == "token" and params["_tag"].indexed
    assert "_text" in reg.params_for("Patient")  # DomainResource only
    assert "_text" not in reg.params_for("Binary")
    assert not reg.get("Patient", "_text").indexed  # no expression in R4
    assert reg.get("Patient", "_id").expression == "Resource.id" and not reg.get("Patient", "_id").indexed


def test_union_over_bases_keeps_only_the_types_own_branches() -> None:
    reg = SearchParamRegistry.default()
    cp_patient = reg.get("CarePlan", "patient")
    assert "AllergyIntolerance.patient" in cp_patient.expression
    assert cp_patient.local_expression == "CarePlan.subject.where(resolve() is Patient)"
    assert "CarePlan" in cp_patient.base and "AllergyIntolerance" in cp_patient.base
    assert reg.get("AllergyIntolerance", "patient").local_expression == "AllergyIntolerance.patient"
    # a branch in parentheses: (DeviceRequest.code.ofType(CodeableConcept))
    assert reg.get("DeviceRequest", "code").local_expression == "(DeviceRequest.code.ofType(CodeableConcept))"
    assert [e.path.steps[0].key for e in reg.get("DeviceRequest", "code").extractors] == ["codeCodeableConcept"]
    obs_date = reg.get("Observation", "date")
    assert obs_date.local_expression == "Observation.effective"
    assert {e.path.steps[0].key for e in obs_date.extractors} == {
        "effectiveDateTime", "effectivePeriod", "effectiveTiming", "effectiveInstant"}
    assert reg.get("Task", "nonexistent") is None
    assert reg.params_for("NotAType") == {}


def test_composite_and_special_params_are_listed_without_rows() -> None:
    reg = SearchParamRegistry.default()
    combo = reg.get("Observation", "code-value-quantity")
    assert combo.type == "composite" and not combo.indexed
    assert [c[1] for c in combo.components] == ["code", "value.ofType(Quantity)"]
    assert reg.get("Location", "near").type == "special"


def test_custom_extension_param() -> None:
    reg = SearchParamRegistry.r4()
    url = "http://example.org/fhir/StructureDefinition/risk-tier"
    created = reg.add({"resourceType": "SearchParameter", "url": "http://example.org/sp/risk-tier", "code": "risk-tier",
                       "base": ["Patient", "Group"], "type": "token",
                       "expression": f"Patient.extension('{url}').value | Group.extension.where(url='{url}').value"})
    assert [p.resource_type for p in created] == ["Patient", "Group"]
    assert reg.get("Patient", "risk-tier").local_expression == f"Patient.extension('{url}').value"
    patient = {"resourceType": "Patient", "extension": [
        {"url": url, "valueCodeableConcept": {"coding": [{"system": "urn:tier", "code": "high"}]}},
        {"url": "http://example.org/other", "valueCode": "ignored"}]}
    out = extract_index_rows(reg, patient)
    assert [r for r in out["token"] if r[0] == "risk-tier"] == [("risk-tier", "urn:tier", "high", None)]
    group = {"resourceType": "Group", "type": "person", "actual": True, "extension": [{"url": url, "valueCode": "low"}]}
    assert ("risk-tier", None, "low", None) in extract_index_rows(reg, group)["token"]
    assert SearchParamRegistry.default().get("Patient", "risk-tier") is None  # the shared registry is untouched


def test_custom_param_replaces_and_unsupported_is_recorded() -> None:
    reg = SearchParamRegistry.r4()
    reg.add({"code": "status", "base": ["Task"], "type": "string", "expression": "Task.description"})
    out = extract_index_rows(reg, {"resourceType": "Task", "status": "draft", "description": "Call back"})
    assert [r for r in out["string"] if r[0] == "status"] == [("status", "call back", "Call back")]
    assert "token" not in out or not [r for r in out["token"] if r[0] == "status"]
    reg.add({"code": "odd", "base": ["Task"], "type": "token", "expression": "Task.input.select(type)"})
    assert reg.unsupported == [("Task", "odd", "function select()")]
    assert not reg.get("Task", "odd").indexed
    assert extract_index_rows(reg, {"resourceType": "Task", "input": [{"type": {"text": "t"}}]}) == {}


def test_custom_params_that_cannot_index_anything() -> None:
    reg = SearchParamRegistry.r4()
    reg.add({"code": "other-type", "base": ["Patient"], "type": "string", "expression": "Person.name"})
    reg.add({"code": "wrong-type", "base": ["Patient"], "type": "date", "expression": "Patient.maritalStatus"})
    assert reg.unsupported == [
        ("Patient", "other-type", "no branch of the expression applies to this type"),
        ("Patient", "wrong-type", "no branch yields an element type a date parameter can index"),
    ]
    with pytest.raises(ValueError):
        reg.add({"code": "no-base", "type": "token", "expression": "Patient.gender"})
    with pytest.raises(ValueError):
        reg.add({"code": "x" * 101, "base": ["Patient"], "type": "token", "expression": "Patient.gender"})
