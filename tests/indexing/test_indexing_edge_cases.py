"""Extraction edge cases on hand-written resources: choice types, periods, references, odd content."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhir_server.indexing import DATE_MAX, DATE_MIN, SearchParamRegistry, extract_index_rows

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us(*args: int) -> int:
    return int((datetime(*args, tzinfo=UTC) - _EPOCH).total_seconds()) * 1_000_000


def rows(resource: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    return extract_index_rows(SearchParamRegistry.default(), resource)


def of(out: dict[str, list[tuple[Any, ...]]], table: str, param: str) -> list[tuple[Any, ...]]:
    return [r[1:] for r in out.get(table, []) if r[0] == param]


def test_task_from_the_brief() -> None:
    task = {"resourceType": "Task", "status": "requested", "intent": "order", "priority": "routine", "description": "x",
            "for": {"reference": "Patient/a"}, "focus": {"reference": "ServiceRequest/b"},
            "basedOn": [{"reference": "CarePlan/c"}], "authoredOn": "2024-01-02T10:00:00Z",
            "owner": {"reference": "Practitioner/p"}}
    assert rows(task) == {
        "token": [("status", None, "requested", None), ("intent", None, "order", None),
                  ("priority", None, "routine", None)],
        "reference": [("patient", "Patient", "a", None), ("subject", "Patient", "a", None),
                      ("focus", "ServiceRequest", "b", None), ("based-on", "CarePlan", "c", None),
                      ("owner", "Practitioner", "p", None)],
        "date": [("authored-on", us(2024, 1, 2, 10), us(2024, 1, 2, 10, 0, 1) - 1)],
    }


def test_where_resolve_is_keeps_only_that_type() -> None:
    out = rows({"resourceType": "Task", "for": {"reference": "Group/g1"}})
    assert of(out, "reference", "subject") == [("Group", "g1", None)]
    assert of(out, "reference", "patient") == []
    absolute = "http://other.example/fhir/Patient/p9"
    out = rows({"resourceType": "Task", "for": {"reference": absolute}})
    assert of(out, "reference", "patient") == [("Patient", "p9", absolute)]
    # an unresolvable literal still counts when Reference.type says Patient
    out = rows({"resourceType": "Task", "for": {"reference": "urn:uuid:9f1c", "type": "Patient"}})
    assert of(out, "reference", "patient") == [(None, None, "urn:uuid:9f1c")]


def test_versioned_contained_and_logical_references() -> None:
    out = rows({"resourceType": "CarePlan", "status": "active",
                "subject": {"reference": "Patient/p1/_history/3"},
                "careTeam": [{"reference": "#team"}],
                "goal": [{"identifier": {"system": "urn:sys", "value": "g"}}],
                "basedOn": [{"reference": "https://x.example/fhir/CarePlan/cp0/_history/1"}],
                "instantiatesCanonical": ["http://example.org/PlanDefinition/pd|2.0"]})
    assert of(out, "reference", "subject") == [("Patient", "p1", None)]
    assert of(out, "reference", "care-team") == []
    assert of(out, "reference", "goal") == []
    assert of(out, "reference", "based-on") == [("CarePlan", "cp0", "https://x.example/fhir/CarePlan/cp0")]
    assert of(out, "reference", "instantiates-canonical") == [(None, None, "http://example.org/PlanDefinition/pd|2.0")]
    # a logical reference gives a token row of its identifier under '<param>:identifier'
    assert of(out, "token", "goal:identifier") == [("urn:sys", "g", None)]
    assert of(out, "token", "subject:identifier") == []


def test_reference_identifier_rows() -> None:
    out = rows({"resourceType": "Observation", "status": "final",
                "subject": {"reference": "Patient/p1", "identifier": {"system": "urn:mrn", "value": "7",
                                                                      "type": {"text": "MRN"}}},
                "performer": [{"identifier": {"value": "d1"}}, {"identifier": {"system": "urn:npi"}},
                              {"identifier": "not-an-object"}, {"display": "x"}]})
    assert of(out, "reference", "subject") == [("Patient", "p1", None)]
    assert of(out, "token", "subject:identifier") == [("urn:mrn", "7", "mrn")]
    assert of(out, "token", "patient:identifier") == [("urn:mrn", "7", "mrn")]  # the reference is a Patient
    assert of(out, "token", "performer:identifier") == [(None, "d1", None), ("urn:npi", None, None)]
    assert of(out, "reference", "performer") == []


def test_period_ends_and_timing() -> None:
    plan = {"resourceType": "CarePlan", "period": {"end": "2024-06"},
            "activity": [{"detail": {"scheduledTiming": {"event": ["2024-02-01T08:00:00Z", "2024-01-15"],
                                                         "repeat": {"boundsPeriod": {"start": "2024-01-10",
                                                                                     "end": "2024-01-20"}}}}},
                         {"detail": {"scheduledPeriod": {"start": "2023-05-01T00:00:00+02:00"}}},
                         {"detail": {"scheduledString": "every morning"}}]}
    out = rows(plan)
    assert of(out, "date", "date") == [(DATE_MIN, us(2024, 7, 1) - 1)]
    assert of(out, "date", "activity-date") == [(us(2024, 1, 10), us(2024, 2, 1, 8, 0, 1) - 1),
                                                (us(2023, 4, 30, 22), DATE_MAX)]
    assert rows({"resourceType": "CarePlan", "period": {}}).get("date") is None


def test_choice_types_pick_the_typed_key() -> None:
    out = rows({"resourceType": "Observation", "status": "final", "code": {"text": "mood"},
                "valueCodeableConcept": {"coding": [{"system": "urn:s", "code": "happy"}], "text": "Happy"},
                "effectivePeriod": {"start": "2024-03-01", "end": "2024-03-02"}})
    assert of(out, "token", "value-concept") == [("urn:s", "happy", "happy")]  # text normalised for :text
    assert of(out, "string", "value-string") == [("happy", "Happy")]  # (value.ofType(CodeableConcept)).text
    assert of(out, "token", "code") == [(None, None, "mood")]
    assert of(out, "date", "date") == [(us(2024, 3, 1), us(2024, 3, 3) - 1)]
    assert "quantity" not in out
    out = rows({"resourceType": "Observation", "valueString": "Très bien", "_valueString": {"id": "x"}})
    assert of(out, "string", "value-string") == [("tres bien", "Très bien")]
    out = rows({"resourceType": "Condition", "onsetAge": {"value": 40, "system": "http://unitsofmeasure.org",
                                                          "code": "a"}, "onsetString": "childhood"})
    assert of(out, "quantity", "onset-age") == [("http://unitsofmeasure.org", "a", 40.0)]
    assert of(out, "string", "onset-info") == [("childhood", "childhood")]
    assert "date" not in out


def test_accents_are_stripped_for_names_and_addresses() -> None:
    out = rows({"resourceType": "Patient", "name": [{"family": "Núñez", "given": ["José", "Zoë"]}],
                "address": [{"city": "Zürich", "line": ["Bahnhofstraße 1"]}], "birthDate": "1970"})
    assert of(out, "string", "family") == [("nunez", "Núñez")]
    assert of(out, "string", "given") == [("jose", "José"), ("zoe", "Zoë")]
    assert of(out, "string", "address-city") == [("zurich", "Zürich")]
    assert ("bahnhofstraße 1", "Bahnhofstraße 1") in of(out, "string", "address")
    assert of(out, "date", "birthdate") == [(us(1970, 1, 1), us(1971, 1, 1) - 1)]


def test_numbers_money_uris_and_booleans() -> None:
    out = rows({"resourceType": "RiskAssessment",
                "prediction": [{"probabilityDecimal": 0.25}, {"probabilityRange": {"low": {"value": 0.1}}}]})
    assert of(out, "number", "probability") == [(0.25,)]
    out = rows({"resourceType": "ChargeItem", "priceOverride": {"value": 12.5, "currency": "EUR"}, "factorOverride": 2})
    assert of(out, "quantity", "price-override") == [(None, "EUR", 12.5)]
    assert of(out, "number", "factor-override") == [(2.0,)]
    out = rows({"resourceType": "Questionnaire", "url": "http://example.org/Questionnaire/q", "status": "draft",
                "meta": {"source": "http://src.example/x"}})
    assert of(out, "uri", "url") == [("http://example.org/Questionnaire/q",)]
    assert of(out, "uri", "_source") == [("http://src.example/x",)]
    out = rows({"resourceType": "Group", "type": "person", "actual": False})
    assert of(out, "token", "actual") == [(None, "false", None)]


def test_bundle_composition_uses_first_entry_of_the_target_type() -> None:
    doc = {"resourceType": "Bundle", "type": "document",
           "entry": [{"resource": {"resourceType": "Composition", "id": "c1"}},
                     {"resource": {"resourceType": "Patient", "id": "p1"}}]}
    out = rows(doc)
    assert of(out, "reference", "composition") == [("Composition", "c1", None)]
    assert of(out, "reference", "message") == []
    assert of(out, "token", "type") == [(None, "document", None)]
    tx = {"resourceType": "Bundle", "type": "transaction",
          "entry": [{"resource": {"resourceType": "Patient", "id": "p"}}]}
    assert "reference" not in rows(tx)


def test_long_values_are_truncated_and_rows_deduplicated() -> None:
    ligatures = "\ufb01" * 200  # 'ﬁ' decomposes (NFKD) into two characters
    out = rows({"resourceType": "Patient", "name": [{"family": ligatures}]})
    assert of(out, "string", "family") == [("fi" * 127 + "f", ligatures)]
    long = "x" * 300
    out = rows({"resourceType": "Patient", "identifier": [{"system": "urn:a", "value": long},
                                                          {"system": "urn:a", "value": long + "y"}],
                "name": [{"family": "Same"}, {"family": "Same"}]})
    assert of(out, "token", "identifier") == [("urn:a", "x" * 255, None)]
    assert of(out, "string", "family") == [("same", "Same")]


def test_odd_content_never_raises() -> None:
    weird = {"resourceType": "Patient", "name": "not-a-list", "birthDate": "02/20/1987", "telecom": [None, 3, {}],
             "identifier": [{"system": 5, "value": None}], "managingOrganization": {"reference": 42},
             "generalPractitioner": ["Practitioner/1"], "address": [{"line": [None, "", "ok"]}],
             "meta": {"tag": "x", "lastUpdated": "garbage"}}
    out = rows(weird)
    assert of(out, "string", "address") == [("ok", "ok")]
    assert "date" not in out and "reference" not in out
    assert rows({"resourceType": "NotAType", "id": "1"}) == {}
    assert rows({"id": "no-type"}) == {}
