"""Instance and type level interactions: read, vread, create, update, patch, delete and their
conditional forms (FHIR R4 http.html). No HTTP and no SQL here: the Repository does the storage."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import jsonpatch
import orjson

from fhir_server.interactions import conformance, guard, profile_checks, search_parameters
from fhir_server.interactions.checks import known_type, resource_body, valid_id
from fhir_server.interactions.matches import find_matches, parse_query
from fhir_server.interactions.request import Interaction, Result, parse_etag
from fhir_server.interactions.services import Services
from fhir_server.interactions.shaping import ReadShape, read_shape
from fhir_server.outcome import FhirError, Issue
from fhir_server.storage.db import Conn
from fhir_server.storage.repository import IdTaken, Stored

T = TypeVar("T")
#: conditional deletes touching more than this many resources are refused (412)
MAX_CONDITIONAL_DELETE = 1000


async def in_write(svc: Services, conn: Conn | None, fn: Callable[[Conn], Awaitable[T]]) -> T:
    """Run ``fn`` in the caller's transaction, or in a new one."""
    if conn is not None:
        return await fn(conn)
    async with svc.db.write() as c:
        return await fn(c)


def gone(stored: Stored) -> FhirError:
    return FhirError.of(410, "deleted", f"{stored.rtype}/{stored.id} was deleted",
                        headers={"ETag": f'W/"{stored.version}"'})


def not_found(rtype: str, rid: str) -> FhirError:
    return FhirError.of(404, "not-found", f"{rtype}/{rid[:64]} is not known")


def _written(svc: Services, result: Result, warnings: list[Issue] | None = None, conn: Conn | None = None) -> Result:
    """After a write: a SearchParameter written changes the search parameters in force; conformance
    resources (StructureDefinition, ValueSet, CodeSystem) change what validation knows — at once, so
    later entries of the same transaction see them, and undone if that transaction (``conn``) rolls back.
    Profile warnings join the result (``Prefer: return=OperationOutcome`` shows them)."""
    stored = result.stored
    if result.stored_json is not None and stored is not None and _has_hooks(stored.rtype):
        _saved_hooks(svc, result.stored_json)
        if conn is not None:
            _resync_on_rollback(svc, conn, stored.rtype, stored.id, result.stored_json)
    if warnings:
        result.issues = [*warnings, *result.issues]
    return result


def _has_hooks(rtype: str) -> bool:
    return rtype == "SearchParameter" or rtype in conformance.TYPES


def _saved_hooks(svc: Services, resource: dict[str, Any]) -> None:
    if resource["resourceType"] == "SearchParameter":
        search_parameters.saved(svc, resource)
    else:
        conformance.saved(resource)


def _deleted_hooks(svc: Services, rtype: str, rid: str, body: str | None) -> None:
    if rtype == "SearchParameter":
        search_parameters.deleted(svc, rid)
    else:
        conformance.deleted(rtype, body)


def _resync_on_rollback(svc: Services, conn: Conn, rtype: str, rid: str, seen: dict[str, Any] | None) -> None:
    """If ``conn``'s transaction rolls back, make the in-memory registries match the database again for
    ``rtype/rid`` (``seen``: the version the hooks were given)."""
    async def resync() -> None:
        stored = await svc.repo.read(rtype, rid)
        if stored is not None and not stored.deleted and stored.body:
            _saved_hooks(svc, orjson.loads(stored.body))
        else:
            _deleted_hooks(svc, rtype, rid, orjson.dumps(seen).decode() if seen is not None else None)
    conn.on_rollback(resync)


def _check_if_match(ix: Interaction, current: Stored | None) -> None:
    if ix.if_match is None:
        return
    want = parse_etag(ix.if_match)
    if want is None:
        raise FhirError.of(400, "invalid", "If-Match must be a version ETag such as W/\"3\"")
    have = current.version if current is not None and not current.deleted else None
    if have != want:
        raise FhirError.of(412, "conflict", f"Version conflict: If-Match asks for version {want}, "
                           f"the current version is {have if have is not None else 'none'}")


