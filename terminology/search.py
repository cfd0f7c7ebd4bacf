"""The codes behind the token search modifiers ``:in`` / ``:not-in`` (a value set's expansion) and
``:below`` / ``:above`` (a code and its descendants / ancestors), for ``fhir_server/search/parser.py``.

The parser is synchronous: it sees the store (vendored R4 terminology plus what
:func:`terminology.on_resource_saved` registered) and, when the search interaction awaited
:func:`prepare_search` first, the value sets / code systems of the database that the search names.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from terminology.db import resolver_for
from terminology.errors import TerminologyError, invalid, not_present_message
from terminology.expand import expand
from terminology.store import STORE, Resolver, split_canonical
from terminology.validate import code_system_index, unavailable

MAX_SEARCH_CODES = 10_000
"""A value set of more codes than this cannot be used with ``:in`` / ``:not-in`` (400)."""
MODIFIERS = ("in", "not-in", "above", "below")

_RESOLVER: ContextVar[Resolver | None] = ContextVar("terminology_search_resolver", default=None)

__all__ = ["MODIFIERS", "MAX_SEARCH_CODES", "TerminologyError", "codes_for", "prepare_search"]


def _resolver() -> Resolver:
    return _RESOLVER.get() or STORE


def codes_in(valueset: str) -> list[tuple[str, str]]:
    """The (system, code) pairs of value set ``valueset`` (``url[|version]``)."""
    url, version = split_canonical(valueset)
    resolver = _resolver()
    vs = resolver.get("ValueSet", url, version)
    if vs is None:
        raise invalid(f"value set {valueset} is unknown to this server")
    try:
        items = expand(resolver, vs).items
    except TerminologyError as err:
        raise invalid(f"value set {valueset} cannot be expanded: {err.message}") from None
    if len(items) > MAX_SEARCH_CODES:
        raise invalid(f"value set {valueset} has {len(items)} codes, more than the {MAX_SEARCH_CODES} a search "
                      "can use")
    return [(i.system, i.code) for i in items]


def codes_related(system: str | None, code: str | None, modifier: str) -> list[tuple[str, str]]:
    """``:below``: the code and its descendants; ``:above``: the code and its ancestors (is-a)."""
    if not system or not code:
        raise invalid(f":{modifier} takes 'system|code' (both required)")
    resolver = _resolver()
    idx = code_system_index(resolver, system)
    if idx is None or not idx.present:
        raise invalid(f"the {unavailable(resolver, system)}" if idx is None else not_present_message(system))
    entry = idx.get(code)
    if entry is None:
        raise invalid(f"code '{code}' is not in code system {system}")
    related = idx.descendants(entry.code) if modifier == "below" else idx.ancestors(entry.code)
    return [(system, c) for c in (entry.code, *related)]


def codes_for(modifier: str, value: str, system: str | None = None) -> list[tuple[str, str]]:
    """The codes a ``:modifier`` value stands for; :class:`TerminologyError` (400) when it cannot be known.
    ``value`` is the value set url (``in`` / ``not-in``) or the code (``above`` / ``below``)."""
    if modifier in ("in", "not-in"):
        return codes_in(value)
    return codes_related(system, value, modifier)


async def prepare_search(svc: Any, params: list[tuple[str, str]]) -> None:
    """Read the database's value sets / code systems that the ``:in`` / ``:not-in`` / ``:above`` / ``:below``
    parameters of a search name, for the parser that runs next in the same task. (To be awaited by the
    search interaction before ``parse_search``; without it only the store is seen.)"""
    roots: list[tuple[str, str]] = []
    for key, value in params:
        modifier = key.rpartition(":")[2] if ":" in key else ""
        if modifier in ("in", "not-in"):
            roots += [("ValueSet", split_canonical(v)[0]) for v in value.split(",") if v]
        elif modifier in ("above", "below"):
            roots += [("CodeSystem", v.partition("|")[0]) for v in value.split(",") if "|" in v]
    _RESOLVER.set(await resolver_for(svc, roots) if roots else None)
