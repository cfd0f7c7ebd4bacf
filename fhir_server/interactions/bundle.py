"""Transaction and batch processing (FHIR R4 http.html#transaction).

Transaction: one database transaction; entries run in the order the spec sets (DELETE, POST,
PUT/PATCH, GET/HEAD); ``urn:uuid:``/``urn:oid:`` and other fullUrls are mapped to the ids the server
assigns and every string equal to such a fullUrl is rewritten (references anywhere, including
extensions, contained resources and canonical/uri elements; narrative links too); conditional
references (``Patient?identifier=…``) resolve to exactly one resource or the transaction fails; any
failing entry rolls everything back and the response names the entry.
Batch: every entry is its own unit of work with its own status.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from fhir_server.indexing.dates import format_instant
from fhir_server.interactions import crud, guard, history, profile_checks, search
from fhir_server.interactions.checks import known_type
from fhir_server.interactions.matches import find_matches, parse_query
from fhir_server.interactions.request import Interaction, Result
from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError, Issue, operation_outcome
from fhir_server.storage.db import Conn

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content", 304: "304 Not Modified"}
_URN = re.compile(r"urn:(uuid|oid):[^\s\"'<>]+")


@dataclass
class Entry:
    index: int
    method: str
    url: str
    full_url: str | None
    resource: Any
    request: dict[str, Any]
    rtype: str | None = None
    rid: str | None = None  # target id once known
    params: list[tuple[str, str]] = field(default_factory=list)
    result: Result | None = None
    resolved: bool = False  # a conditional create that found its match (nothing to write)


def _fail(entry: Entry, e: FhirError) -> FhirError:
    issues = [Issue(i.severity, i.code, f"Bundle.entry[{entry.index}] ({entry.method} {entry.url[:80]}): "
                    f"{i.diagnostics}", i.expression or (f"Bundle.entry[{entry.index}]",)) for i in e.issues]
    return FhirError(e.status, issues, e.headers)


def _parse_entries(bundle: dict[str, Any], max_entries: int) -> list[Entry]:
    raw = bundle.get("entry", [])
    if not isinstance(raw, list):
        raise FhirError.of(400, "structure", "Bundle.entry must be an array", "Bundle.entry")
    if len(raw) > max_entries:
        raise FhirError.of(413, "too-costly", f"The Bundle has {len(raw)} entries; the limit is {max_entries}")
    entries = []
    for i, e in enumerate(raw):
        req = e.get("request") if isinstance(e, dict) else None
        if not isinstance(req, dict) or not isinstance(req.get("method"), str) or not isinstance(req.get("url"), str):
            raise FhirError.of(400, "structure", f"Bundle.entry[{i}] needs request.method and request.url",
                               f"Bundle.entry[{i}].request")
        method = req["method"].upper()
        if method not in _ORDER:
            raise FhirError.of(400, "value", f"Bundle.entry[{i}]: unknown method {method[:10]}",
                               f"Bundle.entry[{i}].request.method")
        full_url = e.get("fullUrl")
        entries.append(Entry(i, method, req["url"].strip(), full_url if isinstance(full_url, str) else None,
                             e.get("resource"), req))
    return entries


def _split_url(entry: Entry, base: str) -> None:
    """request.url → rtype / rid / params (relative to the base; an absolute URL on this base is accepted)."""
    url = entry.url
    if url.startswith(base + "/"):
        url = url[len(base) + 1:]
    path, _, query = url.partition("?")
    parts = [p for p in path.split("/") if p]
    entry.params = parse_qsl(query, keep_blank_values=True) if query else []
    if parts:
        entry.rtype = known_type(parts[0])
    if len(parts) >= 2:
        entry.rid = parts[1]
    entry.request["_parts"] = parts


def _rewrite(value: Any, mapping: dict[str, str]) -> Any:
    """Replace every string equal to a mapped fullUrl; rewrite urn links inside narrative."""
    if isinstance(value, dict):
        return {k: (_rewrite_div(v, mapping) if k == "div" and isinstance(v, str) else _rewrite(v, mapping))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, mapping) for v in value]
    if isinstance(value, str):
        return mapping.get(value, value)
    return value


def _rewrite_div(div: str, mapping: dict[str, str]) -> str:
    return _URN.sub(lambda m: mapping.get(m.group(0), m.group(0)), div) if "urn:" in div else div


def _conditional_refs(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and "?" in ref and not ref.startswith(("#", "http:", "https:", "urn:")):
            out.add(ref)
        for v in value.values():
            _conditional_refs(v, out)
    elif isinstance(value, list):
        for v in value:
            _conditional_refs(v, out)


def _response_entry(svc: Services, entry: Entry, result: Result, minimal: bool) -> dict[str, Any]:
    resp: dict[str, Any] = {"status": _STATUS_TEXT.get(result.status, str(result.status))}
    out: dict[str, Any] = {}
    stored = result.stored
    if stored is not None:
        out["fullUrl"] = f"{svc.base}/{stored.rtype}/{stored.id}"
        resp["location"] = f"{stored.rtype}/{stored.id}/_history/{stored.version}"
        resp["etag"] = f'W/"{stored.version}"'
        resp["lastModified"] = format_instant(stored.last_updated)
        if not minimal and entry.method not in ("DELETE",):
            out["resource"] = result.stored_json or orjson.loads(stored.body or "{}")
    elif result.raw is not None and not minimal:
        out["resource"] = orjson.loads(result.raw)
    elif result.resource is not None and not minimal:
        out["resource"] = result.resource
    if "etag" in {k.lower() for k in result.headers}:
        resp["etag"] = next(v for k, v in result.headers.items() if k.lower() == "etag")
    if result.issues and stored is None and result.raw is None:
        resp["outcome"] = operation_outcome(result.issues)
    out["response"] = resp
    return out


async def _run_entry(svc: Services, entry: Entry, conn: Conn | None) -> Result:
    req = entry.request
    ix = Interaction(method=entry.method, rtype=entry.rtype, rid=entry.rid, params=entry.params,
                     body=entry.resource, if_match=req.get("ifMatch"), if_none_match=req.get("ifNoneMatch"),
                     if_none_exist=req.get("ifNoneExist"))
    parts = req.get("_parts", [])
    if entry.rtype is None:
        if entry.method in ("GET", "HEAD") and parts[:1] == ["_history"]:
            return await history.history(svc, ix, conn)
        raise FhirError.of(400, "not-supported", "The entry's request.url must name a resource type")
    if entry.method in ("GET", "HEAD"):
        if len(parts) == 1:
            return await search.search(svc, ix, conn)
        if len(parts) == 2:
            return await crud.read(svc, ix, conn)
        if len(parts) == 3 and parts[2] == "_history":
            return await history.history(svc, ix, conn)
        if len(parts) == 4 and parts[2] == "_history":
            ix.vid = parts[3]
            return await crud.vread(svc, ix, conn)
        raise FhirError.of(400, "not-supported", "Unsupported GET in a bundle entry")
    if entry.method == "POST":
        if len(parts) != 1:
            raise FhirError.of(400, "not-supported", "POST entries must have request.url = [type]")
        return await crud.create(svc, ix, conn, rid=entry.rid)
    if entry.method == "PUT":
        if len(parts) == 1:
            return await crud.conditional_update(svc, ix, conn)
        return await crud.update(svc, ix, conn)
    if entry.method == "PATCH":
        if entry.resource is not None and not isinstance(entry.resource, list):
            # a Binary holding the JSON Patch, as the spec asks for patches in bundles
            data = entry.resource.get("data") if isinstance(entry.resource, dict) else None
            if entry.resource.get("resourceType") == "Binary" and isinstance(data, str):
                import base64

                try:
                    ix.body = orjson.loads(base64.b64decode(data))
                except ValueError:
                    raise FhirError.of(400, "invalid", "The Binary does not hold a JSON Patch") from None
            else:
                raise FhirError.of(400, "not-supported", "PATCH entries take a JSON Patch (as a Binary resource)")
        if len(parts) == 1:
            ix.rid = None
        return await crud.patch(svc, ix, conn)
    if entry.method == "DELETE":
        if len(parts) == 1:
            return await crud.conditional_delete(svc, ix, conn)
        return await crud.delete(svc, ix, conn)
    raise FhirError.of(400, "not-supported", f"Unsupported method {entry.method}")


async def process(svc: Services, bundle: Any, *, strict: bool = False, minimal: bool = False) -> Result:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError.of(400, "invalid", "POST to the base URL takes a Bundle of type transaction or batch")
    btype = bundle.get("type")
    entries = _parse_entries(bundle, svc.settings.max_bundle_entries)
    await guard.policy_for(svc)  # each entry's interaction checks the token's scopes and compartments
    if btype == "batch":
        return await _batch(svc, entries, minimal)
    if btype == "transaction":
        return await _transaction(svc, entries, minimal)
    raise FhirError.of(400, "invalid", f"Bundle.type must be transaction or batch, not {str(btype)[:30]}",
                       "Bundle.type")


async def _batch(svc: Services, entries: list[Entry], minimal: bool) -> Result:
    out = []
    for entry in entries:
        try:
            _split_url(entry, svc.base)
            result = await _run_entry(svc, entry, None)
            out.append(_response_entry(svc, entry, result, minimal))
        except FhirError as e:
            out.append({"response": {"status": str(e.status), "outcome": _fail(entry, e).outcome()}})
    return Result(200, resource={"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "batch-response",
                                 "entry": out})


async def _transaction(svc: Services, entries: list[Entry], minimal: bool) -> Result:
    mapping: dict[str, str] = {}
    for entry in entries:
        try:
            _split_url(entry, svc.base)
        except FhirError as e:
            raise _fail(entry, e) from None
        if entry.method == "POST":
            entry.rid = str(uuid.uuid4())
        if entry.full_url and entry.rtype and entry.rid and entry.method in ("POST", "PUT"):
            mapping[entry.full_url] = f"{entry.rtype}/{entry.rid}"
    async with svc.db.write() as conn:
        # conditional creates and updates decide their target first, so references can point at it
        for entry in entries:
            try:
                await _resolve_conditional_target(svc, conn, entry, mapping)
            except FhirError as e:
                raise _fail(entry, e) from None
        seen: dict[str, int] = {}
        for entry in entries:
            if entry.method in ("GET", "HEAD") or entry.resolved or entry.rid is None or entry.rtype is None:
                continue
            key = f"{entry.rtype}/{entry.rid}"
            if key in seen:
                raise _fail(entry, FhirError.of(400, "invalid", f"{key} is also the target of entry "
                                                f"{seen[key]}; a transaction may touch a resource once"))
            seen[key] = entry.index
        for entry in entries:
            try:
                if entry.resource is not None and entry.method in ("POST", "PUT"):
                    entry.resource = _rewrite(entry.resource, mapping)
                    await _resolve_conditional_refs(svc, conn, entry)
                if "?" in entry.url and "urn:" in entry.url:
                    entry.params = [(k, mapping.get(v, v)) for k, v in entry.params]
            except FhirError as e:
                raise _fail(entry, e) from None
        token = profile_checks.PENDING.set(_pending(entries))
        try:
            for entry in sorted(entries, key=lambda en: (_ORDER[en.method], en.index)):
                if entry.resolved:
                    continue
                try:
                    entry.result = await _run_entry(svc, entry, conn)
                except FhirError as e:
                    raise _fail(entry, e) from None
                if entry.result.status >= 400:
                    raise _fail(entry, FhirError(entry.result.status, entry.result.issues))
        finally:
            profile_checks.PENDING.reset(token)
    out = [_response_entry(svc, e, e.result, minimal) for e in entries if e.result is not None]
    return Result(200, resource={"resourceType": "Bundle", "id": str(uuid.uuid4()),
                                 "type": "transaction-response", "entry": out})


def _pending(entries: list[Entry]) -> dict[str, dict[str, Any]]:
    """What the transaction's creates and updates will store, by ``Type/id`` (``profile_checks.PENDING``)."""
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.method in ("POST", "PUT") and isinstance(e.resource, dict) and e.rtype and e.rid and not e.resolved:
            out[f"{e.rtype}/{e.rid}"] = {**e.resource, "id": e.rid}
    return out


