"""The FHIR REST route table: URL + method → one interaction (FHIR R4 http.html).

``/fhir``                       POST transaction/batch · GET system search (not offered)
``/fhir/metadata``              GET CapabilityStatement
``/fhir/_history``              GET system history
``/fhir/[type]``                GET/POST search · POST create · PUT/PATCH/DELETE conditional
``/fhir/[type]/_search``        POST search (form-encoded)
``/fhir/[type]/_history``       GET type history
``/fhir/[type]/[id]``           GET read · PUT update · PATCH patch · DELETE delete
``/fhir/[type]/[id]/_history``  GET instance history;  ``…/_history/[vid]`` GET vread
``/fhir/$reindex``, ``/fhir/[type]/$reindex``  POST: rebuild the search index
``/fhir/$op``, ``/fhir/[type]/$op``, ``/fhir/[type]/[id]/$op``  the registered operations (``operations.py``)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fhir_server.api.wire import Request, json_body, media_type, parse_http_date
from fhir_server.interactions import bundle, capability, crud, history, operations, reindex, search
from fhir_server.interactions.request import Interaction, Result
from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError

Handler = Callable[[Services, Interaction], Awaitable[Result]]

#: parameters that shape the response, not the interaction
_RESULT_PARAMS = ("_format", "_pretty")


def _params(req: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in req.query if k not in _RESULT_PARAMS]


def _ix(req: Request, method: str, rtype: str | None = None, rid: str | None = None, vid: str | None = None,
        body: Any = None) -> Interaction:
    h = req.headers
    return Interaction(method=method, rtype=rtype, rid=rid, vid=vid, params=_params(req), body=body,
                       if_match=h.get("if-match"), if_none_match=h.get("if-none-match"),
                       if_none_exist=h.get("if-none-exist"),
                       if_modified_since=parse_http_date(h.get("if-modified-since")),
                       strict=req.prefer_strict)


def _not_allowed(req: Request) -> FhirError:
    return FhirError.of(405, "not-supported", f"{req.method} is not allowed on {req.path[:100]}")


async def route(svc: Services, req: Request) -> tuple[Result, str]:
    """Dispatch ``req`` (its body already read); return the result and the interaction's name."""
    parts = [p for p in req.path.split("/")[2:] if p]  # drop '', 'fhir'
    m = req.method
    limit = svc.settings.max_json_depth
    n = len(parts)
    if n == 0:
        if m == "POST":
            result = await bundle.process(svc, json_body(req, max_depth=limit), strict=req.prefer_strict,
                                          minimal=req.prefer_return == "minimal")
            return result, "bundle"
        raise FhirError.of(400 if m == "GET" else 405, "not-supported",
                           "Search across all resource types is not offered; search one type, e.g. /fhir/CarePlan")
    head = parts[0]
    if parts[-1] == "$reindex" and n <= 2:
        if m != "POST":
            raise _not_allowed(req)
        ix = _ix(req, m, crud.known_type(head) if n == 2 else None)
        return await reindex.operation(svc, ix), "operation-reindex"
    if parts[-1].startswith("$") and n <= 3:
        name = parts[-1][1:]
        rtype_op = crud.known_type(head) if n >= 2 else None
        body = json_body(req, max_depth=limit) if m == "POST" and req.body.strip() else None
        ix = _ix(req, m, rtype_op, parts[1] if n == 3 else None, body=body)
        return await operations.dispatch(svc, ix, name), f"operation-{name[:40]}"
    if head.startswith("$") or any(p.startswith("$") for p in parts):
        raise FhirError.of(404, "not-supported", f"No FHIR interaction at {req.path[:100]}")
    if n == 1 and head == "metadata":
        if m not in ("GET", "HEAD"):
            raise _not_allowed(req)
        return capability.capability_result(svc), "capabilities"
    if n == 1 and head == "_history":
        if m not in ("GET", "HEAD"):
            raise _not_allowed(req)
        return await history.history(svc, _ix(req, m)), "history-system"
    rtype = crud.known_type(head)
    if n == 1:
        if m in ("GET", "HEAD"):
            return await search.search(svc, _ix(req, m, rtype)), "search-type"
        if m == "POST":
            return await crud.create(svc, _ix(req, m, rtype, body=json_body(req, max_depth=limit))), "create"
        if m == "PUT":
            ix = _ix(req, m, rtype, body=json_body(req, max_depth=limit))
            return await crud.conditional_update(svc, ix), "update-conditional"
        if m == "DELETE":
            return await crud.conditional_delete(svc, _ix(req, m, rtype)), "delete-conditional"
        if m == "PATCH":
            ix = _ix(req, m, rtype, body=json_body(req, patch=True, max_depth=limit))
            return await crud.patch(svc, ix), "patch-conditional"
        raise _not_allowed(req)
    second = parts[1]
    if n == 2 and second == "_search":
        if m != "POST":
            raise _not_allowed(req)
        if media_type(req) not in ("application/x-www-form-urlencoded", None):
            raise FhirError.of(415, "not-supported", "POST _search takes application/x-www-form-urlencoded")
        ix = _ix(req, "GET", rtype)
        ix.params += parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True)
        return await search.search(svc, ix), "search-type"
    if n == 2 and second == "_history":
        if m not in ("GET", "HEAD"):
            raise _not_allowed(req)
        return await history.history(svc, _ix(req, m, rtype)), "history-type"
    rid = second
    if n == 2:
        if m in ("GET", "HEAD"):
            return await crud.read(svc, _ix(req, m, rtype, rid)), "read"
        if m == "PUT":
            return await crud.update(svc, _ix(req, m, rtype, rid, body=json_body(req, max_depth=limit))), "update"
        if m == "DELETE":
            return await crud.delete(svc, _ix(req, m, rtype, rid)), "delete"
        if m == "PATCH":
            ix = _ix(req, m, rtype, rid, body=json_body(req, patch=True, max_depth=limit))
            return await crud.patch(svc, ix), "patch"
        raise _not_allowed(req)
    if parts[2] == "_history" and n in (3, 4):
        if m not in ("GET", "HEAD"):
            raise _not_allowed(req)
        if n == 3:
            return await history.history(svc, _ix(req, m, rtype, rid)), "history-instance"
        return await crud.vread(svc, _ix(req, m, rtype, rid, parts[3])), "vread"
    if n == 3 and rtype == "Patient" and m in ("GET", "HEAD"):  # compartment search Patient/[id]/[type|*]
        return await search.compartment(svc, _ix(req, m, parts[2]), rtype, rid), "search-compartment"
    raise FhirError.of(404, "not-supported", f"No FHIR interaction at {req.path[:100]}")
