"""Read CodeSystems / ValueSets created through the API from the database (by their ``url`` search
index rows), so operations see them even when the store was not told (another process wrote them, or the
CRUD layer does not call :func:`terminology.on_resource_saved`)."""

from __future__ import annotations

from typing import Any

import orjson

from terminology.store import STORE, Layered, Resolver, Resource, split_canonical

_SQL = ("SELECT r.body FROM resource r JOIN idx_uri i ON i.rkey = r.rkey WHERE i.rtype = %s AND i.param = %s "
        "AND i.uri = %s AND NOT r.deleted ORDER BY r.rkey")
MAX_FETCHED = 200  # resources one request may pull in (value sets including value sets …)
_URI_WIDTH = 255  # the indexer cuts uri values to this


async def by_url(svc: Any, rtype: str, url: str) -> list[Resource]:
    """The current ``rtype`` resources whose ``url`` is ``url`` (any version), oldest first."""
    if len(url) > _URI_WIDTH:
        return []
    async with svc.db.read() as c:
        rows = await c.all(_SQL, (rtype, "url", url))
    out = []
    for (body,) in rows:
        try:
            r = orjson.loads(body)
        except orjson.JSONDecodeError:  # pragma: no cover - bodies are written by the server
            continue
        if r.get("url") == url:
            out.append(r)
    return out


def _references(vs: Resource) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    compose = vs.get("compose")
    if not isinstance(compose, dict):
        return out
    for part in ("include", "exclude"):
        for inc in compose.get(part) or []:
            if not isinstance(inc, dict):
                continue
            if isinstance(inc.get("system"), str):
                out.append(("CodeSystem", inc["system"]))
            out += [("ValueSet", v) for v in inc.get("valueSet") or [] if isinstance(v, str)]
    return out


async def resolver_for(svc: Any, roots: list[tuple[str, str]], *, base: Resolver = STORE,
                       extra: list[Resource] = ()) -> Layered:
    """A resolver with the database's resources of ``roots`` (type, canonical) — and of everything the value
    sets among them refer to, transitively — in front of ``base``. ``extra``: resources already read (an
    instance, a ``valueSet`` parameter) whose references are followed too."""
    found: dict[tuple[str, str], list[Resource]] = {}
    layered = Layered(base, found)
    todo = list(roots)
    for r in extra:
        if r.get("resourceType") == "ValueSet":
            todo += _references(r)
    seen: set[tuple[str, str]] = set()
    while todo and len(seen) < MAX_FETCHED:
        rtype, canonical = todo.pop(0)
        url, version = split_canonical(canonical)
        if (rtype, url) in seen:
            continue
        seen.add((rtype, url))
        rows = await by_url(svc, rtype, url)
        if rows:
            found[(rtype, url)] = rows
        if rtype == "ValueSet":
            vs = layered.get(rtype, url, version)
            if vs is not None:
                todo += _references(vs)
    return Layered(base, found)
