"""Resolving a search expression to stored resources inside a transaction: used by conditional
create/update/patch/delete and by conditional references in transactions."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fhir_server.interactions import guard
from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError
from fhir_server.search import compile_page, parse_search
from fhir_server.storage.db import Conn
from fhir_server.storage.repository import Stored


def parse_query(query: str) -> list[tuple[str, str]]:
    """``identifier=a|b&name=x`` (optionally prefixed with ``Type?``) → [(name, value), …]."""
    if "?" in query:
        query = query.split("?", 1)[1]
    return parse_qsl(query, keep_blank_values=True)


async def find_matches(svc: Services, conn: Conn, rtype: str, params: list[tuple[str, str]],
                       limit: int, perm: str = "r") -> list[Stored]:
    """Up to ``limit`` current resources of ``rtype`` matching ``params`` (unknown parameters are an error
    here: a condition that silently matched everything would overwrite the wrong resource). With
    authorization on, only resources the token may ``perm`` match (``guard.restrict_matches``)."""
    criteria = [(k, v) for k, v in params if not k.startswith("_") or k in ("_id", "_lastUpdated", "_tag",
                                                                           "_profile", "_security", "_source")]
    if not criteria:
        raise FhirError.of(400, "invalid", "A conditional request needs at least one search criterion")
    parsed = parse_search(rtype, criteria, svc.registry, base_url=svc.base, strict=True,
                          default_count=limit, max_count=limit)
    await guard.restrict_matches(svc, parsed, perm)
    sql, args = compile_page(parsed)
    rows = await conn.all(sql, args)
    return [Stored(r[0], rtype, r[1], r[2], r[3], False, r[4]) for r in rows[:limit]]
