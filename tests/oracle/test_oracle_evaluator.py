"""The oracle's own evaluator, checked against the examples and definitions of R4 search.html.

No server here: these pin the evaluator's reading of the specification, so that a mismatch in
``test_oracle_search`` points at the server.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.oracle.evaluator import (
    Clause,
    Ordered,
    Plain,
    Qty,
    Query,
    Ref,
    SortKey,
    Str,
    Tok,
    World,
    date_range,
    evaluate,
    match_date,
    match_number,
    match_reference,
    match_string,
    match_uri,
    matches_clause,
    sort_compare,
)

BASE = "http://server/fhir"


def _date(target: str | tuple, query: str) -> bool:
    rng = date_range(target) if isinstance(target, str) else target
    prefix = query[:2] if query[:2].isalpha() else ""
    return match_date(rng, prefix, date_range(query[len(prefix):]))


def test_date_ranges_follow_precision_and_offsets():
    assert date_range("2024-02")[1] - date_range("2024-02")[0] == 29 * 86_400_000_000
    assert date_range("2024") == (date_range("2024-01-01")[0], date_range("2025-01-01")[0])
    assert date_range("2024-03-01T04:30:00+05:30") == date_range("2024-02-29T23:00:00Z")
    assert date_range("2024-03-01T00:00:00.5Z")[1] - date_range("2024-03-01T00:00:00.5Z")[0] == 1
    assert date_range("2024-03-01T00:00:00")[1] - date_range("2024-03-01T00:00:00")[0] == 1_000_000


@pytest.mark.parametrize(("target", "query", "expected"), [
    # eq: the search range fully contains the target range
    ("2024-03-05", "2024-03", True),
    ("2024-03", "2024-03-05", False),
    ("2024-03-05T10:00:00Z", "2024-03-05", True),
    ("2024-03-05T23:30:00-05:00", "2024-03-05", False),  # that is 2024-03-06 in UTC
    ("2024-03-05T23:30:00-05:00", "2024-03-06", True),
    # ne: not eq
    ("2024-03", "ne2024-03-05", True),
    ("2024-03-05", "ne2024-03", False),
    # gt / lt: the range above / below the search value intersects the target
    ("2024-03", "gt2024-03-05", True),
    ("2024-03-05", "gt2024-03-05", False),
    ("2024-03", "lt2024-03-05", True),
    ("2024-03-05", "lt2024-03-05", False),
    # ge / le: gt / lt, or the search range fully contains the target
    ("2024-03-05", "ge2024-03-05", True),
    ("2024-03-06", "ge2024-03-05", True),
    ("2024-03-04", "ge2024-03-05", False),
    ("2024", "ge2024-12-31", False),  # ends with the search value: neither above it nor inside it
    ("2024", "le2024-01-01", False),
    ("2024", "ge2024-12-30", True),
    ("2024-03-05", "le2024-03-05", True),
    # sa / eb: no overlap, and entirely above / below
    ("2024-03-06", "sa2024-03-05", True),
    ("2024-03", "sa2024-03-05", False),
    ("2024-03-04", "eb2024-03-05", True),
    ("2024-03", "eb2024-03-05", False),
])
def test_date_prefixes(target, query, expected):
    assert _date(target, query) is expected


def test_date_prefixes_on_open_periods():
    from_march = (date_range("2024-03-01")[0], float("inf"))
    assert _date(from_march, "ge2024-03-14") and _date(from_march, "gt2030") and not _date(from_march, "eb2024-03-14")
    assert not _date(from_march, "2024-03") and _date(from_march, "ne2024-03") and _date(from_march, "sa2024-02")


@pytest.mark.parametrize(("value", "query", "expected"), [
    ("99.5", "100", True), ("100.4", "100", True), ("100.5", "100", False), ("99.4", "100", False),
    ("100.004", "100.00", True), ("100.005", "100.00", False),
    ("100.1", "gt100", True), ("100", "gt100", False), ("100", "ge100", True), ("99.9", "lt100", True),
    ("100.2", "ne100", False), ("100.6", "ne100", True),
    ("100.5", "sa100", True), ("100.4", "sa100", False), ("99.4", "eb100", True), ("99.5", "eb100", False),
])
def test_number_prefixes(value, query, expected):
    prefix = query[:2] if query[:2].isalpha() else ""
    assert match_number(Decimal(value), prefix, query[len(prefix):]) is expected


@pytest.mark.parametrize(("field_value", "modifier", "query", "expected"), [
    ("Gonçalves", None, "gonc", True), ("Gonçalves", None, "GONÇ", True), ("gonzalez", None, "gonc", False),
    ("Eve", None, "eve", True), ("Evelyn", None, "eve", True), ("Steve", None, "eve", False),
    ("Gonçalves", "exact", "Gonçalves", True), ("Gonçalves", "exact", "Goncalves", False),
    ("Gonçalves", "exact", "gonçalves", False), ("Gonçalves", "exact", "Gon", False),
    ("Gonçalves", "contains", "ALV", True), ("Gonçalves", "contains", "çalv", True),
    ("Åström", "contains", "stro", True),
])
def test_strings(field_value, modifier, query, expected):
    assert match_string(field_value, modifier, query) is expected


@pytest.mark.parametrize(("ref", "query", "type_modifier", "expected"), [
    ("Patient/1", "Patient/1", None, True),
    ("Patient/1", f"{BASE}/Patient/1", None, True),
    (f"{BASE}/Patient/1", "Patient/1", None, True),
    (f"{BASE}/Patient/1", "1", None, True),
    ("Patient/1", "1", None, True),
    ("Group/1", "1", None, True),
    ("Group/1", "Patient/1", None, False),
    ("Patient/1", "1", "Patient", True),
    ("Group/1", "1", "Patient", False),
    ("http://other/fhir/Patient/1", "Patient/1", None, False),
    ("http://other/fhir/Patient/1", "1", None, False),
    ("http://other/fhir/Patient/1", "http://other/fhir/Patient/1", None, True),
    ("Patient/1", "http://other/fhir/Patient/1", None, False),
])
def test_references(ref, query, type_modifier, expected):
    assert match_reference(ref, query, type_modifier, BASE) is expected


@pytest.mark.parametrize(("target", "modifier", "query", "expected"), [
    ("http://acme.org/fhir/ValueSet/123", None, "http://acme.org/fhir/ValueSet/123", True),
    ("http://acme.org/fhir/ValueSet/123", None, "http://acme.org/fhir/ValueSet", False),
    ("http://acme.org/fhir/ValueSet/123", "below", "http://acme.org/fhir/", True),
    ("http://acme.org/fhir/ValueSet/123", "below", "http://acme.org/fhir", True),
    ("http://acme.org/fhir/ValueSet/1234", "below", "http://acme.org/fhir/ValueSet/123", False),
    ("http://acme.org/fhir/ValueSet/123", "above", "http://acme.org/fhir/ValueSet/123/_history/5", True),
    ("http://acme.org/fhir/", "above", "http://acme.org/fhir/ValueSet/123/_history/5", True),
    ("http://acme.org/fhir/ValueSet/12", "above", "http://acme.org/fhir/ValueSet/123", False),
])
def test_uris(target, modifier, query, expected):
    assert match_uri(target, modifier, query) is expected


def _world() -> World:
    w = World(BASE)
    w.add({"resourceType": "Patient", "id": "a", "gender": "female", "birthDate": "2020",
           "identifier": [{"system": "urn:s", "value": "1"}, {"value": "2"}],
           "name": [{"family": "Gonçalves", "given": ["Ana"]}]})
    w.add({"resourceType": "Patient", "id": "b", "birthDate": "2021-05-01", "name": [{"family": "Smith"}]})
    w.add({"resourceType": "Observation", "id": "o", "status": "final", "subject": {"reference": "Patient/a"},
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
           "valueQuantity": {"value": 5.4, "unit": "milligram", "system": "http://unitsofmeasure.org", "code": "mg"}})
    return w


def _ids(rtype: str, *clauses: Clause) -> set[str]:
    w = _world()
    return evaluate(Query(rtype, list(clauses)), w.of_type(rtype), w)


def test_tokens_and_combinations():
    assert _ids("Patient", Clause("identifier", (Tok("system|code", "urn:s", "1"),))) == {"a"}
    assert _ids("Patient", Clause("identifier", (Tok("|code", code="1"),))) == set()
    assert _ids("Patient", Clause("identifier", (Tok("|code", code="2"),))) == {"a"}
    assert _ids("Patient", Clause("identifier", (Tok("system|", system="urn:s"),))) == {"a"}
    assert _ids("Patient", Clause("identifier", (Tok("code", code="2"),))) == {"a"}
    assert _ids("Patient", Clause("family", (Str("smi"), Str("gonc")))) == {"a", "b"}  # OR
    assert _ids("Patient", Clause("family", (Str("smi"),)), Clause("family", (Str("gonc"),))) == set()  # AND
    assert _ids("Patient", Clause("_id", (Plain("b"),)), Clause("birthdate", (Ordered("ge", "2021"),))) == {"b"}
    assert _ids("Patient", Clause("gender:missing", (Plain("true"),))) == {"b"}
    assert _ids("Patient", Clause("gender:not", (Tok("code", code="female"),))) == {"b"}


def test_quantities():
    def q(*args: str | None) -> set[str]:
        prefix, number, *rest = args
        return _ids("Observation", Clause("value-quantity", (Qty(Ordered(prefix or "", number or ""), *rest),)))

    assert q(None, "5.4") == q("", "5.4", "http://unitsofmeasure.org", "mg") == q("", "5.4", None, "mg") == {"o"}
    assert q("", "5.4", None, "milligram") == {"o"}  # ||code matches the code or the human unit
    assert q("", "5.4", "http://unitsofmeasure.org", "milligram") == set()
    assert q("", "5", None, None) == q("", "5.40", None, None) == q("gt", "5", None, None) == {"o"}
    assert q("", "5.5", None, None) == q("", "5.400001", None, None) == q("sa", "5", None, None) == set()


def test_chains_and_has():
    assert _ids("Observation", Clause("subject:Patient.family", (Str("gon"),))) == {"o"}
    assert _ids("Observation", Clause("patient.birthdate", (Ordered("", "2021"),))) == set()
    assert _ids("Patient", Clause("_has:Observation:patient:code", (Tok("code", code="8867-4"),))) == {"a"}
    w = _world()
    assert matches_clause(w.resources[("Observation", "o")], Clause("subject", (Ref("a"),)), w)


def test_sort_is_a_partial_order():
    w = _world()
    a, b = w.resources[("Patient", "a")], w.resources[("Patient", "b")]
    assert sort_compare("Patient", (SortKey("birthdate"),), a, b) == -1
    assert sort_compare("Patient", (SortKey("birthdate", True),), a, b) == 1
    assert sort_compare("Patient", (SortKey("family"),), a, b) == -1
    assert sort_compare("Patient", (SortKey("gender"),), a, b) is None  # b has no gender
