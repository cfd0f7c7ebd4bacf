"""End to end with the real R4 registry and indexer: resources indexed by ``extract_index_rows`` are
found by the compiled searches (checks that both sides agree on index-row conventions)."""

from __future__ import annotations

import pytest

from fhir_server.outcome import FhirError
from fhir_server.search import TextValue, TokenValue, compile_count, compile_includes, compile_page, parse_search
from tests.search.search_data import BASE

CASES = [
    ("Patient", "name=smi", ["pat1"]),
    ("Patient", "name=muller", ["pat2"]),
    ("Patient", "family:exact=Müller", ["pat2"]),
    ("Patient", "given=jo", ["pat1"]),
    ("Patient", "address-city=cam", ["pat2"]),
    ("Patient", "gender=male", ["pat1"]),
    ("Patient", "active=true", ["pat1"]),
    ("Patient", "active=false", ["pat2"]),
    ("Patient", "deceased=true", ["pat2"]),
    ("Patient", "identifier=http://hospital/mrn|MRN-1", ["pat1"]),
    ("Patient", "identifier=MRN-1", ["pat1"]),
    ("Patient", "phone=555-0100", ["pat1"]),
    ("Patient", "birthdate=1970-01-01", ["pat1"]),
    ("Patient", "birthdate=1985", ["pat2"]),
    ("Patient", "birthdate=ge1980", ["pat2"]),
    ("Patient", "organization=Organization/org1", ["pat1"]),
    ("Patient", "organization=org1", ["pat1"]),
    ("Patient", "general-practitioner:Practitioner=doc1", ["pat1"]),
    ("Patient", "_tag=http://tags|vip", ["pat1"]),
    ("Patient", "_profile=http://example.org/StructureDefinition/p", ["pat1"]),
    ("Patient", "_id=pat1,pat2", ["pat1", "pat2"]),
    ("Patient", "_lastUpdated=ge2024-01-01", ["pat1", "pat2"]),
    ("Observation", "code=http://loinc.org|8867-4", ["obs1"]),
    ("Observation", "subject=Patient/pat1", ["obs1"]),
    ("Observation", "patient=pat2", ["obs2"]),
    ("Observation", "status=final,preliminary", ["obs1", "obs2"]),
    ("Observation", "date=2021-03-04", ["obs1"]),
    ("Observation", "date=ge2021-01-15&date=le2021-01-20", ["obs2"]),
    ("Observation", "date=2021", ["obs1", "obs2"]),
    ("Observation", "value-quantity=72|http://unitsofmeasure.org|/min", ["obs1"]),
    ("Observation", "value-quantity=gt60||kg", ["obs2"]),
    ("Observation", "value-quantity=72||beats/min", ["obs1"]),
    ("ValueSet", "url=http://example.org/fhir/ValueSet/colors", ["vs1"]),
    ("ValueSet", "url:below=http://example.org/fhir/", ["vs1"]),
    ("RiskAssessment", "probability=0.35", ["risk1"]),
    ("RiskAssessment", "probability=gt0.5", []),
]


@pytest.mark.parametrize(("rtype", "query", "expected"), CASES, ids=[f"{t}?{q}" for t, q, _ in CASES])
def test_search_real_registry(real_db, real_registry, rtype: str, query: str, expected: list[str]) -> None:
    params = [tuple(p.split("=", 1)) for p in query.split("&")]
    parsed = parse_search(rtype, params, real_registry, base_url=BASE, strict=True)  # type: ignore[arg-type]
    sql, args = compile_page(parsed)
    assert sorted(r[1] for r in real_db.query(sql, args)) == expected
    sql, args = compile_count(parsed)
    assert real_db.query(sql, args)[0][0] == len(expected)


def test_search_real_registry_includes(real_db, real_registry) -> None:
    parsed = parse_search("Patient", [("_id", "pat1"), ("_include", "Patient:organization"),
                                      ("_include", "Patient:general-practitioner"),
                                      ("_revinclude", "Observation:subject")], real_registry, base_url=BASE)
    sql, args = compile_page(parsed)
    rkeys = [r[0] for r in real_db.query(sql, args)]
    got = [[(r[5], r[1]) for r in real_db.query(s, a)] for s, a in compile_includes(parsed, rkeys)]
    assert got == [[("Organization", "org1")], [("Practitioner", "doc1")], [("Observation", "obs1")]]


def test_search_real_registry_text_and_identifier(real_registry) -> None:
    parsed = parse_search("Patient", [("_text", "Émile  SMI"), ("_content", "a-b,c")], real_registry, base_url=BASE)
    assert [(c.param, c.type, c.values) for c in parsed.criteria] == [
        ("_text", "text", (TextValue(("emile", "smi")),)),
        ("_content", "text", (TextValue(("a", "b")), TextValue(("c",))))]
    parsed = parse_search("Observation", [("subject:identifier", "urn:s|v,w")], real_registry, base_url=BASE)
    assert [(c.param, c.type, c.values) for c in parsed.criteria] == [
        ("subject:identifier", "token", (TokenValue("urn:s", "v"), TokenValue(None, "w")))]
    # only canonical references: no Reference.identifier to search
    with pytest.raises(FhirError) as ei:
        parse_search("ActivityDefinition", [("composed-of:identifier", "x")], real_registry, base_url=BASE)
    assert ei.value.status == 400 and ei.value.issues[0].code == "not-supported"
    assert "composed-of:identifier" in ei.value.issues[0].diagnostics
