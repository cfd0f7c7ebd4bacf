"""Terminology bindings (``ElementDefinition.binding``) checked through the terminology service.

Uses ``terminology.validate_code(valueset, *, system=..., code=..., display=None) -> CodeValidation`` (result
``True``/``False``/``None`` = could not be checked, ``message``). When the ``terminology`` package (or its
``validate_code``) is not installed, bindings are not checked at all (``available()`` is False).

* ``required``: a code not in the value set is an error (``code-invalid``); for a CodeableConcept, one coding in the
  value set is enough.
* ``extensible``: a code not in the value set is a warning (``code-invalid``).
* ``preferred`` / ``example``: not checked.
* a result of ``None`` (could not be checked) gives a warning (required) or information (extensible) issue carrying
  the terminology service's message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["available", "check_binding", "set_validate_code"]

_validate_code: Callable[..., Any] | None = None
_loaded = False


def _load() -> Callable[..., Any] | None:
    global _validate_code, _loaded
    if not _loaded:
        try:
            from terminology import validate_code  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - missing package or attribute: bindings are not checked
            validate_code = None
        _validate_code = validate_code
        _loaded = True
    return _validate_code


def set_validate_code(fn: Callable[..., Any] | None) -> None:
    """Use ``fn`` instead of ``terminology.validate_code`` (tests); ``None`` goes back to the import."""
    global _validate_code, _loaded
    _validate_code, _loaded = fn, fn is not None


def available() -> bool:
    return _load() is not None


def _codings(code_type: str, value: Any) -> list[tuple[str | None, str | None, str | None]]:
    if code_type == "code":
        return [(None, value, None)] if isinstance(value, str) else []
    if not isinstance(value, dict):
        return []
    if code_type in ("Coding",):
        return [(value.get("system"), value.get("code"), value.get("display"))] if value.get("code") else []
    if code_type in ("Quantity", "SimpleQuantity", "Duration", "Age", "Distance", "Count", "MoneyQuantity"):
        return [(value.get("system"), value.get("code"), None)] if value.get("code") else []
    if code_type == "CodeableConcept":
        return [(c.get("system"), c.get("code"), c.get("display")) for c in value.get("coding", [])
                if isinstance(c, dict) and c.get("code")]
    return []


def check_binding(binding: dict[str, Any], code_type: str, value: Any) -> list[tuple[str, str, str]]:
    """(severity, issue code, message) problems of ``value`` (of type ``code_type``) against ``binding``."""
    strength = binding.get("strength")
    vs = binding.get("valueSet")
    if strength not in ("required", "extensible") or not vs:
        return []
    fn = _load()
    if fn is None:
        return []
    codings = _codings(code_type, value)
    if not codings:
        return []
    results = []
    for system, code, display in codings:
        try:
            r = fn(vs, system=system, code=code, display=display)
        except Exception as e:  # noqa: BLE001 - a terminology failure must not fail validation
            results.append((None, f"terminology error: {type(e).__name__}: {e}", code))
            continue
        if r.result is True:
            return []  # one coding in the value set is enough
        results.append((r.result, r.message, code))
    shown = ", ".join(repr(c) for _, _, c in results[:3])
    if any(res is False for res, _, _ in results):
        msg = next(m for res, m, _ in results if res is False)
        sev = "error" if strength == "required" else "warning"
        return [(sev, "code-invalid", f"code {shown} is not in the {strength} value set {vs}"
                 + (f" ({msg})" if msg else ""))]
    msg = results[0][1] if results else ""
    sev = "warning" if strength == "required" else "information"
    return [(sev, "informational",
             f"code {shown} could not be checked against the {strength} value set {vs}" + (f": {msg}" if msg else ""))]
