"""The search features the oracle exercises: one query-clause generator per feature.

A :class:`Feature` without probes is core: the server must support it. A feature with probes
(``(rtype, key, value)`` sent as ``[rtype]?key=value`` under ``Prefer: handling=strict``) is used only when the
server answers every probe with 200 -- so ``:missing``, ``:not``, chains, ``_has`` and ``_sort`` switch
themselves on as the server learns them. To cover a new feature, add its matching rule to
``evaluator.py`` and a generator here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

from hypothesis import strategies as st

from tests.oracle import data as D
from tests.oracle.evaluator import (
    DATE_RE,
    Clause,
    Composite,
    OfType,
    Ordered,
    Plain,
    Qty,
    Query,
    Ref,
    SortKey,
    Str,
    Tok,
    fold,
)


@dataclass(frozen=True)
class Pool:
    """Values taken from the example's data, so that search values sit exactly on its boundaries."""

    dates: tuple[str, ...] = ()


@dataclass(frozen=True)
class Feature:
    name: str
    rtype: str
    clauses: Callable[[Pool], st.SearchStrategy[Clause]]
    probes: tuple[tuple[str, str, str], ...] = ()  # (rtype, key, value); none: core, always used


def pool_of(resources: list[dict]) -> Pool:
    dates: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, str) and x.startswith("20") and DATE_RE.fullmatch(x):
            dates.append(x)

    walk(resources)
    return Pool(tuple(sorted(set(dates))))


# -- value strategies -------------------------------------------------------------------------------

_CASES: list[Callable[[str], str]] = [lambda s: s, str.lower, str.upper, fold]


@st.composite
def string_value(draw: st.DrawFn, alphabet: Sequence[str], modifier: str | None) -> Str:
    src = draw(st.sampled_from(alphabet))
    if modifier == "exact":
        text = src
    elif modifier == "contains":
        i = draw(st.integers(0, len(src) - 1))
        text = src[i:draw(st.integers(i + 1, len(src)))]
    else:
        text = src[:draw(st.integers(1, len(src)))]
    text = draw(st.sampled_from(_CASES if modifier != "exact" else [_CASES[0], *_CASES]))(text)
    return Str(text if text.strip() else src)


def token_value(systems: Sequence[str], codes: Sequence[str], forms: Sequence[str]) -> st.SearchStrategy[Tok]:
    return st.builds(Tok, st.sampled_from(forms), st.sampled_from(systems), st.sampled_from(codes))


