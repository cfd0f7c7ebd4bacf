"""Code checks against a resolver: membership of a value set (``$validate-code``), display lookup and
subsumption (``$lookup`` / ``$subsumes``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from terminology.codesystem import CodeSystemIndex, index_of
from terminology.errors import TerminologyError, not_present_message
from terminology.expand import Expansion, Item, expand
from terminology.store import Resolver
from terminology.ucum import UCUM, looks_like_ucum


@dataclass(frozen=True)
class CodeValidation:
    result: bool | None  # None: could not be checked (value set unknown, or its code system is not present offline)
    message: str  # human text, names the value set and the code
    display: str | None = None  # the code's display when known


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def display_ok(item: Item, display: str) -> bool:
    want = _norm(display)
    return any(_norm(d) == want for d in (item.display, *(v for _, _, v in item.designations)) if d)


def _coding(system: str | None, code: str) -> str:
    return f"{system}#{code}" if system else f"'{code}'"


def code_system_index(resolver: Resolver, system: str, version: str | None = None) -> CodeSystemIndex | None:
    cs = resolver.get("CodeSystem", system, version)
    return index_of(cs) if cs is not None else None


def unavailable(resolver: Resolver, system: str) -> str:
    """Why the codes of ``system`` cannot be checked here."""
    idx = code_system_index(resolver, system)
    if idx is None:
        return f"code system {system} is unknown to this server"
    if idx.present:
        return f"code system {system} is only known here as {idx.content} content (not all its codes)"
    return not_present_message(system)


def check(resolver: Resolver, vs: dict[str, Any], vs_name: str, system: str | None, code: str,
          display: str | None = None, expansion: Expansion | None = None) -> CodeValidation:
    """Is ``system#code`` in value set ``vs``? ``system`` None: any system of the value set."""
    try:
        exp = expansion if expansion is not None else expand(resolver, vs, lenient=True)
    except TerminologyError as err:
        return CodeValidation(None, f"Value set {vs_name} cannot be expanded ({err.message}): the code "
                                    f"{_coding(system, code)} could not be checked")
    item = exp.find(system, code)
    if item is not None:
        if display and not display_ok(item, display):
            return CodeValidation(True, f"The display '{display}' is not a display of code "
                                        f"{_coding(item.system, code)} (expected '{item.display}'); "
                                        f"the code is in value set {vs_name}",
                                  item.display)
        return CodeValidation(True, f"The code {_coding(item.system, code)} is in value set {vs_name}", item.display)
    open_systems = exp.open if system is None else exp.open & {system}
    if open_systems:
        s = sorted(open_systems)[0]
        if s == UCUM and not looks_like_ucum(code):
            return CodeValidation(False, f"'{code}' is not a valid UCUM expression, so not in value set {vs_name}")
        return CodeValidation(None, f"The {unavailable(resolver, s)}: the code {_coding(system or s, code)} could "
                                    f"not be checked against value set {vs_name}")
    known = None
    if system is not None:
        idx = code_system_index(resolver, system)
        if idx is not None and idx.present:
            entry = idx.get(code)
            if entry is None and idx.content == "complete":
                return CodeValidation(False, f"Unknown code {_coding(system, code)}: it is not in code system "
                                             f"{system}, so not in value set {vs_name}")
            known = entry.display if entry is not None else None
    return CodeValidation(False, f"The code {_coding(system, code)} is not in value set {vs_name}", known)


def check_in_system(resolver: Resolver, system: str, code: str, display: str | None = None,
                    version: str | None = None) -> CodeValidation:
    """Is ``code`` a code of code system ``system`` (CodeSystem/$validate-code)?"""
    idx = code_system_index(resolver, system, version)
    if system == UCUM and not looks_like_ucum(code):
        return CodeValidation(False, f"'{code}' is not a valid UCUM expression")
    if idx is None or not idx.present:
        return CodeValidation(None, f"The {unavailable(resolver, system)}: the code {_coding(system, code)} could "
                                    "not be checked")
    entry = idx.get(code)
    if entry is None:
        if idx.content != "complete":
            return CodeValidation(None, f"Code system {system} is only a {idx.content} here: the code "
                                        f"{_coding(system, code)} could not be checked")
        return CodeValidation(False, f"Unknown code {_coding(system, code)} in code system {system}")
    item = Item(system, entry.code, entry.display, designations=tuple(entry.designations))
    if display and not display_ok(item, display):
        return CodeValidation(True, f"The display '{display}' is not a display of code {_coding(system, code)} "
                                    f"(expected '{entry.display}')", entry.display)
    return CodeValidation(True, f"The code {_coding(system, code)} is in code system {system}", entry.display)
