"""History at instance, type and system level (``_since``, ``_at``, ``_count``, keyset paging)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

import orjson

from fhir_server.indexing.dates import format_instant, parse_date_range, to_instant_us
from fhir_server.interactions import guard
from fhir_server.interactions.checks import known_type
from fhir_server.interactions.request import Interaction, Result
from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError
from fhir_server.storage.db import Conn

_KNOWN = ("_since", "_at", "_count", "_cursor")


def _cursor(token: str) -> tuple[int, int, int]:
    try:
        parts = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii").split(".")
        if len(parts) == 4 and parts[0] == "h1":
            return int(parts[1]), int(parts[2]), int(parts[3])
    except (ValueError, UnicodeDecodeError):
        pass
    raise FhirError.of(400, "invalid", "Invalid _cursor (use the links of a previous page)", "_cursor")


def _encode(lu: int, rkey: int, version: int) -> str:
    return base64.urlsafe_b64encode(f"h1.{lu}.{rkey}.{version}".encode()).decode().rstrip("=")


async def history(svc: Services, ix: Interaction, conn: Conn | None = None) -> Result:
    rtype = known_type(ix.rtype) if ix.rtype else None
    pol = await guard.policy_for(svc)
    if pol is not None:
        if rtype is not None:
            await pol.grant(rtype, "s")
        elif not any("s" in rs.perms for rs in pol.access.scopes.resource):
            raise await pol.deny(403, "The token's scopes do not allow history", None, perm="s")
    visible = guard.include_filter(pol, "s")
    params = dict(ix.params)
    for k in params:
        if k not in _KNOWN and ix.strict:
            raise FhirError.of(400, "not-supported", f"Unknown history parameter '{k[:40]}'", k)
    since = at = cursor = None
    try:
        if "_since" in params:
            since = to_instant_us(params["_since"])
        if "_at" in params:
            at = parse_date_range(params["_at"])
    except ValueError:
        raise FhirError.of(400, "invalid", "_since/_at must be FHIR dates (instant for _since)") from None
    raw_count = params.get("_count", str(svc.settings.default_count))
    if not raw_count.isdigit():
        raise FhirError.of(400, "invalid", "_count must be a non-negative integer", "_count")
    count = min(int(raw_count), svc.settings.max_count)
    if "_cursor" in params:
        cursor = _cursor(params["_cursor"])
    if ix.rid is not None and rtype is not None and not await svc.repo.exists(rtype, ix.rid):
        raise FhirError.of(404, "not-found", f"{rtype}/{ix.rid[:64]} is not known")
    if ix.rid is not None and rtype is not None and pol is not None and visible is not None:
        cur = await svc.repo.read(rtype, ix.rid, conn)
        if cur is None or not visible(rtype, cur.body):
            raise await pol.deny(404, f"{rtype}/{ix.rid[:64]} is not known", rtype, ix.rid, perm="s",
                                 code="not-found")
    rows = await svc.repo.history(rtype=rtype, rid=ix.rid, since=since, at=at, count=count + 1, cursor=cursor)
    has_next = len(rows) > count
    rows = rows[:count]
    base = svc.base
    path = "/".join(p for p in (base, rtype, ix.rid, "_history") if p)
    keep = [(k, v) for k, v in ix.params if k in ("_since", "_at")]
    paging = [(k, v) for k, v in ix.params if k in ("_count", "_cursor")]
    links = [{"relation": "self", "url": f"{path}?{urlencode([*keep, *paging])}"}]
    if has_next:
        last = rows[-1][0]
        after = _encode(last.last_updated, last.rkey, last.version)
        links.append({"relation": "next", "url": f"{path}?{urlencode([*keep, ('_count', count), ('_cursor', after)])}"})
    entries: list[dict[str, Any]] = []
    filtered = False
    for stored, method in rows:
        if visible is not None and not visible(stored.rtype, stored.body):
            filtered = True  # not the token's to see (a deleted version's compartment cannot be told)
            continue
        entry: dict[str, Any] = {"fullUrl": f"{base}/{stored.rtype}/{stored.id}"}
        if stored.body is not None:
            entry["resource"] = orjson.Fragment(stored.body)
        url = stored.rtype if method == "POST" else f"{stored.rtype}/{stored.id}"
        status = {"POST": "201 Created", "DELETE": "204 No Content"}.get(method, "200 OK")
        entry["request"] = {"method": method, "url": url}
        entry["response"] = {"status": status, "etag": f'W/"{stored.version}"',
                             "lastModified": format_instant(stored.last_updated)}
        entries.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history", "link": links}
    if cursor is None and not has_next and not filtered:
        bundle["total"] = len(entries)
    if entries:
        bundle["entry"] = entries
    level = "instance" if ix.rid else ("type" if rtype else "system")
    await guard.audit(svc, "R", f"history-{level}", rtype=rtype, rid=ix.rid, query=urlencode(ix.params) or None,
                      patients=guard.search_patients(ix.params))
    return Result(200, raw=orjson.dumps(bundle))