ALL_FORMS = ("code", "system|code", "|code", "system|")
PREFIXES = ("", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
NUMBER_TEXTS = [*D.NUMBERS, "0.50", "1.0", "5.40", "5", "100.0"]
_CUTS = (4, 7, 10, None)  # year, month, day, as is


def date_value(pool: Pool) -> st.SearchStrategy[Ordered]:
    """A prefix and a date: from the alphabet, or a date of the data cut to a coarser precision."""
    texts = D.date_text(("year", "month", "day", "second", "second", "fraction"), tz_required=False)
    if pool.dates:
        cut = st.builds(lambda d, n: d[:n], st.sampled_from(pool.dates), st.sampled_from(_CUTS))
        texts = st.one_of(texts, cut)
    return st.builds(Ordered, st.sampled_from(PREFIXES), texts)


def number_value() -> st.SearchStrategy[Ordered]:
    return st.builds(Ordered, st.sampled_from(PREFIXES), st.sampled_from(NUMBER_TEXTS))


QUANTITY_UNITS = [(None, None), (None, None), (D.UCUM, "mg"), (None, "mg"), (None, "milligram"), (D.UCUM, "kg"),
                  ("http://other.units", "mg")]


def quantity_value() -> st.SearchStrategy[Qty]:
    return st.builds(lambda n, u: Qty(n, *u), number_value(), st.sampled_from(QUANTITY_UNITS))


def reference_value(prefix: str, count: int, rtype: str) -> st.SearchStrategy[Ref]:
    """``Type/id``, a bare ``id``, ``[base]/Type/id`` or the same path on another server."""
    return st.builds(lambda i, form: Ref(form.replace("TYPE", rtype).replace("ID", f"~{prefix}{i}")),
                     st.integers(0, count),
                     st.sampled_from(["TYPE/ID", "ID", D.BASE + "/TYPE/ID", D.OTHER_BASE + "/TYPE/ID"]))


def _values(value: st.SearchStrategy, max_or: int) -> st.SearchStrategy[tuple]:
    return st.lists(value, min_size=1, max_size=max_or).map(tuple)


def clause(key: str, value: st.SearchStrategy | Callable[[Pool], st.SearchStrategy],
           max_or: int = 3) -> Callable[[Pool], st.SearchStrategy[Clause]]:
    """Clauses ``key=v1[,v2[,v3]]``; ``value`` is a strategy, or a function of the pool giving one."""
    def make(pool: Pool) -> st.SearchStrategy[Clause]:
        v = value if isinstance(value, st.SearchStrategy) else value(pool)
        return _values(v, max_or).map(lambda vs: Clause(key, vs))
    return make


def rekey(f: Feature, name: str, rtype: str, key: Callable[[str], str], probe: tuple[str, str]) -> Feature:
    """``f`` with its clause keys rewritten (for chains and _has): needs ``probe`` (on ``rtype``) and f's probes."""
    return Feature(name, rtype, lambda pool: f.clauses(pool).map(lambda c: Clause(key(c.key), c.values)),
                   ((rtype, *probe), *f.probes))


# -- the feature table ------------------------------------------------------------------------------

NAME_WORDS = [*D.FAMILIES, *D.GIVENS, *D.NAME_PREFIXES]
_N = 12  # ids are drawn from 0.._N; data sets hold fewer, so some references dangle


def _string(rtype: str, param: str, alphabet: Sequence[str]) -> list[Feature]:
    return [Feature(f"{rtype}.{param}{':' + m if m else ''}", rtype,
                    clause(f"{param}:{m}" if m else param, string_value(alphabet, m)))
            for m in (None, "exact", "contains")]


def _token(rtype: str, param: str, systems: Sequence[str], codes: Sequence[str],
           forms: Sequence[str] = ALL_FORMS, texts: Sequence[str] = ()) -> list[Feature]:
    value = token_value(systems, codes, forms)
    out = [Feature(f"{rtype}.{param}", rtype, clause(param, value)),
           Feature(f"{rtype}.{param}:not", rtype, clause(f"{param}:not", value, max_or=1),
                   probes=((rtype, f"{param}:not", "x"),))]
    if texts:
        out.append(Feature(f"{rtype}.{param}:text", rtype, clause(f"{param}:text", string_value(texts, None)),
                           probes=((rtype, f"{param}:text", "x"),)))
    return out


def _identifier(rtype: str) -> list[Feature]:
    of_type = st.builds(OfType, st.just(D.ID_TYPE_SYSTEM), st.sampled_from(D.ID_TYPES), st.sampled_from(D.ID_VALUES))
    return [*_token(rtype, "identifier", D.ID_SYSTEMS, D.ID_VALUES, texts=D.ID_TYPE_TEXTS),
            Feature(f"{rtype}.identifier:of-type", rtype, clause("identifier:of-type", of_type),
                    probes=((rtype, "identifier:of-type", f"{D.ID_TYPE_SYSTEM}|MR|x"),))]


def _reference(rtype: str, param: str, prefix: str, target: str, type_modifier: bool = True) -> list[Feature]:
    out = [Feature(f"{rtype}.{param}", rtype, clause(param, reference_value(prefix, _N, target)))]
    if type_modifier:
        out.append(Feature(f"{rtype}.{param}:{target}", rtype,
                           clause(f"{param}:{target}", st.integers(0, _N).map(lambda i: Ref(f"~{prefix}{i}")))))
    return out


def _id(rtype: str, prefix: str) -> Feature:
    return Feature(f"{rtype}._id", rtype, clause("_id", st.integers(0, _N).map(lambda i: Plain(f"~{prefix}{i}"))))


def _missing(rtype: str, params: Sequence[str]) -> list[Feature]:
    flag = st.sampled_from(["true", "false"]).map(Plain)
    return [Feature(f"{rtype}.{p}:missing", rtype, clause(f"{p}:missing", flag, max_or=1),
                    probes=((rtype, f"{p}:missing", "true"),))
            for p in params]


@st.composite
def _sort_keys(draw: st.DrawFn, params: Sequence[str]) -> Clause:
    chosen = draw(st.permutations(params))[:draw(st.integers(1, 2))]
    return Clause("_sort", tuple(SortKey(p, draw(st.booleans())) for p in chosen))


def _sort(rtype: str, params: Sequence[str]) -> Feature:
    return Feature(f"{rtype}._sort", rtype, lambda pool: _sort_keys(params), probes=((rtype, "_sort", params[0]),))


def _date(rtype: str, param: str) -> Feature:
    return Feature(f"{rtype}.{param}", rtype, clause(param, date_value))


PATIENT = [
    *_string("Patient", "name", NAME_WORDS),
    *_string("Patient", "family", D.FAMILIES),
    *_string("Patient", "given", D.GIVENS),
    *_token("Patient", "gender", [""], D.GENDERS, ("code",)),
    *_token("Patient", "active", [""], ["true", "false"], ("code",)),
    *_identifier("Patient"),
    _date("Patient", "birthdate"),
    *_reference("Patient", "general-practitioner", "x", "Practitioner"),
    *_reference("Patient", "link", "p", "Patient"),
    _id("Patient", "p"),
    *_missing("Patient", ["name", "family", "gender", "birthdate", "general-practitioner", "identifier", "link"]),
    _sort("Patient", ["birthdate", "family", "gender"]),
]

_COMPOSITE = st.builds(lambda t, q: Composite((t, q)), token_value(D.SYSTEMS, D.CODES, ALL_FORMS), quantity_value())

OBSERVATION_CORE = [
    *_token("Observation", "code", D.SYSTEMS, D.CODES, texts=D.DISPLAYS),
    *_token("Observation", "status", [""], D.OBS_STATUSES, ("code",)),
    _date("Observation", "date"),
    Feature("Observation.value-quantity", "Observation", clause("value-quantity", quantity_value())),
]

OBSERVATION = [
    *OBSERVATION_CORE,
    *_token("Observation", "component-code", D.SYSTEMS, D.CODES, texts=D.DISPLAYS),
    *_token("Observation", "combo-code", D.SYSTEMS, D.CODES),
    Feature("Observation.component-value-quantity", "Observation",
            clause("component-value-quantity", quantity_value())),
    *[Feature(f"Observation.{p}", "Observation", clause(p, _COMPOSITE, max_or=2), probes=(("Observation", p, "x$5"),))
      for p in ("code-value-quantity", "component-code-value-quantity", "combo-code-value-quantity")],
    *_identifier("Observation"),
    *_reference("Observation", "subject", "p", "Patient"),
    Feature("Observation.subject(Group)", "Observation", clause("subject", reference_value("g", 1, "Group"))),
    *_reference("Observation", "patient", "p", "Patient", type_modifier=False),
    _id("Observation", "o"),
    *_missing("Observation", ["subject", "patient", "date", "value-quantity", "component-code"]),
    _sort("Observation", ["date", "status", "value-quantity"]),
]

RISK_ASSESSMENT = [
    Feature("RiskAssessment.probability", "RiskAssessment", clause("probability", number_value())),
    _date("RiskAssessment", "date"),
    *_identifier("RiskAssessment"),
    *_reference("RiskAssessment", "subject", "p", "Patient"),
    *_reference("RiskAssessment", "patient", "p", "Patient", type_modifier=False),
    _id("RiskAssessment", "r"),
    *_missing("RiskAssessment", ["probability", "date"]),
    _sort("RiskAssessment", ["probability", "date"]),
]

URI_EXACT = [*D.URIS, "http://ex.org/fhir/ValueSet/alpha/x", "http://ex.org/fhir/ValueSet/"]
URI_BELOW = ["http://ex.org", "http://ex.org/fhir", "http://ex.org/fhir/", "http://ex.org/fhir/ValueSet",
             "http://other.org", "urn:oid:1.2.3"]
URI_ABOVE = ["http://ex.org/fhir/ValueSet/alpha/x", "http://ex.org/fhir/ValueSet/alpha",
             "http://ex.org/fhir/CodeSystem/alpha/1", "http://other.org/ValueSet/alpha/2", "http://ex.org/fhir/x"]

VALUE_SET = [
    Feature("ValueSet.url", "ValueSet", clause("url", st.sampled_from(URI_EXACT).map(Plain))),
    Feature("ValueSet.url:below", "ValueSet", clause("url:below", st.sampled_from(URI_BELOW).map(Plain))),
    Feature("ValueSet.url:above", "ValueSet", clause("url:above", st.sampled_from(URI_ABOVE).map(Plain))),
    *_string("ValueSet", "name", D.VS_NAMES),
    *_token("ValueSet", "status", [""], D.VS_STATUSES, ("code",)),
    *_token("ValueSet", "version", [""], D.VS_VERSIONS, ("code",)),
    *_identifier("ValueSet"),
    _date("ValueSet", "date"),
    _id("ValueSet", "v"),
    *_missing("ValueSet", ["url", "name", "date"]),
    _sort("ValueSet", ["url", "date", "status"]),
]


def _param_of(f: Feature) -> str:
    return f.name.split(".", 1)[1]


def _chains() -> list[Feature]:
    """Observation -> Patient (-> Patient) chains, Patient <- Observation / Patient reverse chains (_has),
    and a _has inside a chain."""
    inner = [f for f in PATIENT if _param_of(f) in ("name", "family", "family:exact", "gender", "birthdate",
                                                    "identifier", "_id", "gender:not", "birthdate:missing")]
    has = "_has:Observation:patient:"
    has_inner = [f for f in OBSERVATION_CORE if not f.probes]
    out = []
    for rtype, head in (("Observation", "subject:Patient"), ("Observation", "subject"), ("Observation", "patient"),
                        ("Patient", "link:Patient"), ("Observation", "patient.link:Patient")):
        probe = (f"{head}.family", "x")
        out += [rekey(f, f"{rtype}.{head}.{_param_of(f)}", rtype, lambda k, h=head: f"{h}.{k}", probe)
                for f in inner]
    out += [rekey(f, f"Patient.{has}{_param_of(f)}", "Patient", lambda k: has + k, (has + "status", "final"))
            for f in has_inner]
    out += [rekey(f, f"Patient._has:Patient:link:{_param_of(f)}", "Patient", lambda k: "_has:Patient:link:" + k,
                  ("_has:Patient:link:family", "x")) for f in inner]
    out += [rekey(f, f"Patient.link:Patient.{has}{_param_of(f)}", "Patient", lambda k: "link:Patient." + has + k,
                  ("link:Patient." + has + "status", "final")) for f in has_inner]
    return out


FEATURES: list[Feature] = [*PATIENT, *OBSERVATION, *RISK_ASSESSMENT, *VALUE_SET, *_chains()]


def is_chain(f: Feature) -> bool:
    """A chain or _has feature."""
    return any("." in key or key.startswith("_has:") for _, key, _ in f.probes)


# -- queries ----------------------------------------------------------------------------------------

@st.composite
def query(draw: st.DrawFn, rtype: str, features: Sequence[Feature], pool: Pool) -> Query:
    """1-3 clauses (AND; mostly one, so that results are rarely empty) from the enabled ``features`` of
    ``rtype``, and sometimes a ``_sort``."""
    mine = [f for f in features if f.rtype == rtype and f.name != f"{rtype}._sort"]
    sort = [f for f in features if f.name == f"{rtype}._sort"]
    n = draw(st.sampled_from([1, 1, 1, 2, 2, 3]))
    clauses = [draw(draw(st.sampled_from(mine)).clauses(pool)) for _ in range(n)]
    if sort and draw(st.integers(0, 2)) == 0:
        clauses.append(draw(sort[0].clauses(pool)))
    return Query(rtype, clauses)


def _fill(value: Any, prefix: str, base: str) -> Any:
    if isinstance(value, str):
        return value.replace("~", prefix).replace(D.BASE, base)
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: _fill(getattr(value, f.name), prefix, base) for f in fields(value)})
    if isinstance(value, tuple | list):
        return type(value)(_fill(v, prefix, base) for v in value)
    return value


def concretize_query(q: Query, prefix: str, base: str) -> Query:
    """``q`` with the ``~`` / ``{BASE}`` placeholders of ids and references filled in."""
    return Query(q.rtype, [_fill(c, prefix, base) for c in q.clauses])
