"""The search interaction: parse → SQL (``fhir_server.search``) → a searchset Bundle glued together
from the stored JSON text (no per-resource parse or re-serialisation on this hot path).

* type search ``GET [type]?…`` (:func:`search`) and compartment search ``GET Patient/[id]/[type]?…`` /
  ``Patient/[id]/*`` (:func:`compartment`);
* keyset pages with ``self``/``first``/``next``/``previous`` links (a previous page is the reverse
  keyset query before the first row of this page), so page 1000 costs what page 1 costs;
* ``ParsedSearch.post_filters`` (composite parameters, ``:of-type``) are applied to each candidate;
  batches are fetched until the page is full, so pages and totals stay exact;
* ``_include`` / ``_revinclude`` (``:iterate`` repeats on what was included, up to
  :data:`MAX_INCLUDE_ROUNDS` rounds and :data:`MAX_INCLUDED` resources, with a warning when cut);
* ``_total``: ``accurate`` counts; ``estimate`` counts up to :data:`ESTIMATE_EXACT_UP_TO` and beyond
  that takes PostgreSQL's planner estimate (SQLite counts); ``none`` never counts. A type-only search
  (:func:`_type_only`: ``GET Observation``, no criteria) never counts: its total is the live-resource
  counter of the type (``resource_count``), exact and O(1), so it is given for every page too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import orjson

from fhir_server.definitions import patient_compartment
from fhir_server.interactions import guard
from fhir_server.interactions.checks import known_type
from fhir_server.interactions.request import Interaction, Result
from fhir_server.interactions.services import Services
from fhir_server.interactions.shaping import SearchShape, search_shape
from fhir_server.outcome import FhirError, Issue, operation_outcome
from fhir_server.search import (
    Cursor,
    ParsedSearch,
    compile_count,
    compile_include,
    compile_match_rows,
    compile_page,
    parse_compartment_search,
    parse_search,
    row_cursor,
)
from fhir_server.storage.db import Conn

MAX_INCLUDED = 1000
"""At most this many resources are added to one page by _include/_revinclude."""
MAX_INCLUDE_ROUNDS = 8
"""At most this many :iterate rounds (round 1 is the plain include of the matches)."""
ESTIMATE_EXACT_UP_TO = 10_000
"""``_total=estimate`` is exact up to this many matches."""
_POST_FILTER_BATCH = 200


async def _terminology_for(svc: Services, params: list[tuple[str, str]]) -> None:
    """Token ``:in``/``:not-in``/``:above``/``:below`` name value sets / code systems that may be stored
    in the database: read them for the (synchronous) parser first (``terminology/search.py``)."""
    if any(k.endswith((":in", ":not-in", ":above", ":below")) for k, _ in params):
        from terminology.search import prepare_search

        await prepare_search(svc, params)


async def search(svc: Services, ix: Interaction, conn: Conn | None = None) -> Result:
    rtype = known_type(ix.rtype or "")
    s = svc.settings
    pol = await guard.policy_for(svc)
    if pol is not None:
        await pol.grant(rtype, "s")
    await _terminology_for(svc, ix.params)
    parsed = parse_search(rtype, ix.params, svc.registry, base_url=svc.base, strict=ix.strict,
                          default_count=s.default_count, max_count=s.max_count, allow_post_filter=True)
    await guard.restrict_search(svc, pol, parsed)
    result = await _with_conn(svc, parsed, conn, rtype, guard.include_filter(pol))
    await guard.audit(svc, "R", "search-type", rtype=rtype, query=urlencode(ix.params),
                      patients=guard.search_patients(ix.params))
    return result


async def compartment(svc: Services, ix: Interaction, ctype: str, cid: str, conn: Conn | None = None) -> Result:
    """``GET [ctype]/[cid]/[type]`` or ``[ctype]/[cid]/*`` (``ix.rtype`` is the type or ``*``);
    only the Patient compartment is defined here."""
    target = ix.rtype or ""
    if ctype != "Patient":
        raise FhirError.of(400, "not-supported", f"Compartment {ctype[:64]} is not supported (only Patient)")
    if target != "*":
        known_type(target)
    s = svc.settings
    pol = await guard.policy_for(svc)
    if pol is not None:
        await _compartment_allowed(pol, target, cid)
    await _terminology_for(svc, ix.params)
    parsed = parse_compartment_search(ctype, cid, target, ix.params, svc.registry, base_url=svc.base,
                                      compartment=patient_compartment(), strict=ix.strict,
                                      default_count=s.default_count, max_count=s.max_count)
    await guard.restrict_search(svc, pol, parsed)
    result = await _with_conn(svc, parsed, conn, f"{ctype}/{cid}/{target}", guard.include_filter(pol))
    await guard.audit(svc, "R", "search-compartment", rtype=target if target != "*" else None,
                      query=urlencode(ix.params), patients=(cid,))
    return result


async def _compartment_allowed(pol: guard.Policy, target: str, cid: str) -> None:
    """``Patient/[cid]/[target]``: 403 when no scope allows searching ``target`` (for ``*``: any type); 404
    when ``Patient/[cid]`` is outside the patients the token may see (restricted tokens)."""
    if target != "*":
        g = await pol.grant(target, "s")
        allowed = g.patients
    else:
        if not any("s" in rs.perms for rs in pol.access.scopes.resource):
            raise await pol.deny(403, "The token's scopes do not allow searching", None, perm="s")
        allowed = pol.patients_for_contexts("s")
    if allowed is not None and cid not in allowed:
        raise await pol.deny(404, f"Patient/{cid[:64]} is not known", "Patient", cid, perm="s", code="not-found")


async def _with_conn(svc: Services, parsed: ParsedSearch, conn: Conn | None, path: str,
                     keep: Any = None) -> Result:
    if conn is not None:
        return await _run(svc, parsed, conn, path, keep)
    await svc.db.before_search()
    async with svc.db.read() as c:
        return await _run(svc, parsed, c, path, keep)


def _selective(parsed: ParsedSearch) -> bool:
    """Searches by reference or id match few rows whatever the values, so a prepared statement's
    generic plan is as good as a custom one and planning can be skipped (``CarePlan?subject=``)."""
    return bool(parsed.criteria) and not parsed.sort and all(
        c.type in ("reference", "_id") and c.modifier is None for c in parsed.criteria)


def _type_only(parsed: ParsedSearch) -> bool:
    """Whether the matches are simply every live resource of ``parsed.rtype`` — what ``resource_count``
    counts: one type (not a compartment ``*`` search: ``types``), no criterion (a compartment search has
    its compartment criterion; ``_id``, ``_lastUpdated``, ``_has``, ``_text`` … are criteria too) and no
    Python post-filter. ``compile_count`` would then be ``count(*) … WHERE rtype = %s AND NOT deleted``.
    Result parameters (``_sort``, ``_include``, ``_summary``, ``_elements``, the cursor) do not change
    which resources match, and ignored unknown parameters are not criteria."""
    return not parsed.criteria and not parsed.post_filters and parsed.types is None and (
        parsed.visibility is None or parsed.visibility.patients(parsed.rtype) is None)


def _passes(parsed: ParsedSearch, row: tuple) -> bool:
    body = orjson.loads(row[4])
    return all(f(body) for f in parsed.post_filters)


async def _fetch(conn: Conn, parsed: ParsedSearch, n: int) -> tuple[list[tuple], bool]:
    """Up to ``n`` matching rows in query order (reverse page order for a ``before`` cursor), and
    whether more follow in that direction."""
    if not parsed.post_filters:
        sql, args = compile_page(parsed, count=n)
        rows = await conn.all(sql, args, prepare=_selective(parsed))
        return rows[:n], len(rows) > n
    out: list[tuple] = []
    cursor = parsed.cursor
    before = cursor is not None and cursor.before
    batch = max(n + 1, _POST_FILTER_BATCH)
    while True:
        sql, args = compile_page(parsed, count=batch, cursor=cursor)
        raw = await conn.all(sql, args)
        more = len(raw) > batch
        raw = raw[:batch]
        for row in raw:
            if _passes(parsed, row):
                out.append(row)
                if len(out) > n:
                    return out[:n], True
        if not more:
            return out, False
        last = row_cursor(parsed, raw[-1])
        cursor = Cursor(last.rkey, last.values, before)


async def _count(conn: Conn, parsed: ParsedSearch, limit: int | None = None) -> int:
    if not parsed.post_filters:
        sql, args = compile_count(parsed, limit=limit)
        return (await conn.one(sql, args))[0]
    unsorted = replace(parsed, sort=(), cursor=None)
    total, cursor = 0, None
    while True:
        sql, args = compile_page(unsorted, count=1000, cursor=cursor, use_cursor=cursor is not None)
        raw = await conn.all(sql, args)
        total += sum(1 for row in raw[:1000] if _passes(parsed, row))
        if len(raw) <= 1000 or (limit is not None and total >= limit):
            return total
        cursor = Cursor(raw[999][0])


async def _estimate(conn: Conn, parsed: ParsedSearch) -> int:
    n = await _count(conn, parsed, limit=ESTIMATE_EXACT_UP_TO + 1)
    if n <= ESTIMATE_EXACT_UP_TO or conn.dialect != "postgresql" or parsed.post_filters:
        return n if n <= ESTIMATE_EXACT_UP_TO else await _count(conn, parsed)
    sql, args = compile_match_rows(parsed)
    row = await conn.one("EXPLAIN (FORMAT JSON) " + sql, args)
    try:
        plan = row[0] if not isinstance(row[0], str) else orjson.loads(row[0])
        return max(n, int(plan[0]["Plan"]["Plan Rows"]))
    except (KeyError, IndexError, TypeError, ValueError):  # pragma: no cover - an odd EXPLAIN answer
        return n


def _url(base: str, path: str, params: list[tuple[str, str]]) -> str:
    return f"{base}/{path}?{urlencode(params)}"


async def _run(svc: Services, parsed: ParsedSearch, conn: Conn, path: str, keep: Any = None) -> Result:
    base = svc.base
    total: int | None = None
    rows: list[tuple] = []
    more = False
    cursor = parsed.cursor
    before = cursor is not None and cursor.before
    if parsed.summary != "count" and parsed.count > 0:
        rows, more = await _fetch(conn, parsed, parsed.count)
        if before:
            rows.reverse()
        if cursor is None and not more and parsed.total != "none":
            total = len(rows)
    has_next = (not before and more) or (before and cursor is not None)
    has_prev = (before and more) or (not before and cursor is not None)
    if total is None and parsed.total != "none":
        if _type_only(parsed):  # exact and O(1) (a few counter rows): also when no _total was asked for
            total = await svc.repo.live_total(conn, parsed.rtype)
        elif parsed.summary == "count" or parsed.total == "accurate" or parsed.count == 0:
            total = await _count(conn, parsed)
        elif parsed.total == "estimate":
            total = await _estimate(conn, parsed)
    parts = [b'{"resourceType":"Bundle","type":"searchset"']
    if total is not None:
        parts.append(b',"total":%d' % total)
    links = [{"relation": "self", "url": _url(base, path, parsed.self_link_params())}]
    if cursor is not None:
        links.append({"relation": "first", "url": _url(base, path, parsed.first_link_params())})
    if has_prev and rows:
        links.append({"relation": "previous",
                      "url": _url(base, path, parsed.previous_link_params(row_cursor(parsed, rows[0])))})
    if has_next:
        nxt = parsed.next_link_params(row_cursor(parsed, rows[-1])) if rows else parsed.first_link_params()
        links.append({"relation": "next", "url": _url(base, path, nxt)})
    parts.append(b',"link":' + orjson.dumps(links))
    entries: list[bytes] = []
    shape = search_shape(parsed)  # _summary / _elements; None when not asked for
    for r in rows:
        entries.append(f'{{"fullUrl":"{base}/{r[5]}/{r[1]}","resource":'.encode()
                       + (shape.match(r[4]) if shape else r[4].encode()) + b',"search":{"mode":"match"}}')
    warnings = list(parsed.warnings)
    if rows and (parsed.includes or parsed.revincludes):
        entries += await _includes(conn, parsed, rows, warnings, shape, keep)
    if warnings:
        entries.append(b'{"resource":' + orjson.dumps(operation_outcome(warnings))
                       + b',"search":{"mode":"outcome"}}')
    if entries:
        parts.append(b',"entry":[' + b",".join(entries) + b"]")
    parts.append(b"}")
    return Result(200, raw=b"".join(parts))


async def _includes(conn: Conn, parsed: ParsedSearch, rows: list[tuple], warnings: list[Issue],
                    shape: SearchShape | None = None, keep: Any = None) -> list[bytes]:
    """The include entries for a page: round 1 applies every _include/_revinclude to the matches; each
    further round applies the ``:iterate`` ones to what the previous round added, until nothing new.
    ``keep(rtype, body)`` (authorization on): only what it accepts is added (and iterated from)."""
    base = svc_base = parsed.base_url  # the base the links and fullUrls use
    seen = {(r[5], r[1]) for r in rows}
    frontier: dict[str, list[int]] = {}
    for r in rows:
        frontier.setdefault(r[5], []).append(r[0])
    iterating = any(i.iterate for i in (*parsed.includes, *parsed.revincludes))
    entries: list[bytes] = []
    for round_no in range(MAX_INCLUDE_ROUNDS):
        queries = []
        for rt, rkeys in frontier.items():
            for inc in parsed.includes:
                if inc.source_type == rt and (round_no == 0 or inc.iterate):
                    queries.append(compile_include(rt, inc, rkeys, svc_base, reverse=False, limit=MAX_INCLUDED + 1))
            for inc in parsed.revincludes:
                if inc.target_type in (None, rt) and (round_no == 0 or inc.iterate):
                    queries.append(compile_include(rt, inc, rkeys, svc_base, reverse=True, limit=MAX_INCLUDED + 1))
        new: dict[str, list[int]] = {}
        for sql, args in queries:
            for inc in await conn.all(sql, args):
                key = (inc[5], inc[1])
                if key in seen:
                    continue
                if keep is not None and not keep(inc[5], inc[4]):
                    seen.add(key)
                    continue
                if len(entries) >= MAX_INCLUDED:
                    warnings.append(Issue("warning", "too-costly",
                                          f"_include/_revinclude results were cut at {MAX_INCLUDED} resources"))
                    return entries
                seen.add(key)
                new.setdefault(inc[5], []).append(inc[0])
                entries.append(f'{{"fullUrl":"{base}/{inc[5]}/{inc[1]}","resource":'.encode()
                               + (shape.include(inc[4]) if shape else inc[4].encode())
                               + b',"search":{"mode":"include"}}')
        if not new or not iterating:
            return entries
        frontier = new
    warnings.append(Issue("warning", "too-costly",
                          f"_include:iterate stopped after {MAX_INCLUDE_ROUNDS} rounds"))
    return entries
