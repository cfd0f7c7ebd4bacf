"""The Python API the profile validator uses (``terminology.validate_code`` & co.) on the vendored R4
terminology and on resources registered through the save/delete hooks."""

from __future__ import annotations

import time

import terminology
from terminology import CodeValidation
from tests.terminology.helpers import SCT, animals, cs_url, value_sets, vs_url

GENDER_VS = "http://hl7.org/fhir/ValueSet/administrative-gender"
GENDER = "http://hl7.org/fhir/administrative-gender"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def test_validate_code_vendored():
    ok = terminology.validate_code(GENDER_VS, system=GENDER, code="female")
    assert ok == CodeValidation(True, ok.message, "Female")
    assert "female" in ok.message and GENDER_VS in ok.message
    assert terminology.validate_code(GENDER_VS + "|4.0.1", system=GENDER, code="male").result is True
    assert terminology.validate_code(GENDER_VS + "|3.0.0", system=GENDER, code="male").result is True  # lenient
    bad = terminology.validate_code(GENDER_VS, system=GENDER, code="unknown-x")
    assert bad.result is False and "unknown-x" in bad.message
    assert terminology.validate_code(GENDER_VS, system="http://other", code="male").result is False
    assert terminology.validate_code(GENDER_VS, system=None, code="other").result is True


def test_validate_code_display():
    v = terminology.validate_code(GENDER_VS, system=GENDER, code="male", display="Masculine")
    assert v.result is True and "Masculine" in v.message and v.display == "Male"
    assert "not a display" in v.message


def test_not_present_and_unknown():
    v = terminology.validate_code("http://hl7.org/fhir/ValueSet/condition-code", system=SCT, code="44054006")
    assert v.result is None
    assert f"code system {SCT} is not available on this server: the code" in v.message
    assert "could not be checked" in v.message
    u = terminology.validate_code("http://example.org/no-such-vs", system=GENDER, code="male")
    assert u.result is None and "http://example.org/no-such-vs" in u.message
    assert terminology.expand_codes("http://hl7.org/fhir/ValueSet/condition-code") is None
    assert terminology.expand_codes("http://example.org/no-such-vs") is None
    assert terminology.subsumes(SCT, "1", "2") is None


def test_lookup_expand_subsumes():
    assert terminology.lookup_display(GENDER, "unknown") == "Unknown"
    assert terminology.lookup_display(GENDER, "nope") is None
    assert terminology.lookup_display("http://example.org/none", "x") is None
    assert terminology.lookup_display(ACT_CODE, "AMB") == "ambulatory"
    codes = terminology.expand_codes("http://hl7.org/fhir/ValueSet/observation-status")
    assert codes is not None and ("http://hl7.org/fhir/observation-status", "final") in codes and len(codes) == 8
    assert terminology.subsumes(ACT_CODE, "_ActEncounterCode", "AMB") == "subsumes"
    assert terminology.subsumes(ACT_CODE, "AMB", "_ActEncounterCode") == "subsumed-by"
    assert terminology.subsumes(ACT_CODE, "AMB", "AMB") == "equivalent"
    assert terminology.subsumes(ACT_CODE, "AMB", "EMER") == "not-subsumed"
    assert terminology.subsumes(ACT_CODE, "AMB", "no-such") is None


def test_hooks():
    tag = "hook"
    cs = {**animals(tag), "id": "hook-cs", "meta": {"versionId": "1"}}
    terminology.on_resource_saved(cs)
    for i, vs in enumerate(value_sets(tag)):
        terminology.on_resource_saved({**vs, "id": f"hook-vs{i}", "meta": {"versionId": "1"}})
    try:
        mammals = vs_url(tag, "mammals")
        assert terminology.validate_code(mammals, system=cs_url(tag), code="puppy").result is True
        assert terminology.validate_code(mammals, system=cs_url(tag), code="parrot").result is False
        assert terminology.expand_codes(mammals) == [(cs_url(tag), c) for c in ("mammal", "dog", "cat", "puppy")]
        assert terminology.subsumes(cs_url(tag), "mammal", "puppy") == "subsumes"
        loop = terminology.validate_code(vs_url(tag, "loop-a"), system=cs_url(tag), code="dog")
        assert loop.result is None and "loop" in loop.message
        mixed = vs_url(tag, "sct-or-animals")
        assert terminology.validate_code(mixed, system=SCT, code="1234").result is None
        assert terminology.validate_code(mixed, system=cs_url(tag), code="dog").result is True
        assert terminology.expand_codes(mixed) is None
        # an update replaces, a delete forgets
        rock = {"include": [{"system": cs_url(tag), "concept": [{"code": "rock"}]}]}
        terminology.on_resource_saved({**value_sets(tag)[1], "id": "hook-vs1", "meta": {"versionId": "2"},
                                       "compose": rock})
        assert terminology.expand_codes(mammals) == [(cs_url(tag), "rock")]
        terminology.on_resource_deleted("ValueSet", "hook-vs1")
        assert terminology.validate_code(mammals, system=cs_url(tag), code="rock").result is None
    finally:
        terminology.on_resource_deleted("CodeSystem", "hook-cs")
        for i in range(len(value_sets(tag))):
            terminology.on_resource_deleted("ValueSet", f"hook-vs{i}")
    assert terminology.lookup_display(cs_url(tag), "dog") is None
    terminology.on_resource_saved({"resourceType": "Patient", "id": "x"})  # ignored
    terminology.on_resource_deleted("Patient", "x")


def test_fast():
    terminology.validate_code(GENDER_VS, system=GENDER, code="male")
    n = 20000
    start = time.perf_counter()
    for _ in range(n):
        terminology.validate_code(GENDER_VS, system=GENDER, code="male")
    per_call = (time.perf_counter() - start) / n
    assert per_call < 50e-6, per_call  # a few µs normally; generous for a loaded CI machine


def test_example_code_systems_are_not_complete():
    vs = "http://hl7.org/fhir/ValueSet/service-type"  # its code system has content = example
    system = "http://terminology.hl7.org/CodeSystem/service-type"
    assert terminology.validate_code(vs, system=system, code="1").result is True
    other = terminology.validate_code(vs, system=system, code="no-such-code")
    assert other.result is None and "example" in other.message
