"""$expand, $validate-code, $lookup and $subsumes over HTTP on both backends, with code systems and value
sets the tests POST (found through the database) and the vendored R4 terminology."""

from __future__ import annotations

import pytest

from tests.terminology.helpers import FHIR_JSON, SCT, animals, codes, cs_url, params, post, value_sets, vs_url

GENDER_VS = "http://hl7.org/fhir/ValueSet/administrative-gender"
GENDER = "http://hl7.org/fhir/administrative-gender"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


@pytest.fixture
def defs(fhir, tag) -> dict[str, str]:
    """POST the animals code system and the test value sets; name → id (the code system is 'cs')."""
    out = {"cs": post(fhir, animals(tag))["id"]}
    for vs in value_sets(tag):
        out[vs["url"].rsplit("/", 1)[1].rsplit("-", 1)[0]] = post(fhir, vs)["id"]
    return out


def expand(fhir, params_: dict | None = None, path: str = "ValueSet/$expand", status: int = 200) -> dict:
    r = fhir.get(path, params=params_)
    assert r.status_code == status, r.text
    return r.json()


def outcome(body: dict, status_text: str | None = None) -> str:
    assert body["resourceType"] == "OperationOutcome", body
    text = " ".join(i.get("diagnostics", "") for i in body["issue"])
    if status_text:
        assert status_text in text, text
    return text


def test_expand_vendored(fhir):
    vs = expand(fhir, {"url": GENDER_VS})
    assert vs["resourceType"] == "ValueSet" and vs["url"] == GENDER_VS
    assert codes(vs) == ["male", "female", "other", "unknown"]
    assert vs["expansion"]["total"] == 4
    assert vs["expansion"]["contains"][0] == {"system": GENDER, "version": "4.0.1", "code": "male", "display": "Male"}
    assert codes(expand(fhir, {"url": GENDER_VS + "|4.0.1"})) == ["male", "female", "other", "unknown"]
    status = expand(fhir, {"url": "http://hl7.org/fhir/ValueSet/observation-status"})
    assert "final" in codes(status) and status["expansion"]["total"] == 8


def test_expand_posted(fhir, tag, defs):
    by_url = expand(fhir, {"url": vs_url(tag, "mammals")})
    assert codes(by_url) == ["mammal", "dog", "cat", "puppy"]
    by_id = expand(fhir, path=f"ValueSet/{defs['mammals']}/$expand")
    assert codes(by_id) == codes(by_url)
    assert codes(expand(fhir, {"url": vs_url(tag, "composite")})) == ["mammal", "dog", "puppy", "44054006"]
    assert codes(expand(fhir, {"url": vs_url(tag, "not-animal")})) == ["rock"]
    assert codes(expand(fhir, {"url": vs_url(tag, "brown")})) == ["dog"]
    assert codes(expand(fhir, {"url": vs_url(tag, "intersection")})) == ["cat", "puppy"]
    # a value set listing concepts of a not-present system expands to those concepts
    listed = expand(fhir, {"url": vs_url(tag, "composite")})["expansion"]["contains"][-1]
    assert listed == {"system": SCT, "code": "44054006", "display": "Diabetes mellitus type 2"}


def test_expand_paging_filter_language(fhir, tag, defs):
    url = vs_url(tag, "all")
    page = expand(fhir, {"url": url, "count": "3", "offset": "2"})
    assert codes(page) == ["dog", "cat", "bird"]
    assert page["expansion"]["total"] == 8 and page["expansion"]["offset"] == 2
    assert expand(fhir, {"url": url, "offset": "100"})["expansion"].get("contains") is None
    filtered = expand(fhir, {"url": url, "filter": "AT"})
    assert codes(filtered) == ["cat"] and filtered["expansion"]["total"] == 1
    assert codes(expand(fhir, {"url": url, "filter": "p"})) == ["parrot", "puppy"]
    german = expand(fhir, {"url": vs_url(tag, "mammals"), "displayLanguage": "de"})
    assert [c["display"] for c in german["expansion"]["contains"]] == ["Säugetier", "Hund", "Katze", "Puppy"]
    french = expand(fhir, {"url": url, "displayLanguage": "fr-CA", "filter": "dog"})
    assert french["expansion"]["contains"][0]["display"] == "Dog"  # fr-CA has no designation: the display
    with_designations = expand(fhir, {"url": url, "filter": "dog", "includeDesignations": "true"})
    assert {"language": "de", "value": "Hund"} in with_designations["expansion"]["contains"][0]["designation"]


