"""Invalid R4 content gives an issue with the right code, the exact expression and a message that keeps PHI out."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fhir_server.outcome import Issue
from fhir_server.validation import structure
from fhir_server.validation.structure import validate_structure


@pytest.fixture(autouse=True, params=[True, False], ids=["with-r4b-models", "r4-walk-only"])
def models(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Every test runs with and without the R4B model stage: the answers must be the same."""
    monkeypatch.setattr(structure, "USE_R4B_MODELS", request.param)
    return request.param


def task(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Task", "status": "requested", "intent": "order", **extra}


def careplan(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": "Patient/1"},
            **extra}


def one(resource: dict[str, Any]) -> Issue:
    issues = validate_structure(resource)
    assert len(issues) == 1, issues
    assert issues[0].severity == "error"
    return issues[0]


def codes_and_paths(resource: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    return [(i.code, i.expression) for i in validate_structure(resource)]


# --- valid things stay valid ------------------------------------------------------------------------------------

@pytest.mark.parametrize("resource", [
    task(),
    careplan(),
    task(description="  leading and trailing whitespace is allowed in a string  "),
    task(description="line\nbreaks\tand tabs"),
    task(description="a\u00a0no-break space and ünïcödé"),
    task(id="A-Za-z0-9.-" + "x" * 53),  # 64 characters
    task(authoredOn="2016-12-31T23:59:60Z"),  # leap second
    task(authoredOn="2024-02-29T10:00:00.123456789+14:00"),
    {"resourceType": "Patient", "birthDate": "1990", "_birthDate": {"id": "b"}},
    {"resourceType": "Patient", "name": [{"given": ["Amy", None],
                                          "_given": [None, {"extension": [{"url": "http://x", "valueCode": "UNK"}]}]}]},
    {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": 1e-3}},
    {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueInteger": 2147483647},
    {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}},
], ids=lambda r: r["resourceType"])
def test_valid(resource: dict[str, Any]) -> None:
    assert validate_structure(resource) == []


def test_required_primitive_may_be_given_by_its_extension_alone() -> None:
    resource = {"resourceType": "Task", "intent": "order",
                "_status": {"extension": [{"url": "http://example.org/data-absent", "valueCode": "unknown"}]}}
    assert validate_structure(resource) == []


# --- resourceType ---------------------------------------------------------------------------------------------

def test_missing_resource_type() -> None:
    issue = one({"status": "requested"})
    assert (issue.code, issue.expression) == ("invalid", ())


def test_resource_type_not_a_string() -> None:
    assert one({"resourceType": 7}).code == "invalid"


@pytest.mark.parametrize("rt", ["Foo", "ClinicalUseDefinition", "patient", "Resource", "DomainResource"])
def test_unknown_or_non_r4_resource_type(rt: str) -> None:
    issue = one({"resourceType": rt})
    assert issue.code == "not-supported"
    assert rt in issue.diagnostics


def test_not_an_object() -> None:
    assert validate_structure([task()])[0].code == "structure"  # type: ignore[arg-type]


# --- unknown elements -------------------------------------------------------------------------------------------

def test_unknown_top_level_element() -> None:
    issue = one(task(foo=1))
    assert (issue.code, issue.expression, issue.diagnostics) == ("structure", ("Task.foo",), "Unknown element 'foo'")


def test_unknown_nested_element() -> None:
    resource = careplan(activity=[{"detail": {"status": "scheduled"}},
                                  {"detail": {"status": "scheduled", "performer": [{"reference": "Practitioner/1",
                                                                                    "colour": "red"}]}}])
    issue = one(resource)
    assert issue.code == "structure"
    assert issue.expression == ("CarePlan.activity[1].detail.performer[0].colour",)
    assert issue.diagnostics == "Unknown element 'colour'"


@pytest.mark.parametrize("key", ["status__ext", "fhir_comments", "resource_type", "_foo", "_subject", "Status"])
def test_python_aliases_and_other_non_json_names_are_unknown(key: str) -> None:
    issue = one(careplan(**{key: {"extension": [{"url": "http://x", "valueString": "y"}]}}))
    assert (issue.code, issue.expression) == ("structure", (f"CarePlan.{key}",))


def test_python_keyword_field_name_is_unknown() -> None:
    assert codes_and_paths({"resourceType": "Encounter", "status": "finished", "class_fhir": {"code": "AMB"}}) == [
        ("structure", ("Encounter.class_fhir",)), ("required", ("Encounter.class",))]


def test_choice_type_not_allowed_for_the_element() -> None:
    issue = one({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                 "valueAddress": {"city": "B"}})
    assert (issue.code, issue.expression) == ("structure", ("Observation.valueAddress",))


# --- wrong JSON types of primitives ----------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "value", "json_type"), [
    ("valueInteger", "1", "string"),
    ("valueInteger", True, "boolean"),
    ("valueInteger", 1.5, "number"),
    ("valueInteger", 1.0, "number"),
    ("valueBoolean", "true", "string"),
    ("valueBoolean", 1, "number"),
    ("valueDecimal", "1.5", "string"),
    ("valueDecimal", True, "boolean"),
    ("valueString", 5, "number"),
    ("valueString", True, "boolean"),
    ("valueString", {"value": "x"}, "object"),
    ("valueDateTime", 20240101, "number"),
    ("valueCode", ["a"], "array"),
])
def test_wrong_json_type_of_a_primitive(key: str, value: Any, json_type: str) -> None:
    resource = task(input=[{"type": {"text": "t"}, key: value}])
    issue = one(resource)
    expected_code = "structure" if json_type == "array" else "value"
    assert (issue.code, issue.expression) == (expected_code, (f"Task.input[0].{key}",))
    if json_type != "array":
        assert f"not {json_type}" in issue.diagnostics


def test_number_for_a_string_element() -> None:
    issue = one(task(description=42))
    assert (issue.code, issue.expression) == ("value", ("Task.description",))
    assert issue.diagnostics == "Task.description: must be a JSON string (string), not number"


def test_string_for_a_boolean_element() -> None:
    issue = one({"resourceType": "Patient", "active": "true"})
    assert (issue.code, issue.expression) == ("value", ("Patient.active",))


@pytest.mark.parametrize(("key", "value"), [("valueInteger", 2**31), ("valueInteger", -2**31 - 1),
                                            ("valuePositiveInt", 0), ("valueUnsignedInt", -1)])
def test_integer_out_of_range(key: str, value: int) -> None:
    issue = one(task(input=[{"type": {"text": "t"}, key: value}]))
    assert (issue.code, issue.expression) == ("value", (f"Task.input[0].{key}",))
    assert "out of range" in issue.diagnostics


# --- lexical checks -------------------------------------------------------------------------------------------------

def test_bad_datetime_message() -> None:
    issue = one(careplan(period={"start": "bad"}))
    assert (issue.code, issue.expression) == ("value", ("CarePlan.period.start",))
    assert issue.diagnostics == "CarePlan.period.start: 'bad' is not a valid dateTime"


@pytest.mark.parametrize("value", ["2024-13-01", "2024-02-30", "2023-02-29", "24-01-01", "2024-01-01T10:00:00",
                                   "2024-01-01T10:00Z", "2024-01-01T24:00:00Z", " 2024-01-01", "2024-01-01 "])
def test_bad_datetimes(value: str) -> None:
    issue = one(task(authoredOn=value))
    assert (issue.code, issue.expression) == ("value", ("Task.authoredOn",))


@pytest.mark.parametrize("value", ["2024-1-1", "2024-02-30", "1990-01-01T00:00:00Z"])
def test_bad_date(value: str) -> None:
    issue = one({"resourceType": "Patient", "birthDate": value})
    assert (issue.code, issue.expression) == ("value", ("Patient.birthDate",))
    assert "is not a valid date" in issue.diagnostics


@pytest.mark.parametrize("value", [" active", "active ", "act  ive", ""])
def test_bad_code(value: str) -> None:
    issue = one(careplan(status=value))
    assert issue.expression == ("CarePlan.status",)
    assert issue.code == ("invalid" if value == "" else "value")


@pytest.mark.parametrize(("key", "value"), [("valueUri", "has space"), ("valueOid", "1.2.3"),
                                            ("valueUuid", "c757873d-ec9a-4326-a141-556f43239520"),
                                            ("valueBase64Binary", "abc"), ("valueTime", "10:00"),
                                            ("valueInstant", "2024-01-01")])
def test_other_bad_primitives(key: str, value: str) -> None:
    issue = one(task(input=[{"type": {"text": "t"}, key: value}]))
    assert (issue.code, issue.expression) == ("value", (f"Task.input[0].{key}",))


# --- resource ids ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rid", ["a_b", "a b", "x" * 65, "é", "a/b"])
def test_invalid_id(rid: str) -> None:
    issue = one(task(id=rid))
    assert (issue.code, issue.expression) == ("value", ("Task.id",))
    assert "is not a valid id" in issue.diagnostics


def test_invalid_id_of_a_contained_resource() -> None:
    resource = task(contained=[{"resourceType": "Patient", "id": "p_1"}])
    assert codes_and_paths(resource) == [("value", ("Task.contained[0].id",))]


def test_element_ids_are_plain_strings() -> None:
    assert validate_structure(careplan(period={"id": "any thing_goes", "start": "2024"})) == []


# --- required elements -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("resource", "path"), [
    ({"resourceType": "Task", "intent": "order"}, "Task.status"),
    ({"resourceType": "Task", "status": "draft"}, "Task.intent"),
    ({"resourceType": "CarePlan", "status": "active", "intent": "plan"}, "CarePlan.subject"),
    ({"resourceType": "CarePlan", "status": "active", "subject": {"reference": "Patient/1"}}, "CarePlan.intent"),
    ({"resourceType": "Observation", "status": "final"}, "Observation.code"),
    (careplan(activity=[{"detail": {"code": {"text": "x"}}}]), "CarePlan.activity[0].detail.status"),
    (task(extension=[{"valueString": "x"}]), "Task.extension[0].url"),
    (task(text={"status": "generated"}), "Task.text.div"),
])
def test_missing_required_element(resource: dict[str, Any], path: str) -> None:
    issue = one(resource)
    assert (issue.code, issue.expression) == ("required", (path,))
    assert f"missing required element '{path.rsplit('.', 1)[1]}'" in issue.diagnostics


