"""Profiles on write, and the profile set ``$validate`` checks (FHIR R4 validation.html, profiling.html).

Which profiles apply to a resource:

* every canonical URL in its ``meta.profile`` (R4: "the resource claims to conform"); a URL the server
  does not know is a warning, or a 422 with ``unknown_profile = reject``;
* every **profile rule** whose resource type and FHIRPath condition match (``profile_rules`` setting: a
  JSON file ``{"rules": [{"resourceType": …, "profile": …, "condition": FHIRPath, "source": …}]}``;
  by default the CARES guide's ``profiles/data/profile-rules.json`` when it exists) — e.g. every CarePlan
  whose category is the CARES ICP must conform to the ICP profile (Appendix M §VI.A.1.c).

On create/update/patch a resource with at least one applicable profile is validated in full (base
invariants + each profile); errors reject the write with 422 and the OperationOutcome, warnings ride
back with ``Prefer: return=OperationOutcome``. A resource with no applicable profile gets only the
structural check every write has (``checks.resource_body``): full base validation on every write would
cost more than the write itself (``$validate`` does it on request).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError, Issue

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "profiles" / "data" / "profile-rules.json"


@dataclass(frozen=True)
class ProfileRule:
    rtype: str
    profile: str
    condition: str | None  # FHIRPath; None = every resource of the type
    source: str | None  # e.g. "Appendix M §VI.A.1.c"


@cache
def _rules(path: str) -> tuple[ProfileRule, ...]:
    p = Path(path) if path else DEFAULT_RULES
    if not p.exists():
        if path:
            raise FileNotFoundError(f"profile rules file {path} does not exist")
        return ()
    data = json.loads(p.read_text(encoding="utf-8"))
    return tuple(ProfileRule(r["resourceType"], r["profile"], r.get("condition"), r.get("source"))
                 for r in data.get("rules", []))


@cache
def _compiled(expr: str) -> Any:
    import fhirpathpy
    from fhirpathpy.models import models

    return fhirpathpy.compile(expr, models["r4"])


def _condition_holds(rule: ProfileRule, resource: dict[str, Any]) -> bool:
    if rule.condition is None:
        return True
    result = _compiled(rule.condition)(resource)
    return result == [True]


def applicable_profiles(svc: Services, resource: dict[str, Any]) -> list[str]:
    """``meta.profile`` plus the profiles the server's rules require, without duplicates."""
    meta = resource.get("meta")
    declared = meta.get("profile", []) if isinstance(meta, dict) else []
    out = [p for p in declared if isinstance(p, str)]
    rtype = resource.get("resourceType")
    for rule in _rules(svc.settings.profile_rules):
        if rule.rtype == rtype and _condition_holds(rule, resource):
            out.append(rule.profile)
    return list(dict.fromkeys(out))


def validation_issues(svc: Services, resource: dict[str, Any], *, extra_profiles: list[str] | None = None
                      ) -> list[Issue]:
    """Full validation (base + applicable profiles + ``extra_profiles``): what ``$validate`` reports."""
    from fhir_server.validation.validator import validate

    profiles = list(dict.fromkeys([*applicable_profiles(svc, resource), *(extra_profiles or [])]))
    return validate(resource, profiles=profiles)


def enforce(svc: Services, resource: dict[str, Any]) -> list[Issue]:
    """Validate ``resource`` before it is written when a profile applies: raise 422 on errors (and, with
    ``unknown_profile = reject``, on profiles the server does not know); return the warnings."""
    profiles = applicable_profiles(svc, resource)
    if not profiles:
        return []
    from fhir_server.validation.registry import default_registry
    from fhir_server.validation.validator import validate

    issues = validate(resource, profiles=profiles)
    errors = [i for i in issues if i.severity in ("error", "fatal")]
    if svc.settings.unknown_profile == "reject":
        reg = default_registry()
        errors += [Issue("error", "not-supported", f"The profile {p} is not known to this server",
                         (f"{resource['resourceType']}.meta.profile",)) for p in profiles if reg.get(p) is None]
    if errors:
        raise FhirError(422, errors)
    return [i for i in issues if i.severity == "warning"]
