"""Element-type lookups over the R4 base StructureDefinitions, used when compiling search expressions."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir_server.definitions import resource_types, structure_definitions

_SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Time": "time",
}
_FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
INLINE = ("BackboneElement", "Element")


@dataclass(frozen=True, slots=True)
class Ctx:
    """Where a path currently stands: the StructureDefinition whose elements describe the children,
    the element path inside it and the FHIR type of the value(s)."""

    sd: str
    path: str
    type: str


@dataclass(frozen=True, slots=True)
class Child:
    """One way to step into a child element: its JSON key and the context below it."""

    key: str
    ctx: Ctx


def _type_code(t: dict[str, Any]) -> str:
    code = t["code"]
    if code in _SYSTEM_TYPES:
        for ext in t.get("extension") or ():
            if ext.get("url") == _FHIR_TYPE_EXT:
                return ext["valueUrl"]
        return _SYSTEM_TYPES[code]
    return code


@cache
def _elements(sd_name: str) -> dict[str, dict[str, Any]]:
    sd = structure_definitions()[sd_name]
    return {e["path"]: e for e in sd["snapshot"]["element"]}


@cache
def _base_of(type_name: str) -> str | None:
    sd = structure_definitions().get(type_name)
    base = sd.get("baseDefinition") if sd else None
    return base.rsplit("/", 1)[-1] if base else None


def is_resource_type(name: str) -> bool:
    return name in resource_types() or name in ("Resource", "DomainResource")


def is_type_name(name: str) -> bool:
    return name in structure_definitions()


def root(rtype: str) -> Ctx:
    return Ctx(rtype, rtype, rtype)


def type_ctx(type_name: str) -> Ctx:
    return Ctx(type_name, type_name, type_name)


def is_subtype(type_name: str, of: str) -> bool:
    """Whether ``type_name`` is ``of`` or derives from it (``Age`` is a ``Quantity``)."""
    t: str | None = type_name
    while t is not None:
        if t == of:
            return True
        t = _base_of(t)
    return False


def children(ctx: Ctx, name: str) -> list[Child] | None:
    """The ways to step from ``ctx`` into child ``name`` (several for a choice element ``name[x]``),
    or None when the element does not exist."""
    sd, path = ctx.sd, ctx.path
    while True:
        if sd not in structure_definitions():
            return None
        elements = _elements(sd)
        el = elements.get(f"{path}.{name}")
        if el is not None:
            return [Child(name, _child_ctx(sd, el, _single_type(el)))]
        el = elements.get(f"{path}.{name}[x]")
        if el is not None:
            out = []
            for t in el.get("type") or ():
                code = _type_code(t)
                out.append(Child(name + code[0].upper() + code[1:], _child_ctx(sd, el, code)))
            return out
        # An element inherited from the base type (Age.value is Quantity.value, Patient.id is Resource.id).
        if path != sd:
            return None
        base = _base_of(sd)
        if base is None:
            return None
        sd = path = base


def _single_type(el: dict[str, Any]) -> str:
    types = el.get("type") or ()
    return _type_code(types[0]) if types else "BackboneElement"


def _child_ctx(sd: str, el: dict[str, Any], code: str) -> Ctx:
    ref = el.get("contentReference")
    if ref:
        return Ctx(sd, ref.lstrip("#"), "BackboneElement")
    if code in INLINE:
        return Ctx(sd, el["path"], code)
    return type_ctx(code)