def test_missing_required_choice() -> None:
    issue = one(task(input=[{"type": {"text": "t"}}]))
    assert (issue.code, issue.expression) == ("required", ("Task.input[0].value[x]",))


def test_more_than_one_choice_type() -> None:
    issue = one(task(input=[{"type": {"text": "t"}, "valueString": "a", "valueInteger": 1}]))
    assert issue.code == "structure"
    assert issue.expression == ("Task.input[0].valueString", "Task.input[0].valueInteger")
    assert "only one of value[x]" in issue.diagnostics


def test_a_choice_and_its_own_extension_are_one_choice() -> None:
    resource = task(input=[{"type": {"text": "t"}, "valueString": "a",
                            "_valueString": {"extension": [{"url": "http://x", "valueBoolean": True}]}}])
    assert validate_structure(resource) == []


def test_several_required_elements_missing_at_once() -> None:
    assert codes_and_paths({"resourceType": "CarePlan"}) == [
        ("required", ("CarePlan.status",)), ("required", ("CarePlan.intent",)), ("required", ("CarePlan.subject",))]


# --- bindings: not checked --------------------------------------------------------------------------------------------

def test_required_binding_codes_are_not_checked() -> None:
    """fhir.resources' R4B models check no value sets (CarePlan.status is just a ``code``), and neither do we.

    A value set check for required bindings needs the R4 value sets, which are not vendored.
    """
    assert validate_structure(careplan(status="bogus", intent="whatever")) == []
    assert validate_structure(task(status="not-a-status")) == []