# ------------------------------------------------------------------------------------------ read
async def read(svc: Services, ix: Interaction, conn: Conn | None = None) -> Result:
    rtype, rid = known_type(ix.rtype or ""), ix.rid or ""
    shape = read_shape(ix.params) if ix.params else None  # _summary / _elements (400 when bad)
    pol = await guard.policy_for(svc)
    g = await pol.grant(rtype, "r") if pol is not None else None
    stored = await svc.repo.read(rtype, rid, conn)
    if stored is None:
        raise not_found(rtype, rid)
    patients = await _check_read(svc, pol, g, stored, conn)
    if stored.deleted:
        raise gone(stored)
    await guard.audit(svc, "R", "read", rtype=rtype, rid=rid, patients=patients)
    if ix.if_none_match is not None and parse_etag(ix.if_none_match) == stored.version:
        return Result(304, stored=stored, location=True)
    if ix.if_modified_since is not None and stored.last_updated // 1_000_000 <= ix.if_modified_since // 1_000_000:
        return Result(304, stored=stored, location=True)
    return _shaped(stored, shape)


async def vread(svc: Services, ix: Interaction, conn: Conn | None = None) -> Result:
    rtype, rid = known_type(ix.rtype or ""), ix.rid or ""
    shape = read_shape(ix.params) if ix.params else None
    if not (ix.vid or "").isdigit() or len(ix.vid or "") > 9:
        raise not_found(rtype, f"{rid}/_history/{ix.vid}")
    pol = await guard.policy_for(svc)
    g = await pol.grant(rtype, "r") if pol is not None else None
    stored = await svc.repo.vread(rtype, rid, int(ix.vid or 0))
    if stored is None:
        if g is None or not g.restricted:
            if await svc.repo.exists(rtype, rid):
                raise FhirError.of(404, "not-found", f"{rtype}/{rid} has no version {ix.vid}")
        raise not_found(rtype, rid)
    current = await svc.repo.read(rtype, rid, conn) if g is not None and g.restricted else None
    patients = await _check_read(svc, pol, g, stored, conn, current=current)
    if stored.deleted:
        raise gone(stored)
    await guard.audit(svc, "R", "vread", rtype=rtype, rid=rid, patients=patients)
    return _shaped(stored, shape)


async def _check_read(svc: Services, pol: guard.Policy | None, g: guard.Grant | None, stored: Stored,
                      conn: Conn | None, current: Stored | None = None) -> tuple[str, ...]:
    """404 when the token may not see ``stored`` (a version; for a vread by a restricted token also the ``current``
    one): outside its compartments, or not meeting its v2 query restrictions. A deleted resource's compartment
    cannot be told: restricted tokens get 404 for it rather than 410. Returns the patients whose compartment
    ``stored`` is in (for the audit trail; the body is parsed once)."""
    if pol is None or g is None:
        return ()
    patients: tuple[str, ...] = ()
    for version in (stored, current):
        if version is None:
            continue
        if version.deleted or not version.body:
            if g.restricted:
                raise await pol.deny(404, f"{stored.rtype}/{stored.id[:64]} is not known", stored.rtype,
                                     stored.id, perm=g.perm, code="not-found")
            continue
        pats = pol.patients_of(orjson.loads(version.body))
        if g.restricted:
            await pol.check_patients(g, pats, stored.id)
        if version is stored:
            patients = tuple(sorted(pats)) if pats else ()
    if g.restrictions is not None and not await guard.meets_restrictions(svc, conn, g, stored.id):
        raise await pol.deny(404, f"{stored.rtype}/{stored.id[:64]} is not known", stored.rtype, stored.id,
                             perm=g.perm, code="not-found")
    return patients


def _shaped(stored: Stored, shape: ReadShape | None) -> Result:
    """The read result; with ``_summary``/``_elements`` its JSON is the shaped resource (served instead)."""
    if shape is None:
        return Result(200, stored=stored)
    return Result(200, stored=stored, stored_json=shape.apply(orjson.loads(stored.body or "{}")))


