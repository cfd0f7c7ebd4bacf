"""Modifiers over HTTP on both backends: :missing, token :not/:text/:of-type, uri :above/:below,
string :exact/:contains, and the clear 400s for what needs terminology or unindexed data."""

from __future__ import annotations

import pytest

from tests.search.api_helpers import error, found, make


def test_missing(fhir, tag):
    a = make(fhir, {"resourceType": "Patient", "identifier": [{"system": "urn:m", "value": tag}],
                    "birthDate": "2010-01-01", "gender": "male", "name": [{"family": "Lee"}],
                    "managingOrganization": {"reference": "Organization/x1"}})
    b = make(fhir, {"resourceType": "Patient", "identifier": [{"system": "urn:m", "value": tag}]})
    q = {"identifier": f"urn:m|{tag}"}
    for param in ("birthdate", "gender", "name", "organization", "family"):
        assert found(fhir, "Patient", {**q, f"{param}:missing": "true"}) == [b], param
        assert found(fhir, "Patient", {**q, f"{param}:missing": "false"}) == [a], param
    assert found(fhir, "Patient", {**q, "identifier:missing": "false"}) == sorted([a, b])
    assert found(fhir, "Patient", {**q, "identifier:missing": "true"}) == []
    obs = make(fhir, {"resourceType": "Observation", "status": "final", "code": {"text": tag},
                      "valueQuantity": {"value": 3, "unit": "mg"}})
    obs2 = make(fhir, {"resourceType": "Observation", "status": "final", "code": {"text": tag}})
    assert found(fhir, "Observation", {"code:text": tag, "value-quantity:missing": "true"}) == [obs2]
    assert found(fhir, "Observation", {"code:text": tag, "value-quantity:missing": "false"}) == [obs]
    vs = make(fhir, {"resourceType": "ValueSet", "status": "draft", "name": tag, "url": f"http://x.org/{tag}"})
    vs2 = make(fhir, {"resourceType": "ValueSet", "status": "draft", "name": tag})
    assert found(fhir, "ValueSet", {"name": tag, "url:missing": "true"}) == [vs2]
    assert found(fhir, "ValueSet", {"name": tag, "url:missing": "false"}) == [vs]


def test_token_not(fhir, tag):
    make(fhir, {"resourceType": "Patient", "identifier": [{"system": "urn:n", "value": tag}], "gender": "male"})
    female = make(fhir, {"resourceType": "Patient", "identifier": [{"system": "urn:n", "value": tag}],
                         "gender": "female"})
    none = make(fhir, {"resourceType": "Patient", "identifier": [{"system": "urn:n", "value": tag}]})
    q = {"identifier": f"urn:n|{tag}"}
    assert found(fhir, "Patient", {**q, "gender:not": "male"}) == sorted([female, none])
    assert found(fhir, "Patient", {**q, "gender:not": "male,female"}) == [none]
    assert found(fhir, "Patient", [*q.items(), ("gender:not", "male"), ("gender:not", "female")]) == [none]
    # a resource with several codes: :not means none of them matches
    c1 = make(fhir, {"resourceType": "Basic", "code": {"coding": [{"system": "urn:c", "code": "a"},
                                                                   {"system": "urn:c", "code": tag}]}})
    c2 = make(fhir, {"resourceType": "Basic", "code": {"coding": [{"system": "urn:c", "code": tag}]}})
    assert found(fhir, "Basic", {"code": f"urn:c|{tag}", "code:not": "urn:c|a"}) == [c2]
    assert found(fhir, "Basic", {"code": f"urn:c|{tag}", "code:not": "urn:other|a"}) == sorted([c1, c2])


