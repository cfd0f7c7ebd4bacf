"""Result shaping: ``_summary`` and ``_elements`` on read, vread and search (FHIR R4 search.html#summary,
#elements).

Only runs when a request asks for it: read/vread/search without these parameters never come here.
What to keep of each type is computed once from the base R4 StructureDefinitions and cached:

* ``_summary=true``: the elements marked ``isSummary``, recursively (inside a kept element of a complex
  type, that type's own summary elements; inside a backbone element, its summary children), plus every
  mandatory (``min >= 1``) element of a kept element, plus ``id``/``meta`` of the resource. Extensions
  that are kept (``modifierExtension`` of backbone elements) are kept whole; so are nested resources and
  ``meta``. A choice element marked summary (``value[x]``) keeps whichever form is present
  (``valueQuantity``…). Primitive extensions (``_birthDate``) follow ``Element.extension``, which is not
  a summary element, so they go.
* ``_summary=text``: ``text``, ``id``, ``meta`` and the top-level mandatory elements.
* ``_summary=data``: everything but ``text``.  ``_summary=false``: everything (no shaping).
* ``_elements=a,b``: those top-level elements (whole) plus ``id``, ``meta`` and the top-level mandatory
  elements. ``Patient.name`` is accepted for ``name``; a deeper path (``name.family``) keeps only that
  part of the element (plus its mandatory children). A choice may be named by its base (``value``,
  ``value[x]``) or one form (``valueQuantity``). Unknown names are ignored, as HAPI FHIR does. In a
  search ``_elements`` applies to the matches only, never to ``_include``/``_revinclude`` entries; when
  both are given, ``_elements`` decides for the matches and ``_summary`` for the included resources.

A resource that lost anything gets the ``SUBSETTED`` tag (v3-ObservationValue) in ``meta.tag``; one that
lost nothing is returned unchanged and untagged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from fhir_server.definitions import structure_definitions
from fhir_server.outcome import FhirError

if TYPE_CHECKING:
    from fhir_server.search.model import ParsedSearch

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
             "display": "subsetted"}
SUMMARY_VALUES = ("true", "text", "data", "count", "false")
#: the _summary values that change a resource (count drops the entries; false changes nothing)
_SHAPING_SUMMARIES = frozenset(("true", "text", "data"))
_ELEMENT = re.compile(r"[A-Za-z][A-Za-z0-9_\-.]*(?:\[x\])?")

# A plan says what to keep of a JSON object: key → None (the value whole) or a nested plan applied to
# the object (or to every object of the array) under that key. Plans of types refer to each other
# (Reference → Identifier → Reference …), which is fine: applying one is driven by the data.
Plan = dict[str, Any]
NodeKey = tuple[str, str]  # (StructureDefinition type, element path): a complex type or a backbone element


@dataclass(frozen=True, slots=True)
class _Child:
    key: str  # the JSON property (a choice expanded: valueQuantity)
    name: str  # the element name as defined (value[x])
    summary: bool
    mandatory: bool
    node: NodeKey | None  # the structure inside; None: primitive, extension or resource (kept whole)
    primitive: bool  # has a ``_key`` sibling for its id/extensions


# ------------------------------------------------------------------------------------------ definitions
@cache
def _elements_by_parent(sd_type: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in structure_definitions()[sd_type]["snapshot"]["element"]:
        path = e["path"]
        if "." in path:
            out.setdefault(path.rsplit(".", 1)[0], []).append(e)
    return out


def _type_node(sd_type: str, path: str, code: str, has_children: bool) -> tuple[NodeKey | None, bool]:
    """The node inside an element of type ``code`` and whether the type is primitive."""
    if code.startswith("http://hl7.org/fhirpath/"):
        return None, True
    if code in ("Element", "BackboneElement") and has_children:
        return (sd_type, path), False
    sd = structure_definitions().get(code)
    if sd is None or code == "Extension" or sd["kind"] in ("resource", "logical"):
        return None, False
    if sd["kind"] == "primitive-type":
        return None, True
    return (code, code), False


@cache
def _children(node: NodeKey) -> dict[str, _Child]:
    """The JSON properties an object of ``node`` may have, choices expanded."""
    sd_type, path = node
    by_parent = _elements_by_parent(sd_type)
    out: dict[str, _Child] = {}
    for e in by_parent.get(path, ()):
        name = e["path"].rsplit(".", 1)[1]
        summary, mandatory = bool(e.get("isSummary")), (e.get("min") or 0) >= 1
        ref = e.get("contentReference")
        if ref:
            target = ref.split("#", 1)[1]
            out[name] = _Child(name, name, summary, mandatory, (sd_type, target), False)
            continue
        types = [t["code"] for t in e.get("type", ())]
        has_children = e["path"] in by_parent
        if name.endswith("[x]"):
            base = name[:-3]
            for code in types:
                key = base + code[:1].upper() + code[1:]
                sub, prim = _type_node(sd_type, e["path"], code, has_children)
                out[key] = _Child(key, name, summary, mandatory, sub, prim)
        elif types:
            sub, prim = _type_node(sd_type, e["path"], types[0], has_children)
            out[name] = _Child(name, name, summary, mandatory, sub, prim)
    return out


# ------------------------------------------------------------------------------------------ plans
_summary_plans: dict[NodeKey, Plan] = {}


def _summary_plan(node: NodeKey) -> Plan:
    plan = _summary_plans.get(node)
    if plan is None:
        plan = _summary_plans[node] = {}  # registered first: recursive types refer to it
        for c in _children(node).values():
            if c.summary or c.mandatory:
                plan[c.key] = _summary_plan(c.node) if c.node is not None else None
    return plan


def _top(rtype: str) -> Plan:
    """What every shaped resource keeps: resourceType, id, meta and the top-level mandatory elements."""
    plan: Plan = {"resourceType": None, "id": None, "meta": None}
    for c in _children((rtype, rtype)).values():
        if c.mandatory:
            _keep_whole(plan, c)
    return plan


def _keep_whole(plan: Plan, c: _Child) -> None:
    plan[c.key] = None
    if c.primitive:
        plan["_" + c.key] = None


@cache
def summary_true_plan(rtype: str) -> Plan:
    plan = dict(_summary_plan((rtype, rtype)))
    plan.update(resourceType=None, id=None, meta=None)
    return plan


@cache
def summary_text_plan(rtype: str) -> Plan:
    plan = _top(rtype)
    plan.update(text=None)
    return plan


@lru_cache(maxsize=512)
def elements_plan(rtype: str, names: tuple[str, ...]) -> Plan:
    plan = _top(rtype)
    for name in names:
        segs = name.split(".")
        if len(segs) > 1 and segs[0] == rtype:
            segs = segs[1:]
        _add_path(plan, (rtype, rtype), segs)
    return plan


def _add_path(plan: Plan, node: NodeKey, segs: list[str]) -> None:
    head = segs[0]
    base = head[:-3] if head.endswith("[x]") else head
    for c in _children(node).values():
        if c.key != head and c.name not in (head, base + "[x]"):
            continue
        if c.key in plan and plan[c.key] is None:
            continue  # already kept whole
        if len(segs) == 1 or c.node is None:
            _keep_whole(plan, c)
            continue
        sub = plan.get(c.key)
        if sub is None:
            sub = plan[c.key] = {}
            for m in _children(c.node).values():
                if m.mandatory:
                    _keep_whole(sub, m)
        _add_path(sub, c.node, segs[1:])


# ------------------------------------------------------------------------------------------ applying
def _apply(obj: dict[str, Any], plan: Plan, lost: list[bool]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if k not in plan:
            lost[0] = True
            continue
        sub = plan[k]
        if sub is None:
            out[k] = v
        elif isinstance(v, dict):
            shaped = _apply(v, sub, lost)
            if shaped:
                out[k] = shaped
        elif isinstance(v, list):
            items = [_apply(i, sub, lost) if isinstance(i, dict) else i for i in v]
            items = [i for i in items if i != {}]
            if items:
                out[k] = items
        else:
            out[k] = v
    return out


def _tagged(resource: dict[str, Any]) -> dict[str, Any]:
    meta = resource.get("meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    tags = meta.get("tag") if isinstance(meta.get("tag"), list) else []
    if not any(isinstance(t, dict) and t.get("system") == SUBSETTED["system"] and t.get("code") == "SUBSETTED"
               for t in tags):
        meta["tag"] = [*tags, SUBSETTED]
    out: dict[str, Any] = {"resourceType": resource.get("resourceType")}
    if "id" in resource:
        out["id"] = resource["id"]
    out["meta"] = meta
    for k, v in resource.items():
        out.setdefault(k, v)
    return out


def shape(resource: dict[str, Any], summary: str | None, elements: tuple[str, ...] | None) -> dict[str, Any]:
    """``resource`` as ``_summary``/``_elements`` ask (the same object when nothing is removed)."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or (rtype, rtype) not in _known_roots():
        return resource
    lost = [False]
    if elements is not None:
        out = _apply(resource, elements_plan(rtype, elements), lost)
    elif summary == "true":
        out = _apply(resource, summary_true_plan(rtype), lost)
    elif summary == "text":
        out = _apply(resource, summary_text_plan(rtype), lost)
    elif summary == "data":
        if "text" not in resource:
            return resource
        out, lost[0] = {k: v for k, v in resource.items() if k != "text"}, True
    else:
        return resource
    return _tagged(out) if lost[0] else resource


