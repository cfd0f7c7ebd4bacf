"""Exact checks that the index rows cannot express, run in Python on each candidate row's JSON body.

* **Composite parameters** (``code-value-quantity=http://loinc.org|8480-6$gt100``): both components
  must match *on the same element* (the same ``Observation.component``). The index stores each
  component as a separate row of its own parameter, with no element ordinal, so SQL alone can only
  say "both components match somewhere in the resource". The compiler uses exactly that as a
  pre-filter (a superset: each component parameter indexes every value the composite component
  can hold), and :class:`CompositePlan` then decides exactly: it walks the resource to each composite
  element, builds the component's index rows there with the indexer's own row builders, and matches
  them with the same semantics as the SQL (this module mirrors ``compiler.py``).
* **Token ``:of-type``** (``identifier:of-type=system|code|value``): the index keeps an Identifier's
  system, value and ``type.text`` but not its ``type.coding``; SQL pre-filters on the value and
  :func:`of_type_filter` checks the type coding and the value on the same Identifier.

The search interaction applies ``ParsedSearch.post_filters`` to every candidate, fetching more
candidates until a page is full, so pages, links and totals stay exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhir_server.indexing import model as imodel
from fhir_server.indexing.compiler import Path, Unsupported, compile_expression
from fhir_server.indexing.compiler import _Parser as _ExprParser
from fhir_server.indexing.strings import normalize
from fhir_server.indexing.values import Builder, builder_for
from fhir_server.search.model import (
    QuantityValue,
    RangeValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
)

_MAX = 255
Filter = Callable[[dict[str, Any]], bool]


def _cut(v: str) -> str:
    return v[:_MAX]


def walk(nodes: list[Any], path: Path) -> list[Any]:
    """The values ``path`` yields from ``nodes`` (lists flattened, step predicates and indexes applied)."""
    for step in path.steps:
        nxt: list[Any] = []
        for n in nodes:
            if type(n) is dict:
                v = n.get(step.key)
                if type(v) is list:
                    nxt.extend(v)
                elif v is not None:
                    nxt.append(v)
        if step.pred is not None:
            nxt = [x for x in nxt if step.pred(x)]
        if step.index is not None:
            nxt = nxt[step.index:step.index + 1]
        nodes = nxt
        if not nodes:
            break
    return nodes


# -- the SQL semantics of compiler.py, on one index row ---------------------------------------------

def _date_match(lo: int, hi: int, v: RangeValue) -> bool:
    ql, qh, p = v.low, v.high, v.prefix
    if p == "eq":
        return lo >= ql and hi <= qh
    if p == "ne":
        return lo < ql or hi > qh
    if p == "gt":
        return hi > qh
    if p == "lt":
        return lo < ql
    if p == "ge":  # R4 search.html#prefix, as in compiler._date_cond
        return hi > qh or (lo >= ql and hi <= qh)
    if p == "le":
        return lo < ql or (lo >= ql and hi <= qh)
    if p == "sa":
        return lo > qh
    if p == "eb":
        return hi < ql
    delta = abs(time.time_ns() // 1000 - (int(ql) + int(qh)) // 2) // 10
    return lo <= int(qh) + delta and hi >= int(ql) - delta


def _number_match(x: float, v: RangeValue) -> bool:
    p, val = v.prefix, v.value
    assert val is not None
    if p == "eq":
        return v.low <= x < v.high
    if p == "ne":
        return x < v.low or x >= v.high
    if p == "gt":
        return x > val
    if p == "lt":
        return x < val
    if p == "ge":
        return x >= val
    if p == "le":
        return x <= val
    if p == "sa":
        return x >= v.high
    if p == "eb":
        return x < v.low
    margin = abs(val) / 10
    return min(v.low, val - margin) <= x <= max(v.high, val + margin)


def _local(url: str | None, base_url: str) -> bool:
    return not base_url or url is None or url.startswith(base_url + "/")


def row_matches(ptype: str, value: object, row: tuple, base_url: str) -> bool:
    """Whether one index row (``(param, *columns)``) matches one search value, as the SQL would decide."""
    if ptype == "token":
        assert isinstance(value, TokenValue)
        _, system, code, _text = row
        if value.no_system and system:
            return False
        if value.system is not None and system != _cut(value.system):
            return False
        return value.code is None or code == _cut(value.code)
    if ptype == "quantity":
        assert isinstance(value, QuantityValue)
        _, system, code, x = row
        if value.system is not None and system != _cut(value.system):
            return False
        if value.code is not None and code != _cut(value.code):
            return False
        return _number_match(x, value.number)
    if ptype == "number":
        assert isinstance(value, RangeValue)
        return _number_match(row[1], value)
    if ptype == "date":
        assert isinstance(value, RangeValue)
        return _date_match(row[1], row[2], value)
    if ptype == "string":
        assert isinstance(value, StringValue)
        return row[1].startswith(normalize(_cut(value.value)))
    if ptype == "uri":
        assert isinstance(value, UriValue)
        return row[1] == _cut(value.value)
    if ptype == "reference":
        assert isinstance(value, ReferenceValue)
        _, ttype, tid, url = row
        if value.kind == "url":
            return url == _cut(value.url or "")
        if not _local(url, base_url):
            return False
        return tid == value.id and (value.kind == "id" or ttype == value.type)
    return False


# -- composites --------------------------------------------------------------------------------------

class _RelativeParser(_ExprParser):
    """The indexer's FHIRPath subset, with paths relative to an element (a composite's component)."""

    def __init__(self, text: str, ctx: imodel.Ctx) -> None:
        super().__init__(text, ctx.sd)
        self.ctx = ctx

    def start(self, name: str) -> list[Path]:
        return self.navigate([Path((), self.ctx)], name)


@dataclass(frozen=True)
class Component:
    code: str | None  # the parameter of the searched type with this component's definition (the pre-filter)
    type: str
    paths: tuple[tuple[tuple[Path, Builder], ...], ...]  # per composite element path: relative paths


@dataclass(frozen=True)
class CompositePlan:
    elements: tuple[Path, ...]
    components: tuple[Component, ...]

    @classmethod
    def of(cls, registry: Any, rtype: str, sp: Any) -> CompositePlan | None:
        """The plan of composite parameter ``sp`` on ``rtype``, or None when it cannot be evaluated."""
        components = getattr(sp, "components", ())
        if not components or not sp.expression:
            return None
        by_url = {p.url: p for p in registry.params_for(rtype).values() if getattr(p, "url", None)}
        try:
            elements = tuple(p for p in compile_expression(sp.expression, rtype) if p.mode == "values")
            if not elements:
                return None
            out = []
            for definition, expression in components:
                cp = by_url.get(definition)
                if cp is None or cp.type not in ("token", "string", "reference", "date", "uri", "number",
                                                 "quantity"):
                    return None
                per_element = []
                # R4 publishes 'value.ofType(DateTime)' (code-value-date); the type is dateTime
                expression = expression.replace("ofType(DateTime)", "ofType(dateTime)")
                for e in elements:
                    rel = _RelativeParser(expression, e.ctx).parse()
                    built = tuple((p, b) for p in rel if p.mode == "values"
                                  for b in [builder_for(cp.type, p.type, p.is_resource)] if b is not None)
                    per_element.append(built)
                if not any(per_element):  # e.g. R4's DocumentReference 'relationship' (types swapped)
                    return None
                code = cp.code if getattr(cp, "indexed", False) else None
                out.append(Component(code, cp.type, tuple(per_element)))
        except Unsupported:
            return None
        return cls(elements, tuple(out))

    def filter(self, alternatives: list[tuple[object, ...]], base_url: str) -> Filter:
        """A check: some composite element of the resource matches every component of one alternative."""
        def component_ok(node: Any, comp: Component, i: int, value: object) -> bool:
            rows: list[tuple] = []
            for path, build in comp.paths[i]:
                for v in walk([node], path):
                    build("", v, rows)
            return any(row_matches(comp.type, value, r, base_url) for r in rows)

        def check(resource: dict[str, Any]) -> bool:
            for i, element in enumerate(self.elements):
                for node in walk([resource], element):
                    for alt in alternatives:
                        if all(component_ok(node, c, i, v) for c, v in zip(self.components, alt, strict=True)):
                            return True
            return False

        return check


# -- :of-type ------------------------------------------------------------------------------------------

def of_type_filter(sp: Any, triples: tuple[tuple[str | None, str, str], ...]) -> Filter:
    """A check: some Identifier of parameter ``sp`` has a type coding (system|code) and the value of one
    of ``triples``."""
    paths = [ex.path for ex in getattr(sp, "extractors", ()) if ex.build is not None]

    def matches(ident: Any, system: str | None, code: str, value: str) -> bool:
        if type(ident) is not dict or ident.get("value") != value:
            return False
        t = ident.get("type")
        codings = t.get("coding") if type(t) is dict else None
        if type(codings) is not list:
            return False
        return any(type(c) is dict and c.get("code") == code and (system is None or c.get("system") == system)
                   for c in codings)

    def check(resource: dict[str, Any]) -> bool:
        for path in paths:
            for ident in walk([resource], path):
                if any(matches(ident, *t) for t in triples):
                    return True
        return False

    return check