def test_token_text(fhir, tag):
    a = make(fhir, {"resourceType": "Observation", "status": "final",
                    "code": {"coding": [{"system": "urn:t", "code": tag, "display": "Heart Rate"}]}})
    b = make(fhir, {"resourceType": "Observation", "status": "final",
                    "code": {"coding": [{"system": "urn:t", "code": tag}], "text": "Heartbeat Élan"}})
    c = make(fhir, {"resourceType": "Observation", "status": "final",
                    "code": {"coding": [{"system": "urn:t", "code": tag, "display": "Blood pressure"}]}})
    q = {"code": f"urn:t|{tag}"}
    assert found(fhir, "Observation", {**q, "code:text": "heart"}) == sorted([a, b])
    assert found(fhir, "Observation", {**q, "code:text": "HEART RATE"}) == [a]
    assert found(fhir, "Observation", {**q, "code:text": "heartbeat É"}) == [b]
    # string matching: case- and accent-insensitive (R4 search.html#token :text → #string)
    assert found(fhir, "Observation", {**q, "code:text": "heartbeat e"}) == [b]
    assert found(fhir, "Observation", {**q, "code:text": "HEARTBEAT ÉL"}) == [b]
    assert found(fhir, "Observation", {**q, "code:text": "rate"}) == []
    assert found(fhir, "Observation", {**q, "code:text": "blood,heart r"}) == sorted([a, c])
    assert found(fhir, "Observation", {**q, "code:text": "100%"}) == []


def test_identifier_of_type(fhir, tag):
    v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
    mr = make(fhir, {"resourceType": "Patient", "identifier": [
        {"type": {"coding": [{"system": v2, "code": "MR"}]}, "system": "urn:mrn", "value": tag},
        {"type": {"coding": [{"system": v2, "code": "SS"}]}, "value": "other" + tag}]})
    ss = make(fhir, {"resourceType": "Patient", "identifier": [
        {"type": {"coding": [{"system": v2, "code": "SS"}]}, "value": tag},
        {"type": {"coding": [{"system": v2, "code": "MR"}]}, "value": "other" + tag}]})
    assert found(fhir, "Patient", {"identifier:of-type": f"{v2}|MR|{tag}"}) == [mr]
    assert found(fhir, "Patient", {"identifier:of-type": f"{v2}|SS|{tag}"}) == [ss]
    assert found(fhir, "Patient", {"identifier:of-type": f"|MR|{tag}"}) == [mr]
    assert found(fhir, "Patient", {"identifier:of-type": f"urn:x|MR|{tag}"}) == []
    assert found(fhir, "Patient", {"identifier:of-type": f"{v2}|MR|{tag},{v2}|SS|{tag}"}) == sorted([mr, ss])
    # paging and totals count post-filtered matches only
    page = fhir.get("Patient", params={"identifier:of-type": f"{v2}|MR|{tag}", "_total": "accurate"}).json()
    assert page["total"] == 1


def test_uri_string_modifiers(fhir, tag):
    a = make(fhir, {"resourceType": "ValueSet", "status": "draft", "name": f"Colours{tag}",
                    "url": f"http://acme.org/{tag}/fhir/ValueSet/1"})
    b = make(fhir, {"resourceType": "ValueSet", "status": "draft", "name": f"colours{tag}x",
                    "url": f"http://acme.org/{tag}/fhir"})
    assert found(fhir, "ValueSet", {"url:below": f"http://acme.org/{tag}/fhir"}) == sorted([a, b])
    assert found(fhir, "ValueSet", {"url:below": f"http://acme.org/{tag}/fhir/ValueSet"}) == [a]
    assert found(fhir, "ValueSet", {"url:above": f"http://acme.org/{tag}/fhir/ValueSet/1/x"}) == sorted([a, b])
    assert found(fhir, "ValueSet", {"url:above": f"http://acme.org/{tag}/fhir/Other"}) == [b]
    assert found(fhir, "ValueSet", {"name:exact": f"Colours{tag}"}) == [a]
    assert found(fhir, "ValueSet", {"name:contains": f"OURS{tag}"}) == sorted([a, b])


@pytest.mark.parametrize(("param", "value", "named"), [
    ("gender:in", "http://example.org/unknown-vs", "gender:in"),  # unknown value set
    ("gender:not-in", "http://example.org/unknown-vs", "gender:not-in"),
    ("gender:above", "male", "gender:above"),
    ("gender:below", "male", "gender:below"),
    ("organization:identifier", "urn:x|1|2", "organization:identifier"),
    ("name:missing", "maybe", "name:missing"),
    ("identifier:of-type", "only|two", "identifier:of-type"),
    ("birthdate:not", "2010", "birthdate:not"),
    ("name:foo", "x", "name:foo"),
])
def test_modifier_errors(fhir, param, value, named):
    body = error(fhir, "Patient", {param: value})
    assert named in body["issue"][0]["diagnostics"]
    assert body["issue"][0]["expression"] == [named]