# ------------------------------------------------------------------------------------------ create
async def create(svc: Services, ix: Interaction, conn: Conn | None = None, *, rid: str | None = None) -> Result:
    """POST [type]; ``rid`` is a server id chosen in advance (transactions resolve urn:uuid to it)."""
    rtype = known_type(ix.rtype or "")
    pol = await guard.policy_for(svc)
    g = await pol.grant(rtype, "c") if pol is not None else None
    resource = resource_body(ix.body, rtype)
    if pol is not None and g is not None:
        await pol.check_write(g, resource, None)
    warnings = await profile_checks.enforce(svc, resource, conn)

    async def run(c: Conn) -> Result:
        if ix.if_none_exist:
            await c.lock(f"conditional:{rtype}")
            matches = await find_matches(svc, c, rtype, parse_query(ix.if_none_exist), limit=2, perm="c")
            if len(matches) > 1:
                raise FhirError.of(412, "duplicate", f"If-None-Exist matched {len(matches)} {rtype} resources")
            if matches:
                return Result(200, stored=matches[0], location=True,
                              issues=[Issue("information", "duplicate", "A matching resource exists; not created")])
        if rtype == "SearchParameter":
            search_parameters.check(svc, resource, rid)
        stored, as_json = await svc.repo.save(c, resource, rid or str(uuid.uuid4()), None, "POST", fresh_id=True)
        await _after_write(svc, c, pol, g, stored, as_json, "C", "create")
        return Result(201, stored=stored, location=True, stored_json=as_json)

    return _written(svc, await in_write(svc, conn, run), warnings, conn)


# ------------------------------------------------------------------------------------------ update
async def update(svc: Services, ix: Interaction, conn: Conn | None = None) -> Result:
    """PUT [type]/[id]: update, or create with the client's id when it does not exist."""
    rtype, rid = known_type(ix.rtype or ""), valid_id(ix.rid or "")
    await _early(svc, rtype, "u")
    resource = resource_body(ix.body, rtype)
    if resource.get("id") != rid:
        raise FhirError.of(400, "invalid", f"The body's id ({str(resource.get('id'))[:64]}) must equal the id "
                           f"in the URL ({rid})", f"{rtype}.id")
    warnings = await profile_checks.enforce(svc, resource, conn)
    return _written(svc, await in_write(svc, conn, lambda c: _put(svc, c, ix, resource, rid, "PUT")), warnings,
                    conn)


async def _put(svc: Services, c: Conn, ix: Interaction, resource: dict[str, Any], rid: str, method: str) -> Result:
    rtype = resource["resourceType"]
    pol = await guard.policy_for(svc)
    g = await pol.grant(rtype, "u") if pol is not None else None
    if pol is not None and g is not None:
        await pol.check_write(g, resource, rid)
    if rtype == "SearchParameter":
        search_parameters.check(svc, resource, rid)
    current = await svc.repo.current_for_update(c, rtype, rid)
    _check_if_match(ix, current)
    if current is None:
        gc = await _create_grant(pol, resource, rid)
        try:
            stored, as_json = await svc.repo.save(c, resource, rid, None, method)
            await _after_write(svc, c, pol, gc, stored, as_json, "C", "update")
            return Result(201, stored=stored, location=True, stored_json=as_json)
        except IdTaken:  # created concurrently: lock it and update it
            current = await svc.repo.current_for_update(c, rtype, rid)
            _check_if_match(ix, current)
    if current is not None and current.deleted:
        g = await _create_grant(pol, resource, rid)
    else:
        await _check_existing(svc, c, pol, g, current)
    stored, as_json = await svc.repo.save(c, resource, rid, current, method)
    created = current is not None and current.deleted
    await _after_write(svc, c, pol, g, stored, as_json, "C" if created else "U", "update")
    return Result(201 if created else 200, stored=stored, location=True, stored_json=as_json)


async def _early(svc: Services, rtype: str, perm: str) -> None:
    """403 before any other work when no scope allows ``perm`` on ``rtype``."""
    pol = await guard.policy_for(svc)
    if pol is not None:
        await pol.grant(rtype, perm)


async def _create_grant(pol: guard.Policy | None, resource: dict[str, Any], rid: str) -> guard.Grant | None:
    """An update that creates (no current version, or a deleted one) needs ``c`` as well as ``u``."""
    if pol is None:
        return None
    g = await pol.grant(resource["resourceType"], "c")
    await pol.check_write(g, resource, rid)
    return g


