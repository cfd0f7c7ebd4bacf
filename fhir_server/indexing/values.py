"""Row builders: one function per (search parameter type, FHIR element type).

Each builder has the signature ``(param, value, out)`` and appends zero or more row tuples
(``param`` first, then the index table's columns) to ``out``. Builders never raise on malformed
input; values of the wrong JSON shape are skipped. Strings are cut to 255 characters.

A builder writes to one index table (``out`` is that table's row list). Where one element feeds two
tables, a *companion* builder for the second table is registered beside the first (:data:`COMPANIONS`)
and the registry runs it on the same values: ``Reference.identifier`` of a reference parameter
``subject`` becomes token rows under ``subject:identifier`` (search ``subject:identifier=sys|v``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhir_server.definitions import resource_types
from fhir_server.indexing.dates import DATE_MAX, DATE_MIN, parse_date_range
from fhir_server.indexing.references import parse_reference
from fhir_server.indexing.strings import normalize

Row = tuple[Any, ...]
Builder = Callable[[str, Any, list[Row]], None]

MAX_LEN = 255
_RESOURCE_TYPES = resource_types()


def _s(v: Any) -> str | None:
    """A string column value (cut to 255), or None for anything that is not a non-empty string."""
    if type(v) is not str or not v:
        return None
    return v if len(v) <= MAX_LEN else v[:MAX_LEN]


# --- token ---------------------------------------------------------------------------------------

def _text(v: Any) -> str | None:
    """The ``text`` column of a token row: the text that ``:text`` searches (Coding.display,
    CodeableConcept.text, Identifier.type.text), normalised like a string parameter (lower case, no
    accents) so ``:text`` is string matching on both backends (R4 search.html#token)."""
    return _s(normalize(v)) if type(v) is str and v else None


def token_coding(p: str, v: Any, out: list[Row]) -> None:
    if type(v) is dict:
        system, code, display = _s(v.get("system")), _s(v.get("code")), _text(v.get("display"))
        if system or code or display:
            out.append((p, system, code, display))


def token_codeable_concept(p: str, v: Any, out: list[Row]) -> None:
    """One row per Coding with its display as text; CodeableConcept.text goes into the first Coding row
    without a display, else into a code-less row of its own (unless a display equals it)."""
    if type(v) is not dict:
        return
    text = _text(v.get("text"))
    codings = v.get("coding")
    if type(codings) is list:
        for c in codings:
            if type(c) is dict:
                system, code = _s(c.get("system")), _s(c.get("code"))
                display = _text(c.get("display"))
                if system or code:
                    if display is None or display == text:
                        display, text = display or text, None
                    out.append((p, system, code, display))
    if text:
        out.append((p, None, None, text))


def token_identifier(p: str, v: Any, out: list[Row]) -> None:
    if type(v) is dict:
        system, value = _s(v.get("system")), _s(v.get("value"))
        if system or value:
            t = v.get("type")
            out.append((p, system, value, _text(t.get("text")) if type(t) is dict else None))


def token_contact_point(p: str, v: Any, out: list[Row]) -> None:
    if type(v) is dict:
        value = _s(v.get("value"))
        if value:
            out.append((p, None, value, None))


def token_primitive(p: str, v: Any, out: list[Row]) -> None:
    tv = type(v)
    if tv is str:
        if v:
            out.append((p, None, _s(v), None))
    elif tv is bool:
        out.append((p, None, "true" if v else "false", None))
    elif tv is int or tv is float:
        out.append((p, None, str(v), None))


# --- string --------------------------------------------------------------------------------------

def _string_row(p: str, v: Any, out: list[Row]) -> None:
    if type(v) is str and v:
        exact = v if len(v) <= MAX_LEN else v[:MAX_LEN]
        norm = normalize(exact)  # NFKD can lengthen a string ('ﬁ' -> 'fi')
        out.append((p, norm if len(norm) <= MAX_LEN else norm[:MAX_LEN], exact))


def string_primitive(p: str, v: Any, out: list[Row]) -> None:
    _string_row(p, v, out)


def _string_parts(keys: tuple[str, ...]) -> Builder:
    def build(p: str, v: Any, out: list[Row]) -> None:
        if type(v) is not dict:
            return
        for k in keys:
            part = v.get(k)
            if type(part) is list:
                for x in part:
                    _string_row(p, x, out)
            elif part is not None:
                _string_row(p, part, out)
    return build


string_human_name = _string_parts(("family", "given", "prefix", "suffix", "text"))
string_address = _string_parts(("line", "city", "district", "state", "postalCode", "country", "text"))


# --- reference -----------------------------------------------------------------------------------

def reference_reference(p: str, v: Any, out: list[Row]) -> None:
    if type(v) is dict:
        ref = v.get("reference")
        if type(ref) is str:
            parsed = parse_reference(ref)
            if parsed is not None:
                rtype, rid, url = parsed
                out.append((p, rtype, rid, _s(url)))


IDENTIFIER_SUFFIX = ":identifier"
_MAX_PARAM = 100  # idx_*.param is VARCHAR(100)


def identifier_param(code: str) -> str | None:
    """The ``idx_token`` param under which the ``Reference.identifier`` values of reference parameter
    ``code`` are indexed (``subject`` -> ``subject:identifier``); None when it would not fit the column."""
    name = code + IDENTIFIER_SUFFIX
    return name if len(name) <= _MAX_PARAM else None


def reference_identifier(p: str, v: Any, out: list[Row]) -> None:
    """Companion of :func:`reference_reference` for the token table: the ``Reference.identifier`` of a
    Reference (logical reference, with or without a literal ``reference``) as a token row, for the
    ``:identifier`` modifier (R4 search.html#reference). ``p`` is already ``<param>:identifier``."""
    if type(v) is dict:
        ident = v.get("identifier")
        if ident is not None:
            token_identifier(p, ident, out)


def reference_canonical(p: str, v: Any, out: list[Row]) -> None:
    if type(v) is str and v:
        out.append((p, None, None, _s(v)))


def reference_resource(p: str, v: Any, out: list[Row]) -> None:
    """A resource held inline (``Bundle.entry[0].resource``): a row for its type and id."""
    if type(v) is dict:
        rtype, rid = v.get("resourceType"), v.get("id")
        if rtype in _RESOURCE_TYPES and type(rid) is str and 0 < len(rid) <= 64:
            out.append((p, rtype, rid, None))


# --- date ----------------------------------------------------------------------------------------

def _range(v: Any) -> tuple[int, int] | None:
    if type(v) is not str:
        return None
    try:
        return parse_date_range(v)
    except ValueError:
        return None


def date_primitive(p: str, v: Any, out: list[Row]) -> None:
    r = _range(v)
    if r is not None:
        out.append((p, r[0], r[1]))


def _period_range(v: Any) -> tuple[int, int] | None:
    if type(v) is not dict:
        return None
    start, end = v.get("start"), v.get("end")
    if start is None and end is None:
        return None
    lo = _range(start) if start is not None else (DATE_MIN, DATE_MIN)
    hi = _range(end) if end is not None else (DATE_MAX, DATE_MAX)
    if lo is None or hi is None:
        return None
    return lo[0], hi[1]


def date_period(p: str, v: Any, out: list[Row]) -> None:
    r = _period_range(v)
    if r is not None:
        out.append((p, r[0], r[1]))


def date_timing(p: str, v: Any, out: list[Row]) -> None:
    if type(v) is not dict:
        return
    ranges = []
    events = v.get("event")
    if type(events) is list:
        ranges = [r for r in map(_range, events) if r is not None]
    repeat = v.get("repeat")
    if type(repeat) is dict:
        bounds = _period_range(repeat.get("boundsPeriod"))
        if bounds is not None:
            ranges.append(bounds)
    if ranges:
        out.append((p, min(r[0] for r in ranges), max(r[1] for r in ranges)))


# --- uri / number / quantity ---------------------------------------------------------------------

def uri_primitive(p: str, v: Any, out: list[Row]) -> None:
    if type(v) is str and v:
        out.append((p, _s(v)))


def number_primitive(p: str, v: Any, out: list[Row]) -> None:
    if type(v) is int or type(v) is float:
        out.append((p, float(v)))


def quantity_quantity(p: str, v: Any, out: list[Row]) -> None:
    """A row for (system, code); and one for the human unit (system None) when it differs from the code."""
    if type(v) is not dict:
        return
    value = v.get("value")
    if type(value) is not int and type(value) is not float:
        return
    value = float(value)
    system, code, unit = _s(v.get("system")), _s(v.get("code")), _s(v.get("unit"))
    out.append((p, system, code or unit, value))
    if code and unit and unit != code:
        out.append((p, None, unit, value))


def quantity_money(p: str, v: Any, out: list[Row]) -> None:
    if type(v) is dict:
        value = v.get("value")
        if type(value) is int or type(value) is float:
            out.append((p, None, _s(v.get("currency")), float(value)))


# --- selection -----------------------------------------------------------------------------------

_STRINGISH = ("string", "markdown", "code", "id", "uri", "url", "canonical", "oid", "uuid")
_URIISH = ("uri", "url", "canonical", "oid", "uuid")
_QUANTITIES = ("Quantity", "Age", "Duration", "Count", "Distance", "SimpleQuantity", "MoneyQuantity")

BUILDERS: dict[str, dict[str, Builder]] = {
    "token": {
        "Coding": token_coding,
        "CodeableConcept": token_codeable_concept,
        "Identifier": token_identifier,
        "ContactPoint": token_contact_point,
        **{t: token_primitive for t in (*_STRINGISH, "boolean", "integer", "positiveInt", "unsignedInt")},
    },
    "string": {
        "HumanName": string_human_name,
        "Address": string_address,
        **{t: string_primitive for t in _STRINGISH},
    },
    "reference": {
        "Reference": reference_reference,
        **{t: reference_canonical for t in _URIISH},
    },
    "date": {
        "date": date_primitive,
        "dateTime": date_primitive,
        "instant": date_primitive,
        "Period": date_period,
        "Timing": date_timing,
    },
    "uri": {t: uri_primitive for t in _URIISH},
    "number": {t: number_primitive for t in ("integer", "decimal", "positiveInt", "unsignedInt")},
    "quantity": {**{t: quantity_quantity for t in _QUANTITIES}, "Money": quantity_money},
}
"""Param type -> FHIR element type -> builder. An element type missing here is not indexed."""

COMPANIONS: dict[Builder, tuple[str, Callable[[str], str | None], Builder]] = {
    reference_reference: ("token", identifier_param, reference_identifier),
}
"""Builder -> (second table, param code -> param name of the second table's rows (None: skip), builder):
rows a builder's values also give in another index table (see the module docstring)."""


def builder_for(param_type: str, element_type: str, is_resource: bool = False) -> Builder | None:
    """The row builder for values of ``element_type`` under a ``param_type`` parameter, if any."""
    if is_resource:
        return reference_resource if param_type == "reference" else None
    return BUILDERS.get(param_type, {}).get(element_type)


def boolean_token(p: str, value: bool, out: list[Row]) -> None:
    """The token row of a computed boolean (``exists()``-style parameters)."""
    out.append((p, None, "true" if value else "false", None))
