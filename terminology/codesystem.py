"""A CodeSystem compiled for lookups: codes, displays, designations, properties and the is-a hierarchy
(nested ``concept`` plus the ``parent`` / ``subsumedBy`` / ``child`` properties)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from terminology.store import VENDORED_IDS

Designation = tuple[str | None, str | None, str]  # (language, use code, value)


@dataclass
class ConceptEntry:
    code: str
    display: str | None
    designations: list[Designation] = field(default_factory=list)
    properties: list[tuple[str, Any]] = field(default_factory=list)  # (code, value) as published
    parents: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)

    def property_values(self, prop: str) -> list[str]:
        return [_as_text(v) for c, v in self.properties if c == prop]

    @property
    def abstract(self) -> bool:
        return any(c in ("notSelectable", "abstract") and v is True for c, v in self.properties)

    @property
    def inactive(self) -> bool:
        return any((c == "status" and v in ("retired", "inactive", "deprecated")) or (c == "inactive" and v is True)
                   for c, v in self.properties)


def _as_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):  # valueCoding
        return str(v.get("code", ""))
    return str(v)


_PARENT_PROPS = ("parent", "subsumedBy")


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class CodeSystemIndex:
    def __init__(self, cs: dict[str, Any]) -> None:
        self.url: str = cs.get("url", "")
        self.version: str | None = cs.get("version")
        self.name: str | None = cs.get("name") or cs.get("title")
        self.content: str = cs.get("content", "complete")
        self.case_sensitive: bool = cs.get("caseSensitive", True) is not False
        self.concepts: dict[str, ConceptEntry] = {}
        self._folded: dict[str, str] | None = None
        self._walk(cs.get("concept") or [], None)
        for entry in list(self.concepts.values()):  # property-declared hierarchy
            for _, v in ((c, v) for c, v in entry.properties if c in _PARENT_PROPS):
                self._link(_as_text(v), entry.code)
            for _, v in ((c, v) for c, v in entry.properties if c == "child"):
                self._link(entry.code, _as_text(v))

    @property
    def present(self) -> bool:
        """Whether the concepts are here (``not-present``: only the url is known)."""
        return self.content != "not-present"

    def _walk(self, concepts: Any, parent: str | None) -> None:
        if not isinstance(concepts, list):
            return
        for c in concepts:
            code = c.get("code") if isinstance(c, dict) else None
            if not isinstance(code, str):
                continue
            entry = self.concepts.get(code)
            if entry is None:
                entry = self.concepts[code] = ConceptEntry(code, c.get("display"))
                for d in _items(c.get("designation")):
                    if isinstance(d, dict) and isinstance(d.get("value"), str):
                        use = d.get("use") if isinstance(d.get("use"), dict) else {}
                        entry.designations.append((d.get("language"), use.get("code"), d["value"]))
                for p in _items(c.get("property")):
                    if isinstance(p, dict) and "code" in p:
                        value = next((v for k, v in p.items() if k.startswith("value")), None)
                        entry.properties.append((p["code"], value))
            if parent is not None:
                self._link(parent, code)
            self._walk(c.get("concept") or [], code)

    def _link(self, parent: str, child: str) -> None:
        p, c = self.concepts.get(parent), self.concepts.get(child)
        if p is None or c is None or parent == child:
            return
        if child not in p.children:
            p.children.append(child)
        if parent not in c.parents:
            c.parents.append(parent)

    def get(self, code: str) -> ConceptEntry | None:
        entry = self.concepts.get(code)
        if entry is None and not self.case_sensitive:
            if self._folded is None:
                self._folded = {k.lower(): k for k in self.concepts}
            real = self._folded.get(code.lower())
            entry = self.concepts.get(real) if real else None
        return entry

    def descendants(self, code: str) -> list[str]:
        """Every code below ``code`` (not itself), breadth first."""
        return self._closure(code, "children")

    def ancestors(self, code: str) -> list[str]:
        return self._closure(code, "parents")

    def _closure(self, code: str, direction: str) -> list[str]:
        start = self.get(code)
        if start is None:
            return []
        seen = {start.code}
        out: list[str] = []
        todo = list(getattr(start, direction))
        while todo:
            nxt = todo.pop(0)
            if nxt in seen:
                continue
            seen.add(nxt)
            out.append(nxt)
            todo += getattr(self.concepts[nxt], direction)
        return out

    def subsumes(self, code_a: str, code_b: str) -> str | None:
        """'equivalent' | 'subsumes' (A is an ancestor of B) | 'subsumed-by' | 'not-subsumed'; None when
        either code is unknown."""
        a, b = self.get(code_a), self.get(code_b)
        if a is None or b is None:
            return None
        if a.code == b.code:
            return "equivalent"
        if a.code in self.ancestors(b.code):
            return "subsumes"
        if b.code in self.ancestors(a.code):
            return "subsumed-by"
        return "not-subsumed"


_CACHE: OrderedDict[Any, tuple[dict[str, Any], CodeSystemIndex]] = OrderedDict()
_CACHE_SIZE = 256
_LOCK = threading.Lock()


def resource_key(r: dict[str, Any]) -> Any:
    """A cache key for a resource: its stored version when it has one, else its content."""
    meta = r.get("meta") or {}
    if meta.get("versionId") and r.get("id"):
        return (r.get("resourceType"), r.get("id"), meta.get("versionId"), meta.get("lastUpdated"), r.get("url"))
    if id(r) in VENDORED_IDS:  # one object per url/version, kept alive by the store
        return (r.get("resourceType"), "object", id(r))
    try:
        return (r.get("resourceType"), "content", orjson.dumps(r, option=orjson.OPT_SORT_KEYS))
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
        return (r.get("resourceType"), "repr", repr(r))


def index_of(cs: dict[str, Any]) -> CodeSystemIndex:
    """The (cached) index of CodeSystem ``cs``."""
    key = resource_key(cs)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit[1]
    idx = CodeSystemIndex(cs)
    with _LOCK:
        _CACHE[key] = (cs, idx)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return idx