@cache
def _known_roots() -> frozenset[NodeKey]:
    return frozenset((n, n) for n, sd in structure_definitions().items() if sd["kind"] == "resource")


# ------------------------------------------------------------------------------------------ read / vread
@dataclass(frozen=True, slots=True)
class ReadShape:
    summary: str | None
    elements: tuple[str, ...] | None

    def apply(self, resource: dict[str, Any]) -> dict[str, Any]:
        return shape(resource, self.summary, self.elements)


def read_shape(params: list[tuple[str, str]]) -> ReadShape | None:
    """The shaping a read/vread asks for in its parameters; None for none (or ``_summary=false``).
    400 for a bad or repeated ``_summary``/``_elements`` and for ``_summary=count`` (searches only)."""
    summary: str | None = None
    elements: tuple[str, ...] | None = None
    for k, v in params:
        if k == "_summary":
            if summary is not None:
                raise _bad("_summary", "Parameter '_summary' may be given only once")
            if v not in SUMMARY_VALUES:
                raise _bad("_summary", f"Parameter '_summary' must be one of {', '.join(SUMMARY_VALUES)}, "
                                       f"not '{v[:40]}'")
            if v == "count":
                raise _bad("_summary", "_summary=count applies to searches only")
            summary = v
        elif k == "_elements":
            if elements is not None:
                raise _bad("_elements", "Parameter '_elements' may be given only once")
            elements = parse_elements(v)
    if elements is None and summary not in _SHAPING_SUMMARIES:
        return None
    return ReadShape(summary, elements)


