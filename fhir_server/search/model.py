"""The parsed form of a FHIR search: what :func:`parse_search` produces and the compiler consumes.

Every value is parsed and validated when the search is parsed, so compiling never fails on user
input; the compiler only turns these objects into SQL with bound parameters.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from fhir_server.outcome import FhirError, Issue

# Prefixes of ordered types (date, number, quantity, _lastUpdated); "eq" is the default.
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")

# Parameters that shape the result rather than select resources: never kept as criteria.
PAGING_PARAMS = ("_count", "_cursor")


@dataclass(frozen=True, slots=True)
class TokenValue:
    """``code`` (any system), ``system|code``, ``|code`` (no system), ``system|`` (any code)."""

    system: str | None  # None: no constraint on the system (unless no_system)
    code: str | None  # None: any code
    no_system: bool = False  # ``|code``: the row must have no system


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """``kind`` 'local' (type + id), 'id' (any target type) or 'url' (absolute / unresolvable)."""

    kind: str
    type: str | None = None
    id: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class StringValue:
    value: str  # the user's value, unescaped (normalised by the compiler for default/contains)


@dataclass(frozen=True, slots=True)
class TextValue:
    """A ``_text`` / ``_content`` alternative: normalised words (``indexing.text.query_words``), all of
    which must occur, each as a word or the start of a word."""

    words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UriValue:
    value: str
    above: tuple[str, ...] = ()  # for :above, every URI that is a prefix (by path segment) of value


@dataclass(frozen=True, slots=True)
class RangeValue:
    """A date (µs since epoch) or number search value: prefix plus the implicit inclusive range.

    For numbers ``low``/``high`` is the half-open implicit range [low, high) of the value's precision
    and ``value`` the number itself; for dates it is the inclusive range from ``parse_date_range``.
    """

    prefix: str
    low: int | float
    high: int | float
    value: int | float | None = None


@dataclass(frozen=True, slots=True)
class QuantityValue:
    number: RangeValue
    system: str | None  # None: any system
    code: str | None  # None: any code/unit


@dataclass(frozen=True, slots=True)
class Criterion:
    """One occurrence of a search parameter: its values are OR-ed; criteria are AND-ed.

    ``type`` is the search-parameter type ('token', 'reference', 'string', 'date', 'uri', 'number',
    'quantity'), one of the resource-column pseudo types '_id' / '_lastUpdated', or a structural kind:

    * ``chain``: ``values`` are :class:`ChainTarget` (OR-ed), ``param`` the reference parameter;
    * ``has``: ``values`` is one :class:`HasValue`;
    * ``composite``: ``values`` are tuples of component :class:`Criterion` (AND-ed inside, OR-ed
      between); the SQL is a pre-filter, the exact same-element match is a post-filter;
    * ``compartment``: ``values`` is one :class:`CompartmentValue`;
    * ``text``: ``_text`` / ``_content`` (the ``param``), ``values`` are :class:`TextValue` (OR-ed).

    A reference ``:identifier`` criterion is a ``token`` criterion whose ``param`` is
    ``<param>:identifier`` (the ``idx_token`` rows of Reference.identifier).

    ``modifier`` ``missing`` carries ``values == (True,)`` or ``(False,)``; ``not`` and ``text`` (token)
    negate / match on the display text.
    """

    param: str
    type: str
    modifier: str | None
    values: tuple[object, ...]
    name: str  # the parameter as given (with modifier), for messages


@dataclass(frozen=True, slots=True)
class ChainTarget:
    """Target types of a chained reference (those for which the chained criterion parses the same)
    and the criterion the target must meet."""

    target_types: tuple[str, ...]
    criterion: Criterion


@dataclass(frozen=True, slots=True)
class HasValue:
    """``_has:source_type:ref_param:...``: some ``source_type`` resource whose ``ref_param`` points at
    the searched resource meets ``criterion``."""

    source_type: str
    ref_param: str
    criterion: Criterion


@dataclass(frozen=True, slots=True)
class CompartmentValue:
    """Membership of a compartment (``Patient/x``): any of the (type, params) reference parameters
    points at ``ctype/cid``; the compartment's own resource is a member too."""

    ctype: str
    cid: str
    params: tuple[tuple[str, tuple[str, ...]], ...]  # (resource type, reference parameter codes)


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ``_sort`` key: ``param`` (``_id``, ``_lastUpdated`` or a parameter of ``type``), descending?"""

    param: str
    type: str
    desc: bool


@dataclass(frozen=True, slots=True)
class Include:
    """``_include=source:param[:target]`` or ``_revinclude=source:param[:target]`` (``:iterate``)."""

    source_type: str
    param: str
    target_type: str | None = None
    iterate: bool = False


@dataclass(frozen=True, slots=True)
class Cursor:
    """A keyset position: the sort values and rkey of a row; pages go ``after`` it (or ``before`` it
    for a previous link)."""

    rkey: int
    values: tuple[object, ...] = ()
    before: bool = False


@dataclass(frozen=True)
class Visibility:
    """What an authorized caller may find (issue 7, ``auth.policy``): for each resource type, ``patients(t)``
    is None (every resource of ``t``), ``()`` (none) or the ids of the patients whose Patient compartment
    members of ``t`` are visible. ``registry`` knows each type's compartment reference parameters. The compiler
    adds the condition to the searched resources and to every resource a chain or ``_has`` looks through,
    so those can only narrow what the caller sees."""

    patients: Callable[[str], tuple[str, ...] | None]
    registry: Any


@dataclass
class ParsedSearch:
    rtype: str
    base_url: str
    criteria: list[Criterion] = field(default_factory=list)
    count: int = 20
    cursor: Cursor | None = None
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    summary: str | None = None  # true | text | data | count | false
    elements: tuple[str, ...] | None = None
    total: str | None = None  # none | estimate | accurate
    params: list[tuple[str, str]] = field(default_factory=list)  # the parameters used (ignored ones dropped)
    sort: tuple[SortKey, ...] = ()
    #: Python checks every page row must also pass (composite same-element, :of-type); see postfilter.py
    post_filters: list[Callable[[dict[str, Any]], bool]] = field(default_factory=list)
    #: resource types a multi-type search (compartment ``*``) covers; None: just ``rtype``
    types: tuple[str, ...] | None = None
    #: what an authorized caller may see (None: everything)
    visibility: Visibility | None = None

    def _base_params(self) -> list[tuple[str, str]]:
        out = [(k, v) for k, v in self.params if k not in PAGING_PARAMS]
        out.append(("_count", str(self.count)))
        return out

    def self_link_params(self) -> list[tuple[str, str]]:
        """The parameters of this page's ``self`` link: those used, with the effective ``_count``."""
        out = self._base_params()
        if self.cursor is not None:
            out.append(("_cursor", encode_cursor(self.cursor)))
        return out

    def next_link_params(self, last: int | Cursor) -> list[tuple[str, str]]:
        """The parameters of the ``next`` link, given the last entry of this page (rkey or Cursor)."""
        out = self._base_params()
        out.append(("_cursor", encode_cursor(last)))
        return out

    def previous_link_params(self, first: Cursor) -> list[tuple[str, str]]:
        """The parameters of the ``previous`` link, given the first entry of this page."""
        out = self._base_params()
        out.append(("_cursor", encode_cursor(Cursor(first.rkey, first.values, before=True))))
        return out

    def first_link_params(self) -> list[tuple[str, str]]:
        """The parameters of the ``first`` link (no cursor)."""
        return self._base_params()


