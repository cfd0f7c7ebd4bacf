"""The search interaction: parse → SQL (``fhir_server.search``) → a searchset Bundle glued together
from the stored JSON text (no per-resource parse or re-serialisation on this hot path)."""

from __future__ import annotations

from urllib.parse import urlencode

import orjson

from fhir_server.interactions.checks import known_type
from fhir_server.interactions.request import Interaction, Result
from fhir_server.interactions.services import Services
from fhir_server.outcome import operation_outcome
from fhir_server.search import compile_count, compile_includes, compile_page, parse_search
from fhir_server.storage.db import Conn


async def search(svc: Services, ix: Interaction, conn: Conn | None = None) -> Result:
    rtype = known_type(ix.rtype or "")
    s = svc.settings
    parsed = parse_search(rtype, ix.params, svc.registry, base_url=svc.base, strict=ix.strict,
                          default_count=s.default_count, max_count=s.max_count)
    if conn is not None:
        return await _run(svc, parsed, conn)
    async with svc.db.read() as c:
        return await _run(svc, parsed, c)


def _selective(parsed) -> bool:  # noqa: ANN001 - ParsedSearch
    """Searches by reference or id match few rows whatever the values, so a prepared statement's
    generic plan is as good as a custom one and planning can be skipped (``CarePlan?subject=``)."""
    return bool(parsed.criteria) and all(c.type in ("reference", "_id") and c.modifier is None
                                         for c in parsed.criteria)


async def _run(svc: Services, parsed, conn: Conn) -> Result:  # noqa: ANN001 - ParsedSearch
    base = svc.base
    rtype = parsed.rtype
    total: int | None = None
    rows: list[tuple] = []
    has_next = False
    if parsed.summary != "count" and parsed.count > 0:
        sql, args = compile_page(parsed)
        rows = await conn.all(sql, args, prepare=_selective(parsed))
        has_next = len(rows) > parsed.count
        rows = rows[: parsed.count]
        if parsed.cursor is None and not has_next and parsed.total != "none":
            total = len(rows)
    wants_total = parsed.summary == "count" or parsed.total in ("accurate", "estimate") or (
        parsed.count == 0 and parsed.total != "none")
    if total is None and wants_total:
        sql, args = compile_count(parsed)
        total = (await conn.one(sql, args))[0]
    parts = [b'{"resourceType":"Bundle","type":"searchset"']
    if total is not None:
        parts.append(b',"total":%d' % total)
    links = [{"relation": "self", "url": f"{base}/{rtype}?{urlencode(parsed.self_link_params())}"}]
    if parsed.cursor is not None:
        links.append({"relation": "first", "url": f"{base}/{rtype}?{urlencode(parsed.first_link_params())}"})
    if has_next:
        links.append({"relation": "next",
                      "url": f"{base}/{rtype}?{urlencode(parsed.next_link_params(rows[-1][0]))}"})
    parts.append(b',"link":' + orjson.dumps(links))
    entries: list[bytes] = []
    prefix = f'{{"fullUrl":"{base}/{rtype}/'.encode()
    for r in rows:
        entries.append(prefix + r[1].encode() + b'","resource":' + r[4].encode() + b',"search":{"mode":"match"}}')
    if rows and (parsed.includes or parsed.revincludes):
        seen = {(rtype, r[1]) for r in rows}
        for sql, args in compile_includes(parsed, [r[0] for r in rows]):
            for inc in await conn.all(sql, args):
                key = (inc[5], inc[1])
                if key in seen:
                    continue
                seen.add(key)
                entries.append(f'{{"fullUrl":"{base}/{inc[5]}/{inc[1]}","resource":'.encode() + inc[4].encode()
                               + b',"search":{"mode":"include"}}')
    if parsed.warnings:
        entries.append(b'{"resource":' + orjson.dumps(operation_outcome(parsed.warnings))
                       + b',"search":{"mode":"outcome"}}')
    if entries:
        parts.append(b',"entry":[' + b",".join(entries) + b"]")
    parts.append(b"}")
    return Result(200, raw=b"".join(parts))
