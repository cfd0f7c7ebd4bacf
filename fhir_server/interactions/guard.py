"""The glue between the interactions and authorization (``auth.policy``) and the audit trail (``audit``).

Every interaction calls these: they do nothing when authorization is off (``--no-auth``) or the caller is the
server itself (no ``Access`` in the request context), so the open server behaves as before. Decision: nothing
is audited then either — there is no caller to record, and the open mode is for development only.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from fhir_server import audit as audit_trail
from fhir_server.audit import AuditRecord
from fhir_server.auth.access import current
from fhir_server.auth.policy import Grant, Policy, policy_for
from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError
from fhir_server.search import (
    ChainTarget,
    Criterion,
    HasValue,
    ParsedSearch,
    Visibility,
    compile_count,
    parse_search,
)
from fhir_server.storage.db import Conn

__all__ = ["Grant", "Policy", "audit", "include_filter", "meets_restrictions", "policy_for", "restrict_search",
           "search_patients"]

log = logging.getLogger("cares_fhir.audit")
_NOTHING = Criterion("_id", "_id", None, ("",), "scope")  # no resource has an empty id


def _restriction_criterion(svc: Services, rtype: str, restrictions: tuple[tuple[tuple[str, str], ...], ...]) \
        -> Criterion:
    """The v2 scope query restrictions as one criterion: the alternatives OR-ed, each one's parameters AND-ed."""
    alternatives = []
    for params in restrictions:
        try:
            parsed = parse_search(rtype, list(params), svc.registry, base_url=svc.base, strict=True)
        except FhirError:
            log.warning("a scope query restriction on %s does not parse; it matches nothing", rtype)
            continue
        alternatives.append(tuple(parsed.criteria) or (_NOTHING,))
    if not alternatives:
        return _NOTHING
    return Criterion("_scope", "composite", None, tuple(alternatives), "scope restriction")


def _both(svc: Services, c: Criterion, rtype: str, g: Grant) -> Criterion:
    """``c`` AND the v2 query restrictions of ``g`` on ``rtype`` (``c`` itself when there are none)."""
    if g.restrictions is None:
        return c
    return Criterion("_scope", "composite", None, ((c, _restriction_criterion(svc, rtype, g.restrictions)),),
                     "scope restriction")


async def _missing(pol: Policy, rtype: str, perm: str) -> FhirError:
    contexts = pol.access.scopes.contexts()
    ctx = next((c for c in ("patient", "user", "system") if c in contexts), "patient")
    return await pol.deny(403, f"The search traverses {rtype} (a chain or _has): the token needs a scope allowing "
                          f"search on {rtype}, such as {ctx}/{rtype}.rs", rtype, perm=perm)


async def _traversals(svc: Services, pol: Policy, c: Criterion, perm: str) -> Criterion:
    """``c`` with every resource type a chain or ``_has`` looks through checked against the token's scopes
    (issue 7 §4): a ``_has`` source type, or the one target type of a typed chain (``subject:Patient.name``),
    without a scope allowing ``perm`` is **403** (audited); an untyped chain keeps the target types the token may
    search (the others could never match: the compiler's visibility hides them) and is 403 when none is left. The
    v2 query restrictions of a traversed type are AND-ed into what it must meet; its patient compartment
    restriction is the compiler's (``ParsedSearch.visibility`` applies to every traversed resource)."""
    if c.type == "chain":
        targets: list[ChainTarget] = []
        missing: str | None = None
        for t in c.values:
            assert isinstance(t, ChainTarget)
            granted = [(tt, pol.peek(tt, perm)) for tt in t.target_types]
            missing = missing or next((tt for tt, g in granted if g is None), None)
            kept = [(tt, g) for tt, g in granted if g is not None]
            if not kept:
                continue
            inner = await _traversals(svc, pol, t.criterion, perm)
            plain = tuple(tt for tt, g in kept if g.restrictions is None)
            if plain:
                targets.append(ChainTarget(plain, inner))
            targets += [ChainTarget((tt,), _both(svc, inner, tt, g)) for tt, g in kept if g.restrictions is not None]
        if not targets:
            raise await _missing(pol, missing or "?", perm)
        return Criterion(c.param, c.type, c.modifier, tuple(targets), c.name)
    if c.type == "has":
        h = c.values[0]
        assert isinstance(h, HasValue)
        g = pol.peek(h.source_type, perm)
        if g is None:
            raise await _missing(pol, h.source_type, perm)
        inner = _both(svc, await _traversals(svc, pol, h.criterion, perm), h.source_type, g)
        return Criterion(c.param, c.type, c.modifier, (HasValue(h.source_type, h.ref_param, inner),), c.name)
    return c


def _restrict_type(svc: Services, parsed: ParsedSearch, g: Grant | None) -> None:
    """AND the v2 query restrictions of ``g`` (the grant on the searched type) into ``parsed``."""
    if g is not None and g.restrictions is not None:
        parsed.criteria.insert(0, _restriction_criterion(svc, parsed.rtype, g.restrictions))


