"""Hypothesis strategies for small random data sets, drawn from small alphabets so that searches hit.

Ids and the per-example scope are written with the placeholder ``~`` (replaced by a prefix unique to
the example when it is loaded) and references to this server's own base with ``{BASE}``; see
:func:`concretize`. ``~`` and ``{`` never occur in the alphabets, so the placeholders are unambiguous.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

RUN_SYSTEM = "urn:oracle:run"  # every resource carries identifier RUN_SYSTEM|<prefix>: the example's scope
BASE = "{BASE}"
OTHER_BASE = "http://other.example.org/fhir"

# -- alphabets --------------------------------------------------------------------------------------

FAMILIES = ["Gonçalves", "Goncalves", "gonzalez", "González", "Gon", "Smith", "Smyth", "Müller",
            "Mueller", "Åström", "van der Berg", "Doe, Jr", "50%_off", "O'Brien", "Ma|y$a\\b"]
GIVENS = ["Ana", "Anna", "Ånna", "Zoë", "Zoe", "Jean-Luc", "Chloé"]
NAME_PREFIXES = ["Dr", "Mrs"]
GENDERS = ["male", "female", "other", "unknown"]

SYSTEMS = ["http://loinc.org", "http://snomed.info/sct", "urn:oid:1.2.3"]
CODES = ["8867-4", "718-7", "x1", "x|2", "a,b"]
DISPLAYS = ["Heart rate", "Hémoglobine", "heart beat", "Hb"]  # Coding.display and CodeableConcept.text
ID_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
ID_TYPES = ["MR", "SS"]
ID_TYPE_TEXTS = ["Medical record number", "Social Security", "médical"]
ID_SYSTEMS = ["urn:mrn", "urn:oid:1.2.3", "http://loinc.org"]
ID_VALUES = ["A-1", "A-10", "7", "x|2", "a,b", "c$d", "back\\slash"]
OBS_STATUSES = ["final", "preliminary", "amended"]

UCUM = "http://unitsofmeasure.org"
NUMBERS = ["0", "0.05", "0.1", "0.15", "0.2", "0.25", "0.333", "0.5", "0.55", "1", "1.5", "5.35", "5.4",
           "5.45", "99.5", "100", "100.5", "-5.4"]
QUANTITY_UNITS: list[dict[str, str]] = [
    {"unit": "mg", "system": UCUM, "code": "mg"},
    {"unit": "milligram", "system": UCUM, "code": "mg"},
    {"unit": "mg"},
    {"unit": "kg", "system": UCUM, "code": "kg"},
    {"unit": "mg", "system": "http://other.units", "code": "mg"},
]

URIS = ["http://ex.org", "http://ex.org/fhir", "http://ex.org/fhir/ValueSet", "http://ex.org/fhir/ValueSet/alpha",
        "http://ex.org/fhir/ValueSet/beta", "http://ex.org/fhir/CodeSystem/alpha", "http://other.org/ValueSet/alpha",
        "urn:oid:1.2.3"]
VS_NAMES = ["Alpha", "alphabet", "Ålpha", "Beta", "BetaTwo"]
VS_STATUSES = ["draft", "active", "retired"]
VS_VERSIONS = ["1.0", "1.0.1", "2"]

# Dates cluster around a few anchor days (leap day, month and year ends) so that precisions and
# timezone offsets move values across day/month/year boundaries.
ANCHOR_DAYS = ["2024-02-28", "2024-02-29", "2024-03-01", "2024-12-31", "2025-01-01"]
TIMES = ["00:00:00", "00:30:00", "12:00:00", "23:30:00", "23:59:59"]
OFFSETS = ["Z", "+00:00", "-05:00", "+05:30", "+14:00", "-12:00"]


@st.composite
def date_text(draw: st.DrawFn, precisions: tuple[str, ...] = ("year", "month", "day", "second", "fraction"),
              tz_required: bool = True) -> str:
    """A FHIR date/dateTime at a random precision, near an anchor day."""
    day = draw(st.sampled_from(ANCHOR_DAYS))
    precision = draw(st.sampled_from(precisions))
    if precision == "year":
        return day[:4]
    if precision == "month":
        return day[:7]
    if precision == "day":
        return day
    tz = draw(st.sampled_from(OFFSETS if tz_required else ["", *OFFSETS]))
    frac = draw(st.sampled_from([".000", ".5", ".999"])) if precision == "fraction" else ""
    return f"{day}T{draw(st.sampled_from(TIMES))}{frac}{tz}"


def _low(text: str) -> int:
    from tests.oracle.evaluator import date_range

    return date_range(text)[0]


@st.composite
def period(draw: st.DrawFn) -> dict[str, str]:
    a = draw(st.one_of(st.none(), date_text()))
    b = draw(st.one_of(st.none(), date_text()))
    if a is None and b is None:
        a = draw(date_text())
    if a is not None and b is not None and _low(a) > _low(b):
        a, b = b, a  # per-1: start <= end
    return {k: v for k, v in (("start", a), ("end", b)) if v is not None}


def _opt(draw: st.DrawFn, strategy: st.SearchStrategy, p_none: float = 0.3) -> Any:
    """None with probability ``p_none``, else a value of ``strategy``."""
    return None if draw(st.integers(0, 99)) < p_none * 100 else draw(strategy)


@st.composite
def identifier(draw: st.DrawFn) -> dict:
    i: dict[str, Any] = {"value": draw(st.sampled_from(ID_VALUES))}
    system = _opt(draw, st.sampled_from(ID_SYSTEMS), 0.3)
    if system is not None:
        i["system"] = system
    if draw(st.integers(0, 2)) == 0:
        t: dict[str, Any] = {}
        codes = draw(st.lists(st.sampled_from(ID_TYPES), max_size=2, unique=True))
        if codes:
            t["coding"] = [{"system": ID_TYPE_SYSTEM, "code": c} for c in codes]
        text = _opt(draw, st.sampled_from(ID_TYPE_TEXTS), 0.5)
        if text is not None or not codes:
            t["text"] = text or ID_TYPE_TEXTS[0]
        i["type"] = t
    return i


def identifiers() -> st.SearchStrategy[list[dict]]:
    return st.lists(identifier(), max_size=2)


@st.composite
def codeable_concept(draw: st.DrawFn) -> dict:
    codings = []
    for _ in range(draw(st.integers(1, 2))):
        c: dict[str, Any] = {"code": draw(st.sampled_from(CODES))}
        system = _opt(draw, st.sampled_from(SYSTEMS), 0.3)
        if system is not None:
            c["system"] = system
        display = _opt(draw, st.sampled_from(DISPLAYS), 0.6)
        if display is not None:
            c["display"] = display
        codings.append(c)
    cc: dict[str, Any] = {"coding": codings}
    text = _opt(draw, st.sampled_from(DISPLAYS), 0.6)
    if text is not None:
        cc["text"] = text
    return cc


def quantity() -> st.SearchStrategy[dict]:
    return st.builds(lambda v, u: {"value": json.loads(v), **u}, st.sampled_from(NUMBERS),
                     st.sampled_from(QUANTITY_UNITS))


def _scoped(resource: dict, extra: list[dict[str, str]]) -> dict:
    resource["identifier"] = [{"system": RUN_SYSTEM, "value": "~"}, *extra]
    return resource


def reference(prefix: str, count: int, types: tuple[str, ...] = ("Patient",)) -> st.SearchStrategy[str]:
    """A reference to one of ``count`` local resources (or one more that does not exist), in the
    relative form, the absolute form under this server, or the same path on another server."""
    return st.builds(lambda t, i, base: f"{base}{t}/~{prefix}{i}",
                     st.sampled_from(types), st.integers(0, count),
                     st.sampled_from(["", "", BASE + "/", OTHER_BASE + "/"]))


@st.composite
def human_name(draw: st.DrawFn) -> dict:
    n: dict[str, Any] = {}
    if draw(st.integers(0, 9)) < 8:
        n["family"] = draw(st.sampled_from(FAMILIES))
    given = draw(st.lists(st.sampled_from(GIVENS), max_size=2))
    if given:
        n["given"] = given
    if draw(st.integers(0, 9)) == 0:
        n["prefix"] = [draw(st.sampled_from(NAME_PREFIXES))]
    if not n or draw(st.integers(0, 9)) == 0:
        n["text"] = " ".join([*n.get("given", []), n.get("family", "")]).strip() or "Nobody"
    return n


@st.composite
def patient(draw: st.DrawFn, i: int, n_patients: int) -> dict:
    r: dict[str, Any] = {"resourceType": "Patient", "id": f"~p{i}"}
    names = draw(st.lists(human_name(), max_size=2))
    if names:
        r["name"] = names
    for key, strategy in (("gender", st.sampled_from(GENDERS)), ("active", st.booleans()),
                          ("birthDate", date_text(("year", "month", "day")))):
        v = _opt(draw, strategy, 0.3)
        if v is not None:
            r[key] = v
    gps = draw(st.lists(reference("x", 2, ("Practitioner", "Organization")), max_size=2))
    if gps:
        r["generalPractitioner"] = [{"reference": g} for g in gps]
    if draw(st.integers(0, 4)) < 2:  # Patient.link.other: Patient -> Patient, for chains of depth 2
        r["link"] = [{"other": {"reference": draw(reference("p", n_patients))}, "type": "seealso"}]
    return _scoped(r, draw(identifiers()))


@st.composite
def observation(draw: st.DrawFn, i: int, n_patients: int) -> dict:
    r: dict[str, Any] = {"resourceType": "Observation", "id": f"~o{i}",
                         "status": draw(st.sampled_from(OBS_STATUSES)), "code": draw(codeable_concept())}
    subject = _opt(draw, st.one_of(reference("p", n_patients), reference("g", 1, ("Group",))), 0.2)
    if subject is not None:
        r["subject"] = {"reference": subject}
    kind = draw(st.sampled_from([None, "DateTime", "DateTime", "Period", "Instant", "Timing"]))
    if kind == "DateTime":
        r["effectiveDateTime"] = draw(date_text())
    elif kind == "Instant":
        r["effectiveInstant"] = draw(date_text(("second", "fraction")))
    elif kind == "Period":
        r["effectivePeriod"] = draw(period())
    elif kind == "Timing":
        r["effectiveTiming"] = {"event": draw(st.lists(date_text(), min_size=1, max_size=2))}
    if draw(st.integers(0, 9)) < 7:
        r["valueQuantity"] = draw(quantity())
    components = []
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        comp: dict[str, Any] = {"code": draw(codeable_concept())}
        if draw(st.integers(0, 9)) < 8:
            comp["valueQuantity"] = draw(quantity())
        components.append(comp)
    if components:
        r["component"] = components
    return _scoped(r, draw(identifiers()))


@st.composite
def risk_assessment(draw: st.DrawFn, i: int, n_patients: int) -> dict:
    r: dict[str, Any] = {"resourceType": "RiskAssessment", "id": f"~r{i}", "status": "final",
                         "subject": {"reference": draw(st.one_of(reference("p", n_patients),
                                                                 reference("g", 1, ("Group",))))}}
    probs = draw(st.lists(st.sampled_from([n for n in NUMBERS if 0 <= float(n) <= 100]), max_size=2))
    if probs:
        r["prediction"] = [{"probabilityDecimal": json.loads(p)} for p in probs]
    occ = draw(st.sampled_from([None, "DateTime", "Period"]))
    if occ == "DateTime":
        r["occurrenceDateTime"] = draw(date_text())
    elif occ == "Period":
        r["occurrencePeriod"] = draw(period())
    return _scoped(r, draw(identifiers()))


@st.composite
def value_set(draw: st.DrawFn, i: int, n_patients: int) -> dict:
    r: dict[str, Any] = {"resourceType": "ValueSet", "id": f"~v{i}", "status": draw(st.sampled_from(VS_STATUSES))}
    for key, strategy in (("url", st.sampled_from(URIS)), ("name", st.sampled_from(VS_NAMES)),
                          ("version", st.sampled_from(VS_VERSIONS)), ("date", date_text())):
        v = _opt(draw, strategy, 0.25)
        if v is not None:
            r[key] = v
    return _scoped(r, draw(identifiers()))


MAKERS = {"Patient": patient, "Observation": observation, "RiskAssessment": risk_assessment, "ValueSet": value_set}
PREFIX_OF = {"Patient": "p", "Observation": "o", "RiskAssessment": "r", "ValueSet": "v"}


@st.composite
def dataset(draw: st.DrawFn, types: tuple[str, str], max_total: int = 25) -> list[dict]:
    """5..max_total resources of the two ``types`` (the first is the reference target, e.g. Patient)."""
    first, second = types
    n_first = draw(st.integers(2, max_total // 2))
    n_second = draw(st.integers(max(0, 5 - n_first), max_total - n_first))
    out = [draw(MAKERS[first](i, n_first)) for i in range(n_first)]
    out += [draw(MAKERS[second](i, n_first)) for i in range(n_second)]
    return out


@st.composite
def changes(draw: st.DrawFn, resources: list[dict]) -> tuple[list[dict], list[dict]]:
    """After loading ``resources``: (new versions to PUT, resources to DELETE). A new version takes
    the content of another resource of the same type, so old index rows must go."""
    updates: list[dict] = []
    deletes: list[dict] = []
    chosen = draw(st.lists(st.integers(0, len(resources) - 1), max_size=3, unique=True))
    for i in chosen:
        r = resources[i]
        if draw(st.booleans()):
            deletes.append(r)
            continue
        same = [x for x in resources if x["resourceType"] == r["resourceType"] and x is not r]
        if same:
            updates.append({**draw(st.sampled_from(same)), "id": r["id"]})
    return updates, deletes


def concretize(obj: Any, prefix: str, base: str) -> Any:
    """``obj`` with the placeholders filled in: ``~`` -> ``prefix``, ``{BASE}`` -> ``base``."""
    return json.loads(json.dumps(obj).replace("~", prefix).replace(BASE, base))
