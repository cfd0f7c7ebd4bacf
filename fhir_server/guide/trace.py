"""The traceability table: Appendix M section → element or rule → example file(s) → test.

Rows come from the StructureDefinitions (one per constrained differential element, one per invariant, each citing the
Appendix M sections of its ``requirements``), with the invalid examples of the manifests attached to the invariant or
element they break (an example that matches neither gets a row of its own, so every invalid example is in the table)
and the tests that run them. Each requirement of ``requirements.json`` is then covered by the rows citing its section
(or a subsection), or explicitly not modelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fhir_server.guide.citations import sections, within
from fhir_server.guide.sources import Example, Requirement, Sources

#: differential keys that do not constrain anything by themselves
_NOT_A_CONSTRAINT = {"id", "path", "sliceName", "short", "definition", "comment", "requirements", "alias", "mapping",
                     "constraint", "slicing", "label"}


@dataclass
class Row:
    sections: tuple[str, ...]
    profile_id: str
    profile_url: str
    kind: str  # "element" | "invariant" | "example" | "test"
    element: str  # element id, invariant key, or (example / test rows) the rule as the manifest names it
    rule: str
    text: str = ""  # what the row is matched against for a requirement's terms
    examples: list[str] = field(default_factory=list)
    tests: list[str] = field(default_factory=list)

    def add_tests(self, tests: tuple[str, ...] | list[str]) -> None:
        self.tests += [t for t in tests if t not in self.tests]


@dataclass(frozen=True)
class Coverage:
    requirement: Requirement
    rows: tuple[Row, ...]

    @property
    def tested(self) -> tuple[Row, ...]:
        """Rows that name an element or rule and at least one test."""
        return tuple(r for r in self.rows if r.tests and r.element)

    @property
    def status(self) -> str:
        if self.tested:
            return "covered"
        if self.requirement.not_modelled:
            return "not modelled"
        return "untested" if self.rows else "missing"


# -- describing an element ------------------------------------------------------------------------------------------

def cardinality(el: dict[str, Any]) -> str:
    """``min..max``; ``min 1`` / ``max 1`` when the profile constrains one end only (the other is the base's)."""
    if "min" in el and "max" in el:
        return f"{el['min']}..{el['max']}"
    if "min" in el:
        return f"min {el['min']}"
    if "max" in el:
        return f"max {el['max']}"
    return ""


def fixed_or_pattern(el: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in el.items() if k.startswith(("fixed", "pattern"))]


def constraint_summary(el: dict[str, Any]) -> str:
    """A one-line statement of what a differential element requires."""
    parts = []
    if card := cardinality(el):
        parts.append(card)
    for t in el.get("type", []):
        targets = [*t.get("profile", []), *t.get("targetProfile", [])]
        if targets:
            parts.append(f"{t.get('code', '')}({' | '.join(p.rsplit('/', 1)[-1] for p in targets)})")
    for k, v in fixed_or_pattern(el):
        parts.append(f"{k} = {compact(v)}")
    if b := el.get("binding"):
        parts.append(f"{b.get('strength', '')} binding {str(b.get('valueSet', '')).rsplit('/', 1)[-1]}")
    if el.get("mustSupport"):
        parts.append("mustSupport")
    return "; ".join(parts)


def compact(value: Any) -> str:
    if isinstance(value, dict):
        if "coding" in value:
            return ", ".join(compact(c) for c in value["coding"])
        if "code" in value:
            return f"{value.get('system', '')}#{value['code']}" if value.get("system") else str(value["code"])
        return ", ".join(f"{k}: {compact(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(compact(v) for v in value)
    return str(value)


def constrains(el: dict[str, Any]) -> bool:
    return bool(set(el) - _NOT_A_CONSTRAINT)


def element_label(el: dict[str, Any]) -> str:
    return el.get("id") or el.get("path", "")


# -- rows ----------------------------------------------------------------------------------------------------------

def _key_pattern(key: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(key)}(?![\w-])")


def _profile_rows(sd: dict[str, Any]) -> tuple[list[Row], dict[str, Row]]:
    rows: list[Row] = []
    invariants: dict[str, Row] = {}
    for el in sd.get("differential", {}).get("element", []):
        req = el.get("requirements", "")
        if constrains(el) and sections(req):
            rows.append(Row(sections=tuple(sections(req)), profile_id=sd["id"], profile_url=sd.get("url", ""),
                            kind="element", element=element_label(el), rule=constraint_summary(el),
                            text=" ".join([element_label(el), req, el.get("short", "")])))
        for c in el.get("constraint", []):
            key = c.get("key", "")
            if not key:
                continue
            cited = sections(c.get("requirements", "")) or sections(c.get("human", "")) or sections(req)
            row = Row(sections=tuple(cited), profile_id=sd["id"], profile_url=sd.get("url", ""), kind="invariant",
                      element=key, rule=f"{c.get('severity', '')}: {c.get('human', '')}",
                      text=" ".join([key, c.get("human", ""), c.get("requirements", ""), element_label(el)]))
            rows.append(row)
            invariants[key] = row
    return rows, invariants


def _norm(name: str) -> str:
    return name.replace("-", "").replace("_", "").lower()


def _element_row(rows: list[Row], ex: Example) -> Row | None:
    """The element row an example breaks: same profile; the element its rule names (``section:goals.entry``), or the
    path of its expression, preferring the slice its rule names and the row citing the example's section."""
    mine = [r for r in rows if r.kind == "element" and r.profile_url == ex.profile]
    token = _norm(ex.rule.split(" ", 1)[0])
    by_id = [r for r in mine if ":" in token and _norm(r.element.split(".", 1)[-1]) == token]
    if by_id:
        return by_id[0]
    expr = re.sub(r"\[\d+\]", "", ex.expression).replace("[x]", "")
    candidates = [r for r in mine if r.element.split(":")[0].replace("[x]", "") == expr]
    if not candidates:
        return None
    rule = _norm(ex.rule)
    named = [r for r in candidates if ":" in r.element and _norm(r.element.split(":", 1)[1]) in rule]
    cited = [r for r in candidates if set(r.sections) & set(sections(ex.source))]
    plain = [r for r in candidates if ":" not in r.element]
    for group in (named, [r for r in plain if r in cited], plain, cited, candidates):
        if group:
            return group[0]
    return None


def build_rows(src: Sources) -> list[Row]:
    rows: list[Row] = []
    invariants: dict[str, Row] = {}
    for sd in src.structure_definitions:
        r, inv = _profile_rows(sd)
        rows += r
        for k, v in inv.items():
            invariants.setdefault(k, v)
    by_url = {sd.get("url"): sd for sd in src.structure_definitions}
    for ex in src.examples:
        hit = [row for key, row in invariants.items() if _key_pattern(key).search(ex.rule)]
        if not hit and ex.file:
            one = _element_row(rows, ex)
            hit = [one] if one else []
        if not hit:
            sd = by_url.get(ex.profile, {})
            row = Row(sections=tuple(sections(ex.source)), profile_id=sd.get("id", ""), profile_url=ex.profile,
                      kind="example" if ex.file else "test", element=ex.expression or ex.rule, rule=ex.rule,
                      text=" ".join([ex.rule, ex.expression, ex.source]))
            rows.append(row)
            hit = [row]
        for row in hit:
            if ex.file and ex.file not in row.examples:
                row.examples.append(ex.file)
            row.add_tests(ex.tests)
    for key, row in invariants.items():  # HTTP tests that check an invariant by name (e.g. warnings, boundaries)
        pat = _key_pattern(key)
        row.add_tests([t for t, code in src.test_sources.items() if pat.search(code)])
    return sorted(rows, key=lambda r: (section_key(r.sections[0]) if r.sections else ((9, 0),), r.profile_id))


_ROMAN = {"I": 1, "V": 5, "X": 10}


def _roman(s: str) -> int:
    total = 0
    for a, b in zip(s, s[1:] + " ", strict=True):
        v = _ROMAN[a.upper()]
        total += -v if b != " " and _ROMAN[b.upper()] > v else v
    return total


def section_key(section: str) -> tuple[tuple[int, int], ...]:
    """Sort key of a section id in document order (top-level roman numeral first)."""
    tokens = re.findall(r"[A-Za-z0-9]+", section)
    out: list[tuple[int, int]] = []
    for i, t in enumerate(tokens):
        if t.isdigit():
            out.append((1, int(t)))
        elif all(c in "IVXivx" for c in t) and (i == 0 or len(t) > 1 or out and out[-1][0] == 2):
            out.append((2, _roman(t)))
        else:
            out.append((3, sum(ord(c) for c in t.lower())))
    return tuple(out)


# -- requirements --------------------------------------------------------------------------------------------------

def matches(req: Requirement, row: Row) -> bool:
    if not any(within(s, req.section) for s in row.sections):
        return False
    return not req.terms or any(t.lower() in row.text.lower() for t in req.terms)


def coverage(src: Sources, rows: list[Row] | None = None) -> list[Coverage]:
    rows = build_rows(src) if rows is None else rows
    return [Coverage(requirement=req, rows=tuple(r for r in rows if matches(req, r))) for req in src.requirements]


def unmet(cov: list[Coverage]) -> list[Coverage]:
    """Requirements with neither an element/rule and a test nor a not-modelled reason (the Done-when check)."""
    return [c for c in cov if c.status not in ("covered", "not modelled")]
