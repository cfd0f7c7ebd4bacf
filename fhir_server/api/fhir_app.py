"""The FHIR endpoint as a plain ASGI application: read the request, route it, render the result.

Responses: stored resources are served as the JSON text stored (no model, no re-serialisation);
``ETag: W/"n"``, ``Last-Modified`` and (for writes) ``Location: …/_history/n``; ``Prefer: return=``
minimal / representation / OperationOutcome on writes; every error is an OperationOutcome.
Logs carry the interaction, status and timing — never resource content or search values (PHI).
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

import orjson

from fhir_server.api import routes
from fhir_server.api.authn import authenticate
from fhir_server.api.wire import FHIR_JSON, Request, accepts_json, dumps, http_date, parse_scope, read_body, send
from fhir_server.auth.access import CURRENT, Access
from fhir_server.definitions import resource_types
from fhir_server.interactions import guard
from fhir_server.interactions.request import Result
from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError, Issue, operation_outcome

log = logging.getLogger("cares_fhir.access")
_WRITES = ("create", "update", "patch", "update-conditional", "patch-conditional")
_CONTENT_TYPE = (b"content-type", FHIR_JSON.encode())
#: request headers after which a plain GET by id still takes the fast path
_FAST_OK_HEADERS = frozenset((b"host", b"accept", b"user-agent", b"accept-encoding", b"connection", b"authorization",
                              b"content-length", b"cache-control", b"x-request-id", b"traceparent"))


class FhirApp:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.base = svc.base.encode()
        self.types = resource_types()

    async def _fast_read(self, scope: dict[str, Any], send_fn: Any, access: Access | None) -> bool:
        """``GET /fhir/[type]/[id]`` without conditions or parameters: one query, stored bytes out.
        Returns False (nothing sent) whenever the general path must answer instead. With a token: the
        scope must allow reading the type without query restrictions, and a restricted token must see the
        resource's compartment (checked on the stored JSON); anything else goes the general path, which
        answers the 403/404 and records the denial."""
        parts = scope["path"].split("/")
        if len(parts) != 4 or parts[1] != "fhir" or parts[2] not in self.types or parts[3][:1] in ("_", "$", ""):
            return False
        for k, v in scope["headers"]:
            if k not in _FAST_OK_HEADERS or (k == b"accept" and not accepts_json(v.decode("latin-1"))):
                return False
        try:
            stored = await self.svc.repo.read(parts[2], parts[3])
        except Exception:  # noqa: BLE001 - the general path answers (and logs) instead
            return False
        if stored is None or stored.deleted:
            return False
        if access is not None and not await self._fast_allowed(parts[2], parts[3], stored.body or ""):
            return False
        body = stored.body.encode()  # type: ignore[union-attr]
        await send_fn({"type": "http.response.start", "status": 200, "headers": [
            _CONTENT_TYPE, (b"content-length", b"%d" % len(body)), (b"etag", b'W/"%d"' % stored.version),
            (b"last-modified", http_date(stored.last_updated).encode())]})
        await send_fn({"type": "http.response.body", "body": body})
        return True

    async def _fast_allowed(self, rtype: str, rid: str, body: str) -> bool:
        pol = await guard.policy_for(self.svc)
        g = pol.peek(rtype, "r") if pol is not None else None
        if pol is None or g is None or g.restrictions is not None or rtype == "AuditEvent":
            return False
        resource = orjson.loads(body)
        pats = pol.patients_of(resource)
        if g.restricted and not g.sees_patients(pats):
            return False
        await guard.audit(self.svc, "R", "read", rtype=rtype, rid=rid, patients=tuple(sorted(pats or ())))
        return True

    async def __call__(self, scope: dict[str, Any], receive: Any, send_fn: Any) -> None:
        t0 = time.perf_counter()
        access: Access | None = None
        if not self.svc.settings.no_auth and not _open_path(scope):
            access = await authenticate(self.svc, scope, send_fn)
            if access is None:  # 401 sent (and recorded)
                if log.isEnabledFor(logging.INFO):
                    log.info("%s %s 401 %.1fms", scope.get("method", "?"), _path_shape(scope),
                             (time.perf_counter() - t0) * 1e3)
                return
        ctx = CURRENT.set(access)
        try:
            await self._handle(scope, receive, send_fn, access, t0)
        finally:
            CURRENT.reset(ctx)

    async def _handle(self, scope: dict[str, Any], receive: Any, send_fn: Any, access: Access | None,
                      t0: float) -> None:
        if scope["method"] == "GET" and not scope["query_string"] and await self._fast_read(scope, send_fn, access):
            if log.isEnabledFor(logging.INFO):
                log.info("GET read %s 200 %.1fms", scope["path"], (time.perf_counter() - t0) * 1e3)
            return
        status, name = 500, "?"
        req: Request | None = None
        try:
            req = parse_scope(scope)
            if req.method in ("POST", "PUT", "PATCH"):
                await read_body(receive, req, self.svc.settings.max_body_bytes)
            result, name = await routes.route(self.svc, req)
            status = result.status
            await self.render(req, result, name, send_fn)
        except FhirError as e:
            status = e.status
            pretty = req.pretty if req is not None else False
            hdrs = [(k.lower().encode(), v.encode()) for k, v in e.headers.items()]
            await send(send_fn, e.status, dumps(e.outcome(), pretty), hdrs)
        except ConnectionAbortedError:
            status = 499
        except Exception as e:  # noqa: BLE001 - the last line of defence: a 500 OperationOutcome, no PHI in logs
            status = 500
            frames = "".join(traceback.format_tb(e.__traceback__))
            log.error("internal error in %s: %s\n%s", name, type(e).__name__, frames)
            oo = operation_outcome([Issue("fatal", "exception", "Internal server error")])
            await send(send_fn, 500, dumps(oo, False), [])
        if log.isEnabledFor(logging.INFO):
            method = scope.get("method", "?")
            log.info("%s %s %s %d %.1fms", method, name, _path_shape(scope), status, (time.perf_counter() - t0) * 1e3)

    async def render(self, req: Request, result: Result, name: str, send_fn: Any) -> None:
        hdrs: list[tuple[bytes, bytes]] = [(k.lower().encode(), v.encode()) for k, v in result.headers.items()]
        stored = result.stored
        if stored is not None:
            hdrs.append((b"etag", f'W/"{stored.version}"'.encode()))
            hdrs.append((b"last-modified", http_date(stored.last_updated).encode()))
            if result.location:
                loc = f"{self.svc.base}/{stored.rtype}/{stored.id}/_history/{stored.version}"
                hdrs.append((b"location", loc.encode()))
        head = req.method == "HEAD"
        if result.status in (204, 304):
            await send(send_fn, result.status, b"", hdrs)
            return
        if name in _WRITES or name == "delete-conditional":
            prefer = req.prefer_return
            if prefer == "minimal":
                await send(send_fn, result.status, b"", hdrs)
                return
            if prefer == "operationoutcome" or (stored is None and result.resource is None):
                await send(send_fn, result.status, dumps(operation_outcome(result.issues), req.pretty), hdrs)
                return
        if stored is not None and result.stored_json is not None and name in ("read", "vread"):
            body = dumps(result.stored_json, req.pretty)  # shaped by _summary / _elements (interactions.shaping)
        elif stored is not None:
            body = stored.body.encode() if stored.body is not None else b""
            if req.pretty:
                body = dumps(result.stored_json or orjson.loads(body), True)
        elif result.raw is not None:
            body = result.raw if not req.pretty else dumps(orjson.loads(result.raw), True)
        elif result.resource is not None:
            body = dumps(result.resource, req.pretty)
        else:
            body = dumps(operation_outcome(result.issues), req.pretty)
        await send(send_fn, result.status, body, hdrs, head=head)


def _open_path(scope: dict[str, Any]) -> bool:
    """Paths answered without a token: the CapabilityStatement and SMART discovery documents."""
    path = scope.get("path", "")
    return path in ("/fhir/metadata", "/fhir/metadata/") or path.startswith("/fhir/.well-known/")


def _path_shape(scope: dict[str, Any]) -> str:
    """The path with query parameter names but not their values (values can be PHI)."""
    qs = scope.get("query_string", b"")
    if not qs:
        return scope.get("path", "")
    names = sorted({p.split(b"=", 1)[0].decode("latin-1") for p in qs.split(b"&") if p})
    return f"{scope.get('path', '')}?{'&'.join(n + '=…' for n in names)}"
