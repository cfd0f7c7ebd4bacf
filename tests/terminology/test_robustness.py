"""Bad input never makes a 500; UCUM syntax check; the search-prefetch hook (``prepare_search``)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from types import SimpleNamespace

import orjson
import pytest

import terminology
from fhir_server.indexing.registry import SearchParamRegistry
from fhir_server.search import parse_search
from terminology.errors import TerminologyError
from terminology.search import codes_for, prepare_search
from terminology.ucum import UCUM, looks_like_ucum
from tests.terminology.helpers import FHIR_JSON, animals, cs_url, value_sets, vs_url

BAD_COMPOSES = [
    "nope", {"include": "nope"}, {"include": [5]}, {"include": [{}]}, {"include": [{"system": 5}]},
    {"include": [{"system": "http://x", "concept": "dog"}]}, {"include": [{"system": "http://x", "concept": [5]}]},
    {"include": [{"system": "http://x", "concept": [{"code": 5}]}]},
    {"include": [{"system": "http://x", "filter": "x"}]}, {"include": [{"system": "http://x", "filter": [5]}]},
    {"include": [{"valueSet": "http://hl7.org/fhir/ValueSet/administrative-gender"}]},
    {"include": [{"valueSet": [5]}]},
    {"include": [{"system": "http://x", "concept": [{"code": "a", "designation": [{"language": 5, "value": "x"}]}]}]},
    {"include": [{"system": "http://x", "concept": [{"code": "a", "designation": "x"}]}]},
    {"include": [{"system": "http://hl7.org/fhir/administrative-gender"}], "exclude": "x"},
]


@pytest.mark.parametrize("compose", BAD_COMPOSES)
def test_bad_inline_value_sets(fhir, compose):
    vs = {"resourceType": "ValueSet", "status": "draft", "compose": compose}
    for op, extra in (("$expand", [{"name": "displayLanguage", "valueCode": "de"}]),
                      ("$validate-code", [{"name": "code", "valueCode": "a"}, {"name": "system", "valueUri": "http://x"}])):
        body = {"resourceType": "Parameters", "parameter": [{"name": "valueSet", "resource": vs}, *extra]}
        r = fhir.post(f"ValueSet/{op}", json=body, headers=FHIR_JSON)
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            assert r.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("body", [
    {"resourceType": "Parameters", "parameter": [{"name": "valueSet", "resource": {"resourceType": "Patient"}}]},
    {"resourceType": "Parameters", "parameter": [{"name": "url", "valueUri": "http://x"},
                                                 {"name": "url", "valueUri": "http://y"}]},
    {"resourceType": "Parameters", "parameter": [{"name": "url", "valueInteger": 3}]},
    {"resourceType": "Parameters", "parameter": [{"name": "url", "valueUri": "http://hl7.org/fhir/ValueSet/administrative-gender"},
                                                 {"name": "count", "valueString": "many"}]},
    {"resourceType": "Parameters", "parameter": [{"name": "url", "valueUri": "http://hl7.org/fhir/ValueSet/administrative-gender"},
                                                 {"name": "coding", "valueCoding": {"system": "x"}}]},
    {"resourceType": "Parameters", "parameter": [{"name": "url", "valueUri": "http://hl7.org/fhir/ValueSet/administrative-gender"},
                                                 {"name": "codeableConcept", "valueCodeableConcept": {"coding": "x"}}]},
    {"resourceType": "Parameters", "parameter": [{"name": "url", "valueUri": "x" * 300},
                                                 {"name": "code", "valueCode": "a"}]},
])
def test_bad_parameters(fhir, body):
    for op in ("ValueSet/$expand", "ValueSet/$validate-code", "CodeSystem/$lookup", "CodeSystem/$subsumes",
               "CodeSystem/$validate-code"):
        r = fhir.post(op, json=body, headers=FHIR_JSON)
        assert r.status_code < 500, (op, r.text)
        if r.status_code >= 400 or op != "ValueSet/$expand":  # $expand ignores code/coding parameters
            assert 400 <= r.status_code < 500, (op, r.text)
            assert r.json()["resourceType"] == "OperationOutcome"


def test_ucum():
    for good in ("mg", "mm[Hg]", "kg/m2", "/min", "{score}", "10*3/uL", "mL/(24.h)", "Cel", "[degF]", "%",
                 "mL/min/{1.73_m2}", "1", "m-2"):
        assert looks_like_ucum(good), good
    for bad in ("", "mg mg", "kg//m", "(mg", "mg)", "{a", "[x", "m.", "ünit"):
        assert not looks_like_ucum(bad), bad
    vs = "http://hl7.org/fhir/ValueSet/ucum-units"
    assert terminology.validate_code(vs, system=UCUM, code="mg/dL").result is None
    bad = terminology.validate_code(vs, system=UCUM, code="mg dL")
    assert bad.result is False and "UCUM" in bad.message


class _Conn:
    def __init__(self, rows: dict[str, list[dict]]) -> None:
        self.rows = rows
        self.queries: list[tuple] = []

    async def all(self, sql: str, args: tuple, **_: object) -> list[tuple]:
        self.queries.append(args)
        return [(orjson.dumps(r).decode(),) for r in self.rows.get(args[2], []) if r["resourceType"] == args[0]]


def test_prepare_search_reads_the_database():
    tag = "prep"
    rows: dict[str, list[dict]] = {cs_url(tag): [{**animals(tag), "id": "c", "meta": {"versionId": "1"}}]}
    for i, vs in enumerate(value_sets(tag)):
        rows[vs["url"]] = [{**vs, "id": f"v{i}", "meta": {"versionId": "1"}}]
    conn = _Conn(rows)

    @asynccontextmanager
    async def read():
        yield conn

    svc = SimpleNamespace(db=SimpleNamespace(read=read))
    registry = SearchParamRegistry.default()

    async def run() -> None:
        await prepare_search(svc, [("code:in", vs_url(tag, "composite")), ("code:below", f"{cs_url(tag)}|bird"),
                                   ("code:not-in", vs_url(tag, "brown")), ("_count", "3")])
        assert codes_for("in", vs_url(tag, "composite"))[:2] == [(cs_url(tag), "mammal"), (cs_url(tag), "dog")]
        assert codes_for("below", "bird", cs_url(tag)) == [(cs_url(tag), "bird"), (cs_url(tag), "parrot")]
        parsed = parse_search("Observation", [("code:not-in", vs_url(tag, "brown"))], registry, base_url="http://x")
        crit = parsed.criteria[0]
        assert crit.modifier == "not-in" and [(v.system, v.code) for v in crit.values] == [(cs_url(tag), "dog")]

    asyncio.run(run())
    # the included value set was read too; without the prefetch the store does not know them
    assert ("ValueSet", "url", vs_url(tag, "mammals")) in conn.queries
    with pytest.raises(TerminologyError):  # another task: the prefetched resources are not seen
        codes_for("in", vs_url(tag, "brown"))