# --- empty things, nulls ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("extra", "path"), [
    ({"code": {}}, "Task.code"),
    ({"basedOn": []}, "Task.basedOn"),
    ({"description": ""}, "Task.description"),
    ({"description": None}, "Task.description"),
    ({"code": {"coding": [{}]}}, "Task.code.coding[0]"),
    ({"code": {"coding": []}}, "Task.code.coding"),
    ({"code": {"id": "only-an-id"}}, "Task.code"),
    ({"note": [{"text": "x"}, {}]}, "Task.note[1]"),
    ({"identifier": [{"system": ""}]}, "Task.identifier[0].system"),
    ({"meta": {"tag": [{"code": "x"}], "security": []}}, "Task.meta.security"),
])
def test_empty_elements_are_invalid(extra: dict[str, Any], path: str) -> None:
    issue = one(task(**extra))
    assert (issue.code, issue.expression) == ("invalid", (path,))


def test_null_inside_an_array_of_complex_elements() -> None:
    issue = one(task(basedOn=[{"reference": "Task/1"}, None]))
    assert (issue.code, issue.expression) == ("structure", ("Task.basedOn[1]",))


def test_null_in_a_primitive_array_needs_an_aligned_extension() -> None:
    issue = one({"resourceType": "Patient", "name": [{"given": ["Amy", None]}]})
    assert (issue.code, issue.expression) == ("invalid", ("Patient.name[0].given[1]",))