async def _resolve_conditional_target(svc: Services, conn: Conn, entry: Entry, mapping: dict[str, str]) -> None:
    if entry.rtype is None:
        return
    if entry.method == "POST" and entry.request.get("ifNoneExist"):
        await conn.lock(f"conditional:{entry.rtype}")
        matches = await find_matches(svc, conn, entry.rtype, parse_query(entry.request["ifNoneExist"]), limit=2,
                                     perm="c")
        if len(matches) > 1:
            raise FhirError.of(412, "duplicate", f"ifNoneExist matched {len(matches)} resources")
        entry.request = {k: v for k, v in entry.request.items() if k != "ifNoneExist"}  # decided here
        if matches:
            entry.rid = matches[0].id
            entry.resolved = True
            entry.result = Result(200, stored=matches[0])
            if entry.full_url:
                mapping[entry.full_url] = f"{entry.rtype}/{entry.rid}"
    elif entry.method == "PUT" and entry.rid is None:
        await conn.lock(f"conditional:{entry.rtype}")
        matches = await find_matches(svc, conn, entry.rtype, entry.params, limit=2, perm="u")
        if len(matches) > 1:
            raise FhirError.of(412, "multiple-matches", f"The conditional update matched {len(matches)} resources")
        body_id = entry.resource.get("id") if isinstance(entry.resource, dict) else None
        if matches:
            entry.rid = matches[0].id
        else:
            entry.rid = body_id if isinstance(body_id, str) else str(uuid.uuid4())
        if isinstance(entry.resource, dict):
            entry.resource = {**entry.resource, "id": entry.rid}
        entry.url = f"{entry.rtype}/{entry.rid}"
        entry.request["_parts"] = [entry.rtype, entry.rid]
        entry.params = []
        if entry.full_url:
            mapping[entry.full_url] = f"{entry.rtype}/{entry.rid}"


async def _resolve_conditional_refs(svc: Services, conn: Conn, entry: Entry) -> None:
    refs: set[str] = set()
    _conditional_refs(entry.resource, refs)
    if not refs:
        return
    resolved: dict[str, str] = {}
    for ref in refs:
        rtype = known_type(ref.split("?", 1)[0])
        matches = await find_matches(svc, conn, rtype, parse_query(ref), limit=2)
        if len(matches) != 1:
            raise FhirError.of(412 if matches else 404, "not-found" if not matches else "multiple-matches",
                               f"The conditional reference {ref[:80]} matched {len(matches)} resources "
                               "(it must match exactly one)")
        resolved[ref] = f"{rtype}/{matches[0].id}"
    entry.resource = _rewrite_refs(entry.resource, resolved)


def _rewrite_refs(value: Any, resolved: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {k: _rewrite_refs(v, resolved) for k, v in value.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and ref in resolved:
            out["reference"] = resolved[ref]
        return out
    if isinstance(value, list):
        return [_rewrite_refs(v, resolved) for v in value]
    return value
