"""The audit writer's batched path (``Repository.save_many`` / ``audit.writer.save_many``) on both backends.

``save_many`` must store exactly what ``save`` of each event one after the other stores — current row, history row,
every index row, the live-resource count — only with fewer statements. Each test opens its own ``Services`` on the
database of a live test server (SQLite and PostgreSQL, ``tests/conftest.py``) and compares the stored rows; what the
batched writer stores is also checked through the live server's FHIR API."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from fhir_server import audit
from fhir_server.audit import AuditRecord
from fhir_server.audit.event import build
from fhir_server.auth.access import Access
from fhir_server.auth.scopes import Scopes
from fhir_server.indexing.dates import format_instant
from fhir_server.interactions.services import Services
from fhir_server.storage.db import Conn
from fhir_server.storage.schema import INDEX_TABLES, idx_number
from tests.audit.support import with_services
from tests.conftest import LiveServer

WHEN = 1_795_000_000_123_456  # a fixed meta.lastUpdated (µs) for the row-by-row comparison



def records(tag: str) -> list[AuditRecord]:
    """Varied events: reads, searches with a query, a denial with a reason, a login without an Access, a write."""
    who = Access(client_id=f"client-{tag}", scopes=Scopes.parse("patient/*.rs"), patient=f"pt-{tag}",
                 fhir_user=f"Practitioner/pr-{tag}", username=f"user-{tag}", token_id="0123456789abcdef",
                 source="10.0.0.7")
    out = []
    for n in range(12):
        out.append(AuditRecord("R", "read", rtype="CarePlan", rid=f"cp-{tag}-{n}", patients=(f"pt-{tag}",),
                               access=who, source="10.0.0.7"))
    out.append(AuditRecord("R", "search-type", rtype="Observation", query=f"subject=Patient/pt-{tag}&code=1234-5",
                           patients=(f"pt-{tag}", f"pt2-{tag}"), access=who, source="10.0.0.7"))
    out.append(AuditRecord("R", "denied", outcome="4", status=403, rtype="Patient", rid=f"other-{tag}", access=who,
                           source="10.0.0.7", detail={"reason": "scope"}))
    out.append(AuditRecord("E", "login-failed", outcome="4", status=401, username=f"user-{tag}",
                           source="192.168.1.9"))
    out.append(AuditRecord("C", "create", status=201, rtype="Goal", rid=f"g-{tag}", patients=(f"pt-{tag}",),
                           access=who, source="10.0.0.7"))
    return out


async def snapshot(conn: Conn, ids: list[str]) -> list[Any]:
    """Every row stored for the AuditEvents ``ids`` (resource, history, each index table), with the rkey replaced
    by the event's position and the id by ``ID`` — comparable between two sets of ids."""
    marks = ", ".join(["%s"] * len(ids))
    cur = await conn.all(f"SELECT rkey, rtype, id, version, last_updated, deleted, body FROM resource "
                         f"WHERE rtype = %s AND id IN ({marks})", ["AuditEvent", *ids])
    pos = {r[0]: ids.index(r[2]) for r in cur}
    assert len(pos) == len(ids)

    def norm(row: tuple, rkey_at: int = 0) -> tuple:
        i = pos[row[rkey_at]]
        out = [v.replace(ids[i], "ID") if isinstance(v, str) else v for v in row]
        out[rkey_at] = i
        if isinstance(out[-1], str) and out[-1].startswith("{"):
            out[-1] = orjson.loads(out[-1])  # compare bodies as JSON (element order kept by orjson)
        return tuple(out)

    keys = list(pos)
    kmarks = ", ".join(["%s"] * len(keys))
    snap: list[Any] = [sorted((norm(r) for r in cur), key=repr)]
    hist = await conn.all(f"SELECT rkey, version, rtype, id, last_updated, method, body FROM resource_history "
                          f"WHERE rkey IN ({kmarks})", keys)
    snap.append(sorted((norm(r) for r in hist), key=repr))
    for kind, table in INDEX_TABLES.items():
        cols = ", ".join(c.name for c in table.columns)
        rows = await conn.all(f"SELECT {cols} FROM {table.name} WHERE rkey IN ({kmarks})", keys)
        snap.append((kind, sorted((norm(r) for r in rows), key=repr)))
    return snap


