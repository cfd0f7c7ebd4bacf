"""Bad or unsupported search input: a 400 naming the parameter, never a silently wrong result."""

from __future__ import annotations

import pytest

from fhir_server.outcome import FhirError
from fhir_server.search import Cursor, encode_cursor, parse_search
from tests.search.search_data import BASE, REGISTRY

# (rtype, name, value, issue code, the parameter name the message must contain)
ERRORS: list[tuple[str, str, str, str, str]] = [
    # malformed values
    ("Patient", "name", "", "invalid", "name"),
    ("Patient", "name", "a,,b", "invalid", "name"),
    ("Patient", "gender", ",", "invalid", "gender"),
    ("Patient", "identifier", "a|b|c", "invalid", "identifier"),
    ("Patient", "identifier", "|", "invalid", "identifier"),
    ("Patient", "organization:identifier", "a|b|c", "invalid", "organization:identifier"),
    ("Patient", "organization:identifier", "|", "invalid", "organization:identifier"),
    ("Patient", "_text", "--", "invalid", "_text"),
    ("Patient", "_content", "a,", "invalid", "_content"),
    ("Patient", "_content:exact", "smi", "not-supported", "_content:exact"),
    ("Patient", "_text:missing", "true", "not-supported", "_text:missing"),
    ("Patient", "birthdate", "1980-13", "invalid", "birthdate"),
    ("Patient", "birthdate", "1980-02-30", "invalid", "birthdate"),
    ("Patient", "birthdate", "xx1980", "invalid", "birthdate"),
    ("Patient", "birthdate", "ge", "invalid", "birthdate"),
    ("Patient", "birthdate", "hello", "invalid", "birthdate"),
    ("Patient", "birthdate", "2020-01-01T10", "invalid", "birthdate"),
    ("Patient", "birthdate", "1980,", "invalid", "birthdate"),
    ("Patient", "birthdate", "GE1980", "invalid", "birthdate"),
    ("Patient", "_lastUpdated", "yesterday", "invalid", "_lastUpdated"),
    ("Patient", "_lastUpdated", "zz2024", "invalid", "_lastUpdated"),
    ("Patient", "_id", "", "invalid", "_id"),
    ("RiskAssessment", "probability", "abc", "invalid", "probability"),
    ("RiskAssessment", "probability", "1.2.3", "invalid", "probability"),
    ("RiskAssessment", "probability", "NaN", "invalid", "probability"),
    ("RiskAssessment", "probability", "Infinity", "invalid", "probability"),
    ("RiskAssessment", "probability", "gt", "invalid", "probability"),
    ("RiskAssessment", "probability", "xy5", "invalid", "probability"),
    ("RiskAssessment", "probability", "1e400", "invalid", "probability"),
    ("RiskAssessment", "probability", "ge1e1000000", "invalid", "probability"),
    ("Observation", "value-quantity", "5.4|mg", "invalid", "value-quantity"),
    ("Observation", "value-quantity", "mg", "invalid", "value-quantity"),
    ("Observation", "value-quantity", "5|a|b|c", "invalid", "value-quantity"),
    ("Patient", "organization:Patient", "o2", "invalid", "organization:Patient"),
    ("Patient", "organization:Practitioner", "Organization/o2", "invalid", "organization:Practitioner"),
    # result parameters
    ("Patient", "_count", "-1", "invalid", "_count"),
    ("Patient", "_count", "abc", "invalid", "_count"),
    ("Patient", "_count", "", "invalid", "_count"),
    ("Patient", "_count", "1.5", "invalid", "_count"),
    ("Patient", "_cursor", "garbage", "invalid", "_cursor"),
    ("Patient", "_cursor", "", "invalid", "_cursor"),
    ("Patient", "_cursor", "' OR 1=1", "invalid", "_cursor"),
    ("Patient", "_cursor", encode_cursor(2**63), "invalid", "_cursor"),
    ("Patient", "_summary", "bogus", "invalid", "_summary"),
    ("Patient", "_total", "all", "invalid", "_total"),
    ("Patient", "_elements", "", "invalid", "_elements"),
    ("Patient", "_elements", "name,,gender", "invalid", "_elements"),
    ("Patient", "_count:exact", "5", "invalid", "_count:exact"),
    # includes
    ("Patient", "_include", "Observation:subject", "invalid", "_include"),
    ("Patient", "_include", "Patient:name", "invalid", "_include"),
    ("Patient", "_include", "Patient", "invalid", "_include"),
    ("Patient", "_include", "Patient:organization:Practitioner", "invalid", "_include"),
    ("Patient", "_include", "patient:organization", "invalid", "_include"),
    ("Patient", "_revinclude", "Observation:subject:Group", "invalid", "_revinclude"),
    ("Patient", "_revinclude", "Observation:code", "invalid", "_revinclude"),
    ("Organization", "_revinclude", "Observation:subject", "invalid", "_revinclude"),
    # modifiers, chains, _has, _sort, includes (issue 4)
    ("Patient", "_revinclude", "*", "not-supported", "_revinclude"),
    ("Patient", "_include", "Patient:*:Organization", "invalid", "_include"),
    ("Patient", "_include:foo", "Patient:link", "invalid", "_include:foo"),
    ("Patient", "name:missing", "yes", "invalid", "name:missing"),
    ("Patient", "name:missing", "true,false", "invalid", "name:missing"),
    ("Patient", "gender:text", "", "invalid", "gender:text"),
    ("Patient", "identifier:of-type", "a|b", "invalid", "identifier:of-type"),
    ("Patient", "identifier:of-type", "a||v", "invalid", "identifier:of-type"),
    ("Patient", "name.family", "x", "invalid", "name.family"),
    ("Patient", "gender.x", "x", "invalid", "gender.x"),
    ("Patient", "organization:Patient.name", "x", "invalid", "organization:Patient.name"),
    ("Patient", "organization:missing.name", "x", "invalid", "organization:missing.name"),
    ("Patient", "organization.", "x", "invalid", "organization."),
    ("Patient", "organization.name.x", "x", "invalid", "organization.name.x"),
    ("Observation", "subject:Patient.birthdate", "notadate", "invalid", "subject:Patient.birthdate"),
    ("Observation", "subject:Patient.organization.name:foo", "x", "invalid",
     "subject:Patient.organization.name:foo"),
    ("Patient", "_has:Observation:code:code", "1234", "invalid", "_has:Observation:code:code"),
    ("Patient", "_has:Observation:subject", "1234", "invalid", "_has:Observation:subject"),
    ("Patient", "_has", "x", "invalid", "_has"),
    ("Patient", "_has:Nope:subject:code", "1", "invalid", "_has:Nope:subject:code"),
    ("Organization", "_has:Observation:subject:code", "1", "invalid", "_has:Observation:subject:code"),
    ("Patient", "_has:Observation:subject:value-quantity", "abc", "invalid", "_has:Observation:subject:value-quantity"),
    ("Patient", "_sort", "", "invalid", "_sort"),
    ("Patient", "_sort", "-", "invalid", "_sort"),
    ("Patient", "_sort", "name,name", "invalid", "_sort"),
    ("Patient", "_sort:desc", "name", "invalid", "_sort:desc"),
    ("Observation", "_sort", "combo-code-value-quantity", "not-supported", "_sort"),
    ("Patient", "_cursor", encode_cursor(Cursor(3, ("x",))), "invalid", "_cursor"),
    ("Patient", "_cursor", encode_cursor(Cursor(3, (), before=True))[:-1] + "!", "invalid", "_cursor"),
    # not supported yet
    ("Patient", "name:text", "smi", "not-supported", "name:text"),
    ("Patient", "name:below", "smi", "not-supported", "name:below"),
    ("Patient", "gender:in", "http://vs", "not-supported", "gender:in"),
    ("Patient", "gender:below", "male", "not-supported", "gender:below"),
    ("Patient", "gender:above", "male", "not-supported", "gender:above"),
    ("Patient", "gender:not-in", "http://vs", "not-supported", "gender:not-in"),
    ("Patient", "organization:below", "Organization/o1", "not-supported", "organization:below"),
    ("ValueSet", "url:contains", "acme", "not-supported", "url:contains"),
    ("Patient", "_id:missing", "true", "not-supported", "_id:missing"),
    ("Patient", "_id:not", "p1", "not-supported", "_id:not"),
    ("Patient", "_lastUpdated:missing", "true", "not-supported", "_lastUpdated:missing"),
    ("Patient", "_list", "x", "not-supported", "_list"),
    ("Patient", "_filter", "name eq x", "not-supported", "_filter"),
    ("Patient", "_query", "x", "not-supported", "_query"),
    ("Patient", "_contained", "true", "not-supported", "_contained"),
    ("Observation", "combo-code-value-quantity", "1234$5", "not-supported", "combo-code-value-quantity"),
    # unknown modifiers
    ("Patient", "name:foo", "x", "invalid", "name:foo"),
    ("Patient", "gender:exact", "male", "not-supported", "gender:exact"),
]