async def _check_existing(svc: Services, c: Conn, pol: guard.Policy | None, g: guard.Grant | None,
                          current: Stored | None) -> None:
    """403 when the stored resource to update/patch/delete is outside what the token may write."""
    if pol is None or g is None or current is None or current.deleted or not current.body:
        return
    if g.restricted:
        await pol.check_write(g, orjson.loads(current.body), current.id, existing=True)
    if g.restrictions is not None and not await guard.meets_restrictions(svc, c, g, current.id):
        raise await pol.deny(403, f"{current.rtype}/{current.id[:64]} is outside the token's scope restrictions",
                             current.rtype, current.id, perm=g.perm)


async def _after_write(svc: Services, c: Conn, pol: guard.Policy | None, g: guard.Grant | None, stored: Stored,
                       as_json: dict[str, Any] | None, action: str, name: str) -> None:
    """After a write (same transaction): the result must meet the token's v2 query restrictions (403 rolls the
    write back), then the AuditEvent is written in the transaction."""
    if pol is not None and g is not None and g.restrictions is not None \
            and not await guard.meets_restrictions(svc, c, g, stored.id):
        raise await pol.deny(403, f"The {stored.rtype} written does not meet the token's scope restrictions",
                             stored.rtype, stored.id, perm=g.perm)
    await guard.audit(svc, action, name, rtype=stored.rtype, rid=stored.id, conn=c,
                      status=201 if action == "C" else 200, patients=guard.body_patients(pol, svc, as_json))


async def conditional_update(svc: Services, ix: Interaction, conn: Conn | None = None) -> Result:
    """PUT [type]?[search]: 0 matches → create, 1 → update it, more → 412."""
    rtype = known_type(ix.rtype or "")
    await _early(svc, rtype, "u")
    resource = resource_body(ix.body, rtype)
    if not ix.params:
        raise FhirError.of(400, "invalid", "Conditional update needs search parameters")
    warnings = await profile_checks.enforce(svc, resource, conn)

    async def run(c: Conn) -> Result:
        await c.lock(f"conditional:{rtype}")
        matches = await find_matches(svc, c, rtype, ix.params, limit=2, perm="u")
        if len(matches) > 1:
            raise FhirError.of(412, "multiple-matches", f"The conditional update matched {len(matches)} resources")
        body_id = resource.get("id")
        if matches:
            rid = matches[0].id
            if body_id is not None and body_id != rid:
                raise FhirError.of(400, "invalid", "The body's id does not match the resource the search found",
                                   f"{rtype}.id")
        else:
            rid = valid_id(body_id) if isinstance(body_id, str) else str(uuid.uuid4())
        return await _put(svc, c, ix, resource, rid, "PUT")

    return _written(svc, await in_write(svc, conn, run), warnings, conn)


# ------------------------------------------------------------------------------------------ patch
async def patch(svc: Services, ix: Interaction, conn: Conn | None = None) -> Result:
    """PATCH [type]/[id] (or [type]?[search]) with a JSON Patch document."""
    rtype = known_type(ix.rtype or "")
    if not isinstance(ix.body, list):
        raise FhirError.of(400, "invalid", "A JSON Patch body is a JSON array of operations")
    await _early(svc, rtype, "u")
    try:
        patch_doc = jsonpatch.JsonPatch(ix.body)
    except (jsonpatch.JsonPatchException, TypeError, KeyError, AttributeError) as e:
        raise FhirError.of(400, "invalid", f"Invalid JSON Patch: {e}") from None

    async def run(c: Conn) -> Result:
        if ix.rid is not None:
            rid = ix.rid
        else:
            if not ix.params:
                raise FhirError.of(400, "invalid", "Conditional patch needs search parameters")
            matches = await find_matches(svc, c, rtype, ix.params, limit=2, perm="u")
            if len(matches) != 1:
                raise FhirError.of(412 if matches else 404, "multiple-matches" if matches else "not-found",
                                   f"The conditional patch matched {len(matches)} resources")
            rid = matches[0].id
        current = await svc.repo.current_for_update(c, rtype, rid)
        if current is None:
            raise not_found(rtype, rid)
        if current.deleted:
            raise gone(current)
        _check_if_match(ix, current)
        pol = await guard.policy_for(svc)
        g = await pol.grant(rtype, "u") if pol is not None else None
        await _check_existing(svc, c, pol, g, current)
        try:
            patched = patch_doc.apply(orjson.loads(current.body or "{}"))
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError,
                IndexError, ValueError) as e:
            raise FhirError.of(422, "processing", f"The patch could not be applied: {e}") from None
        if not isinstance(patched, dict) or patched.get("resourceType") != rtype or patched.get("id") != rid:
            raise FhirError.of(422, "processing", "A patch may not change resourceType or id")
        resource_body(patched, rtype)
        if pol is not None and g is not None:
            await pol.check_write(g, patched, rid)
        warnings = await profile_checks.enforce(svc, patched, c)
        if rtype == "SearchParameter":
            search_parameters.check(svc, patched, rid)
        stored, as_json = await svc.repo.save(c, patched, rid, current, "PATCH")
        await _after_write(svc, c, pol, g, stored, as_json, "U", "patch")
        return Result(200, stored=stored, location=True, stored_json=as_json, issues=warnings)

    return _written(svc, await in_write(svc, conn, run), None, conn)