def test_save_many_stores_the_same_rows_as_save(server: LiveServer, tag: str) -> None:
    events = [build(r, when_us=WHEN) for r in records(tag)]
    one_by_one = [f"{tag}-single-{i}" for i in range(len(events))]
    batched = [f"{tag}-batch-{i}" for i in range(len(events))]

    async def run(svc: Services) -> tuple[Any, Any, list[int], int, int]:
        async with svc.db.read() as c:
            total0 = await svc.repo.live_total(c, "AuditEvent")
        async with svc.db.write() as c:
            for ev, rid in zip(events, one_by_one, strict=True):
                await svc.repo.save(c, ev, rid, None, "POST", WHEN, fresh_id=True)
        async with svc.db.read() as c:
            total1 = await svc.repo.live_total(c, "AuditEvent")
        async with svc.db.write() as c:
            saved = await svc.repo.save_many(c, list(zip(events, batched, strict=True)), "POST", WHEN)
        async with svc.db.read() as c:
            total2 = await svc.repo.live_total(c, "AuditEvent")
            a, b = await snapshot(c, one_by_one), await snapshot(c, batched)
        return a, b, [s.rkey for s, _ in saved], total1 - total0, total2 - total1

    a, b, rkeys, added_single, added_batch = with_services(server, run)
    assert a == b
    assert sum(len(t[1]) for t in a[2:]) >= 17 * len(events)  # the index rows really are there
    assert rkeys == sorted(set(rkeys))  # one fresh key per event, increasing in event order
    assert added_single == added_batch == len(events)


def test_save_many_sets_server_meta_per_event(server: LiveServer, fhir: httpx.Client, tag: str) -> None:
    """Without ``when`` each event gets its own lastUpdated (as ``save`` does); the result matches what is stored."""
    events = [build(r) for r in records(tag)]
    ids = [f"{tag}-m-{i}" for i in range(len(events))]

    async def run(svc: Services) -> list[Any]:
        async with svc.db.write() as c:
            return await svc.repo.save_many(c, list(zip(events, ids, strict=True)))

    saved = with_services(server, run)
    stamps = [s.last_updated for s, _ in saved]
    assert stamps == sorted(stamps)
    for (stored, as_json), rid in zip(saved, ids, strict=True):
        assert (stored.id, stored.version, stored.deleted) == (rid, 1, False)
        assert as_json["meta"] == {"versionId": "1", "lastUpdated": format_instant(stored.last_updated)}
        got = fhir.get(f"AuditEvent/{rid}")
        assert got.status_code == 200 and got.json() == as_json
        hist = fhir.get(f"AuditEvent/{rid}/_history").json()
        assert [e["request"]["method"] for e in hist["entry"]] == ["POST"]
    found = fhir.get(f"AuditEvent?patient=Patient/pt2-{tag}").json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [ids[12]]
    assert fhir.get(f"AuditEvent?entity=CarePlan/cp-{tag}-3").json()["entry"][0]["resource"]["id"] == ids[3]


def test_save_many_rolls_back_with_its_transaction(server: LiveServer, fhir: httpx.Client, tag: str) -> None:
    class Boom(Exception):
        pass

    events = [build(r) for r in records(tag)]
    ids = [f"{tag}-rb-{i}" for i in range(len(events))]

    async def run(svc: Services) -> tuple[int, int]:
        async with svc.db.read() as c:
            before = await svc.repo.live_total(c, "AuditEvent")
        with pytest.raises(Boom):
            async with svc.db.write() as c:
                await svc.repo.save(c, {"resourceType": "Patient", "id": f"pt-{tag}"}, f"pt-{tag}", None, "PUT")
                await audit.writer.save_many(svc, c, events)
                await svc.repo.save_many(c, list(zip(events, ids, strict=True)))
                raise Boom
        async with svc.db.read() as c:
            return before, await svc.repo.live_total(c, "AuditEvent")

    before, after = with_services(server, run)
    assert before == after
    assert fhir.get(f"AuditEvent/{ids[0]}").status_code == 404
    assert fhir.get(f"Patient/pt-{tag}").status_code == 404
    assert fhir.get(f"AuditEvent?patient=Patient/pt-{tag}").json().get("entry", []) == []


def test_insert_many_takes_mixed_value_types(server: LiveServer, tag: str) -> None:
    """A column whose values are of different Python types in one batch (here int and float numbers) is still stored
    as single-row INSERTs would store it (on PostgreSQL such a batch goes as multi-row VALUES instead of JSON)."""
    rtype = f"Zz{tag}"[:60]
    rows = [(-7, rtype, "n", 1), (-7, rtype, "n", 2.5), (-7, rtype, "n", 10**15), (-7, rtype, "n", 0.1 + 0.2)]

    class Done(Exception):
        pass

    async def run(svc: Services) -> list[tuple]:
        got: list[tuple] = []
        with pytest.raises(Done):
            async with svc.db.write() as c:
                await c.insert_many(idx_number, rows)
                await c.insert_many(idx_number, [(-7, rtype, "m", 1.5), (-7, rtype, "m", 3.25)])
                got = await c.all("SELECT param, value FROM idx_number WHERE rtype = %s ORDER BY param, value",
                                  (rtype,))
                raise Done  # leave nothing behind
        return [tuple(r) for r in got]

    got = with_services(server, run)
    assert got == [("m", 1.5), ("m", 3.25), ("n", 0.30000000000000004), ("n", 1.0), ("n", 2.5), ("n", 1e15)]
