"""Talking to the live server: load an example's resources, run a search to the last page, probe features."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import httpx

from tests.oracle import data as D
from tests.oracle.evaluator import Query

FHIR_JSON = {"Content-Type": "application/fhir+json"}
STRICT = {"Prefer": "handling=strict"}  # an ignored parameter would match everything: make it a 400


def new_prefix() -> str:
    """A fresh id prefix (and scope value) for one example."""
    return uuid.uuid4().hex[:10] + "-"


def base_of(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


def load(client: httpx.Client, resources: list[dict], deletes: Sequence[dict] = ()) -> None:
    """PUT every resource (ids chosen by the test) and DELETE ``deletes``, in one transaction."""
    entries = [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
               for r in resources]
    entries += [{"request": {"method": "DELETE", "url": f"{r['resourceType']}/{r['id']}"}} for r in deletes]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    r = client.post("", json=bundle, headers=FHIR_JSON)
    assert r.status_code == 200, f"loading the example failed: {r.status_code} {r.text[:2000]}"


class SearchFailed(AssertionError):
    pass


TIMEOUT = 30.0  # seconds for one page of a search over a few thousand resources: a hang is a failure


def _get(client: httpx.Client, url: str, params: list[tuple[str, str]] | None = None) -> httpx.Response:
    try:
        return client.get(url, params=params, headers=STRICT, timeout=TIMEOUT)
    except httpx.TimeoutException:
        raise SearchFailed(f"GET {client.base_url}{url} {params or ''}: no answer in {TIMEOUT:.0f} s") from None


def search(client: httpx.Client, q: Query, prefix: str, count: int, total: bool = False) -> list[str]:
    """The ids of the matches of ``q`` within the example ``prefix``, in server order, over all pages."""
    params = [*q.params(), ("identifier", f"{D.RUN_SYSTEM}|{prefix}"), ("_count", str(count))]
    if total:
        params.append(("_total", "accurate"))
    r = _get(client, q.rtype, params)
    out: list[str] = []
    pages = 0
    bundle_total = None
    while True:
        if r.status_code != 200:
            raise SearchFailed(f"GET {r.request.url} -> {r.status_code}: {r.text[:2000]}")
        b = r.json()
        if pages == 0:
            bundle_total = b.get("total")
        pages += 1
        out += [e["resource"]["id"] for e in b.get("entry", []) if e.get("search", {}).get("mode") == "match"]
        nxt = [link["url"] for link in b.get("link", []) if link["relation"] == "next"]
        if not nxt:
            break
        assert pages < 100, f"paging does not end: {r.request.url}"
        r = _get(client, nxt[0])
    assert len(out) == len(set(out)), f"a match appears twice while paging {q}: {out}"
    if total:
        assert bundle_total == len(out), f"Bundle.total {bundle_total} but {len(out)} matches for {q}"
    return out


_PROBES: dict[tuple[str, str, str, str], bool] = {}


def supports(client: httpx.Client, rtype: str, key: str, value: str) -> bool:
    """Whether the server answers ``rtype?key=value`` (strict handling) with 200; a 400 means 'not yet'."""
    k = (base_of(client), rtype, key, value)
    if k not in _PROBES:
        r = client.get(rtype, params=[(key, value), ("_count", "0")], headers=STRICT)
        assert r.status_code in (200, 400), f"probe {rtype}?{key}={value}: {r.status_code} {r.text[:500]}"
        if r.status_code == 400:
            issues = json.dumps(r.json().get("issue", []))
            assert "not-supported" in issues or "not supported" in issues, f"probe {key}: {issues}"
        _PROBES[k] = r.status_code == 200
    return _PROBES[k]