def parse_elements(value: str) -> tuple[str, ...]:
    names = [n.strip() for n in value.split(",")]
    if not value or any(not _ELEMENT.fullmatch(n) for n in names):
        raise _bad("_elements", f"Parameter '_elements': invalid element list '{value[:100]}'")
    return tuple(dict.fromkeys(names))


def _bad(param: str, message: str) -> FhirError:
    return FhirError.of(400, "invalid", message, param)


# ------------------------------------------------------------------------------------------ search
class SearchShape:
    """Shapes the entries of one search page; made by :func:`search_shape` only when asked for."""

    __slots__ = ("summary", "elements")

    def __init__(self, summary: str | None, elements: tuple[str, ...] | None) -> None:
        self.summary = summary if summary in _SHAPING_SUMMARIES else None
        self.elements = elements

    def match(self, text: str) -> bytes:
        """A match entry's resource JSON (stored text in, JSON bytes out)."""
        return self._shape(text, self.summary, self.elements)

    def include(self, text: str) -> bytes:
        """An included resource: ``_elements`` does not apply to includes (R4 search.html#elements)."""
        if self.summary is None:
            return text.encode()
        return self._shape(text, self.summary, None)

    @staticmethod
    def _shape(text: str, summary: str | None, elements: tuple[str, ...] | None) -> bytes:
        resource = orjson.loads(text)
        out = shape(resource, summary, elements)
        return text.encode() if out is resource else orjson.dumps(out)


def search_shape(parsed: ParsedSearch) -> SearchShape | None:
    """None unless ``parsed`` asks for ``_summary=true|text|data`` or ``_elements``."""
    if parsed.elements is None and parsed.summary not in _SHAPING_SUMMARIES:
        return None
    return SearchShape(parsed.summary, parsed.elements)
