"""The parsed form of a FHIR search: what :func:`parse_search` produces and the compiler consumes.

Every value is parsed and validated when the search is parsed, so compiling never fails on user
input; the compiler only turns these objects into SQL with bound parameters.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from decimal import Decimal

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
    'quantity') or one of the resource-column pseudo types '_id' / '_lastUpdated'.
    """

    param: str
    type: str
    modifier: str | None
    values: tuple[object, ...]
    name: str  # the parameter as given (with modifier), for messages


@dataclass(frozen=True, slots=True)
class Include:
    """``_include=source:param[:target]`` or ``_revinclude=source:param[:target]``."""

    source_type: str
    param: str
    target_type: str | None = None
    iterate: bool = False  # reserved: :iterate is rejected in this version


@dataclass
class ParsedSearch:
    rtype: str
    base_url: str
    criteria: list[Criterion] = field(default_factory=list)
    count: int = 20
    cursor: int | None = None  # rkey to start after
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    summary: str | None = None  # true | text | data | count | false
    elements: tuple[str, ...] | None = None
    total: str | None = None  # none | estimate | accurate
    params: list[tuple[str, str]] = field(default_factory=list)  # the parameters used (ignored ones dropped)

    def self_link_params(self) -> list[tuple[str, str]]:
        """The parameters of this page's ``self`` link: those used, with the effective ``_count``."""
        out = [(k, v) for k, v in self.params if k not in PAGING_PARAMS]
        out.append(("_count", str(self.count)))
        if self.cursor is not None:
            out.append(("_cursor", encode_cursor(self.cursor)))
        return out

    def next_link_params(self, last_rkey: int) -> list[tuple[str, str]]:
        """The parameters of the ``next`` link, given the rkey of the last entry of this page."""
        out = [(k, v) for k, v in self.params if k not in PAGING_PARAMS]
        out.append(("_count", str(self.count)))
        out.append(("_cursor", encode_cursor(last_rkey)))
        return out

    def first_link_params(self) -> list[tuple[str, str]]:
        """The parameters of the ``first`` link (no cursor)."""
        out = [(k, v) for k, v in self.params if k not in PAGING_PARAMS]
        out.append(("_count", str(self.count)))
        return out


_CURSOR_TAG = "k1."


def encode_cursor(rkey: int) -> str:
    """An opaque, URL-safe cursor meaning 'after rkey'."""
    return base64.urlsafe_b64encode(f"{_CURSOR_TAG}{int(rkey)}".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> int:
    """The rkey of a cursor made by :func:`encode_cursor`; 400 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raw = ""
    digits = raw[len(_CURSOR_TAG):]
    if raw.startswith(_CURSOR_TAG) and digits.isascii() and digits.isdigit() and len(digits) < 20 \
            and int(digits) < 2**63:
        return int(digits)
    raise FhirError.of(400, "invalid", f"Invalid _cursor value '{token}' (use the links of a previous page)",
                       "_cursor")


def decimal_range(d: Decimal) -> tuple[float, float]:
    """The implicit range [low, high) of a decimal at its precision (R4 search, number)."""
    exp = d.as_tuple().exponent
    assert isinstance(exp, int)
    half = Decimal(5).scaleb(exp - 1)
    return float(d - half), float(d + half)
