"""Instance and type level interactions: read, vread, create, update, patch, delete and their
conditional forms (FHIR R4 http.html). No HTTP and no SQL here: the Repository does the storage."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import jsonpatch
import orjson

from fhir_server.interactions import conformance, profile_checks, search_parameters
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
    stored = await svc.repo.read(rtype, rid, conn)
    if stored is None:
        raise not_found(rtype, rid)
    if stored.deleted:
        raise gone(stored)
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
    stored = await svc.repo.vread(rtype, rid, int(ix.vid or 0))
    if stored is None:
        if await svc.repo.exists(rtype, rid):
            raise FhirError.of(404, "not-found", f"{rtype}/{rid} has no version {ix.vid}")
        raise not_found(rtype, rid)
    if stored.deleted:
        raise gone(stored)
    return _shaped(stored, shape)


def _shaped(stored: Stored, shape: ReadShape | None) -> Result:
    """The read result; with ``_summary``/``_elements`` its JSON is the shaped resource (served instead)."""
    if shape is None:
        return Result(200, stored=stored)
    return Result(200, stored=stored, stored_json=shape.apply(orjson.loads(stored.body or "{}")))


# ------------------------------------------------------------------------------------------ create
async def create(svc: Services, ix: Interaction, conn: Conn | None = None, *, rid: str | None = None) -> Result:
    """POST [type]; ``rid`` is a server id chosen in advance (transactions resolve urn:uuid to it)."""
    rtype = known_type(ix.rtype or "")
    resource = resource_body(ix.body, rtype)
    warnings = await profile_checks.enforce(svc, resource, conn)

    async def run(c: Conn) -> Result:
        if ix.if_none_exist:
            await c.lock(f"conditional:{rtype}")
            matches = await find_matches(svc, c, rtype, parse_query(ix.if_none_exist), limit=2)
            if len(matches) > 1:
                raise FhirError.of(412, "duplicate", f"If-None-Exist matched {len(matches)} {rtype} resources")
            if matches:
                return Result(200, stored=matches[0], location=True,
                              issues=[Issue("information", "duplicate", "A matching resource exists; not created")])
        if rtype == "SearchParameter":
            search_parameters.check(svc, resource, rid)
        stored, as_json = await svc.repo.save(c, resource, rid or str(uuid.uuid4()), None, "POST", fresh_id=True)
        return Result(201, stored=stored, location=True, stored_json=as_json)

    return _written(svc, await in_write(svc, conn, run), warnings, conn)


# ------------------------------------------------------------------------------------------ update
async def update(svc: Services, ix: Interaction, conn: Conn | None = None) -> Result:
    """PUT [type]/[id]: update, or create with the client's id when it does not exist."""
    rtype, rid = known_type(ix.rtype or ""), valid_id(ix.rid or "")
    resource = resource_body(ix.body, rtype)
    if resource.get("id") != rid:
        raise FhirError.of(400, "invalid", f"The body's id ({str(resource.get('id'))[:64]}) must equal the id "
                           f"in the URL ({rid})", f"{rtype}.id")
    warnings = await profile_checks.enforce(svc, resource, conn)
    return _written(svc, await in_write(svc, conn, lambda c: _put(svc, c, ix, resource, rid, "PUT")), warnings,
                    conn)


async def _put(svc: Services, c: Conn, ix: Interaction, resource: dict[str, Any], rid: str, method: str) -> Result:
    rtype = resource["resourceType"]
    if rtype == "SearchParameter":
        search_parameters.check(svc, resource, rid)
    current = await svc.repo.current_for_update(c, rtype, rid)
    _check_if_match(ix, current)
    if current is None:
        try:
            stored, as_json = await svc.repo.save(c, resource, rid, None, method)
            return Result(201, stored=stored, location=True, stored_json=as_json)
        except IdTaken:  # created concurrently: lock it and update it
            current = await svc.repo.current_for_update(c, rtype, rid)
            _check_if_match(ix, current)
    stored, as_json = await svc.repo.save(c, resource, rid, current, method)
    return Result(201 if current is not None and current.deleted else 200,
                  stored=stored, location=True, stored_json=as_json)


async def conditional_update(svc: Services, ix: Interaction, conn: Conn | None = None) -> Result:
    """PUT [type]?[search]: 0 matches → create, 1 → update it, more → 412."""
    rtype = known_type(ix.rtype or "")
    resource = resource_body(ix.body, rtype)
    if not ix.params:
        raise FhirError.of(400, "invalid", "Conditional update needs search parameters")
    warnings = await profile_checks.enforce(svc, resource, conn)

    async def run(c: Conn) -> Result:
        await c.lock(f"conditional:{rtype}")
        matches = await find_matches(svc, c, rtype, ix.params, limit=2)
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
            matches = await find_matches(svc, c, rtype, ix.params, limit=2)
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
        try:
            patched = patch_doc.apply(orjson.loads(current.body or "{}"))
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError,
                IndexError, ValueError) as e:
            raise FhirError.of(422, "processing", f"The patch could not be applied: {e}") from None
        if not isinstance(patched, dict) or patched.get("resourceType") != rtype or patched.get("id") != rid:
            raise FhirError.of(422, "processing", "A patch may not change resourceType or id")
        resource_body(patched, rtype)
        warnings = await profile_checks.enforce(svc, patched, c)
        if rtype == "SearchParameter":
            search_parameters.check(svc, patched, rid)
        stored, as_json = await svc.repo.save(c, patched, rid, current, "PATCH")
        return Result(200, stored=stored, location=True, stored_json=as_json, issues=warnings)

    return _written(svc, await in_write(svc, conn, run), None, conn)


# ------------------------------------------------------------------------------------------ delete
async def delete(svc: Services, ix: Interaction, conn: Conn | None = None) -> Result:
    rtype, rid = known_type(ix.rtype or ""), ix.rid or ""

    async def run(c: Conn) -> Result:
        current = await svc.repo.current_for_update(c, rtype, rid)
        if current is None:
            raise not_found(rtype, rid)
        _check_if_match(ix, current)
        if current.deleted:  # deleting a deleted resource changes nothing
            return Result(204, headers={"ETag": f'W/"{current.version}"'})
        done = await svc.repo.delete(c, current)
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

    async def run(c: Conn) -> Result:
        await c.lock(f"conditional:{rtype}")
        matches = await find_matches(svc, c, rtype, ix.params, limit=MAX_CONDITIONAL_DELETE + 1)
        if len(matches) > MAX_CONDITIONAL_DELETE:
            raise FhirError.of(412, "too-costly", f"The conditional delete matched more than "
                               f"{MAX_CONDITIONAL_DELETE} resources; narrow the search")
        for m in matches:
            current = await svc.repo.current_for_update(c, rtype, m.id)
            if current is not None and not current.deleted:
                await svc.repo.delete(c, current)
                if _has_hooks(rtype):
                    _deleted_hooks(svc, rtype, m.id, current.body)
                    _resync_on_rollback(svc, c, rtype, m.id, None)
        if not matches:  # as HAPI FHIR: 200 with an outcome saying nothing was deleted
            return Result(200, issues=[Issue("warning", "not-found", "No resource matched; nothing was deleted")])
        return Result(200, issues=[Issue("information", "informational", f"Deleted {len(matches)} resource(s)")])

    return await in_write(svc, conn, run)
