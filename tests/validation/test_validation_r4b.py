"""R4 versus the R4B models of fhir.resources, and versus the (Medplum-modified) vendored definitions.

Valid R4 must never be rejected: not for types R4B lacks or redesigned, not for R4B's stricter data types, and not
for elements the vendored definitions dropped. Non-R4 elements the vendored definitions added are rejected.
"""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from fhir_server.definitions import resource_types
from fhir_server.validation import structure
from fhir_server.validation.structure import R4B_FALLBACK_TYPES, validate_structure


@pytest.fixture(autouse=True, params=[True, False], ids=["with-r4b-models", "r4-walk-only"])
def models(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setattr(structure, "USE_R4B_MODELS", request.param)
    return request.param


def paths(resource: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    return [(i.code, i.expression) for i in validate_structure(resource)]


def r4b_rejects(resource: dict[str, Any]) -> bool:
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except ValidationError:
        return True
    except ValueError:  # no R4B model
        return True
    return False


# --- the fallback list ------------------------------------------------------------------------------------------------

def test_every_type_without_an_r4b_model_is_in_the_fallback_list() -> None:
    missing = set()
    for rt in resource_types():
        try:
            get_fhir_model_class(rt)
        except ValueError:
            missing.add(rt)
    assert missing == R4B_FALLBACK_TYPES - {"Evidence", "EvidenceVariable"}
    assert R4B_FALLBACK_TYPES <= resource_types()


# --- R4-only and redesigned types -------------------------------------------------------------------------------------

MEDICINAL_PRODUCT = {"resourceType": "MedicinalProduct", "id": "mp1",
                     "name": [{"productName": "Aspirin 100 mg", "namePart": [{"part": "Aspirin",
                                                                             "type": {"code": "invented"}}]}]}
EVIDENCE = {"resourceType": "Evidence", "status": "draft", "name": "AspirinEvidence", "shortTitle": "Aspirin",
            "jurisdiction": [{"text": "US"}], "effectivePeriod": {"start": "2020-01-01"},
            "exposureBackground": {"reference": "EvidenceVariable/ev1"},
            "outcome": [{"reference": "EvidenceVariable/ev2"}]}
EVIDENCE_VARIABLE = {"resourceType": "EvidenceVariable", "status": "draft", "type": "dichotomous",
                     "approvalDate": "2020-01-01", "topic": [{"text": "t"}],
                     "characteristic": [{"description": "adults",
                                         "definitionDataRequirement": {"type": "Observation"},
                                         "usageContext": [{"code": {"code": "age"}, "valueRange": {}}],
                                         "participantEffectivePeriod": {"start": "2020"},
                                         "timeFromStart": {"value": 3, "unit": "d"}, "groupMeasure": "mean"}]}
EVIDENCE_VARIABLE["characteristic"][0]["usageContext"][0]["valueRange"] = {"low": {"value": 18}}


@pytest.mark.parametrize("resource", [MEDICINAL_PRODUCT, EVIDENCE, EVIDENCE_VARIABLE],
                         ids=lambda r: r["resourceType"])
def test_valid_r4_that_r4b_cannot_take_is_accepted(resource: dict[str, Any]) -> None:
    assert r4b_rejects(resource)
    assert validate_structure(resource) == []


def test_fallback_type_still_gets_the_r4_walk() -> None:
    resource = {**MEDICINAL_PRODUCT, "name": {"productName": "x"}, "colour": "red"}
    assert paths(resource) == [("structure", ("MedicinalProduct.name",)), ("structure", ("MedicinalProduct.colour",))]


def test_fallback_type_required_elements() -> None:
    assert paths({"resourceType": "MedicinalProduct"}) == [("required", ("MedicinalProduct.name",))]
    assert paths({"resourceType": "EvidenceVariable", "status": "draft"}) == [
        ("required", ("EvidenceVariable.characteristic",))]
    assert paths({"resourceType": "EvidenceVariable", "status": "draft", "characteristic": [{"exclude": True}]}) == [
        ("required", ("EvidenceVariable.characteristic[0].definition[x]",))]


def test_fallback_type_primitives() -> None:
    resource = {**MEDICINAL_PRODUCT, "id": "bad id", "name": [{"productName": 5}]}
    assert paths(resource) == [("value", ("MedicinalProduct.id",)),
                               ("value", ("MedicinalProduct.name[0].productName",))]


def test_fallback_type_inside_a_bundle() -> None:
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": MEDICINAL_PRODUCT}, {"resource": EVIDENCE}]}
    assert validate_structure(bundle) == []
    bundle["entry"][1]["resource"] = {**EVIDENCE, "variableDefinition": []}
    assert paths(bundle) == [("structure", ("Bundle.entry[1].resource.variableDefinition",))]


# --- R4B data types stricter than R4 ----------------------------------------------------------------------------------

def test_extension_value_meta_is_r4() -> None:
    resource = {"resourceType": "Patient", "extension": [{"url": "http://x", "valueMeta": {"versionId": "1"}}]}
    assert r4b_rejects(resource)
    assert validate_structure(resource) == []


@pytest.mark.parametrize("uuid", ["urn:uuid:00000000-0000-0000-0000-000000000000",
                                  "urn:uuid:c757873d-ec9a-1326-a141-556f43239520"])
def test_any_uuid_version_is_r4(uuid: str) -> None:
    resource = {"resourceType": "Task", "status": "draft", "intent": "order",
                "input": [{"type": {"text": "t"}, "valueUuid": uuid}]}
    assert r4b_rejects(resource)
    assert validate_structure(resource) == []


def test_structure_definition_with_meta_pattern() -> None:
    resource = {"resourceType": "StructureDefinition", "url": "http://x", "name": "X", "status": "draft",
                "kind": "resource", "abstract": False, "type": "Patient",
                "differential": {"element": [{"path": "Patient.meta", "patternMeta": {"versionId": "1"}}]}}
    assert validate_structure(resource) == []


# --- corrections of the vendored definitions --------------------------------------------------------------------------

@pytest.mark.parametrize(("resource", "path"), [
    ({"resourceType": "Patient", "meta": {"project": "p1"}}, "Patient.meta.project"),
    ({"resourceType": "Patient", "meta": {"compartment": [{"reference": "Patient/1"}]}}, "Patient.meta.compartment"),
    ({"resourceType": "Binary", "contentType": "text/plain", "url": "http://x"}, "Binary.url"),
    ({"resourceType": "HealthcareService", "offeredIn": [{"reference": "HealthcareService/1"}]},
     "HealthcareService.offeredIn"),
    ({"resourceType": "ResearchStudy", "status": "active", "name": "x"}, "ResearchStudy.name"),
    ({"resourceType": "EvidenceVariable", "status": "draft",
      "characteristic": [{"definitionCodeableConcept": {"text": "x"}, "linkId": "a"}]},
     "EvidenceVariable.characteristic[0].linkId"),
])
def test_non_r4_elements_of_the_vendored_definitions_are_unknown(resource: dict[str, Any], path: str) -> None:
    assert paths(resource) == [("structure", (path,))]


def test_bundle_response_outcome_takes_any_resource() -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction-response",
              "entry": [{"response": {"status": "201", "outcome": {"resourceType": "Basic", "code": {"text": "x"}}}}]}
    assert validate_structure(bundle) == []


# --- the model stage --------------------------------------------------------------------------------------------------

def test_model_errors_that_survive_are_mapped_to_expressions() -> None:
    resource = {"resourceType": "Task", "status": "draft", "intent": "order",
                "input": [{"type": {"text": "t"}, "valueInteger": 2**31}]}
    issues = structure._models_issues(resource, "Task")
    assert [(i.code, i.expression) for i in issues] == [("value", ("Task.input[0].valueInteger",))]


def test_model_errors_known_to_diverge_from_r4_are_dropped() -> None:
    resource = {"resourceType": "Task", "intent": "order", "foo": 1, "id": "a b",
                "input": [{"type": {"text": "t"}, "valueMeta": {}}, {"type": {"text": "t"}}]}
    assert structure._models_issues(resource, "Task") == []


# --- every element of every type --------------------------------------------------------------------------------------

SAMPLES: dict[str, Any] = {
    "boolean": True, "integer": -1, "positiveInt": 1, "unsignedInt": 0, "decimal": 1.5, "string": " x ",
    "markdown": "# x", "code": "x y", "id": "x-1.2", "uri": "urn:x", "url": "http://x", "canonical": "http://x|1",
    "oid": "urn:oid:1.2", "uuid": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520", "date": "2020-02",
    "dateTime": "2020-01-01T00:00:00+01:00", "instant": "2020-01-01T00:00:00.5Z", "time": "10:00:00",
    "base64Binary": "aGVsbG8=", "xhtml": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
}


def instance(key: str, rotation: int, depth: int = 0, max_depth: int = 3) -> dict[str, Any]:
    """An instance of compiled type ``key`` with every element (children below ``max_depth`` only when required),
    each choice element taking its ``rotation``-th type."""
    typ = structure._compile(key)
    required = {name for name, _ in typ.required} | set(typ.required_choices)
    out: dict[str, Any] = {"resourceType": key} if typ.resource else {}
    choices: dict[str, list[str]] = {}
    for json_key, el in typ.elements.items():
        if el.choice is not None:
            choices.setdefault(el.choice, []).append(json_key)
    for json_key, el in typ.elements.items():
        if el.choice is not None:
            options = choices[el.choice]
            if json_key != options[rotation % len(options)]:
                continue
        name = el.choice or json_key
        if (depth >= max_depth and name not in required) or (json_key == "contained" and depth > 0):
            continue
        if el.prim is not None:
            value: Any = SAMPLES[el.prim.name]
        elif el.resource:
            value = {"resourceType": "Basic", "code": {"text": "x"}}
        else:
            value = instance(el.complex, rotation, depth + 1, max_depth)  # type: ignore[arg-type]
            if not value:
                if name not in required:
                    continue
                value = {"extension": [{"url": "http://x", "valueString": "x"}]}
        out[json_key] = [value] if el.is_list else value
    return out


@pytest.mark.parametrize("rt", sorted(resource_types()))
def test_every_element_of_every_type_is_accepted(rt: str) -> None:
    for rotation in range(3):
        resource = instance(rt, rotation)
        assert validate_structure(resource) == [], rotation


def test_every_type_of_extension_value_is_accepted() -> None:
    value_keys = [k for k, e in structure._compile("Extension").elements.items() if e.choice == "value"]
    assert len(value_keys) == 50 and "valueMeta" in value_keys
    for rotation in range(len(value_keys)):
        extension = instance("Extension", rotation, max_depth=2)
        del extension["extension"]  # ext-1: extensions or a value, not both
        assert value_keys[rotation] in extension
        resource = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "extension": [extension]}
        assert validate_structure(resource) == [], value_keys[rotation]


def test_the_generated_instances_are_not_trivial() -> None:
    patient = instance("Patient", 0)
    assert {"name", "telecom", "contact", "deceasedBoolean", "multipleBirthBoolean"} <= patient.keys()
    assert instance("Patient", 1)["deceasedDateTime"] == SAMPLES["dateTime"]
