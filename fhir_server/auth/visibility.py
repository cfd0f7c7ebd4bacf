"""Which patients a signed-in user (``user/`` scopes) may see — the CARES rules (issue 7 §4).

* ``Patient/x`` user: ``{x}`` (self).
* ``RelatedPerson/y`` user: the patient(s) ``RelatedPerson.patient`` names.
* ``Practitioner/p`` or ``PractitionerRole/r`` (→ its ``practitioner`` p): a PCP, CCM clinical manager or
  specialist sees the children whose CareTeam (``CareTeam.subject``) lists p or one of p's PractitionerRoles as
  ``participant.member`` (CareTeams ``entered-in-error`` or ``inactive`` do not count).
* CARES staff — a login user whose ``oauth_user.roles`` holds one of :data:`STAFF_ROLES` — see every child in
  the program; the server is the CARES program's store, so that is every patient (``None``: no restriction).
  Decision: staff are recognised by the user's role, not by PractitionerRole.organization, because the role is
  set by whoever creates the account (``cares-fhir users add``) and cannot be changed through the FHIR API.
* Anything else (no fhirUser, unknown type, unknown resource): nobody (an empty set).

The set is cached per token for :data:`CACHE_SECONDS` (a CareTeam change is seen within that time).
"""

from __future__ import annotations

import time

import orjson

from fhir_server.auth.access import Access
from fhir_server.indexing.references import parse_reference
from fhir_server.interactions.services import Services

__all__ = ["CACHE_SECONDS", "STAFF_ROLES", "user_roles", "visible_patients"]

CACHE_SECONDS = 30.0
STAFF_ROLES = frozenset({"cares-staff", "care-coordinator", "senior-care-manager"})
_CACHE_MAX = 10_000
_cache: dict[str, tuple[frozenset[str] | None, frozenset[str], float]] = {}
_LIMIT = 10_000  # CareTeams / roles looked at per user


def _ref_id(value: object, rtype: str) -> str | None:
    ref = value.get("reference") if isinstance(value, dict) else None
    parsed = parse_reference(ref) if isinstance(ref, str) else None
    return parsed[1] if parsed is not None and parsed[0] == rtype else None


async def _roles(svc: Services, username: str | None) -> frozenset[str]:
    if not username:
        return frozenset()
    async with svc.db.read() as c:
        row = await c.one("SELECT roles FROM oauth_user WHERE username = %s", (username,))
    if row is None or not row[0]:
        return frozenset()
    try:
        roles = orjson.loads(row[0])
    except orjson.JSONDecodeError:
        return frozenset()
    return frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset()


async def _referrers(svc: Services, rtype: str, param: str, target_type: str, target_ids: list[str]) -> list[str]:
    """Bodies of live ``rtype`` resources whose ``param`` points at one of ``target_type/target_ids``."""
    if not target_ids:
        return []
    marks = ", ".join(["%s"] * len(target_ids))
    sql = (f"SELECT r.body FROM resource r WHERE r.rtype = %s AND NOT r.deleted AND r.rkey IN ("
           f"SELECT i.rkey FROM idx_reference i WHERE i.rtype = %s AND i.param = %s AND i.target_type = %s"
           f" AND i.target_id IN ({marks}) AND i.url IS NULL) LIMIT %s")
    async with svc.db.read() as c:
        rows = await c.all(sql, (rtype, rtype, param, target_type, *target_ids, _LIMIT))
    return [r[0] for r in rows if r[0]]


async def _practitioner_patients(svc: Services, practitioner: str) -> frozenset[str]:
    roles = [orjson.loads(b) for b in await _referrers(svc, "PractitionerRole", "practitioner", "Practitioner",
                                                         [practitioner])]
    members = [("Practitioner", practitioner), *(("PractitionerRole", r["id"]) for r in roles if "id" in r)]
    out: set[str] = set()
    for mtype in ("Practitioner", "PractitionerRole"):
        ids = [i for t, i in members if t == mtype]
        for body in await _referrers(svc, "CareTeam", "participant", mtype, ids):
            team = orjson.loads(body)
            if team.get("status") in ("entered-in-error", "inactive"):
                continue
            pid = _ref_id(team.get("subject"), "Patient")
            if pid is not None:
                out.add(pid)
    return frozenset(out)


async def _compute(svc: Services, access: Access, roles: frozenset[str]) -> frozenset[str] | None:
    if roles & STAFF_ROLES:
        return None
    parsed = parse_reference(access.fhir_user or "") if access.fhir_user else None
    if parsed is None or parsed[0] is None or parsed[1] is None:
        return frozenset()
    utype, uid = parsed[0], parsed[1]
    if utype == "Patient":
        return frozenset({uid})
    stored = await svc.repo.read(utype, uid) if utype in ("RelatedPerson", "PractitionerRole") else None
    body = orjson.loads(stored.body) if stored is not None and stored.body and not stored.deleted else None
    if utype == "RelatedPerson":
        pid = _ref_id(body.get("patient"), "Patient") if body else None
        return frozenset({pid}) if pid else frozenset()
    if utype == "PractitionerRole":
        uid = (_ref_id(body.get("practitioner"), "Practitioner") if body else None) or ""
        if not uid:
            return frozenset()
    elif utype != "Practitioner":
        return frozenset()
    return await _practitioner_patients(svc, uid)


async def user_roles(svc: Services, access: Access) -> frozenset[str]:
    """The login user's roles (``oauth_user.roles``), cached with the visible set."""
    await visible_patients(svc, access)
    return access.extra.get("roles", frozenset())


async def visible_patients(svc: Services, access: Access) -> frozenset[str] | None:
    """The patient ids a ``user/``-scoped token may see (None: every patient). Sets ``access.visible_patients``."""
    key = access.token_id or ""
    now = time.monotonic()
    hit = _cache.get(key) if key else None
    if hit is not None and now - hit[2] < CACHE_SECONDS:
        access.visible_patients = hit[0]
        access.extra["roles"] = hit[1]
        return hit[0]
    roles = await _roles(svc, access.username)
    seen = await _compute(svc, access, roles)
    if key:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = (seen, roles, now)
    access.visible_patients = seen
    access.extra["roles"] = roles
    return seen