@pytest.mark.parametrize(("rtype", "name", "value", "code", "named"), ERRORS,
                         ids=[f"{t}?{n}={v}" for t, n, v, _, _ in ERRORS])
def test_search_error(rtype: str, name: str, value: str, code: str, named: str) -> None:
    with pytest.raises(FhirError) as ei:
        parse_search(rtype, [("gender", "male"), (name, value)], REGISTRY, base_url=BASE)
    err = ei.value
    assert err.status == 400
    (issue,) = err.issues
    assert issue.severity == "error"
    assert issue.code == code, issue.diagnostics
    assert named in issue.diagnostics
    assert issue.expression == (named,)


@pytest.mark.parametrize(("name", "value"), [("foo", "bar"), ("foo:exact", "bar"), ("_foo", "1"),
                                             ("_include", "Patient:nope"), ("_revinclude", "Nope:subject")])
def test_search_unknown_parameter(name: str, value: str) -> None:
    parsed = parse_search("Patient", [(name, value)], REGISTRY, base_url=BASE)
    (w,) = parsed.warnings
    assert w.severity == "warning" and w.code == "not-supported" and name in w.diagnostics
    assert parsed.criteria == [] and parsed.includes == [] and parsed.revincludes == []
    with pytest.raises(FhirError) as ei:
        parse_search("Patient", [(name, value)], REGISTRY, base_url=BASE, strict=True)
    assert ei.value.status == 400
    assert name in ei.value.issues[0].diagnostics
    assert ei.value.issues[0].code == "not-supported"


def test_search_repeated_result_params() -> None:
    for name, a, b in (("_count", "1", "2"), ("_summary", "true", "data"), ("_total", "none", "accurate"),
                       ("_cursor", encode_cursor(1), encode_cursor(2))):
        with pytest.raises(FhirError) as ei:
            parse_search("Patient", [(name, a), (name, b)], REGISTRY, base_url=BASE)
        assert ei.value.status == 400 and name in ei.value.issues[0].diagnostics
