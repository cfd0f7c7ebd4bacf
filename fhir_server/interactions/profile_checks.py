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

Reference target profiles (R4 ``ElementDefinition.type.targetProfile``): when an applicable profile (or a type
profile / extension it names) restricts references of some resource types to constraint profiles
(``ProfileRegistry.target_profile_types``), the resource's relative references ``Type/id`` to those types are
looked up in the ``resource`` table — one query per type, on the caller's connection inside a transaction — and the
validator gets ``targets``: each reference -> the ``meta.profile`` its current stored version claims, or None when
it does not exist (or is deleted). A target claiming none of the allowed profiles rejects the write (422); a target
not on this server is a warning. Writes with no such profile do no lookup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from fhir_server.definitions import resource_types
from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError, Issue
from fhir_server.storage.db import Conn
from fhir_server.validation.invariants import stored_resources

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


# -- reference targets on this server ---------------------------------------------------------------------------

_RELATIVE = re.compile(r"([A-Z][A-Za-z]{0,63})/([A-Za-z0-9\-.]{1,64})")
_CHUNK = 500  # ids per IN (...) list


def relative_references(resource: Any, types: frozenset[str] | set[str] | None = None) -> list[str]:
    """The distinct relative references ``Type/id`` (Type an R4 resource type, in ``types`` when given) of every
    JSON object with a string ``reference`` anywhere in ``resource``, in document order."""
    known = resource_types()
    out: dict[str, None] = {}
    stack = [resource]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            ref = v.get("reference")
            if isinstance(ref, str):
                m = _RELATIVE.fullmatch(ref)
                if m and m.group(1) in known and (types is None or m.group(1) in types):
                    out[ref] = None
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, list):
            stack.extend(reversed(v))
    return list(out)


def _claimed(body: Any) -> list[str]:
    try:
        resource = orjson.loads(body) if isinstance(body, (str, bytes)) else body
    except orjson.JSONDecodeError:
        return []
    meta = resource.get("meta") if isinstance(resource, dict) else None
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    return [p for p in profiles if isinstance(p, str)] if isinstance(profiles, list) else []


#: While a transaction runs: ``Type/id`` -> the resource a later entry of the same transaction writes. A reference
#: to it is checked against that resource (what the transaction commits, or nothing), not reported as "not on this
#: server" — e.g. an ICP entry before the entry of its emergency plan (Appendix M §VI.A.1.c.vi(5)).
PENDING: ContextVar[dict[str, dict[str, Any]] | None] = ContextVar("cares_fhir_pending_entries", default=None)


async def fetch_targets(c: Conn, refs: Sequence[str], bodies: dict[str, dict[str, Any]] | None = None
                        ) -> dict[str, list[str] | None]:
    """``refs`` (``Type/id``) -> the ``meta.profile`` of the current stored version (None: absent or deleted);
    one query per type (per 500 ids). ``bodies``, when given, receives the stored JSON of each found target
    (for ``resolve()`` in invariants). Inside a transaction, a target not stored yet that a later entry writes
    (``PENDING``) counts with that entry's resource."""
    targets: dict[str, list[str] | None] = dict.fromkeys(refs)
    by_type: dict[str, list[str]] = {}
    for ref in refs:
        rtype, _, rid = ref.partition("/")
        by_type.setdefault(rtype, []).append(rid)
    for rtype, ids in by_type.items():
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            rows = await c.all(f"SELECT id, deleted, body FROM resource WHERE rtype = %s AND id IN "
                               f"({', '.join(['%s'] * len(chunk))})", (rtype, *chunk))
            for rid, deleted, body in rows:
                if not deleted and body is not None:
                    targets[f"{rtype}/{rid}"] = _claimed(body)
                    if bodies is not None:
                        bodies[f"{rtype}/{rid}"] = orjson.loads(body)
    pending = PENDING.get()
    if pending:
        for ref, found in targets.items():
            if found is None and ref in pending:
                targets[ref] = _claimed(pending[ref])
                if bodies is not None:
                    bodies[ref] = pending[ref]
    return targets


async def reference_targets(svc: Services, resource: dict[str, Any], profiles: Sequence[str],
                            conn: Conn | None = None, bodies: dict[str, dict[str, Any]] | None = None
                            ) -> dict[str, list[str] | None] | None:
    """The ``targets`` the validator needs for ``profiles`` (None when none of them constrains reference target
    profiles or resolves references in an invariant, or the resource has no relative reference to such a type).
    ``conn``: the caller's transaction (its own writes are visible, and SQLite's single connection is already held
    by it)."""
    from fhir_server.validation.registry import default_registry

    reg = default_registry()
    types: set[str] = set()
    for p in profiles:
        if reg.get(p) is not None:
            types |= reg.target_profile_types(p) | reg.resolved_types(p)
    if not types:
        return None
    refs = relative_references(resource, None if types & {"Resource", "DomainResource"} else types)
    if not refs:
        return None
    if conn is not None:
        return await fetch_targets(conn, refs, bodies)
    async with svc.db.read() as c:
        return await fetch_targets(c, refs, bodies)


# -- validation -------------------------------------------------------------------------------------------------

async def validation_issues(svc: Services, resource: dict[str, Any], *, extra_profiles: list[str] | None = None,
                            conn: Conn | None = None) -> list[Issue]:
    """Full validation (base + applicable profiles + ``extra_profiles``): what ``$validate`` reports; with
    the ``strict_must_support`` setting, absent mustSupport elements of the profiles are reported too
    (information issues)."""
    from fhir_server.validation.validator import validate

    profiles = list(dict.fromkeys([*applicable_profiles(svc, resource), *(extra_profiles or [])]))
    bodies: dict[str, dict[str, Any]] = {}
    targets = await reference_targets(svc, resource, profiles, conn, bodies)
    with stored_resources(bodies):
        return validate(resource, profiles=profiles, targets=targets,
                        strict_must_support=svc.settings.strict_must_support)


async def enforce(svc: Services, resource: dict[str, Any], conn: Conn | None = None) -> list[Issue]:
    """Validate ``resource`` before it is written when a profile applies: raise 422 on errors (and, with
    ``unknown_profile = reject``, on profiles the server does not know); return the warnings. ``conn``: the
    write transaction the resource will be written in, if one is already open."""
    profiles = applicable_profiles(svc, resource)
    if not profiles:
        return []
    from fhir_server.validation.registry import default_registry
    from fhir_server.validation.validator import validate

    bodies: dict[str, dict[str, Any]] = {}
    targets = await reference_targets(svc, resource, profiles, conn, bodies)
    with stored_resources(bodies):
        issues = validate(resource, profiles=profiles, targets=targets, structure_checked=True)
    errors = [i for i in issues if i.severity in ("error", "fatal")]
    if svc.settings.unknown_profile == "reject":
        reg = default_registry()
        errors += [Issue("error", "not-supported", f"The profile {p} is not known to this server",
                         (f"{resource['resourceType']}.meta.profile",)) for p in profiles if reg.get(p) is None]
    if errors:
        raise FhirError(422, errors)
    return [i for i in issues if i.severity == "warning"]