def test_primitive_extension_array_must_align() -> None:
    ext = {"extension": [{"url": "http://x", "valueCode": "UNK"}]}
    resource = {"resourceType": "Patient", "name": [{"given": ["Amy"], "_given": [None, ext]}]}
    assert codes_and_paths(resource) == [("structure", ("Patient.name[0]._given",))]


def test_primitive_extension_without_value_or_extension() -> None:
    issue = one({"resourceType": "Patient", "_birthDate": {"id": "x"}})
    assert (issue.code, issue.expression) == ("invalid", ("Patient._birthDate",))


def test_error_inside_a_primitive_extension_keeps_the_underscore_name() -> None:
    resource = {"resourceType": "Patient", "birthDate": "1990-01-01",
                "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                              "valueDateTime": "1990-01-01T10:00:00"}]}}
    issue = one(resource)
    assert (issue.code, issue.expression) == ("value", ("Patient._birthDate.extension[0].valueDateTime",))


# --- cardinality ----------------------------------------------------------------------------------------------------

def test_object_where_an_array_is_required() -> None:
    issue = one(task(basedOn={"reference": "Task/1"}))
    assert (issue.code, issue.expression) == ("structure", ("Task.basedOn",))


def test_array_where_a_single_value_is_required() -> None:
    issue = one(task(code=[{"text": "x"}]))
    assert (issue.code, issue.expression) == ("structure", ("Task.code",))


def test_scalar_where_an_object_is_required() -> None:
    issue = one(careplan(subject="Patient/1"))
    assert (issue.code, issue.expression) == ("structure", ("CarePlan.subject",))


def test_choice_alias_maps_back_to_the_json_name() -> None:
    issue = one({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                 "valueQuantity": {"value": "12"}})
    assert (issue.code, issue.expression) == ("value", ("Observation.valueQuantity.value",))


def test_recursive_elements_follow_content_references() -> None:
    resource = {"resourceType": "Questionnaire", "status": "active",
                "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "string",
                                                                     "item": [{"linkId": "x", "type": 3}]}]}]}
    issue = one(resource)
    assert (issue.code, issue.expression) == ("value", ("Questionnaire.item[0].item[0].item[0].type",))


# --- nested resources -------------------------------------------------------------------------------------------------

def test_contained_resources_are_validated_by_their_own_type() -> None:
    resource = task(contained=[{"resourceType": "Patient", "id": "p1", "birthDate": "1990-13-01"}])
    assert codes_and_paths(resource) == [("value", ("Task.contained[0].birthDate",))]