# ------------------------------------------------------------------------------------------ delete
async def delete(svc: Services, ix: Interaction, conn: Conn | None = None) -> Result:
    rtype, rid = known_type(ix.rtype or ""), ix.rid or ""
    pol = await guard.policy_for(svc)
    g = await pol.grant(rtype, "d") if pol is not None else None

    async def run(c: Conn) -> Result:
        current = await svc.repo.current_for_update(c, rtype, rid)
        if current is None:
            raise not_found(rtype, rid)
        if g is not None and g.restricted and current.deleted:
            raise not_found(rtype, rid)
        await _check_existing(svc, c, pol, g, current)
        _check_if_match(ix, current)
        if current.deleted:  # deleting a deleted resource changes nothing
            return Result(204, headers={"ETag": f'W/"{current.version}"'})
        done = await svc.repo.delete(c, current)
        await guard.audit(svc, "D", "delete", rtype=rtype, rid=rid, conn=c, status=204,
                          patients=guard.body_patients(pol, svc, current.body))
        if _has_hooks(rtype):
            _deleted_hooks(svc, rtype, rid, current.body)
            _resync_on_rollback(svc, c, rtype, rid, None)
        return Result(204, headers={"ETag": f'W/"{done.version}"'})

    return await in_write(svc, conn, run)


async def conditional_delete(svc: Services, ix: Interaction, conn: Conn | None = None) -> Result:
    """DELETE [type]?[search]: deletes every match (CapabilityStatement: conditionalDelete = multiple)."""
    rtype = known_type(ix.rtype or "")
    if not ix.params:
        raise FhirError.of(400, "invalid", "Conditional delete needs search parameters")
    pol = await guard.policy_for(svc)
    g = await pol.grant(rtype, "d") if pol is not None else None

    async def run(c: Conn) -> Result:
        await c.lock(f"conditional:{rtype}")
        matches = await find_matches(svc, c, rtype, ix.params, limit=MAX_CONDITIONAL_DELETE + 1, perm="d")
        if len(matches) > MAX_CONDITIONAL_DELETE:
            raise FhirError.of(412, "too-costly", f"The conditional delete matched more than "
                               f"{MAX_CONDITIONAL_DELETE} resources; narrow the search")
        for m in matches:
            current = await svc.repo.current_for_update(c, rtype, m.id)
            if current is not None and not current.deleted:
                await _check_existing(svc, c, pol, g, current)
                await svc.repo.delete(c, current)
                await guard.audit(svc, "D", "delete-conditional", rtype=rtype, rid=m.id, conn=c, status=200,
                                  patients=guard.body_patients(pol, svc, current.body))
                if _has_hooks(rtype):
                    _deleted_hooks(svc, rtype, m.id, current.body)
                    _resync_on_rollback(svc, c, rtype, m.id, None)
        if not matches:  # as HAPI FHIR: 200 with an outcome saying nothing was deleted
            return Result(200, issues=[Issue("warning", "not-found", "No resource matched; nothing was deleted")])
        return Result(200, issues=[Issue("information", "informational", f"Deleted {len(matches)} resource(s)")])

    return await in_write(svc, conn, run)
