"""ValueSet expansion (R4 valueset.html#compose): include/exclude by system (whole, listed concepts,
filters ``is-a`` / ``descendent-of`` / ``is-not-a`` / ``generalizes`` / ``=`` / ``regex`` / ``in`` /
``not-in`` / ``exists``) and by other value sets, with loop detection.

:func:`expand` gives the full, ordered, de-duplicated list of codes (cached); paging, text filter and
display language are applied on top by ``operations.py``. ``lenient=True`` (used to validate codes)
records the systems it could not enumerate (not present on this server) in ``Expansion.open``
instead of failing.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from terminology.codesystem import CodeSystemIndex, ConceptEntry, Designation, index_of, resource_key
from terminology.errors import TerminologyError, invalid, not_found, not_present_message, unprocessable
from terminology.store import Resolver, split_canonical

MAX_EXPANSION = 50_000
"""More codes than this in one expansion is a 422 ``too-costly``."""


@dataclass(frozen=True, slots=True)
class Item:
    system: str
    code: str
    display: str | None
    version: str | None = None
    designations: tuple[Designation, ...] = ()
    abstract: bool = False
    inactive: bool = False


@dataclass
class Expansion:
    items: list[Item]
    #: systems whose codes could not be enumerated (lenient mode): a code of one of them is "unknown"
    open: frozenset[str] = frozenset()
    _by_key: dict[tuple[str, str], Item] | None = field(default=None, repr=False)
    _by_code: dict[str, list[Item]] | None = field(default=None, repr=False)

    def find(self, system: str | None, code: str) -> Item | None:
        if self._by_key is None:
            self._by_key = {(i.system, i.code): i for i in self.items}
            by_code: dict[str, list[Item]] = {}
            for i in self.items:
                by_code.setdefault(i.code, []).append(i)
            self._by_code = by_code
        if system is not None:
            return self._by_key.get((system, code))
        assert self._by_code is not None
        found = self._by_code.get(code)
        return found[0] if found else None


def _item(idx: CodeSystemIndex, e: ConceptEntry) -> Item:
    return Item(idx.url, e.code, e.display, idx.version, tuple(e.designations), e.abstract, e.inactive)


class _Expander:
    def __init__(self, resolver: Resolver, lenient: bool) -> None:
        self.resolver = resolver
        self.lenient = lenient
        self.open: set[str] = set()

    def value_set(self, vs: dict[str, Any], stack: tuple[str, ...]) -> list[Item]:
        name = vs.get("url") or f"ValueSet/{vs.get('id', '?')}"
        if name in stack:
            raise unprocessable("ValueSet loop: " + " -> ".join((*stack, name)) + " (a value set includes itself)")
        stack = (*stack, name)
        compose = vs.get("compose")
        if not isinstance(compose, dict):
            expansion = vs.get("expansion")
            if isinstance(expansion, dict):  # a value set published with its expansion only
                return list(self._contains(expansion.get("contains") or []))
            raise unprocessable(f"ValueSet {name} has no compose (nothing to expand)")
        out: dict[tuple[str, str], Item] = {}
        for inc in _list(compose.get("include"), "compose.include"):
            for it in self.include(inc, stack):
                out.setdefault((it.system, it.code), it)
                if len(out) > MAX_EXPANSION:
                    raise unprocessable(f"ValueSet {name} has more than {MAX_EXPANSION} codes", "too-costly")
        excludes = _list(compose.get("exclude"), "compose.exclude")
        if excludes and out:
            gone: set[tuple[str, str]] = set()
            open_before = set(self.open)
            for exc in excludes:
                gone |= {(i.system, i.code) for i in self.include(exc, stack)}
            # an exclude from a system we cannot enumerate: its codes cannot be checked either
            for s in self.open - open_before:
                out = {k: v for k, v in out.items() if k[0] != s}
            out = {k: v for k, v in out.items() if k not in gone}
        return list(out.values())

    def _contains(self, contains: list[dict[str, Any]]) -> list[Item]:
        out: list[Item] = []
        for c in contains if isinstance(contains, list) else []:
            if not isinstance(c, dict):
                continue
            if isinstance(c.get("system"), str) and isinstance(c.get("code"), str):
                out.append(Item(c["system"], c["code"], c.get("display"), c.get("version"),
                                abstract=bool(c.get("abstract")), inactive=bool(c.get("inactive"))))
            out += self._contains(c.get("contains") or [])
        return out

    def include(self, inc: Any, stack: tuple[str, ...]) -> list[Item]:
        if not isinstance(inc, dict):
            raise invalid("ValueSet.compose.include/exclude must be objects")
        system = inc.get("system")
        sets = _list(inc.get("valueSet"), "compose.include.valueSet")
        if not system and not sets:
            raise invalid("ValueSet.compose.include needs a system or a valueSet")
        results: list[list[Item]] = []
        for ref in sets:
            vs = self.resolver.get("ValueSet", ref) if isinstance(ref, str) else None
            if vs is None:
                raise unprocessable(f"ValueSet {ref} (included by {stack[-1]}) is unknown to this server", "not-found")
            results.append(self.value_set(vs, stack))
        if system:
            results.insert(0, self.system_part(inc, system))
        items = results[0]
        for other in results[1:]:  # an include of several parts is their intersection
            keys = {(i.system, i.code) for i in other}
            items = [i for i in items if (i.system, i.code) in keys]
        return items

    def system_part(self, inc: dict[str, Any], system: str) -> list[Item]:
        if not isinstance(system, str):
            raise invalid("ValueSet.compose.include.system must be a string")
        cs = self.resolver.get("CodeSystem", system, inc.get("version"))
        idx = index_of(cs) if cs is not None else None
        concepts = _list(inc.get("concept"), "compose.include.concept")
        filters = _list(inc.get("filter"), "compose.include.filter")
        if concepts:
            if filters:
                raise invalid(f"ValueSet include of {system}: concept and filter cannot both be given")
            out = []
            for c in concepts:
                code = c.get("code") if isinstance(c, dict) else None
                if not isinstance(code, str):
                    raise invalid(f"ValueSet include of {system}: a concept without a code")
                entry = idx.get(code) if idx is not None and idx.present else None
                if idx is not None and idx.present and idx.content == "complete" and entry is None:
                    continue  # not a code of the system: not in the expansion
                desig = tuple((d.get("language"), (d.get("use") or {}).get("code"), d["value"])
                              for d in _list(c.get("designation"), "concept.designation")
                              if isinstance(d, dict) and isinstance(d.get("value"), str)
                              and isinstance(d.get("use") or {}, dict))
                if entry is not None:
                    out.append(Item(system, entry.code, c.get("display") or entry.display,
                                    idx.version if idx else None, desig + tuple(entry.designations),
                                    entry.abstract, entry.inactive))
                else:
                    out.append(Item(system, code, c.get("display"), inc.get("version"), desig))
            return out
        if idx is None:
            if self.lenient:
                self.open.add(system)
                return []
            raise unprocessable(f"code system {system} is unknown to this server: cannot expand its codes",
                                "not-found")
        if not idx.present:
            if self.lenient:
                self.open.add(system)
                return []
            raise unprocessable(f"{not_present_message(system)}: a value set including all or part of it by filter "
                                "cannot be expanded (too costly / not present)", "too-costly")
        if self.lenient and idx.content in ("example", "fragment"):
            self.open.add(system)  # codes beyond those published cannot be ruled out
        entries: list[ConceptEntry] = list(idx.concepts.values())
        for f in filters:
            entries = _apply_filter(idx, entries, f)
        return [_item(idx, e) for e in entries]


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"ValueSet.{what} must be a list")
    return value


def _apply_filter(idx: CodeSystemIndex, entries: list[ConceptEntry], f: Any) -> list[ConceptEntry]:
    if not isinstance(f, dict) or not all(isinstance(f.get(k), str) for k in ("property", "op", "value")):
        raise invalid(f"ValueSet filter on {idx.url} needs property, op and value strings")
    prop, op, value = f["property"], f["op"], f["value"]
    hierarchy = prop in ("concept", "code", "parent", "child")
    if op in ("is-a", "descendent-of", "is-not-a", "generalizes") and hierarchy:
        root = idx.get(value)
        if root is None:
            below: set[str] = set()
        elif op == "generalizes":
            below = {root.code, *idx.ancestors(root.code)}
        else:
            below = set(idx.descendants(root.code))
            if op != "descendent-of":
                below.add(root.code)
        if op == "is-not-a":
            return [e for e in entries if e.code not in below]
        return [e for e in entries if e.code in below]
    if op in ("in", "not-in"):
        wanted = {v.strip() for v in value.split(",")}
        keep = op == "in"
        if prop in ("concept", "code"):
            return [e for e in entries if (e.code in wanted) == keep]
        return [e for e in entries if bool(set(e.property_values(prop)) & wanted) == keep]
    if op == "regex":
        try:
            rx = re.compile(value)
        except re.error as exc:
            raise invalid(f"ValueSet filter regex '{value}' on {idx.url} is not valid: {exc}") from None
        if prop in ("concept", "code"):
            return [e for e in entries if rx.fullmatch(e.code)]
        if prop == "display":
            return [e for e in entries if e.display is not None and rx.fullmatch(e.display)]
        return [e for e in entries if any(rx.fullmatch(v) for v in e.property_values(prop))]
    if op == "=":
        if prop in ("concept", "code"):
            return [e for e in entries if e.code == value]
        if prop == "display":
            return [e for e in entries if e.display == value]
        if prop == "parent":
            return [e for e in entries if value in e.parents]
        if prop == "child":
            return [e for e in entries if value in e.children]
        return [e for e in entries if value in e.property_values(prop)]
    if op == "exists":
        want = value == "true"
        return [e for e in entries if bool(e.property_values(prop)) == want]
    raise TerminologyError(422, "not-supported", f"ValueSet filter '{prop} {op} {value}' on {idx.url} is not "
                                                 "supported by this server")


# -- cache -------------------------------------------------------------------------------------------

_CACHE: OrderedDict[Any, Expansion | TerminologyError] = OrderedDict()
_CACHE_SIZE = 512
_LOCK = threading.Lock()


def expand(resolver: Resolver, vs: dict[str, Any], *, lenient: bool = False) -> Expansion:
    """The full expansion of ValueSet ``vs`` (cached per resource version, store generation and the
    database resources of the request). Raises :class:`TerminologyError`."""
    key = (resource_key(vs), lenient, resolver.generation, getattr(resolver, "signature", None))
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
    if hit is None:
        ex = _Expander(resolver, lenient)
        try:
            hit = Expansion(ex.value_set(vs, ()), frozenset(ex.open))
        except TerminologyError as err:
            hit = err
        with _LOCK:
            _CACHE[key] = hit
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    if isinstance(hit, TerminologyError):
        raise hit
    return hit


def find_value_set(resolver: Resolver, url: str) -> dict[str, Any]:
    """The ValueSet of canonical ``url`` (``|version`` tolerated); 404 when unknown."""
    base, version = split_canonical(url)
    vs = resolver.get("ValueSet", base, version)
    if vs is None:
        raise not_found(f"ValueSet {url} is unknown to this server")
    return vs