def test_expand_post_parameters(fhir, tag, defs):
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": vs_url(tag, "all")}, {"name": "count", "valueInteger": 2},
        {"name": "filter", "valueString": "a"}]}
    r = fhir.post("ValueSet/$expand", json=body, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    assert codes(r.json()) == ["animal", "mammal"] and r.json()["expansion"]["total"] == 4  # + cat, parrot
    inline = {"resourceType": "Parameters", "parameter": [{"name": "valueSet", "resource": value_sets(tag)[3]}]}
    r = fhir.post("ValueSet/$expand", json=inline, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    assert codes(r.json()) == ["rock"]


def test_expand_errors(fhir, tag, defs):
    outcome(expand(fhir, {"url": vs_url(tag, "loop-a")}, status=422), "loop")
    outcome(expand(fhir, {"url": vs_url(tag, "sct-all")}, status=422), SCT)
    outcome(expand(fhir, {"url": vs_url(tag, "missing-vs")}, status=422), "does-not-exist")
    outcome(expand(fhir, {"url": "http://example.org/unknown"}, status=404), "http://example.org/unknown")
    outcome(expand(fhir, path="ValueSet/no-such-id/$expand", status=404))
    outcome(expand(fhir, {}, status=400))
    outcome(expand(fhir, {"url": vs_url(tag, "all"), "count": "-1"}, status=400), "count")
    outcome(expand(fhir, {"url": vs_url(tag, "all"), "count": "x"}, status=400), "count")
    outcome(expand(fhir, {"url": vs_url(tag, "all"), "includeDesignations": "maybe"}, status=400))
    outcome(expand(fhir, {"url": [vs_url(tag, "all"), vs_url(tag, "in")]}, status=400))
    outcome(expand(fhir, path="CodeSystem/$expand", status=404))
    bad = {"resourceType": "Parameters", "parameter": [{"name": "valueSet", "resource": {
        "resourceType": "ValueSet", "compose": {"include": [{"system": cs_url(tag), "filter": [
            {"property": "concept", "op": "regex", "value": "("}]}]}}}]}
    r = fhir.post("ValueSet/$expand", json=bad, headers=FHIR_JSON)
    assert r.status_code == 400, r.text
    bad["parameter"][0]["resource"]["compose"] = {"include": "nope"}
    assert fhir.post("ValueSet/$expand", json=bad, headers=FHIR_JSON).status_code == 400


def validate(fhir, query: dict, path: str = "ValueSet/$validate-code", status: int = 200) -> dict:
    r = fhir.get(path, params=query)
    assert r.status_code == status, r.text
    return params(r.json()) if status == 200 else r.json()


def test_validate_code(fhir, tag, defs):
    ok = validate(fhir, {"url": GENDER_VS, "system": GENDER, "code": "male"})
    assert ok["result"] is True and ok["display"] == "Male"
    no = validate(fhir, {"url": GENDER_VS, "system": GENDER, "code": "nope"})
    assert no["result"] is False and "nope" in no["message"]
    display = validate(fhir, {"url": GENDER_VS, "system": GENDER, "code": "male", "display": "Man"})
    assert display["result"] is True and "Man" in display["message"]
    mammals = vs_url(tag, "mammals")
    assert validate(fhir, {"url": mammals, "system": cs_url(tag), "code": "puppy"})["result"] is True
    assert validate(fhir, {"url": mammals, "system": cs_url(tag), "code": "parrot"})["result"] is False
    by_id = validate(fhir, {"system": cs_url(tag), "code": "cat"}, path=f"ValueSet/{defs['mammals']}/$validate-code")
    assert by_id["result"] is True and by_id["display"] == "Cat"
    # a code system this server does not carry: not checked (result true, the message says so)
    sct = validate(fhir, {"url": vs_url(tag, "sct-or-animals"), "system": SCT, "code": "22298006"})
    assert sct["result"] is True and "not checked" in sct["message"].lower() and SCT in sct["message"]


def test_validate_code_post(fhir, tag, defs):
    def post_params(*parameter):
        r = fhir.post("ValueSet/$validate-code", json={"resourceType": "Parameters", "parameter": list(parameter)},
                      headers=FHIR_JSON)
        assert r.status_code == 200, r.text
        return params(r.json())

    url = {"name": "url", "valueUri": vs_url(tag, "mammals")}
    assert post_params(url, {"name": "coding", "valueCoding": {"system": cs_url(tag), "code": "dog"}})["result"]
    cc = {"coding": [{"system": cs_url(tag), "code": "rock"}, {"system": cs_url(tag), "code": "cat"}]}
    assert post_params(url, {"name": "codeableConcept", "valueCodeableConcept": cc})["result"] is True
    cc = {"coding": [{"system": cs_url(tag), "code": "rock"}]}
    assert post_params(url, {"name": "codeableConcept", "valueCodeableConcept": cc})["result"] is False


def test_validate_code_errors(fhir, tag, defs):
    outcome(validate(fhir, {"url": GENDER_VS}, status=400))
    outcome(validate(fhir, {"url": GENDER_VS, "code": "x", "coding": "y"}, status=400))
    outcome(validate(fhir, {"system": GENDER, "code": "male"}, status=400))
    outcome(validate(fhir, {"url": "http://example.org/nothing", "code": "x"}, status=404))
    outcome(validate(fhir, {"code": "x"}, path="ValueSet/nothing-here/$validate-code", status=404))
    outcome(validate(fhir, {"url": vs_url(tag, "loop-a"), "code": "dog"}, status=422), "loop")


def test_codesystem_validate_code(fhir, tag, defs):
    path = "CodeSystem/$validate-code"
    assert validate(fhir, {"url": cs_url(tag), "code": "dog"}, path=path)["result"] is True
    assert validate(fhir, {"url": cs_url(tag), "code": "unicorn"}, path=path)["result"] is False
    assert validate(fhir, {"code": "dog"}, path=f"CodeSystem/{defs['cs']}/$validate-code")["result"] is True
    assert validate(fhir, {"url": SCT, "code": "1"}, path=path)["result"] is True  # not checked
    outcome(validate(fhir, {"url": "http://example.org/cs-none", "code": "1"}, path=path, status=404))


def lookup(fhir, query: dict, path: str = "CodeSystem/$lookup", status: int = 200) -> dict:
    r = fhir.get(path, params=query)
    assert r.status_code == status, r.text
    return params(r.json()) if status == 200 else r.json()


def test_lookup(fhir, tag, defs):
    dog = lookup(fhir, {"system": cs_url(tag), "code": "dog"})
    assert dog["name"] == "Animals" and dog["display"] == "Dog" and dog["version"] == "1.0"
    props = {(p[0]["valueCode"], next(v for k, v in p[1].items() if k.startswith("value"))) for p in dog["property"]}
    assert ("parent", "mammal") in props and ("child", "puppy") in props and ("legs", 4) in props
    assert [{"name": "language", "valueCode": "de"}, {"name": "value", "valueString": "Hund"}] in dog["designation"]
    assert lookup(fhir, {"system": cs_url(tag), "code": "dog", "displayLanguage": "fr"})["display"] == "Chien"
    only_parent = lookup(fhir, {"system": cs_url(tag), "code": "dog", "property": "parent"})
    assert [p[0]["valueCode"] for p in only_parent["property"]] == ["parent"]
    assert lookup(fhir, {"code": "cat"}, path=f"CodeSystem/{defs['cs']}/$lookup")["display"] == "Cat"
    act = lookup(fhir, {"system": ACT_CODE, "code": "AMB"})
    assert act["display"] == "ambulatory"
    assert lookup(fhir, {"system": GENDER, "code": "male"})["display"] == "Male"
    r = fhir.post("CodeSystem/$lookup", json={"resourceType": "Parameters", "parameter": [
        {"name": "coding", "valueCoding": {"system": cs_url(tag), "code": "rock"}}]}, headers=FHIR_JSON)
    assert r.status_code == 200 and params(r.json())["display"] == "Rock"


def test_lookup_errors(fhir, tag, defs):
    outcome(lookup(fhir, {"system": cs_url(tag), "code": "unicorn"}, status=404), "unicorn")
    outcome(lookup(fhir, {"system": "http://example.org/none", "code": "x"}, status=404))
    outcome(lookup(fhir, {"system": SCT, "code": "22298006"}, status=422), "not available")
    outcome(lookup(fhir, {"system": cs_url(tag)}, status=400))
    outcome(lookup(fhir, {"code": "x"}, status=400))
    outcome(lookup(fhir, {"code": "x"}, path="CodeSystem/none-such/$lookup", status=404))


def subsumes(fhir, query: dict, status: int = 200, path: str = "CodeSystem/$subsumes"):
    r = fhir.get(path, params=query)
    assert r.status_code == status, r.text
    return params(r.json())["outcome"] if status == 200 else r.json()


def test_subsumes(fhir, tag, defs):
    s = cs_url(tag)
    assert subsumes(fhir, {"system": s, "codeA": "animal", "codeB": "puppy"}) == "subsumes"
    assert subsumes(fhir, {"system": s, "codeA": "puppy", "codeB": "mammal"}) == "subsumed-by"
    assert subsumes(fhir, {"system": s, "codeA": "dog", "codeB": "dog"}) == "equivalent"
    assert subsumes(fhir, {"system": s, "codeA": "dog", "codeB": "rock"}) == "not-subsumed"
    assert subsumes(fhir, {"codeA": "bird", "codeB": "parrot"},
                    path=f"CodeSystem/{defs['cs']}/$subsumes") == "subsumes"
    assert subsumes(fhir, {"system": ACT_CODE, "codeA": "_ActEncounterCode", "codeB": "AMB"}) == "subsumes"
    r = fhir.post("CodeSystem/$subsumes", json={"resourceType": "Parameters", "parameter": [
        {"name": "codingA", "valueCoding": {"system": s, "code": "cat"}},
        {"name": "codingB", "valueCoding": {"system": s, "code": "mammal"}}]}, headers=FHIR_JSON)
    assert r.status_code == 200 and params(r.json())["outcome"] == "subsumed-by"
    outcome(subsumes(fhir, {"system": s, "codeA": "dog", "codeB": "unicorn"}, status=400), "unicorn")
    outcome(subsumes(fhir, {"system": s, "codeA": "dog"}, status=400))
    outcome(subsumes(fhir, {"system": SCT, "codeA": "1", "codeB": "2"}, status=422))


def test_deleted_value_set_is_gone(fhir, tag):
    vs = post(fhir, value_sets(tag)[0])
    assert fhir.delete(f"ValueSet/{vs['id']}").status_code in (200, 204)
    outcome(expand(fhir, {"url": vs["url"]}, status=404))
    outcome(expand(fhir, path=f"ValueSet/{vs['id']}/$expand", status=404))