def test_contained_resource_of_unknown_type() -> None:
    assert codes_and_paths(task(contained=[{"resourceType": "Nope"}])) == [("not-supported", ("Task.contained[0]",))]


def test_contained_resource_without_type() -> None:
    assert codes_and_paths(task(contained=[{"id": "x"}])) == [("invalid", ("Task.contained[0]",))]


def test_bundle_entries() -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520", "resource": task(),
         "request": {"method": "POST", "url": "Task"}},
        {"resource": careplan(subject={"reference": "Patient/1", "foo": 1}), "request": {"method": "POST"}},
    ]}
    assert codes_and_paths(bundle) == [("structure", ("Bundle.entry[1].resource.subject.foo",)),
                                       ("required", ("Bundle.entry[1].request.url",))]


# --- messages keep values short and free text out ---------------------------------------------------------------------

def test_long_values_are_cut_in_messages() -> None:
    secret = "2024-01-01T10:00:00 " + "Amy Shaw lives at 1 Main St" * 40
    issue = one(task(authoredOn=secret))
    assert "Main St" * 2 not in issue.diagnostics
    assert len(issue.diagnostics) < 120


def test_free_text_is_never_echoed() -> None:
    issue = one(task(description="Amy Shaw \f has HIV"))
    assert "Amy" not in issue.diagnostics
    assert issue.expression == ("Task.description",)


def test_too_long_string() -> None:
    issue = one(task(description="x" * (1024 * 1024 + 1)))
    assert (issue.code, issue.expression) == ("value", ("Task.description",))
    assert "xxxx" not in issue.diagnostics


def test_control_characters_are_not_echoed_raw() -> None:
    issue = one(task(authoredOn="bad\x00\x1b[31m"))
    assert "\x00" not in issue.diagnostics and "\x1b" not in issue.diagnostics


def test_very_many_errors_are_capped() -> None:
    issues = validate_structure(task(**{f"x{i}": 1 for i in range(500)}))
    assert len(issues) == structure.MAX_ISSUES + 1
    assert issues[-1].code == "too-costly"


# --- base64Binary, and no pathological regex time ---------------------------------------------------------------------

@pytest.mark.parametrize("data", ["aGVsbG8=", "QUFB\nQUFB\n", " QUFB QUFB ", "ab/+" * 1000, "QUFB" * 600_000])
def test_valid_base64(data: str) -> None:
    assert validate_structure({"resourceType": "Binary", "contentType": "text/plain", "data": data}) == []


@pytest.mark.parametrize("data", ["aGVsbG8", "aGVs*G8=", "AAAA" + "   AAAA" * 5000 + "!"])
def test_invalid_base64_is_cheap_to_reject(data: str) -> None:
    start = time.perf_counter()
    issue = one({"resourceType": "Binary", "contentType": "text/plain", "data": data})
    assert time.perf_counter() - start < 0.5
    assert (issue.code, issue.expression, issue.diagnostics) == ("value", ("Binary.data",),
                                                                 "Binary.data: is not valid base64")


@pytest.mark.parametrize(("key", "value"), [
    ("valueCode", "a " * 200_000 + " !"), ("valueOid", "urn:oid:1" + ".1" * 100_000 + "."),
    ("valueString", " " * 500_000 + "\f"), ("valueDateTime", "2020-" * 100_000),
])
def test_long_adversarial_values_are_cheap_to_reject(key: str, value: str) -> None:
    start = time.perf_counter()
    issue = one(task(input=[{"type": {"text": "t"}, key: value}]))
    assert time.perf_counter() - start < 0.5
    assert issue.expression == (f"Task.input[0].{key}",)


def test_dict_subclasses_are_accepted() -> None:
    from collections import OrderedDict

    resource = OrderedDict(careplan(period=OrderedDict(start="2024")))
    assert validate_structure(resource) == []
