"""Custom SearchParameter resources (FHIR R4 searchparameter.html), e.g. the CARES guide's.

A SearchParameter written through the API with status ``active`` or ``draft`` and an ``expression``
is registered in the server's search-parameter registry as soon as it is saved, so searches accept
it and new writes are indexed with it at once (resources stored before it are indexed by
``$reindex``, see ``reindex.py``). It is checked before it is saved: an expression the indexer cannot
compile, a base that is no resource type, or a clash with another custom parameter is a 422 and
nothing is stored. Deleting it, or setting it ``retired``, unregisters it (an R4 parameter it had
replaced comes back). Stored ones are registered again when the server starts (``load_stored``).

Known limits: a SearchParameter written in a transaction Bundle that then fails stays registered
until the next start; several server processes on one database learn of each other's new
SearchParameters only when they restart; index rows of a removed parameter stay until ``$reindex``
(they are never read: the parameter is unknown).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson

from fhir_server.indexing.registry import SearchParam, SearchParamRegistry
from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError

log = logging.getLogger("cares_fhir")

RTYPE = "SearchParameter"
#: statuses whose SearchParameters are in force
ACTIVE = frozenset({"active", "draft"})
_CODE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,99}")


def in_force(resource: dict[str, Any]) -> bool:
    """Whether the server registers this SearchParameter (status active/draft, with an expression)."""
    expression = resource.get("expression")
    return resource.get("status") in ACTIVE and isinstance(expression, str) and bool(expression.strip())


def _invalid(message: str, element: str) -> FhirError:
    return FhirError.of(422, "processing", message, f"SearchParameter.{element}")


def _is_custom(p: SearchParam) -> bool:
    """Registered from a stored SearchParameter (not one of the R4 definitions)."""
    return p is not SearchParamRegistry.default().get(p.resource_type, p.code)


def _custom_params(registry: SearchParamRegistry) -> list[SearchParam]:
    return [p for rtype in registry.resource_types() for p in registry.params_for(rtype).values() if _is_custom(p)]


def check(svc: Services, resource: dict[str, Any], rid: str | None) -> None:
    """Before ``resource`` (a SearchParameter about to be saved as ``SearchParameter/rid``; ``rid`` None
    for a new server-assigned id) is saved: a 422 FhirError when it is in force but cannot be used."""
    if not in_force(resource):
        return
    code = resource.get("code")
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise _invalid(f"SearchParameter.code must be a name of letters, digits, '-' and '_' (at most 100), "
                       f"not {str(code)[:110]!r}", "code")
    scratch = SearchParamRegistry()
    try:
        params = scratch.add(resource)
    except ValueError as e:
        raise _invalid(f"The SearchParameter cannot be used: {e}", "base") from None
    if not params:
        raise _invalid("None of the SearchParameter's base types is an R4 resource type", "base")
    if scratch.unsupported:
        reasons = "; ".join(f"{rtype}: {reason}" for rtype, _, reason in scratch.unsupported[:5])
        raise _invalid(f"The expression of search parameter '{code}' cannot be indexed by this server "
                       f"({reasons[:500]})", "expression")
    url = resource.get("url")
    customs = _custom_params(svc.registry)
    for p in customs:
        other = p.resource.get("id")
        if other == rid:
            continue
        if url is not None and p.url == url:
            raise _invalid(f"SearchParameter/{other} already has the url {url[:200]}", "url")
    for p in params:
        existing = svc.registry.get(p.resource_type, p.code)
        if existing is not None and _is_custom(existing) and existing.resource.get("id") != rid:
            raise _invalid(f"{p.resource_type} already has a custom search parameter '{code}' "
                           f"(SearchParameter/{existing.resource.get('id')})", "code")


def _unregister(svc: Services, rid: str) -> bool:
    urls = {p.url for p in _custom_params(svc.registry) if p.resource.get("id") == rid}
    for url in urls:
        svc.registry.remove(url or "", restore=SearchParamRegistry.default())
    return bool(urls)


def _register(svc: Services, resource: dict[str, Any]) -> list[SearchParam]:
    if not resource.get("url"):  # url is required in R4; without one the resource's own URL names it
        resource = {**resource, "url": f"{svc.base}/{RTYPE}/{resource.get('id')}"}
    return svc.registry.add(resource)


def _changed(svc: Services) -> None:
    from fhir_server.interactions import capability

    capability.invalidate(svc)  # the CapabilityStatement lists the search parameters


def saved(svc: Services, resource: dict[str, Any]) -> None:
    """After a SearchParameter was written (``resource`` as stored, with its id): (re-)register it, or
    unregister it when it is no longer in force."""
    rid = resource.get("id")
    changed = _unregister(svc, rid) if isinstance(rid, str) else False
    if in_force(resource):
        _register(svc, resource)
        changed = True
    if changed:
        _changed(svc)


def deleted(svc: Services, rid: str) -> None:
    """After SearchParameter/``rid`` was deleted: unregister it."""
    if _unregister(svc, rid):
        _changed(svc)


async def load_stored(svc: Services) -> int:
    """Register every stored SearchParameter that is in force (at start, before serving); returns
    how many. One that no longer compiles is registered unindexed (searching with it is a 400)."""
    bodies: list[str] = []
    after = 0
    async with svc.db.read() as c:
        while True:
            rows = await svc.repo.current_batch(c, RTYPE, after, 500)
            if not rows:
                break
            bodies += [body for _, _, body in rows]
            after = rows[-1][0]
    loaded = 0
    for body in bodies:
        resource = orjson.loads(body)
        if not in_force(resource):
            continue
        try:
            params = _register(svc, resource)
        except ValueError as e:
            log.warning("SearchParameter/%s is not usable: %s", resource.get("id"), e)
            continue
        bad = {(u[0], u[1]) for u in svc.registry.unsupported}
        if any((p.resource_type, p.code) in bad for p in params):
            log.warning("SearchParameter/%s: its expression cannot be indexed", resource.get("id"))
        loaded += 1
    if loaded:
        _changed(svc)
        log.info("custom search parameters: %d loaded", loaded)
    return loaded
