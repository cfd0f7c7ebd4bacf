"""Token search modifiers backed by the terminology package, over HTTP on both backends:
``:in`` / ``:not-in`` (value set expansion) and ``:below`` / ``:above`` (is-a), plus the 400s.

The search parser is synchronous and sees the terminology store: the vendored R4 value sets and code
systems, and what ``terminology.on_resource_saved`` registered. Until the CRUD layer calls that hook, these
tests call it themselves after POSTing (the live server runs in the test process)."""

from __future__ import annotations

import pytest

import terminology
from tests.search.api_helpers import error, found
from tests.terminology.helpers import SCT, animals, cs_url, post, value_sets, vs_url

GENDER_VS = "http://hl7.org/fhir/ValueSet/administrative-gender"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


@pytest.fixture
def animals_registered(fhir, tag):
    """The animals code system and value sets, POSTed and registered with the store (as the CRUD hook would)."""
    saved = [post(fhir, animals(tag))] + [post(fhir, vs) for vs in value_sets(tag)]
    for r in saved:
        terminology.on_resource_saved(r)
    yield saved
    for r in saved:
        terminology.on_resource_deleted(r["resourceType"], r["id"])


def observation(fhir, tag: str, *codes: tuple[str, str]) -> str:
    coding = [{"system": s, "code": c} for s, c in codes]
    return post(fhir, {"resourceType": "Observation", "status": "final",
                       "identifier": [{"system": "urn:t", "value": tag}],
                       "code": {"coding": coding} if coding else {"text": "none"}})["id"]


def test_in_and_not_in(fhir, tag, animals_registered):
    s = cs_url(tag)
    dog = observation(fhir, tag, (s, "dog"))
    parrot = observation(fhir, tag, (s, "parrot"))
    rock_and_cat = observation(fhir, tag, (s, "rock"), (s, "cat"))
    other = observation(fhir, tag, ("http://other", "dog"))
    nothing = observation(fhir, tag)
    q = {"identifier": f"urn:t|{tag}"}
    assert found(fhir, "Observation", {**q, "code:in": vs_url(tag, "mammals")}) == sorted([dog, rock_and_cat])
    assert found(fhir, "Observation", {**q, "code:in": vs_url(tag, "not-animal")}) == [rock_and_cat]
    assert found(fhir, "Observation", {**q, "code:in": vs_url(tag, "brown") + "," + vs_url(tag, "regex")}) == sorted(
        [dog, parrot, rock_and_cat])
    assert found(fhir, "Observation", {**q, "code:not-in": vs_url(tag, "mammals")}) == sorted([parrot, other, nothing])
    assert found(fhir, "Observation", {**q, "code:not-in": vs_url(tag, "all")}) == sorted([other, nothing])
    # criteria are AND-ed
    params = [*q.items(), ("code:in", vs_url(tag, "all")), ("code:not-in", vs_url(tag, "mammals"))]
    assert found(fhir, "Observation", params) == [parrot]


def test_below_and_above(fhir, tag, animals_registered):
    s = cs_url(tag)
    obs = {c: observation(fhir, tag, (s, c)) for c in ("animal", "mammal", "dog", "puppy", "bird", "rock")}
    q = {"identifier": f"urn:t|{tag}"}
    assert found(fhir, "Observation", {**q, "code:below": f"{s}|mammal"}) == sorted(
        [obs["mammal"], obs["dog"], obs["puppy"]])
    assert found(fhir, "Observation", {**q, "code:below": f"{s}|rock"}) == [obs["rock"]]
    assert found(fhir, "Observation", {**q, "code:above": f"{s}|puppy"}) == sorted(
        [obs["puppy"], obs["dog"], obs["mammal"], obs["animal"]])
    assert found(fhir, "Observation", {**q, "code:above": f"{s}|bird,{s}|rock"}) == sorted(
        [obs["bird"], obs["animal"], obs["rock"]])


def test_vendored(fhir, tag):
    male = post(fhir, {"resourceType": "Patient", "identifier": [{"system": "urn:t", "value": tag}],
                       "gender": "male"})["id"]
    unset = post(fhir, {"resourceType": "Patient", "identifier": [{"system": "urn:t", "value": tag}]})["id"]
    q = {"identifier": f"urn:t|{tag}"}
    assert found(fhir, "Patient", {**q, "gender:in": GENDER_VS}) == [male]
    assert found(fhir, "Patient", {**q, "gender:in": GENDER_VS + "|4.0.1"}) == [male]
    assert found(fhir, "Patient", {**q, "gender:not-in": GENDER_VS}) == [unset]
    ident = [{"system": "urn:t", "value": tag}]
    amb = post(fhir, {"resourceType": "Encounter", "status": "finished", "identifier": ident,
                      "class": {"system": ACT_CODE, "code": "AMB"}})["id"]
    post(fhir, {"resourceType": "Encounter", "status": "finished", "identifier": ident,
                "class": {"system": "http://other", "code": "AMB"}})
    assert found(fhir, "Encounter", {**q, "class:below": f"{ACT_CODE}|_ActEncounterCode"}) == [amb]
    assert found(fhir, "Encounter", {**q, "class:above": f"{ACT_CODE}|AMB"}) == [amb]
    assert found(fhir, "Encounter", {**q, "class:below": f"{ACT_CODE}|EMER"}) == []


@pytest.mark.parametrize(("param", "value", "why"), [
    ("code:in", "http://example.org/no-such-value-set", "unknown"),
    ("code:not-in", "http://example.org/no-such-value-set", "unknown"),
    ("code:in", "http://hl7.org/fhir/ValueSet/clinical-findings", SCT),
    ("code:below", "dog", "system|code"),
    ("code:below", f"{SCT}|123", "not available"),
    ("code:above", "http://example.org/no-such-cs|x", "unknown"),
    ("code:below", f"{ACT_CODE}|NO-SUCH-CODE", "NO-SUCH-CODE"),
])
def test_errors(fhir, param, value, why):
    body = error(fhir, "Observation", {param: value})
    issue = body["issue"][0]
    assert issue["expression"] == [param] and param in issue["diagnostics"] and why in issue["diagnostics"]
    assert issue["code"] == "not-supported"


def test_loop_and_not_present_are_400(fhir, tag, animals_registered):
    for name, why in (("loop-a", "loop"), ("sct-all", SCT), ("sct-or-animals", SCT)):
        body = error(fhir, "Observation", {"code:in": vs_url(tag, name)})
        assert why in body["issue"][0]["diagnostics"]
