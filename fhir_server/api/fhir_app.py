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
from fhir_server.api.wire import Request, dumps, http_date, parse_scope, read_body, send
from fhir_server.interactions.request import Result
from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError, Issue, operation_outcome

log = logging.getLogger("cares_fhir.access")
_WRITES = ("create", "update", "patch", "update-conditional", "patch-conditional")


class FhirApp:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.base = svc.base.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send_fn: Any) -> None:
        t0 = time.perf_counter()
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
        if stored is not None:
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


def _path_shape(scope: dict[str, Any]) -> str:
    """The path with query parameter names but not their values (values can be PHI)."""
    qs = scope.get("query_string", b"")
    if not qs:
        return scope.get("path", "")
    names = sorted({p.split(b"=", 1)[0].decode("latin-1") for p in qs.split(b"&") if p})
    return f"{scope.get('path', '')}?{'&'.join(n + '=…' for n in names)}"