async def restrict_search(svc: Services, pol: Policy | None, parsed: ParsedSearch, perm: str = "s") -> None:
    """Limit ``parsed`` to what the token may find (compartments, chains, ``_has``, v2 restrictions); 403 when
    no scope allows ``perm`` on the searched type or on a type a chain or ``_has`` traverses."""
    if pol is None:
        return
    if parsed.types is None:
        await pol.grant(parsed.rtype, perm)  # the searched type first: its 403 before a traversed type's
    parsed.criteria = [await _traversals(svc, pol, c, perm) for c in parsed.criteria]
    if parsed.types is None:
        _restrict_type(svc, parsed, await pol.grant(parsed.rtype, perm))
        parsed.visibility = pol.visibility(perm)
        return
    base = pol.visibility(perm)

    def patients(t: str) -> tuple[str, ...] | None:  # several types: those with query restrictions are left out
        g = pol.peek(t, perm)
        return () if g is not None and g.restrictions is not None else base.patients(t)

    parsed.visibility = Visibility(patients, svc.registry)


async def restrict_matches(svc: Services, parsed: ParsedSearch, perm: str) -> None:
    """Limit the matches of a conditional create/update/patch/delete or conditional reference to what the token
    may ``perm`` (no error: what it may not touch simply does not match). A chain or ``_has`` in the condition
    needs a search scope on each type it traverses, as in a search (403 otherwise)."""
    pol = await policy_for(svc)
    if pol is None:
        return
    parsed.criteria = [await _traversals(svc, pol, c, "s") for c in parsed.criteria]
    _restrict_type(svc, parsed, pol.peek(parsed.rtype, perm))
    parsed.visibility = pol.visibility(perm, parsed.rtype)


async def meets_restrictions(svc: Services, conn: Conn | None, g: Grant, rid: str) -> bool:
    """Whether ``g.rtype/rid`` meets the grant's v2 query restrictions (True when it has none)."""
    if g.restrictions is None:
        return True
    parsed = parse_search(g.rtype, [("_id", rid)], svc.registry, base_url=svc.base)
    parsed.criteria.append(_restriction_criterion(svc, g.rtype, g.restrictions))
    sql, args = compile_count(parsed)
    if conn is not None:
        row = await conn.one(sql, args)
    else:
        async with svc.db.read() as c:
            row = await c.one(sql, args)
    return bool(row and row[0])


def include_filter(pol: Policy | None, perm: str = "r") -> Any:
    """A predicate ``(rtype, body_text) -> bool`` for resources brought in by ``_include``/``_revinclude`` and
    history entries (None when everything may be shown). Types under v2 query restrictions are left out."""
    if pol is None:
        return None

    def keep(rtype: str, body: str | None) -> bool:
        g = pol.peek(rtype, perm)
        if g is None or g.restrictions is not None:
            return False
        if g.patients is None:
            return True
        if not body:
            return False
        return g.sees_patients(pol.patients_of(orjson.loads(body)))

    return keep


def search_patients(params: list[tuple[str, str]]) -> tuple[str, ...]:
    """The patients a search is about, for the audit trail: the token's launch patient, or the ``patient`` /
    ``subject`` values searched (``Patient/x`` or ``x``)."""
    access = current()
    if access is not None and access.patient:
        return (access.patient,)
    out: list[str] = []
    for k, v in params:
        name = k.split(":", 1)[0]
        if name not in ("patient", "subject"):
            continue
        for one in v.split(","):
            if "Patient/" in one or (name == "patient" and "/" not in one):
                pid = one.rsplit("/", 1)[-1]
                if pid and pid not in out:
                    out.append(pid)
    return tuple(out[:20])


async def audit(svc: Services, action: str, interaction: str, *, rtype: str | None = None, rid: str | None = None,
                query: str | None = None, patients: tuple[str, ...] | frozenset[str] | None = (),
                status: int = 200, conn: Conn | None = None, detail: dict[str, Any] | None = None) -> None:
    """Record a successful interaction for the current caller (nothing without one). With ``conn`` the
    AuditEvent is written in that (write) transaction."""
    access = current()
    if access is None:
        return
    rec = AuditRecord(action, interaction, "0", status, rtype, rid, query, tuple(sorted(patients or ())),
                      access=access, source=access.source, detail=detail or {})
    if conn is not None:
        await audit_trail.record(svc, rec, conn)
        return
    try:
        await audit_trail.record(svc, rec)
    except Exception:  # noqa: BLE001 - a queued audit must not fail the read; the failure is logged
        log.exception("audit record failed for %s", interaction)


def body_patients(pol: Policy | None, svc: Services, body: dict[str, Any] | str | None) -> tuple[str, ...]:
    """The patients whose compartment a resource is in (for the audit trail)."""
    if current() is None or not body:
        return ()
    from fhir_server.auth.compartment import patients_of

    resource = orjson.loads(body) if isinstance(body, str) else body
    pats = patients_of(svc.registry, resource, svc.base)
    return tuple(sorted(pats)) if pats else ()