_CURSOR_TAG = "k1."
_CURSOR_TAG2 = "k2."


def encode_cursor(pos: int | Cursor) -> str:
    """An opaque, URL-safe cursor: an rkey (meaning 'after rkey') or a :class:`Cursor`."""
    if isinstance(pos, Cursor) and (pos.values or pos.before):
        raw = _CURSOR_TAG2 + orjson.dumps([int(pos.before), pos.rkey, list(pos.values)]).decode()
    else:
        rkey = pos.rkey if isinstance(pos, Cursor) else pos
        raw = f"{_CURSOR_TAG}{int(rkey)}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _bad_cursor(token: str) -> FhirError:
    return FhirError.of(400, "invalid", f"Invalid _cursor value '{token[:100]}' (use the links of a previous page)",
                        "_cursor")


def decode_cursor(token: str) -> Cursor:
    """The position of a cursor made by :func:`encode_cursor`; 400 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raw = ""
    if raw.startswith(_CURSOR_TAG2):
        try:
            before, rkey, values = orjson.loads(raw[len(_CURSOR_TAG2):])
        except (orjson.JSONDecodeError, ValueError, TypeError):
            raise _bad_cursor(token) from None
        if before in (0, 1) and type(rkey) is int and 0 <= rkey < 2**63 and type(values) is list and all(
                v is None or type(v) in (str, int, float) for v in values):
            return Cursor(rkey, tuple(values), bool(before))
        raise _bad_cursor(token)
    digits = raw[len(_CURSOR_TAG):]
    if raw.startswith(_CURSOR_TAG) and digits.isascii() and digits.isdigit() and len(digits) < 20 \
            and int(digits) < 2**63:
        return Cursor(int(digits))
    raise _bad_cursor(token)


def decimal_range(d: Decimal) -> tuple[float, float]:
    """The implicit range [low, high) of a decimal at its precision (R4 search, number)."""
    exp = d.as_tuple().exponent
    assert isinstance(exp, int)
    half = Decimal(5).scaleb(exp - 1)
    return float(d - half), float(d + half)
