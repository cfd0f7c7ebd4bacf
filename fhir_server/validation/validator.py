"""The validator's public entry point: base R4 structure + base invariants + profiles.

``validate(resource, *, profiles=(), targets=None, strict_must_support=False) -> list[Issue]`` combines

1. ``structure.validate_structure`` (unknown elements, cardinality, primitive formats, required elements, choice
   types against the base R4 definitions);
2. the base pass of ``profile.py`` over the resource's own type (every FHIRPath invariant of every element incl.
   nested data types and contained/entry resources, required bindings, extensions against their definitions,
   reference target types);
3. each profile in ``profiles`` (``profile.validate_against``); an unknown profile url gives a warning
   ``unknown profile …``.

``targets`` (optional) maps relative references ``Type/id`` to the canonical urls the stored target claims in its
``meta.profile`` (None: the target is not on this server). With it, a reference whose element allows only constraint
profiles for the target's type (``type.targetProfile``) must reach a target claiming one of them or a profile
derived from one (an error otherwise; a warning when the target is not on this server). References that are not
keys of ``targets`` get no profile check (``profile.py``, "reference target profiles").

The same finding reached by two passes (a base invariant, an extension) is reported once; at most
``structure.MAX_ISSUES`` errors and as many warnings/information issues are returned (plus one saying the list
was cut).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fhir_server.definitions import resource_types
from fhir_server.outcome import Issue
from fhir_server.validation.profile import validate_base, validate_profile
from fhir_server.validation.registry import ProfileRegistry, default_registry
from fhir_server.validation.snapshot import SnapshotError
from fhir_server.validation.structure import MAX_ISSUES, validate_structure

__all__ = ["validate"]


def validate(resource: dict[str, Any], *, profiles: Sequence[str] = (),
             targets: Mapping[str, Sequence[str] | None] | None = None, strict_must_support: bool = False,
             registry: ProfileRegistry | None = None, structure_checked: bool = False) -> list[Issue]:
    """All problems of ``resource`` (parsed JSON) against base R4 and ``profiles``; no error issue = valid.
    ``structure_checked``: the caller already ran ``validate_structure`` and found no error (the write
    path does, for every resource), so step 1 is skipped."""
    issues = [] if structure_checked else list(validate_structure(resource))
    if not isinstance(resource, dict) or resource.get("resourceType") not in resource_types():
        return issues
    reg = registry or default_registry()
    seen: set[tuple[Any, ...]] = set()

    def add(pairs: list[tuple[Issue, tuple[Any, ...]]]) -> None:
        for issue, key in pairs:
            if key not in seen:
                seen.add(key)
                issues.append(issue)

    add(validate_base(resource, registry=reg, targets=targets))
    for url in profiles:
        if reg.get(url) is None:
            issues.append(Issue("warning", "not-found", f"unknown profile {url}"))
            continue
        try:
            add(validate_profile(resource, url, strict_must_support=strict_must_support, registry=reg,
                                 targets=targets, after_base=True))
        except SnapshotError as e:
            issues.append(Issue("error", "processing", f"profile {url} cannot be used: {e}"))
    return _cap(issues)


def _cap(issues: list[Issue]) -> list[Issue]:
    """At most MAX_ISSUES errors and MAX_ISSUES other issues; a cut is reported with the severity it hides."""
    errors = [i for i in issues if i.severity in ("error", "fatal")]
    others = [i for i in issues if i.severity not in ("error", "fatal")]
    if len(errors) <= MAX_ISSUES and len(others) <= MAX_ISSUES:
        return issues
    out = errors[:MAX_ISSUES] + others[:MAX_ISSUES]
    if len(errors) > MAX_ISSUES:
        out.append(Issue("error", "too-costly", f"Validation stopped after {MAX_ISSUES} errors"))
    if len(others) > MAX_ISSUES:
        out.append(Issue("information", "informational",
                         f"{len(others) - MAX_ISSUES} more warnings/information issues were left out"))
    return out
