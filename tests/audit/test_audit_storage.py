"""Storing AuditEvents (``audit.record`` and the background writer) on both backends.

Each test opens its own ``Services`` on the database of a live test server (``tests/conftest.py``, SQLite and
PostgreSQL), records events there, and checks through the live server's FHIR search that they are stored and
indexed (``AuditEvent?patient=…``, ``?entity=…``, ``?agent=…``, ``?date=…``) — or that they are not."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from fhir_server import audit
from fhir_server.audit import AuditRecord
from fhir_server.audit.writer import AuditWriter
from fhir_server.auth.access import Access
from fhir_server.auth.scopes import Scopes
from fhir_server.interactions.services import Services
from fhir_server.storage.db import Conn
from tests.audit.support import with_services
from tests.conftest import LiveServer


def rec(tag: str, n: int = 0, **kw: Any) -> AuditRecord:
    access = Access(client_id=f"client-{tag}", scopes=Scopes.parse("user/*.rs"), fhir_user=f"Practitioner/pr-{tag}",
                    username=f"user-{tag}", source="127.0.0.1")
    return AuditRecord(kw.pop("action", "R"), kw.pop("interaction", "read"), rtype="Observation", rid=f"o-{tag}-{n}",
                       patients=(f"pt-{tag}",), access=access, source="127.0.0.1", **kw)


def found(fhir: httpx.Client, query: str) -> list[dict[str, Any]]:
    r = fhir.get(f"AuditEvent?{query}&_count=100")
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


def test_record_in_a_write_commits_with_it(server: LiveServer, fhir: httpx.Client, tag: str) -> None:
    async def run(svc: Services) -> None:
        async with svc.db.write() as c:
            await svc.repo.save(c, {"resourceType": "Patient", "id": f"pt-{tag}"}, f"pt-{tag}", None, "PUT")
            await audit.record(svc, rec(tag, action="C", interaction="create"), c)

    with_services(server, run)
    [ev] = found(fhir, f"patient=Patient/pt-{tag}")
    assert ev["action"] == "C" and ev["subtype"][0]["code"] == "create"
    assert [e["id"] for e in found(fhir, f"entity=Observation/o-{tag}-0")] == [ev["id"]]
    assert [e["id"] for e in found(fhir, f"agent=Practitioner/pr-{tag}")] == [ev["id"]]
    assert [e["id"] for e in found(fhir, f"agent=Practitioner/pr-{tag}&date=ge{ev['recorded'][:10]}")] == [ev["id"]]
    assert found(fhir, f"agent=Practitioner/pr-{tag}&date=lt2000-01-01") == []
    assert fhir.get(f"Patient/pt-{tag}").status_code == 200


def test_record_in_a_write_rolls_back_with_it(server: LiveServer, fhir: httpx.Client, tag: str) -> None:
    class Boom(Exception):
        pass

    async def run(svc: Services) -> None:
        with pytest.raises(Boom):
            async with svc.db.write() as c:
                await svc.repo.save(c, {"resourceType": "Patient", "id": f"pt-{tag}"}, f"pt-{tag}", None, "PUT")
                await audit.record(svc, rec(tag, action="C", interaction="create"), c)
                raise Boom

    with_services(server, run)
    assert found(fhir, f"patient=Patient/pt-{tag}") == []
    assert fhir.get(f"Patient/pt-{tag}").status_code == 404


def test_record_in_a_write_raises_when_it_cannot_store(server: LiveServer) -> None:
    class Broken(Conn):  # a write transaction whose statements fail
        async def one(self, sql: str, args: Any = ()) -> tuple | None:
            raise RuntimeError("down")

        async def all(self, sql: str, args: Any = (), *, prepare: bool = False) -> list[tuple]:
            raise RuntimeError("down")

        async def run(self, sql: str, args: Any = ()) -> int:
            raise RuntimeError("down")

        async def batch(self, statements: Any) -> None:
            raise RuntimeError("down")

        async def lock(self, key: str) -> None:
            raise RuntimeError("down")

    async def run(svc: Services) -> None:
        with pytest.raises(RuntimeError):
            await audit.record(svc, rec("x"), Broken())

    with_services(server, run)


def test_record_without_writer_writes_at_once(server: LiveServer, fhir: httpx.Client, tag: str) -> None:
    with_services(server, lambda svc: audit.record(svc, rec(tag)))
    [ev] = found(fhir, f"patient=Patient/pt-{tag}")
    assert ev["agent"][1]["who"]["identifier"]["value"] == f"client-{tag}"


def test_record_without_conn_never_fails_the_request(server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    async def run(svc: Services) -> None:
        await svc.db.close()  # every write now fails
        await audit.record(svc, rec("closed"))
        await svc.db.open()

    with caplog.at_level(logging.ERROR, logger="cares_fhir.audit"):
        with_services(server, run)
    assert any("audit record of read failed" in r.getMessage() for r in caplog.records)


def test_queue_writes_in_batches(server: LiveServer, fhir: httpx.Client, tag: str) -> None:
    async def run(svc: Services) -> tuple[int, int]:
        writer = AuditWriter(svc, batch_size=4, interval=0.05)
        await writer.start()
        for n in range(10):
            await audit.record(svc, rec(tag, n))
        queued_after_put = writer.written
        for _ in range(100):  # drained by the task: 4 + 4 at once, the last 2 after the interval
            if writer.written == 10:
                break
            await asyncio.sleep(0.02)
        written = writer.written
        await writer.stop()
        return queued_after_put, written

    before, after = with_services(server, run)
    assert before < 10 and after == 10
    assert len(found(fhir, f"patient=Patient/pt-{tag}")) == 10


def test_queue_is_flushed_on_stop(server: LiveServer, fhir: httpx.Client, tag: str) -> None:
    async def run(svc: Services) -> tuple[int, int]:
        writer = AuditWriter(svc, batch_size=500, interval=60)  # would not write for a minute by itself
        await writer.start()
        for n in range(7):
            await audit.record(svc, rec(tag, n))
        await asyncio.sleep(0.05)
        before = writer.written
        await writer.stop()
        assert getattr(svc, "audit_writer", None) is None
        return before, writer.written

    before, after = with_services(server, run)
    assert (before, after) == (0, 7)
    assert len(found(fhir, f"patient=Patient/pt-{tag}")) == 7


def test_full_queue_waits_and_drops_nothing(server: LiveServer, fhir: httpx.Client, tag: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    async def run(svc: Services) -> tuple[int, int, int]:
        writer = AuditWriter(svc, batch_size=500, interval=0.05, max_queue=3)
        await writer.start()
        await asyncio.gather(*(audit.record(svc, rec(tag, n)) for n in range(12)))
        await writer.stop()
        return writer.waited, writer.written, writer.lost

    with caplog.at_level(logging.WARNING, logger="cares_fhir.audit"):
        waited, written, lost = with_services(server, run)
    assert waited > 0 and written == 12 and lost == 0
    assert any("audit queue full" in r.getMessage() for r in caplog.records)
    assert len(found(fhir, f"patient=Patient/pt-{tag}")) == 12


def test_a_failing_batch_is_retried_one_by_one(server: LiveServer, fhir: httpx.Client, tag: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """One event the repository refuses does not take the rest of its batch with it; it is counted and logged."""
    async def run(svc: Services) -> tuple[int, int]:
        save = svc.repo.save

        async def picky_save(conn: Conn, resource: dict[str, Any], *args: Any, **kw: Any) -> Any:
            if resource["entity"][0]["what"]["reference"].endswith("-3"):
                raise ValueError("refused")
            return await save(conn, resource, *args, **kw)

        save_many = svc.repo.save_many  # the batch path (Repository.save_many) refuses the batch holding it

        async def picky_save_many(conn: Conn, items: list[tuple[dict[str, Any], str]], *args: Any) -> Any:
            if any(r["entity"][0]["what"]["reference"].endswith("-3") for r, _ in items):
                raise ValueError("refused")
            return await save_many(conn, items, *args)

        svc.repo.save = picky_save  # type: ignore[method-assign]
        svc.repo.save_many = picky_save_many  # type: ignore[method-assign]
        writer = AuditWriter(svc, batch_size=500, interval=60)
        await writer.start()
        for n in range(6):
            await audit.record(svc, rec(tag, n))
        await writer.stop()
        return writer.written, writer.lost

    with caplog.at_level(logging.WARNING, logger="cares_fhir.audit"):
        written, lost = with_services(server, run)
    assert (written, lost) == (5, 1)
    assert any("audit batch of 6 events failed (ValueError)" in r.getMessage() for r in caplog.records)
    assert any("audit event lost (read, ValueError)" in r.getMessage() for r in caplog.records)
    assert len(found(fhir, f"patient=Patient/pt-{tag}")) == 5
