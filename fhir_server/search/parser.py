"""Parse FHIR R4 search parameters (``[(name, value), ...]``) into a :class:`ParsedSearch`.

Everything the user sends is validated here; a bad value, an unsupported modifier or feature is a
400 naming the parameter. Unknown parameters are ignored with a warning (or 400 when ``strict``).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from fhir_server.outcome import FhirError, Issue
from fhir_server.search.model import (
    PREFIXES,
    Criterion,
    Include,
    ParsedSearch,
    QuantityValue,
    RangeValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
    decimal_range,
    decode_cursor,
)

# Modifiers FHIR R4 defines; the ones we do not implement yet are answered with 'not-supported'.
_KNOWN_MODIFIERS = {"missing", "exact", "contains", "text", "not", "above", "below", "in", "not-in",
                    "of-type", "identifier", "code-text", "text-advanced", "iterate", "type"}
_SUPPORTED_MODIFIERS: dict[str, set[str]] = {
    "string": {"exact", "contains"},
    "uri": {"above", "below"},
    "token": set(),
    "reference": set(),  # plus the resource-type modifier, handled separately
    "date": set(),
    "number": set(),
    "quantity": set(),
}
# Result / control parameters handled here, and parameters the HTTP layer deals with.
_IGNORED_PARAMS = {"_format", "_pretty"}
# Standard parameters whose feature is not implemented yet.
_UNSUPPORTED_PARAMS = {"_has", "_text", "_content", "_list", "_query", "_filter", "_type", "_sort",
                       "_containedType"}
_SUMMARY_VALUES = {"true", "text", "data", "count", "false"}
_TOTAL_VALUES = {"none", "estimate", "accurate"}

_LOCAL_REF = re.compile(r"([A-Z][A-Za-z]{0,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?")
_HISTORY_SUFFIX = re.compile(r"(.*/[A-Z][A-Za-z]{0,63}/[A-Za-z0-9\-.]{1,64})/_history/[^/]+")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_RTYPE = re.compile(r"[A-Z][A-Za-z]{0,63}")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_ELEMENT = re.compile(r"[A-Za-z][A-Za-z0-9_\-.]*(?:\[x\])?")
_ESCAPABLE = {",", "|", "$", "\\"}


def _bad(name: str, message: str, code: str = "invalid") -> FhirError:
    return FhirError.of(400, code, message, name)


def split_escaped(value: str, sep: str) -> list[str]:
    """Split on ``sep`` where not escaped with a backslash; pieces keep their escapes."""
    out: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            cur.append(value[i:i + 2])
            i += 2
            continue
        if ch == sep:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


def unescape(value: str) -> str:
    r"""Resolve the search escapes ``\,`` ``\|`` ``\$`` ``\\``; any other backslash is kept as is."""
    if "\\" not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in _ESCAPABLE:
            out.append(value[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _or_values(name: str, value: str) -> list[str]:
    """The comma-separated alternatives of a value (still escaped); none may be empty."""
    parts = split_escaped(value, ",")
    if any(p == "" for p in parts):
        raise _bad(name, f"Search parameter '{name}' has an empty value")
    return parts


def _split_prefix(name: str, raw: str) -> tuple[str, str]:
    if len(raw) >= 2 and raw[:2].isalpha() and raw[:2].islower():
        prefix = raw[:2]
        if prefix not in PREFIXES:
            raise _bad(name, f"Search parameter '{name}': unknown prefix '{prefix}' in '{raw}'")
        rest = raw[2:]
        if not rest:
            raise _bad(name, f"Search parameter '{name}': missing value after prefix '{prefix}'")
        return prefix, rest
    return "eq", raw


def _parse_date(name: str, raw: str) -> RangeValue:
    from fhir_server.indexing.dates import parse_date_range

    prefix, text = _split_prefix(name, unescape(raw))
    try:
        low, high = parse_date_range(text)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _bad(name, f"Search parameter '{name}': invalid date/time '{text}' ({exc})") from None
    return RangeValue(prefix, int(low), int(high))


def _parse_decimal(name: str, prefix: str, text: str) -> RangeValue:
    if not _NUMBER.fullmatch(text):
        raise _bad(name, f"Search parameter '{name}': invalid number '{text}'")
    try:
        d = Decimal(text)
        low, high = decimal_range(d)
        value = float(d)
    except (InvalidOperation, ArithmeticError, ValueError):
        low = high = value = math.inf
    if not all(math.isfinite(x) for x in (low, high, value)):
        raise _bad(name, f"Search parameter '{name}': number '{text}' is out of range")
    return RangeValue(prefix, low, high, value)


def _parse_number(name: str, raw: str) -> RangeValue:
    prefix, text = _split_prefix(name, unescape(raw))
    return _parse_decimal(name, prefix, text)


def _parse_quantity(name: str, raw: str) -> QuantityValue:
    parts = split_escaped(raw, "|")
    if len(parts) not in (1, 3):
        raise _bad(name, f"Search parameter '{name}': a quantity is 'number', 'number|system|code' or "
                         f"'number||code', not '{raw}'")
    prefix, text = _split_prefix(name, unescape(parts[0]))
    number = _parse_decimal(name, prefix, text)
    if len(parts) == 1:
        return QuantityValue(number, None, None)
    system, code = unescape(parts[1]) or None, unescape(parts[2]) or None
    return QuantityValue(number, system, code)


def _parse_token(name: str, raw: str) -> TokenValue:
    parts = split_escaped(raw, "|")
    if len(parts) == 1:
        return TokenValue(None, unescape(parts[0]))
    if len(parts) > 2:
        raise _bad(name, f"Search parameter '{name}': too many '|' in token '{raw}' (escape a literal '|' as '\\|')")
    system, code = unescape(parts[0]), unescape(parts[1])
    if not system and not code:
        raise _bad(name, f"Search parameter '{name}': token '|' has neither system nor code")
    if not system:
        return TokenValue(None, code, no_system=True)
    return TokenValue(system, code or None)


def _parse_reference(name: str, raw: str, base_url: str, type_modifier: str | None) -> ReferenceValue:
    value = unescape(raw)
    ref: ReferenceValue
    if base_url and value.startswith(base_url + "/") and _LOCAL_REF.fullmatch(value[len(base_url) + 1:]):
        m = _LOCAL_REF.fullmatch(value[len(base_url) + 1:])
        assert m is not None
        ref = ReferenceValue("local", m.group(1), m.group(2))
    elif m := _LOCAL_REF.fullmatch(value):
        ref = ReferenceValue("local", m.group(1), m.group(2))
    elif _ID.fullmatch(value):
        ref = ReferenceValue("id", id=value)
    else:
        m = _HISTORY_SUFFIX.fullmatch(value)  # the index keeps absolute URLs without their version
        ref = ReferenceValue("url", url=m.group(1) if m else value)
    if type_modifier is not None:
        if ref.kind == "id":
            ref = ReferenceValue("local", type_modifier, ref.id)
        elif ref.kind == "local" and ref.type != type_modifier:
            raise _bad(name, f"Search parameter '{name}': reference '{value}' is not of type {type_modifier}")
        elif ref.kind == "url":
            raise _bad(name, f"Search parameter '{name}': with a type modifier the value must be an id, "
                             f"not '{value}'")
    return ref


def _uri_above(value: str) -> tuple[str, ...]:
    """``value`` and every prefix of it that ends at (or just before) a '/' separator."""
    out = {value}
    start = value.find("://")
    start = start + 3 if start >= 0 else 0
    for i in range(start, len(value)):
        if value[i] == "/":
            out.add(value[:i])
            out.add(value[:i + 1])
    return tuple(sorted(x for x in out if x))


def _parse_uri(name: str, raw: str, modifier: str | None) -> UriValue:
    value = unescape(raw)
    if modifier == "above":
        return UriValue(value, _uri_above(value))
    return UriValue(value)


class _Parser:
    def __init__(self, rtype: str, registry: Any, base_url: str, strict: bool, default_count: int,
                 max_count: int) -> None:
        self.rtype = rtype
        self.registry = registry
        self.strict = strict
        self.max_count = max_count
        self.out = ParsedSearch(rtype=rtype, base_url=base_url, count=min(default_count, max_count))
        self._seen: dict[str, str] = {}

    # -- helpers -------------------------------------------------------------------------------
    def unknown(self, name: str, message: str) -> None:
        if self.strict:
            raise _bad(name, message, "not-supported")
        self.out.warnings.append(Issue("warning", "not-supported", message + ": ignored", (name,)))

    def once(self, name: str, value: str) -> None:
        if name in self._seen and self._seen[name] != value:
            raise _bad(name, f"Search parameter '{name}' may only be given once")
        self._seen[name] = value

    # -- main ----------------------------------------------------------------------------------
    def parse(self, params: list[tuple[str, str]]) -> ParsedSearch:
        for key, value in params:
            if self.handle(key, value):
                self.out.params.append((key, value))
        return self.out

    def handle(self, key: str, value: str) -> bool:
        """Process one parameter; False when it is ignored (and must not appear in links)."""
        name, _, modifier = key.partition(":")
        if name in _IGNORED_PARAMS:
            return True
        if name == "_has" or key.startswith("_has:"):
            raise _bad(key, f"Search parameter '{key}': _has (reverse chaining) is not supported yet",
                       "not-supported")
        if "." in key:
            raise _bad(key, f"Search parameter '{key}': chained parameters are not supported yet", "not-supported")
        if name in ("_include", "_revinclude"):
            return self.include(key, name, modifier, value)
        if name.startswith("_") and self.result_param(key, name, modifier, value):
            return True
        if name in _UNSUPPORTED_PARAMS:
            raise _bad(key, f"Search parameter '{key}' is not supported yet", "not-supported")
        if name == "_id":
            self.modifiers(key, name, modifier, set())
            ids = [unescape(v) for v in _or_values(key, value)]
            self.out.criteria.append(Criterion("_id", "_id", None, tuple(ids), key))
            return True
        if name == "_lastUpdated":
            self.modifiers(key, name, modifier, set())
            values = tuple(_parse_date(key, v) for v in _or_values(key, value))
            self.out.criteria.append(Criterion("_lastUpdated", "_lastUpdated", None, values, key))
            return True
        sp = self.registry.get(self.rtype, name)
        if sp is None:
            self.unknown(key, f"Unknown search parameter '{key}' for {self.rtype}")
            return False
        if sp.type in ("composite", "special") or not getattr(sp, "expression", None):
            raise _bad(key, f"Search parameter '{key}' ({sp.type}) is not supported yet", "not-supported")
        if not getattr(sp, "indexed", True):  # the indexer could not compile its expression: no rows
            raise _bad(key, f"Search parameter '{key}' is not indexed by this server", "not-supported")
        if sp.type not in _SUPPORTED_MODIFIERS:  # pragma: no cover - a registry with an odd type
            raise _bad(key, f"Search parameter '{key}' of type '{sp.type}' is not supported", "not-supported")
        type_modifier = None
        if sp.type == "reference" and modifier and _RTYPE.fullmatch(modifier):
            targets = tuple(getattr(sp, "targets", ()) or ())
            if targets and modifier not in targets:
                raise _bad(key, f"Search parameter '{key}': {modifier} is not a target type of '{name}' "
                                f"({', '.join(targets)})")
            type_modifier = modifier
        else:
            self.modifiers(key, name, modifier, _SUPPORTED_MODIFIERS[sp.type])
        raws = _or_values(key, value)
        parsed: tuple[object, ...]
        if sp.type == "token":
            parsed = tuple(_parse_token(key, v) for v in raws)
        elif sp.type == "reference":
            parsed = tuple(_parse_reference(key, v, self.out.base_url, type_modifier) for v in raws)
        elif sp.type == "string":
            parsed = tuple(StringValue(unescape(v)) for v in raws)
        elif sp.type == "date":
            parsed = tuple(_parse_date(key, v) for v in raws)
        elif sp.type == "uri":
            parsed = tuple(_parse_uri(key, v, modifier or None) for v in raws)
        elif sp.type == "number":
            parsed = tuple(_parse_number(key, v) for v in raws)
        else:
            parsed = tuple(_parse_quantity(key, v) for v in raws)
        mod = None if type_modifier else (modifier or None)
        self.out.criteria.append(Criterion(name, sp.type, mod, parsed, key))
        return True

    def modifiers(self, key: str, name: str, modifier: str, allowed: set[str]) -> None:
        if not modifier or modifier in allowed:
            return
        if modifier in _KNOWN_MODIFIERS or _RTYPE.fullmatch(modifier):
            raise _bad(key, f"Search parameter '{key}': modifier ':{modifier}' is not supported for '{name}'",
                       "not-supported")
        raise _bad(key, f"Search parameter '{key}': unknown modifier ':{modifier}'")

    def result_param(self, key: str, name: str, modifier: str, value: str) -> bool:
        """Handle the result parameters; False if ``name`` is not one."""
        out = self.out
        if name not in ("_count", "_cursor", "_summary", "_elements", "_total", "_contained"):
            return False
        if modifier:
            raise _bad(key, f"Search parameter '{key}': {name} takes no modifier")
        self.once(name, value)
        if name == "_count":
            if not value.isdigit() or len(value) > 12:
                raise _bad(key, f"Search parameter '_count' must be a non-negative integer, not '{value}'")
            count = int(value)
            if count > self.max_count:
                out.warnings.append(Issue("information", "informational",
                                          f"_count={count} exceeds the maximum; using {self.max_count}",
                                          ("_count",)))
                count = self.max_count
            out.count = count
        elif name == "_cursor":
            out.cursor = decode_cursor(value)
        elif name == "_summary":
            if value not in _SUMMARY_VALUES:
                raise _bad(key, f"Search parameter '_summary' must be one of {', '.join(sorted(_SUMMARY_VALUES))}, "
                                f"not '{value}'")
            out.summary = value
        elif name == "_total":
            if value not in _TOTAL_VALUES:
                raise _bad(key, f"Search parameter '_total' must be one of none, estimate, accurate, not '{value}'")
            out.total = value
        elif name == "_elements":
            names = [v.strip() for v in value.split(",")]
            if not value or any(not _ELEMENT.fullmatch(n) for n in names):
                raise _bad(key, f"Search parameter '_elements': invalid element list '{value}'")
            out.elements = tuple(dict.fromkeys(names))
        elif name == "_contained" and value != "false":
            raise _bad(key, f"Search parameter '_contained={value}' is not supported yet", "not-supported")
        return True

    def include(self, key: str, name: str, modifier: str, value: str) -> bool:
        if modifier in ("iterate", "recurse"):
            raise _bad(key, f"Search parameter '{key}': :{modifier} is not supported yet", "not-supported")
        if modifier:
            raise _bad(key, f"Search parameter '{key}': unknown modifier ':{modifier}'")
        parts = value.split(":")
        if value == "*" or "*" in parts:
            raise _bad(key, f"Search parameter '{name}={value}': wildcard includes are not supported yet",
                       "not-supported")
        if len(parts) not in (2, 3) or not all(parts) or not _RTYPE.fullmatch(parts[0]) or (
                len(parts) == 3 and not _RTYPE.fullmatch(parts[2])):
            raise _bad(key, f"Search parameter '{name}' must be 'Type:param' or 'Type:param:TargetType', "
                            f"not '{value}'")
        source, code = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        if name == "_include" and source != self.rtype:
            raise _bad(key, f"Search parameter '{name}={value}': the source type must be {self.rtype}")
        if name == "_revinclude" and target is not None and target != self.rtype:
            raise _bad(key, f"Search parameter '{name}={value}': the target type must be {self.rtype}")
        sp = self.registry.get(source, code)
        if sp is None:
            self.unknown(key, f"Search parameter '{name}={value}': {source} has no search parameter '{code}'")
            return False
        if sp.type != "reference":
            raise _bad(key, f"Search parameter '{name}={value}': '{code}' is not a reference parameter")
        if not getattr(sp, "indexed", True):
            raise _bad(key, f"Search parameter '{name}={value}': '{code}' is not indexed by this server",
                       "not-supported")
        targets = tuple(getattr(sp, "targets", ()) or ())
        if targets:
            wanted = target if name == "_include" else self.rtype
            if wanted is not None and wanted not in targets:
                raise _bad(key, f"Search parameter '{name}={value}': {wanted} is not a target type of "
                                f"{source}:{code} ({', '.join(targets)})")
        inc = Include(source, code, target)
        lst = self.out.includes if name == "_include" else self.out.revincludes
        if inc not in lst:
            lst.append(inc)
        return True


def parse_search(rtype: str, params: list[tuple[str, str]], registry: Any, *, base_url: str,
                 strict: bool = False, default_count: int = 20, max_count: int = 1000) -> ParsedSearch:
    """Parse and validate the search parameters of a type-level search on ``rtype``.

    ``registry`` needs ``get(rtype, code)`` returning an object with ``type``, ``expression`` and
    ``targets`` (or None). Raises :class:`FhirError` (400) for anything malformed or not supported;
    unknown parameters become warnings (``strict=False``) or a 400 (``strict=True``).
    """
    parser = _Parser(rtype, registry, base_url.rstrip("/"), strict, default_count, max_count)
    return parser.parse(list(params))
