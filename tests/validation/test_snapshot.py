"""Snapshot generation against the published R4 profiles (``profiles/data/r4/profiles-others.json``).

For every element the differential touches, the generated snapshot must agree with the published one on id,
``min``/``max``, ``sliceName``, ``fixed[x]``/``pattern[x]``, type codes, and (when the differential sets it)
``slicing``. Choice renames: the generator makes ``value[x]:valueQuantity`` (a type slice); some published R4
snapshots (bp's components) still use the older form where ``value[x]`` itself is restricted to Quantity and
have no slice — those are compared without ``sliceName``.
"""

from __future__ import annotations

import re

import pytest

from fhir_server.validation.registry import ProfileRegistry
from fhir_server.validation.snapshot import SnapshotError
from profiles import other_profiles

PROFILES = other_profiles()
#: profiles whose base in the vendored definitions is not R4 (Medplum replaced EvidenceVariable.characteristic
#: by its R5 content, see structure.py), so their differential does not apply.
NOT_APPLICABLE = {"http://hl7.org/fhir/StructureDefinition/picoelement"}
_CHOICE = re.compile(r"^([a-z][A-Za-z]*?)([A-Z][A-Za-z]*)$")


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return ProfileRegistry()


def _forms(eid: str) -> list[tuple[str, bool]]:
    """The id and its choice-renamed forms: (id, is_slice_form)."""
    segs = eid.split(".")
    last = segs[-1]
    m = _CHOICE.match(last)
    out = [(eid, False)]
    if m and ":" not in last:
        for i in range(len(m.group(1)), len(last)):
            if last[i].isupper():
                base = last[:i]
                out.append((".".join([*segs[:-1], f"{base}[x]:{last}"]), True))
                out.append((".".join([*segs[:-1], f"{base}[x]"]), False))
    return out


def _find(index: dict[str, dict], eid: str) -> tuple[dict | None, bool]:
    for form, is_slice in _forms(eid):
        if form in index:
            return index[form], is_slice
    # a choice rename inside the path (``valueQuantity.code``)
    segs = eid.split(".")
    for i in range(1, len(segs) - 1):
        for form, is_slice in _forms(".".join(segs[: i + 1])):
            cand = ".".join([form, *segs[i + 1:]])
            if cand in index:
                return index[cand], is_slice
    return None, False


def test_all_published_profiles_are_there():
    assert len(PROFILES) == 44


@pytest.mark.parametrize("url", sorted(PROFILES), ids=lambda u: u.rsplit("/", 1)[1])
def test_snapshot_matches_published(url, registry):
    sd = PROFILES[url]
    if url in NOT_APPLICABLE:
        with pytest.raises(SnapshotError):
            registry.snapshot(url)
        return
    generated = {e["id"]: e for e in registry.snapshot(url)}
    published = {e["id"]: e for e in sd["snapshot"]["element"]}
    problems = []
    for d in sd["differential"]["element"]:
        g, g_slice = _find(generated, d["id"])
        p, p_slice = _find(published, d["id"])
        if g is None or p is None:
            problems.append(f"{d['id']}: generated={g is not None} published={p is not None}")
            continue
        keys = ["min", "max"] + (["sliceName"] if g_slice == p_slice else [])
        for k in keys:
            if g.get(k) != p.get(k):
                problems.append(f"{d['id']}: {k} {g.get(k)!r} != published {p.get(k)!r}")
        for k in set(g) | set(p):
            if k.startswith(("fixed", "pattern")) and g.get(k) != p.get(k):
                problems.append(f"{d['id']}: {k} differs")
        if [t["code"] for t in g.get("type", [])] != [t["code"] for t in p.get("type", [])]:
            problems.append(f"{d['id']}: types differ")
        if "slicing" in d and g.get("slicing") != p.get("slicing"):
            problems.append(f"{d['id']}: slicing {g.get('slicing')} != {p.get('slicing')}")
        if "binding" in d and g.get("binding", {}).get("valueSet") != p.get("binding", {}).get("valueSet"):
            problems.append(f"{d['id']}: binding differs")
        for c in d.get("constraint", []):
            if c["key"] not in {x["key"] for x in g.get("constraint", [])}:
                problems.append(f"{d['id']}: constraint {c['key']} missing")
    assert problems == []
    assert registry.problems.get(url) is None


def test_vitalsigns_children_are_unrolled(registry):
    ids = [e["id"] for e in registry.snapshot("http://hl7.org/fhir/StructureDefinition/vitalsigns")]
    i = ids.index("Observation.category:VSCat")
    assert ids[i + 1: i + 4] == ["Observation.category:VSCat.id", "Observation.category:VSCat.extension",
                                 "Observation.category:VSCat.coding"]
    assert "Observation.category:VSCat.coding.system" in ids


def test_profile_on_profile_adds_slices_after_inherited_ones(registry):
    ids = [e["id"] for e in registry.snapshot("http://hl7.org/fhir/StructureDefinition/bp")]
    assert ids.index("Observation.component:SystolicBP") < ids.index("Observation.component:DiastolicBP")
    assert "Observation.value[x]:valueQuantity" in ids
    assert "Observation.component:SystolicBP.value[x]:valueQuantity.code" in ids
    el = {e["id"]: e for e in registry.snapshot("http://hl7.org/fhir/StructureDefinition/bp")}
    assert el["Observation.value[x]:valueQuantity"]["max"] == "0"
    assert el["Observation.component:SystolicBP.value[x]:valueQuantity.code"]["fixedCode"] == "mm[Hg]"


def test_snapshot_is_cached(registry):
    url = "http://hl7.org/fhir/StructureDefinition/bodyweight"
    assert registry.snapshot(url) is registry.snapshot(url)


def test_unknown_differential_element_is_an_error():
    reg = ProfileRegistry(vendored=False)
    reg.add({"resourceType": "StructureDefinition", "url": "http://example.org/bad", "type": "Patient",
             "derivation": "constraint", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
             "differential": {"element": [{"id": "Patient.nonsense", "path": "Patient.nonsense", "min": 1}]}})
    with pytest.raises(SnapshotError):
        reg.snapshot("http://example.org/bad")


def test_widening_is_reported():
    reg = ProfileRegistry(vendored=False)
    reg.add({"resourceType": "StructureDefinition", "url": "http://example.org/wide", "type": "Observation",
             "derivation": "constraint", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Observation",
             "differential": {"element": [{"id": "Observation.code", "path": "Observation.code", "min": 0}]}})
    reg.snapshot("http://example.org/wide")
    assert reg.problems["http://example.org/wide"] == ["Observation.code: min 0 is below the base min 1"]
