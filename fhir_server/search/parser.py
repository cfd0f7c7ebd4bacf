"""Parse FHIR R4 search parameters (``[(name, value), ...]``) into a :class:`ParsedSearch`.

Everything the user sends is validated here; a bad value, an unsupported modifier or feature is a
400 naming the parameter. Unknown parameters are ignored with a warning (or 400 when ``strict``).

* Modifiers: ``:missing`` (all types), token ``:not`` / ``:text`` / ``:of-type``, string ``:exact`` /
  ``:contains``, uri ``:above`` / ``:below``, reference ``:[type]`` and ``:identifier`` (a token
  criterion on the ``<param>:identifier`` rows the indexer makes of Reference.identifier). Token
  ``:in`` / ``:not-in`` (a value set's codes) and ``:above`` / ``:below`` (``system|code`` and its
  ancestors / descendants) are expanded here by the ``terminology`` package into a list of codes; one it
  cannot expand (unknown, code system not present, too large) is a 400 ``not-supported``.
* ``_text`` / ``_content``: full-text criteria (``indexing/text.py``): the value's words, normalised
  like the index, every word a prefix of some word of the narrative / of the resource's strings.
* Chains ``a[:T].b[:U].c=v`` to :data:`MAX_CHAIN_DEPTH` links: without a type modifier every target
  type of the reference on which the next parameter exists is searched (target types whose chained
  criterion parses the same share one branch). ``_has:T:ref:rest=v`` nests the same way.
* Composite parameters and ``:of-type`` add a Python post-filter (``postfilter.py``); they are only
  accepted when the caller applies post-filters (``allow_post_filter``) and not inside chains.
* ``_sort`` keys: ``_id``, ``_lastUpdated`` and string/token/date/number/quantity/reference/uri
  parameters; a ``_cursor`` must carry one value of the right type per key (else 400).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from fhir_server.outcome import FhirError, Issue
from fhir_server.search.model import (
    PREFIXES,
    ChainTarget,
    CompartmentValue,
    Criterion,
    HasValue,
    Include,
    ParsedSearch,
    QuantityValue,
    RangeValue,
    ReferenceValue,
    SortKey,
    StringValue,
    TextValue,
    TokenValue,
    UriValue,
    decimal_range,
    decode_cursor,
)

# Modifiers FHIR R4 defines; the ones we do not implement yet are answered with 'not-supported'.
_KNOWN_MODIFIERS = {"missing", "exact", "contains", "text", "not", "above", "below", "in", "not-in",
                    "of-type", "identifier", "code-text", "text-advanced", "iterate", "type"}
_SUPPORTED_MODIFIERS: dict[str, set[str]] = {
    "string": {"exact", "contains", "missing"},
    "uri": {"above", "below", "missing"},
    "token": {"missing", "not", "text", "of-type", "in", "not-in", "above", "below"},
    "reference": {"missing", "identifier"},  # plus the resource-type modifier, handled separately
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
}
# Modifiers that need a terminology service or data this server does not index: a clear 400.
_NOT_SUPPORTED_MODIFIERS: dict[tuple[str, str], str] = {}
_TERMINOLOGY_MODIFIERS = ("in", "not-in", "above", "below")  # token modifiers the terminology package expands
MAX_CHAIN_DEPTH = 6  # links of a chain / nested _has
MAX_CHAIN_BRANCHES = 64  # (target type) alternatives a chain without type modifiers may fan out into
MAX_SORT_KEYS = 5
SORTABLE_TYPES = ("string", "token", "date", "number", "quantity", "reference", "uri")
# Result / control parameters handled here, and parameters the HTTP layer deals with.
_IGNORED_PARAMS = {"_format", "_pretty"}
# Standard parameters whose feature is not implemented yet.
_UNSUPPORTED_PARAMS = {"_list", "_query", "_filter", "_type", "_containedType"}
_TEXT_PARAMS = {"_text", "_content"}  # full-text search (idx_text)
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


def _parse_text(name: str, raw: str) -> TextValue:
    """A ``_text`` / ``_content`` value: its words normalised like the index (at least one)."""
    from fhir_server.indexing.text import query_words

    words = query_words(unescape(raw))
    if not words:
        raise _bad(name, f"Search parameter '{name}': '{raw}' has no word to search for (letters or digits)")
    return TextValue(tuple(words))


def _reference_identifier(full: str, name: str, sp: Any, raws: list[str]) -> Criterion:
    """``ref:identifier=[system]|value``: a token criterion on the ``<name>:identifier`` rows of
    ``idx_token`` (the Reference.identifier values the indexer stores beside the reference rows)."""
    from fhir_server.indexing.values import identifier_param

    param = identifier_param(name)
    extractors = getattr(sp, "extractors", None)  # None: a registry without compiled paths (tests)
    if param is None or (extractors is not None and not any(
            getattr(e.path, "type", None) == "Reference" for e in extractors)):
        raise _bad(full, f"Search parameter '{full}': '{name}' has no Reference.identifier values indexed "
                         "by this server", "not-supported")
    return Criterion(param, "token", None, tuple(_parse_token(full, v) for v in raws), full)


def _terminology_criterion(full: str, name: str, modifier: str, raws: list[str]) -> Criterion:
    """Token ``:in`` / ``:not-in`` (values: value set canonicals) and ``:below`` / ``:above`` (values:
    ``system|code``): a criterion whose values are every (system, code) the values stand for, OR-ed
    (``:not-in``: none of them may be present)."""
    from terminology.search import TerminologyError, codes_for

    codes: dict[TokenValue, None] = {}
    for raw in raws:
        try:
            if modifier in ("in", "not-in"):
                pairs = codes_for(modifier, unescape(raw))
            else:
                token = _parse_token(full, raw)
                pairs = codes_for(modifier, token.code or "", token.system)
        except TerminologyError as err:
            raise _bad(full, f"Search parameter '{full}': {err.message}", "not-supported") from None
        codes.update((TokenValue(system, code), None) for system, code in pairs)
    return Criterion(name, "token", modifier, tuple(codes), full)


def _parse_missing(name: str, value: str) -> bool:
    if value not in ("true", "false"):
        raise _bad(name, f"Search parameter '{name}' must be 'true' or 'false', not '{value}'")
    return value == "true"


def _parse_of_type(name: str, raw: str) -> tuple[str | None, str, str]:
    """``system|code|value`` of ``:of-type`` (the Identifier.type coding and the identifier value)."""
    parts = split_escaped(raw, "|")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise _bad(name, f"Search parameter '{name}': :of-type takes 'system|code|value' (type code and "
                         f"identifier value required), not '{raw}'")
    system, code, value = (unescape(p) for p in parts)
    return system or None, code, value


def parse_value(name: str, ptype: str, raw: str, modifier: str | None, base_url: str,
                type_modifier: str | None = None) -> object:
    """One (comma-free) value of a parameter of type ``ptype``."""
    if ptype == "token":
        return _parse_token(name, raw)
    if ptype == "reference":
        return _parse_reference(name, raw, base_url, type_modifier)
    if ptype == "string":
        return StringValue(unescape(raw))
    if ptype == "date":
        return _parse_date(name, raw)
    if ptype == "uri":
        return _parse_uri(name, raw, modifier)
    if ptype == "number":
        return _parse_number(name, raw)
    if ptype == "quantity":
        return _parse_quantity(name, raw)
    raise _bad(name, f"Search parameter '{name}' of type '{ptype}' is not supported", "not-supported")


class _Parser:
    def __init__(self, rtype: str, registry: Any, base_url: str, strict: bool, default_count: int,
                 max_count: int, allow_post_filter: bool, types: tuple[str, ...] | None = None) -> None:
        self.rtype = rtype
        self.registry = registry
        self.strict = strict
        self.max_count = max_count
        self.allow_post_filter = allow_post_filter
        self.out = ParsedSearch(rtype=rtype, base_url=base_url, count=min(default_count, max_count), types=types)
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

    def known_type(self, name: str) -> bool:
        return bool(_RTYPE.fullmatch(name)) and bool(self.registry.params_for(name))

    # -- main ----------------------------------------------------------------------------------
    def parse(self, params: list[tuple[str, str]]) -> ParsedSearch:
        for key, value in params:
            if self.handle(key, value):
                self.out.params.append((key, value))
        self.check_cursor()
        return self.out

    def handle(self, key: str, value: str) -> bool:
        """Process one parameter; False when it is ignored (and must not appear in links)."""
        name, _, modifier = key.partition(":")
        if name in _IGNORED_PARAMS:
            return True
        if name in ("_include", "_revinclude"):
            return self.include(key, name, modifier, value)
        if name == "_sort":
            return self.sort(key, modifier, value)
        if name.startswith("_") and name != "_has" and self.result_param(key, name, modifier, value):
            return True
        if self.out.types is not None and not key.startswith(("_id", "_lastUpdated")):
            raise _bad(key, f"Search parameter '{key}': a search across all compartment types only takes "
                            "_id, _lastUpdated and result parameters", "not-supported")
        crit = self.criterion(self.rtype, key, value, key, 0)
        if crit is None:
            return False
        self.out.criteria.append(crit)
        return True

    def criterion(self, rtype: str, key: str, value: str, full: str, depth: int) -> Criterion | None:
        """The criterion of ``key=value`` on ``rtype`` (``full`` is the parameter as the client gave it,
        for messages); None when it is unknown and ignored."""
        if depth > MAX_CHAIN_DEPTH:
            raise _bad(full, f"Search parameter '{full}': chains / _has may be at most {MAX_CHAIN_DEPTH} deep")
        if key == "_has" or key.startswith("_has:"):
            return self.has(rtype, key, value, full, depth)
        if "." in key:
            return self.chain(rtype, key, value, full, depth)
        name, _, modifier = key.partition(":")
        if name in _UNSUPPORTED_PARAMS:
            raise _bad(full, f"Search parameter '{full}' is not supported yet", "not-supported")
        if name in _TEXT_PARAMS:
            self.modifiers(full, name, modifier, set())
            return Criterion(name, "text", None, tuple(_parse_text(full, v) for v in _or_values(full, value)), full)
        if name == "_id":
            self.modifiers(full, name, modifier, set())
            ids = [unescape(v) for v in _or_values(full, value)]
            return Criterion("_id", "_id", None, tuple(ids), full)
        if name == "_lastUpdated":
            self.modifiers(full, name, modifier, set())
            values = tuple(_parse_date(full, v) for v in _or_values(full, value))
            return Criterion("_lastUpdated", "_lastUpdated", None, values, full)
        if name.startswith("_") and self.registry.get(rtype, name) is None and name in (
                "_count", "_cursor", "_summary", "_elements", "_total", "_contained", "_sort", "_include",
                "_revinclude"):
            raise _bad(full, f"Search parameter '{full}': {name} is not a criterion here")
        sp = self.registry.get(rtype, name)
        if sp is None:
            self.unknown(full, f"Unknown search parameter '{full}' for {rtype}")
            return None
        if sp.type == "composite":
            return self.composite(rtype, sp, modifier, value, full, depth)
        if sp.type == "special" or not getattr(sp, "expression", None):
            raise _bad(full, f"Search parameter '{full}' ({sp.type}) is not supported yet", "not-supported")
        if not getattr(sp, "indexed", True):  # the indexer could not compile its expression: no rows
            raise _bad(full, f"Search parameter '{full}' is not indexed by this server", "not-supported")
        if sp.type not in _SUPPORTED_MODIFIERS:  # pragma: no cover - a registry with an odd type
            raise _bad(full, f"Search parameter '{full}' of type '{sp.type}' is not supported", "not-supported")
        type_modifier = None
        if sp.type == "reference" and modifier and _RTYPE.fullmatch(modifier):
            targets = tuple(getattr(sp, "targets", ()) or ())
            if targets and modifier not in targets:
                raise _bad(full, f"Search parameter '{full}': {modifier} is not a target type of '{name}' "
                                 f"({', '.join(targets)})")
            type_modifier = modifier
        else:
            self.modifiers(full, name, modifier, _SUPPORTED_MODIFIERS[sp.type], sp.type)
        if modifier == "missing":
            return Criterion(name, sp.type, "missing", (_parse_missing(full, value),), full)
        raws = _or_values(full, value)
        if modifier == "identifier":
            return _reference_identifier(full, name, sp, raws)
        mod = None if type_modifier else (modifier or None)
        if mod == "text":
            return Criterion(name, sp.type, "text", tuple(StringValue(unescape(v)) for v in raws), full)
        if mod == "of-type":
            triples = tuple(_parse_of_type(full, v) for v in raws)
            self.post_filter_allowed(full, ":of-type", depth)
            from fhir_server.search.postfilter import of_type_filter

            self.out.post_filters.append(of_type_filter(sp, triples))
            return Criterion(name, "token", None, tuple(TokenValue(None, t[2]) for t in triples), full)
        if sp.type == "token" and mod in _TERMINOLOGY_MODIFIERS:
            return _terminology_criterion(full, name, mod, raws)
        parsed = tuple(parse_value(full, sp.type, v, mod, self.out.base_url, type_modifier) for v in raws)
        return Criterion(name, sp.type, mod, parsed, full)

    def modifiers(self, key: str, name: str, modifier: str, allowed: set[str], ptype: str = "") -> None:
        if not modifier or modifier in allowed:
            return
        why = _NOT_SUPPORTED_MODIFIERS.get((ptype, modifier))
        if why:
            raise _bad(key, f"Search parameter '{key}': modifier ':{modifier}' {why}", "not-supported")
        if modifier in _KNOWN_MODIFIERS or _RTYPE.fullmatch(modifier):
            raise _bad(key, f"Search parameter '{key}': modifier ':{modifier}' is not supported for '{name}'",
                       "not-supported")
        raise _bad(key, f"Search parameter '{key}': unknown modifier ':{modifier}'")

    def post_filter_allowed(self, full: str, what: str, depth: int) -> None:
        """Post-filtered criteria (checked in Python on the candidate's body) only work at the top level of
        a search the caller post-filters (the search interaction does; conditional requests do not)."""
        if depth:
            raise _bad(full, f"Search parameter '{full}': {what} are not supported inside a chain or _has",
                       "not-supported")
        if not self.allow_post_filter:
            raise _bad(full, f"Search parameter '{full}': {what} are not supported in conditional requests",
                       "not-supported")

    # -- chains, _has, composites --------------------------------------------------------------
    def chain(self, rtype: str, key: str, value: str, full: str, depth: int) -> Criterion | None:
        head, _, tail = key.partition(".")
        name, _, modifier = head.partition(":")
        if not tail:
            raise _bad(full, f"Search parameter '{full}': nothing after '.' in the chain")
        sp = self.registry.get(rtype, name)
        if sp is None:
            self.unknown(full, f"Unknown search parameter '{name}' for {rtype} in chain '{full}'")
            return None
        if sp.type != "reference":
            raise _bad(full, f"Search parameter '{full}': '{name}' is a {sp.type} parameter; only reference "
                             "parameters can be chained")
        if not getattr(sp, "indexed", True):
            raise _bad(full, f"Search parameter '{full}': '{name}' is not indexed by this server", "not-supported")
        targets = tuple(getattr(sp, "targets", ()) or ())
        if modifier:
            if not _RTYPE.fullmatch(modifier):
                raise _bad(full, f"Search parameter '{full}': only a resource type modifier may precede '.' in a "
                                 f"chain, not ':{modifier}'")
            if targets and modifier not in targets:
                raise _bad(full, f"Search parameter '{full}': {modifier} is not a target type of '{name}' "
                                 f"({', '.join(targets)})")
            if not self.known_type(modifier):
                raise _bad(full, f"Search parameter '{full}': unknown resource type '{modifier}'")
            targets = (modifier,)
        elif not targets:
            raise _bad(full, f"Search parameter '{full}': '{name}' may point at any type; give it as "
                             f"'{name}:[type].{tail}'")
        first = tail.partition(".")[0].partition(":")[0]
        grouped: dict[Criterion, list[str]] = {}  # target types whose chained criterion is the same
        for t in targets:
            if not (first in ("_id", "_lastUpdated", "_has") or self.registry.get(t, first) is not None):
                continue  # the chained parameter does not exist on this target type
            crit = self.criterion(t, tail, value, full, depth + 1)
            if crit is None:
                return None
            grouped.setdefault(crit, []).append(t)
        branches = [ChainTarget(tuple(ts), crit) for crit, ts in grouped.items()]
        if not branches:
            self.unknown(full, f"Search parameter '{full}': '{first}' is not a search parameter of "
                               f"{' or '.join(targets)}")
            return None
        if _branch_count(branches) > MAX_CHAIN_BRANCHES:
            raise _bad(full, f"Search parameter '{full}': the chain fans out over too many target types; "
                             "add type modifiers ('subject:Patient.name')")
        return Criterion(name, "chain", None, tuple(branches), full)

    def has(self, rtype: str, key: str, value: str, full: str, depth: int) -> Criterion | None:
        parts = key.split(":", 3)
        if len(parts) != 4 or not all(parts):
            raise _bad(full, f"Search parameter '{full}': _has takes '_has:Type:reference-param:param=value'")
        _, source, ref, rest = parts
        if not self.known_type(source):
            raise _bad(full, f"Search parameter '{full}': unknown resource type '{source}'")
        sp = self.registry.get(source, ref)
        if sp is None:
            self.unknown(full, f"Search parameter '{full}': {source} has no search parameter '{ref}'")
            return None
        if sp.type != "reference":
            raise _bad(full, f"Search parameter '{full}': '{ref}' of {source} is not a reference parameter")
        if not getattr(sp, "indexed", True):
            raise _bad(full, f"Search parameter '{full}': '{ref}' is not indexed by this server", "not-supported")
        targets = tuple(getattr(sp, "targets", ()) or ())
        if targets and rtype not in targets:
            raise _bad(full, f"Search parameter '{full}': {source}.{ref} cannot point at {rtype} "
                             f"({', '.join(targets)})")
        crit = self.criterion(source, rest, value, full, depth + 1)
        if crit is None:
            return None
        return Criterion(ref, "has", None, (HasValue(source, ref, crit),), full)

    def composite(self, rtype: str, sp: Any, modifier: str, value: str, full: str, depth: int) -> Criterion:
        if modifier:
            raise _bad(full, f"Search parameter '{full}': a composite parameter takes no modifier",
                       "not-supported" if modifier in _KNOWN_MODIFIERS else "invalid")
        from fhir_server.search.postfilter import CompositePlan

        plan = CompositePlan.of(self.registry, rtype, sp)
        if plan is None:
            raise _bad(full, f"Search parameter '{full}' (composite) cannot be evaluated by this server",
                       "not-supported")
        alternatives = []
        for raw in _or_values(full, value):
            pieces = split_escaped(raw, "$")
            if len(pieces) != len(plan.components):
                raise _bad(full, f"Search parameter '{full}': expected {len(plan.components)} '$'-separated "
                                 f"parts, not '{raw}'")
            alternatives.append(tuple(parse_value(full, c.type, piece, None, self.out.base_url)
                                      for c, piece in zip(plan.components, pieces, strict=True)))
        self.post_filter_allowed(full, "composite parameters", depth)
        self.out.post_filters.append(plan.filter(alternatives, self.out.base_url))
        prefilters = tuple(
            tuple(Criterion(c.code, c.type, None, (v,), full) for c, v in zip(plan.components, alt, strict=True)
                  if c.code is not None)
            for alt in alternatives)
        return Criterion(sp.code, "composite", None, prefilters, full)

    # -- result parameters ---------------------------------------------------------------------
    def sort(self, key: str, modifier: str, value: str) -> bool:
        if modifier:
            raise _bad(key, f"Search parameter '{key}': _sort takes no modifier (use '-param' for descending)")
        self.once("_sort", value)
        keys: list[SortKey] = []
        for item in value.split(","):
            desc = item.startswith("-")
            code = item[1:] if desc else item
            if not code:
                raise _bad(key, f"Search parameter '_sort': empty sort key in '{value}'")
            if code in ("_id", "_lastUpdated"):
                keys.append(SortKey(code, code, desc))
                continue
            if self.out.types is not None:
                raise _bad(key, f"Search parameter '_sort={value}': a search across compartment types sorts by "
                                "_id or _lastUpdated only", "not-supported")
            sp = self.registry.get(self.rtype, code)
            if sp is None:
                self.unknown(key, f"Search parameter '_sort': unknown search parameter '{code}' for {self.rtype}")
                continue
            if sp.type not in SORTABLE_TYPES:
                raise _bad(key, f"Search parameter '_sort': cannot sort by '{code}' ({sp.type})", "not-supported")
            if not getattr(sp, "indexed", True) or not getattr(sp, "expression", None):
                raise _bad(key, f"Search parameter '_sort': '{code}' is not indexed by this server", "not-supported")
            keys.append(SortKey(code, sp.type, desc))
        if len(keys) > MAX_SORT_KEYS:
            raise _bad(key, f"Search parameter '_sort': at most {MAX_SORT_KEYS} sort keys")
        if len({k.param for k in keys}) != len(keys):
            raise _bad(key, f"Search parameter '_sort': a key is repeated in '{value}'")
        self.out.sort = tuple(keys)
        return bool(keys)

    def check_cursor(self) -> None:
        """A cursor must carry one value of the right JSON type per sort key (it is bound into SQL)."""
        c = self.out.cursor
        if c is None:
            return
        if len(c.values) != len(self.out.sort):
            raise _bad("_cursor", "Invalid _cursor value: it does not belong to this _sort "
                                  "(use the links of a previous page)")
        for k, v in zip(self.out.sort, c.values, strict=True):
            want: tuple[type, ...]
            if k.type in ("_lastUpdated", "date"):
                want = (int,)
            elif k.type in ("number", "quantity"):
                want = (int, float)
            else:
                want = (str,)
            if (v is None and k.type in ("_id", "_lastUpdated")) or (v is not None and type(v) not in want):
                raise _bad("_cursor", "Invalid _cursor value: it does not belong to this _sort "
                                      "(use the links of a previous page)")

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

    # -- _include / _revinclude ----------------------------------------------------------------
    def include(self, key: str, name: str, modifier: str, value: str) -> bool:
        if modifier and modifier not in ("iterate", "recurse"):  # :recurse is the STU3 name of :iterate
            raise _bad(key, f"Search parameter '{key}': unknown modifier ':{modifier}'")
        iterate = bool(modifier)
        searched = self.out.types or (self.rtype,)
        if value == "*":
            if name == "_revinclude":
                raise _bad(key, f"Search parameter '{key}=*': use '_revinclude=Type:*' (a wildcard source type "
                                "is not supported)", "not-supported")
            added = False
            for t in searched:
                added |= self.include_all(key, name, t, None, iterate)
            return added
        parts = value.split(":")
        if len(parts) not in (2, 3) or not all(parts) or not _RTYPE.fullmatch(parts[0]) or (
                len(parts) == 3 and not _RTYPE.fullmatch(parts[2])):
            raise _bad(key, f"Search parameter '{name}' must be 'Type:param', 'Type:param:TargetType' or "
                            f"'Type:*', not '{value}'")
        source, code = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        if name == "_include" and not iterate and source not in searched:
            raise _bad(key, f"Search parameter '{name}={value}': the source type must be {self.rtype}"
                            " (or use _include:iterate)")
        if name == "_revinclude" and not iterate and target is not None and target not in searched:
            raise _bad(key, f"Search parameter '{name}={value}': the target type must be {self.rtype}")
        if code == "*":
            if target is not None:
                raise _bad(key, f"Search parameter '{name}={value}': 'Type:*' takes no target type")
            return self.include_all(key, name, source, None, iterate)
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
            if name == "_include":
                wanted = target
            else:
                wanted = target if iterate else self.rtype if self.out.types is None else None
            if wanted is not None and wanted not in targets:
                raise _bad(key, f"Search parameter '{name}={value}': {wanted} is not a target type of "
                                f"{source}:{code} ({', '.join(targets)})")
        self.add_include(name, Include(source, code, target, iterate))
        return True

    def include_all(self, key: str, name: str, source: str, target: str | None, iterate: bool) -> bool:
        """``Type:*``: every indexed reference parameter of ``source`` (for _revinclude: those that can
        point at the searched type)."""
        if not self.known_type(source):
            self.unknown(key, f"Search parameter '{name}': unknown resource type '{source}'")
            return False
        added = False
        for code, sp in sorted(self.registry.params_for(source).items()):
            if sp.type != "reference" or not getattr(sp, "indexed", True) or not getattr(sp, "expression", None):
                continue
            targets = tuple(getattr(sp, "targets", ()) or ())
            if name == "_revinclude" and not iterate and targets and not (
                    set(targets) & set(self.out.types or (self.rtype,))):
                continue
            self.add_include(name, Include(source, code, target, iterate))
            added = True
        return added

    def add_include(self, name: str, inc: Include) -> None:
        lst = self.out.includes if name == "_include" else self.out.revincludes
        if inc not in lst:
            lst.append(inc)


def _branch_count(branches: list[ChainTarget]) -> int:
    n = 0
    for b in branches:
        c = b.criterion
        n += _branch_count(list(c.values)) if c.type == "chain" else 1  # type: ignore[arg-type]
    return n


def parse_search(rtype: str, params: list[tuple[str, str]], registry: Any, *, base_url: str,
                 strict: bool = False, default_count: int = 20, max_count: int = 1000,
                 allow_post_filter: bool = False) -> ParsedSearch:
    """Parse and validate the search parameters of a type-level search on ``rtype``.

    ``registry`` needs ``get(rtype, code)`` and ``params_for(rtype)``, parameters having ``type``,
    ``expression`` and ``targets``. Raises :class:`FhirError` (400) for anything malformed or not
    supported; unknown parameters become warnings (``strict=False``) or a 400 (``strict=True``).

    ``allow_post_filter``: the caller applies ``ParsedSearch.post_filters`` to every candidate row
    (composite parameters and ``:of-type`` need it); without it those parameters are a 400.
    """
    parser = _Parser(rtype, registry, base_url.rstrip("/"), strict, default_count, max_count, allow_post_filter)
    return parser.parse(list(params))


def parse_compartment_search(ctype: str, cid: str, target: str, params: list[tuple[str, str]], registry: Any, *,
                             base_url: str, compartment: dict[str, Any], strict: bool = False,
                             default_count: int = 20, max_count: int = 1000) -> ParsedSearch:
    """A compartment search ``[ctype]/[cid]/[target]`` (``target`` a type or ``*``) per the
    CompartmentDefinition ``compartment``: a resource is in ``ctype/cid``'s compartment when any of the
    reference parameters listed for its type points at ``ctype/cid``; ``ctype/cid`` itself is too."""
    if not _ID.fullmatch(cid):
        raise _bad("id", f"Invalid {ctype} id '{cid[:64]}'")
    members: dict[str, tuple[str, ...]] = {}
    for entry in compartment.get("resource") or ():
        codes = []
        for code in entry.get("param") or ():
            sp = registry.get(entry["code"], code)
            if sp is not None and sp.type == "reference" and getattr(sp, "indexed", True):
                codes.append(code)
        if codes or entry["code"] == ctype:
            members[entry["code"]] = tuple(codes)
    if target == "*":
        types = tuple(sorted(members))
        rtype = ctype
    else:
        if target not in members:
            raise _bad(target, f"{target} is not in the {ctype} compartment", "not-supported")
        types, rtype = None, target
    pairs = tuple((t, members[t]) for t in (types or (target,)) if members[t])
    parser = _Parser(rtype, registry, base_url.rstrip("/"), strict, default_count, max_count, True,
                     types=types)
    out = parser.parse(list(params))
    self_member = ctype in (types or (target,))
    out.criteria.insert(0, Criterion(ctype, "compartment", "self" if self_member else None,
                                     (CompartmentValue(ctype, cid, pairs),), f"{ctype}/{cid}"))
    return out
