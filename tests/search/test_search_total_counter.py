"""The live-resource counter (``resource_count``) behind ``_total`` of type-only searches, over HTTP on both
backends: every kind of write keeps it equal to the resources a search actually finds, a rolled back
transaction counts nothing, concurrent creates all count, and migration 0006 fills it from existing rows.

Each test runs on a server of its own over a fresh database, so whole-type totals are not disturbed by
the tests running in parallel on the shared session servers."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from fhir_server import cli
from fhir_server.storage import migrate
from fhir_server.storage.repository import now_us
from tests.conftest import PG_ADMIN, _server

FHIR_JSON = {"Content-Type": "application/fhir+json"}
SYS = "urn:test:counter"


@dataclass
class Fresh:
    url: str  # the SQLAlchemy database URL
    pg_name: str | None = None

    def sql(self, statement: str, args: tuple = ()) -> list[tuple]:
        """Run one statement directly on the database (committed); its rows."""
        if self.pg_name is None:
            c = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            try:
                with c:  # commits
                    return c.execute(statement.replace("%s", "?"), args).fetchall()
            finally:
                c.close()
        import psycopg

        with psycopg.connect(PG_ADMIN.rsplit("/", 1)[0] + "/" + self.pg_name, autocommit=True) as c:
            cur = c.execute(statement, args)
            return cur.fetchall() if cur.description else []

    def counters(self) -> dict[str, int]:
        return {t: int(n) for t, n in self.sql("SELECT rtype, sum(n) FROM resource_count GROUP BY rtype") if n}

    def live(self) -> dict[str, int]:
        return {t: int(n) for t, n in self.sql("SELECT rtype, count(*) FROM resource WHERE NOT deleted "
                                                "GROUP BY rtype")}


@pytest.fixture(params=["sqlite", "postgres"])
def fresh(request: pytest.FixtureRequest, tmp_path) -> Iterator[Fresh]:
    """A new, empty database (not migrated) on each backend; dropped afterwards."""
    if request.param == "sqlite":
        yield Fresh(f"sqlite:///{tmp_path / 'counter.sqlite3'}")
        return
    request.getfixturevalue("pg_url")  # skips (or fails in CI) without PostgreSQL
    import psycopg

    name = f"cares_counter_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Fresh(PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}",
                    name)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_fhir(fresh: Fresh) -> Iterator[tuple[httpx.Client, Fresh]]:
    """A client on a server of its own over the fresh database."""
    srv = _server(fresh.url)
    try:
        with httpx.Client(base_url=srv.base + "/", headers={"Accept": "application/fhir+json"}, timeout=60) as c:
            yield c, fresh
    finally:
        srv.stop()


def basic(ident: str | None = None, **extra: object) -> dict:
    out: dict = {"resourceType": "Basic", "code": {"text": "counter test"}, **extra}
    if ident is not None:
        out["identifier"] = [{"system": SYS, "value": ident}]
    return out


def found(fhir: httpx.Client, rtype: str) -> int:
    """How many ``rtype`` resources a search really returns, paging through all of them."""
    n, url, params = 0, rtype, {"_count": "200", "_total": "none"}
    while url:
        b = fhir.get(url, params=params).json()
        n += sum(1 for e in b.get("entry", []) if e["search"]["mode"] == "match")
        url = next((link["url"] for link in b["link"] if link["relation"] == "next"), None)
        params = None
    return n


def check(fhir: httpx.Client, db: Fresh, rtype: str, expected: int) -> None:
    """Every way of asking for the total of ``rtype`` gives ``expected``, which is what paging finds."""
    assert found(fhir, rtype) == expected
    for params in ({"_total": "accurate", "_count": "1"}, {"_total": "estimate", "_count": "1"},
                   {"_summary": "count"}, {"_count": "0"}, {"_count": "1"}, {}):
        assert fhir.get(rtype, params=params).json().get("total") == expected, params
    # a search with a criterion still counts rows (compile_count): the two ways agree
    assert fhir.get(rtype, params={"_lastUpdated": "gt1970-01-01", "_total": "accurate",
                                   "_count": "1"}).json()["total"] == expected
    assert db.counters() == db.live()


def tx(*entries: dict, kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def test_every_write_keeps_the_counter_exact(fresh_fhir):
    fhir, db = fresh_fhir
    check(fhir, db, "Basic", 0)  # no counter row yet
    # create: POST
    ids = [fhir.post("Basic", json=basic(f"p{i}"), headers=FHIR_JSON).json()["id"] for i in range(3)]
    check(fhir, db, "Basic", 3)
    # create: PUT with a client id; then updates of it (PUT, PATCH) count nothing
    assert fhir.put("Basic/put-1", json=basic("put", id="put-1"), headers=FHIR_JSON).status_code == 201
    check(fhir, db, "Basic", 4)
    assert fhir.put("Basic/put-1", json=basic("put2", id="put-1"), headers=FHIR_JSON).status_code == 200
    patch = [{"op": "replace", "path": "/code/text", "value": "patched"}]
    assert fhir.patch(f"Basic/{ids[0]}", json=patch,
                      headers={"Content-Type": "application/json-patch+json"}).status_code == 200
    check(fhir, db, "Basic", 4)
    # conditional create: a match creates nothing, no match creates one
    r = fhir.post("Basic", json=basic("p1"), headers={**FHIR_JSON, "If-None-Exist": f"identifier={SYS}|p1"})
    assert r.status_code == 200
    r = fhir.post("Basic", json=basic("c1"), headers={**FHIR_JSON, "If-None-Exist": f"identifier={SYS}|c1"})
    assert r.status_code == 201
    check(fhir, db, "Basic", 5)
    # conditional update: creates when nothing matches, updates when one does
    assert fhir.put("Basic", params={"identifier": f"{SYS}|cu"}, json=basic("cu"),
                    headers=FHIR_JSON).status_code == 201
    assert fhir.put("Basic", params={"identifier": f"{SYS}|cu"}, json=basic("cu", subject={"display": "x"}),
                    headers=FHIR_JSON).status_code == 200
    check(fhir, db, "Basic", 6)
    # a transaction of several types, with a search inside that sees the transaction's own creates
    out = fhir.post("", json=tx(
        {"fullUrl": "urn:uuid:" + str(uuid.uuid4()), "resource": basic("t1"), "request": {"method": "POST",
                                                                                          "url": "Basic"}},
        {"resource": basic("t2", id="tx-2"), "request": {"method": "PUT", "url": "Basic/tx-2"}},
        {"resource": {"resourceType": "Patient", "name": [{"family": "Counter"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "c"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": "Basic?_summary=count"}},
        {"request": {"method": "GET", "url": "Basic?_lastUpdated=gt1970-01-01&_summary=count"}},
    ), headers=FHIR_JSON)
    assert out.status_code == 200, out.text
    assert [e["resource"]["total"] for e in out.json()["entry"][4:]] == [8, 8]
    check(fhir, db, "Basic", 8)
    check(fhir, db, "Patient", 1)
    check(fhir, db, "Observation", 1)
    # a failing transaction is rolled back: nothing counted
    before = db.counters()
    out = fhir.post("", json=tx(
        {"resource": basic("f1"), "request": {"method": "POST", "url": "Basic"}},
        {"request": {"method": "DELETE", "url": f"Basic/{ids[1]}"}},
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": basic("f2", id="put-1"), "request": {"method": "PUT", "url": "Basic/put-1",
                                                          "ifMatch": 'W/"99"'}},
    ), headers=FHIR_JSON)
    assert out.status_code in (409, 412), out.text
    assert db.counters() == before
    check(fhir, db, "Basic", 8)
    check(fhir, db, "Patient", 1)
    # a batch: each entry on its own, the failing one counts nothing
    out = fhir.post("", json=tx(
        {"resource": basic("b1"), "request": {"method": "POST", "url": "Basic"}},
        {"resource": basic("b2", id="put-1"), "request": {"method": "PUT", "url": "Basic/put-1",
                                                          "ifMatch": 'W/"99"'}},
        kind="batch"), headers=FHIR_JSON)
    assert [e["response"]["status"][:3] for e in out.json()["entry"]] == ["201", "412"]
    check(fhir, db, "Basic", 9)
    # delete; deleting again changes nothing
    assert fhir.delete(f"Basic/{ids[1]}").status_code == 204
    check(fhir, db, "Basic", 8)
    assert fhir.delete(f"Basic/{ids[1]}").status_code == 204
    check(fhir, db, "Basic", 8)
    # conditional delete of several
    for _ in range(3):
        fhir.post("Basic", json=basic("multi"), headers=FHIR_JSON)
    check(fhir, db, "Basic", 11)
    assert fhir.delete("Basic", params={"identifier": f"{SYS}|multi"}).status_code == 200
    check(fhir, db, "Basic", 8)
    # delete, then re-create with the same id (PUT on a deleted resource), in a transaction too
    assert fhir.delete("Basic/put-1").status_code == 204
    check(fhir, db, "Basic", 7)
    assert fhir.put("Basic/put-1", json=basic("again", id="put-1"), headers=FHIR_JSON).status_code == 201
    check(fhir, db, "Basic", 8)
    out = fhir.post("", json=tx(
        {"request": {"method": "DELETE", "url": "Basic/tx-2"}},
        {"request": {"method": "DELETE", "url": f"Basic/{ids[2]}"}},
        {"resource": basic("again", id=ids[1]), "request": {"method": "PUT", "url": f"Basic/{ids[1]}"}},
    ), headers=FHIR_JSON)
    assert out.status_code == 200, out.text
    check(fhir, db, "Basic", 7)
    # $reindex and history reads change no count
    assert fhir.post("Basic/$reindex").status_code == 200
    assert fhir.get(f"Basic/{ids[0]}/_history").status_code == 200
    check(fhir, db, "Basic", 7)
    check(fhir, db, "Patient", 1)


def test_concurrent_creates_all_count(fresh_fhir):
    fhir, db = fresh_fhir
    fhir.post("Basic", json=basic("first"), headers=FHIR_JSON)
    before = fhir.get("Basic", params={"_total": "accurate", "_count": "1"}).json()["total"]

    def create(i: int) -> int:
        with httpx.Client(base_url=str(fhir.base_url), timeout=60) as c:
            return c.post("Basic", json=basic(f"conc{i}"), headers=FHIR_JSON).status_code

    with ThreadPoolExecutor(20) as pool:
        assert list(pool.map(create, range(20))) == [201] * 20
    assert fhir.get("Basic", params={"_total": "accurate", "_count": "1"}).json()["total"] == before + 20
    check(fhir, db, "Basic", before + 20)


def _ours(counts: dict[str, int]) -> dict[str, int]:
    """The counts of this test's types (a server also stores the guide's conformance resources at start)."""
    return {k: v for k, v in counts.items() if k in ("Basic", "Patient", "Goal")}


def test_migration_counts_resources_written_before_it(fresh):
    migrate.upgrade(fresh.url, "0005")
    rows = [("Basic", f"b{i}", i % 3 == 0) for i in range(7)] + [("Patient", "p1", False), ("Goal", "g1", True)]
    for rtype, rid, deleted in rows:
        body = None if deleted else f'{{"resourceType":"{rtype}","id":"{rid}"}}'
        fresh.sql("INSERT INTO resource (rtype, id, version, last_updated, deleted, body) "
                  "VALUES (%s, %s, 1, %s, %s, %s)", (rtype, rid, now_us(), deleted, body))
    migrate.upgrade(fresh.url)
    assert _ours(fresh.counters()) == _ours(fresh.live()) == {"Basic": 4, "Patient": 1}
    srv = _server(fresh.url)
    try:
        with httpx.Client(base_url=srv.base + "/", timeout=60) as fhir:
            check(fhir, fresh, "Basic", 4)
            check(fhir, fresh, "Patient", 1)
            check(fhir, fresh, "Goal", 0)
            # the totals of type-only searches are the counters (no count of rows): counters lost or
            # wrong (rows written around them) show, and `cares-fhir db recount` rebuilds them
            fresh.sql("DELETE FROM resource_count WHERE rtype = 'Basic'")
            fresh.sql("UPDATE resource_count SET n = 40 WHERE rtype = 'Patient'")
            fresh.sql("INSERT INTO resource_count (rtype, slot, n) VALUES ('Goal', 3, 2)")
            for rtype, wrong in (("Basic", 0), ("Patient", 40), ("Goal", 2)):
                assert fhir.get(rtype, params={"_summary": "count"}).json()["total"] == wrong
            assert cli.main(["db", "recount", "--database-url", fresh.url]) == 0
            assert _ours(fresh.counters()) == _ours(fresh.live()) == {"Basic": 4, "Patient": 1}
            check(fhir, fresh, "Basic", 4)
            check(fhir, fresh, "Patient", 1)
            check(fhir, fresh, "Goal", 0)
    finally:
        srv.stop()
