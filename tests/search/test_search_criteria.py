"""Search criteria: every parameter type, prefix, modifier, escape, OR/AND, run on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from fhir_server.search import compile_count, compile_page, parse_search
from tests.search.search_data import BASE, REGISTRY


def run(db, rtype: str, query: list[tuple[str, str]] | str, **kw) -> list[str]:
    if isinstance(query, str):
        query = [tuple(p.split("=", 1)) for p in query.split("&") if p]  # type: ignore[misc]
    parsed = parse_search(rtype, query, REGISTRY, base_url=BASE, **kw)
    sql, args = compile_page(parsed)
    rows = db.query(sql, args)
    assert [r[0] for r in rows] == sorted(r[0] for r in rows), "page must be ordered by rkey"
    ids = [r[1] for r in rows]
    sql, args = compile_count(parsed)
    (count,) = db.query(sql, args)[0]
    assert count == len(ids)
    return sorted(ids)


CASES: list[tuple[str, str, list[str]]] = [
    # token
    ("Patient", "gender=male", ["p1"]),
    ("Patient", "gender=male,female", ["p1", "p2"]),
    ("Patient", "gender=male&gender=female", []),
    ("Patient", "active=true", ["p1"]),
    ("Patient", "active=false", ["p2"]),
    ("Patient", "identifier=http://ids|A1", ["p1"]),
    ("Patient", "identifier=http://ids|A2", []),
    ("Patient", "identifier=|A2", ["p2"]),
    ("Patient", "identifier=|A1", []),
    ("Patient", "identifier=http://ids|", ["p1", "p3"]),
    ("Patient", "identifier=A2", ["p2"]),
    ("Patient", "identifier=A1,A2", ["p1", "p2"]),
    ("Patient", "identifier=http://long|" + "L" * 300, ["p5"]),  # the index keeps 255 characters
    ("Patient", r"identifier=http://ids|a\|b", ["p3"]),
    ("Patient", r"identifier=a\|b", ["p3"]),
    ("Patient", "gender=male' OR '1'='1", []),
    ("Observation", "code=http://loinc.org|1234", ["ob1"]),
    ("Observation", "code=http://loinc.org|1234,http://loinc.org|5678", ["ob1", "ob2"]),
    ("Observation", "code=http://other.org|1234", []),
    # string
    ("Patient", "name=smi", ["p1", "p2"]),
    ("Patient", "name=SMITH", ["p1", "p2"]),
    ("Patient", "name=Smí", ["p1", "p2"]),
    ("Patient", "name=mith", []),
    ("Patient", "name:exact=Smith", ["p1"]),
    ("Patient", "name:exact=Smíth", ["p2"]),
    ("Patient", "name:exact=smith", []),
    ("Patient", "name:exact=Smit", []),
    ("Patient", "name:contains=MIT", ["p1", "p2"]),
    ("Patient", "name:contains=%_s", ["p3"]),
    ("Patient", "name=jo", ["p1", "p5"]),
    ("Patient", "name=smi&name=jo", ["p1"]),
    ("Patient", "name=ann,jones", ["p2", "p5"]),
    ("Patient", r"name=O'Brien\,Jr", ["p3"]),
    ("Patient", "name=O'Brien,Jones", ["p3", "p5"]),
    ("Patient", r"name:exact=O'Brien\,Jr", ["p3"]),
    ("Patient", "name=100%_", ["p3"]),
    ("Patient", "name=1%", []),  # % is not a wildcard
    ("Patient", "name=100_", []),  # _ is not a wildcard
    ("Patient", "name=10", ["p3"]),
    ("Patient", r"name=back\\slash", ["p5"]),
    ("Patient", "name=back\\", ["p5"]),  # a lone backslash is literal
    ("Patient", r"name=back\s", ["p5"]),  # \s is not an escape: literal backslash + s
    ("Patient", r"name=back\x", []),
    ("Patient", "name=x'); DROP TABLE resource;--", []),
    ("Patient", "name:exact=" + "N" * 300, ["p5"]),
    ("Patient", "name=" + "n" * 300, ["p5"]),
    ("Organization", "name=acme", ["o1"]),
    # date (birthdate: p1 1970-01-01, p2 1980-05, p3 1990-06-15T10:00:00Z, p5 [1975-01-01, 1985-12-31])
    ("Patient", "birthdate=1970-01-01", ["p1"]),
    ("Patient", "birthdate=eq1970", ["p1"]),
    ("Patient", "birthdate=1970-01-01T10:00", []),
    ("Patient", "birthdate=1980-05", ["p2"]),
    ("Patient", "birthdate=1980-05-10", []),
    ("Patient", "birthdate=1980", ["p2"]),
    ("Patient", "birthdate=ne1980", ["p1", "p3", "p5"]),
    ("Patient", "birthdate=gt1980", ["p3", "p5"]),
    ("Patient", "birthdate=lt1980", ["p1", "p5"]),
    ("Patient", "birthdate=ge1980", ["p2", "p3", "p5"]),
    ("Patient", "birthdate=le1980", ["p1", "p2", "p5"]),
    ("Patient", "birthdate=sa1980", ["p3"]),
    ("Patient", "birthdate=eb1980", ["p1"]),
    ("Patient", "birthdate=ap1980-05-15", ["p2", "p5"]),
    ("Patient", "birthdate=1990-06-15T10:00:00Z", ["p3"]),
    ("Patient", "birthdate=1990-06-15T12:00:00+02:00", ["p3"]),
    ("Patient", "birthdate=1990-06-15T10:00:00.000Z", []),  # an instant does not contain the whole second
    ("Patient", "birthdate=1990-06-15", ["p3"]),
    ("Patient", "birthdate=1980-05,1970", ["p1", "p2"]),
    ("Patient", "birthdate=ge1970&birthdate=lt1980", ["p1", "p5"]),
    ("Patient", "birthdate=1975-01-01", []),
    ("Patient", "birthdate=1970-01-01,gt1985", ["p1", "p3"]),
    ("Patient", "birthdate=1970-01-01,gt1984", ["p1", "p3", "p5"]),
    ("Observation", "date=2020", ["ob1"]),
    # _lastUpdated (p1 2024-01-01, p2 01-02, p3 01-03, p5 02-01; deleted p4 01-04)
    ("Patient", "_lastUpdated=2024-01-02", ["p2"]),
    ("Patient", "_lastUpdated=ge2024-01-02", ["p2", "p3", "p5"]),
    ("Patient", "_lastUpdated=gt2024-01-02", ["p3", "p5"]),
    ("Patient", "_lastUpdated=lt2024-01-02", ["p1"]),
    ("Patient", "_lastUpdated=le2024-01-02", ["p1", "p2"]),
    ("Patient", "_lastUpdated=2024-01", ["p1", "p2", "p3"]),
    ("Patient", "_lastUpdated=ne2024-01", ["p5"]),
    ("Patient", "_lastUpdated=eb2024-01-02,sa2024-01-02", ["p1", "p3", "p5"]),
    ("Patient", "_lastUpdated=ge2024-01-02&_lastUpdated=lt2024-02", ["p2", "p3"]),
    ("Patient", "_lastUpdated=2024-01-01T00:00:00Z", ["p1"]),
    # _id
    ("Patient", "_id=p1", ["p1"]),
    ("Patient", "_id=p1,p3", ["p1", "p3"]),
    ("Patient", "_id=p4", []),
    ("Patient", "_id=p1&_id=p2", []),
    ("Patient", "_id=o1", []),
    ("Patient", "_id=p1' OR 1=1 --", []),
    # reference
    ("Patient", "organization=Organization/o1", ["p1"]),  # p3's reference is to another server
    ("Patient", "organization=o1", ["p1"]),
    ("Patient", f"organization={BASE}/Organization/o1", ["p1"]),
    ("Patient", "organization=http://elsewhere/fhir/Organization/o1", ["p3"]),
    ("Patient", "organization=http://elsewhere/fhir/Organization/o1/_history/2", ["p3"]),
    ("Patient", "organization=Organization/o2", ["p2", "p5"]),
    ("Patient", "organization=Organization/o2/_history/3", ["p2", "p5"]),
    ("Patient", "organization:Organization=o2", ["p2", "p5"]),
    ("Patient", "organization:Organization=Organization/o2", ["p2", "p5"]),
    ("Patient", "organization=Organization/o1,Organization/o2", ["p1", "p2", "p5"]),
    ("Patient", "organization=Practitioner/o1", []),
    ("Patient", "general-practitioner=Practitioner/pr1", ["p1"]),
    ("Patient", "link=Patient/p1", ["p5"]),
    ("Observation", "subject=Patient/p1", ["ob1", "ob3"]),
    ("Observation", "subject:Patient=p1,p2", ["ob1", "ob2", "ob3"]),
    ("Observation", "subject=urn:uuid:abc", ["ob4"]),
    ("Observation", "subject=Patient/p1&code=http://loinc.org|1234", ["ob1"]),
    # number (ra1 0.8, ra2 0.25, ra3 100, ra4 100.4, ra5 99.5)
    ("RiskAssessment", "probability=100", ["ra3", "ra4", "ra5"]),
    ("RiskAssessment", "probability=100.0", ["ra3"]),
    ("RiskAssessment", "probability=1e2", ["ra3", "ra4", "ra5"]),
    ("RiskAssessment", "probability=0.8", ["ra1"]),
    ("RiskAssessment", "probability=0.8,0.25", ["ra1", "ra2"]),
    ("RiskAssessment", "probability=gt100", ["ra4"]),
    ("RiskAssessment", "probability=ge100", ["ra3", "ra4"]),
    ("RiskAssessment", "probability=lt1", ["ra1", "ra2"]),
    ("RiskAssessment", "probability=le0.25", ["ra2"]),
    ("RiskAssessment", "probability=ne100", ["ra1", "ra2"]),
    ("RiskAssessment", "probability=eb100", ["ra1", "ra2"]),
    ("RiskAssessment", "probability=sa99", ["ra3", "ra4", "ra5"]),
    ("RiskAssessment", "probability=sa100", []),
    ("RiskAssessment", "probability=ap100", ["ra3", "ra4", "ra5"]),
    ("RiskAssessment", "probability=ap0.8", ["ra1"]),
    ("RiskAssessment", "probability=gt0.5&probability=lt100", ["ra1", "ra5"]),
    ("RiskAssessment", "probability=-5", []),
    # quantity (ob1 5.4 ucum mg, ob2 100 ucum kg, ob3 0.5 (no system) mg)
    ("Observation", "value-quantity=5.4|http://unitsofmeasure.org|mg", ["ob1"]),
    ("Observation", "value-quantity=5.4|http://unitsofmeasure.org|kg", []),
    ("Observation", "value-quantity=5.4||mg", ["ob1"]),
    ("Observation", "value-quantity=5.4", ["ob1"]),
    ("Observation", "value-quantity=lt1||mg", ["ob3"]),
    ("Observation", "value-quantity=gt1", ["ob1", "ob2"]),
    ("Observation", "value-quantity=5.4|http://unitsofmeasure.org|", ["ob1"]),
    ("Observation", "value-quantity=ge5.4||mg,100||kg", ["ob1", "ob2"]),
    ("Observation", "value-quantity=ap100|http://unitsofmeasure.org|kg", ["ob2"]),
    # uri
    ("ValueSet", "url=http://acme.org/fhir/ValueSet/123", ["vs1"]),
    ("ValueSet", "url=http://acme.org/fhir/ValueSet/12", []),
    ("ValueSet", "url=http://acme.org/fhir/ValueSet/123,http://other.org/x", ["vs1", "vs3"]),
    ("ValueSet", "url:below=http://acme.org/fhir/", ["vs1", "vs2"]),
    ("ValueSet", "url:below=http://acme.org/fhir", ["vs1", "vs2", "vs4"]),
    ("ValueSet", "url:below=http://acme.org/fhir/ValueSet/12_", []),
    ("ValueSet", "url:above=http://acme.org/fhir/ValueSet/123/_history/5", ["vs1", "vs4"]),
    # unknown parameters are ignored (with a warning)
    ("Patient", "foo=bar", ["p1", "p2", "p3", "p5"]),
    ("Patient", "foo=bar&gender=male", ["p1"]),
    ("Patient", "", ["p1", "p2", "p3", "p5"]),
    ("Patient", "_format=json&_pretty=true&_summary=data&_elements=name&_total=accurate&_contained=false",
     ["p1", "p2", "p3", "p5"]),
]


@pytest.mark.parametrize(("rtype", "query", "expected"), CASES, ids=[f"{t}?{q}" for t, q, _ in CASES])
def test_search_criteria(db, rtype: str, query: str, expected: list[str]) -> None:
    assert run(db, rtype, query) == expected


def test_search_sql_values_are_bound(db) -> None:
    evil = "x'); DROP TABLE resource;--"
    for q in ([("name", evil)], [("_id", evil)], [("gender", evil)], [("organization", evil)],
              [("birthdate", "1970"), ("name:contains", evil)]):
        parsed = parse_search("Patient", q, REGISTRY, base_url=BASE)
        sql, args = compile_page(parsed)
        assert "DROP" not in sql and "x'" not in sql
        assert db.query(sql, args) == []
    assert run(db, "Patient", "gender=male") == ["p1"]


def test_search_deleted_excluded_everywhere(db) -> None:
    assert "p4" not in run(db, "Patient", "")
    assert run(db, "Patient", "name:exact=Smith") == ["p1"]
