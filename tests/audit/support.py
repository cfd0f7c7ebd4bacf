"""What the audit tests share: a ``Services`` of their own on a live server's database, and polling the
AuditEvents the background writer stores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import httpx

from fhir_server.interactions.services import Services
from tests.conftest import LiveServer

T = TypeVar("T")


def with_services(server: LiveServer, fn: Callable[[Services], Awaitable[T]]) -> T:
    """Run ``fn`` with a ``Services`` of its own on ``server``'s database, on a fresh event loop."""
    async def go() -> T:
        svc = Services.create(replace(server.settings, pool_size=2))
        await svc.db.open()
        try:
            return await fn(svc)
        finally:
            await svc.db.close()

    return asyncio.run(go())


def poll_events(auditor: httpx.Client, query: str, until: Callable[[list[dict[str, Any]]], bool] = bool,
                wait: float = 5.0) -> list[dict[str, Any]]:
    """AuditEvents matching ``query`` (searched with ``auditor``, a client holding an auditor token), polled until
    ``until(events)`` or ``wait`` seconds: the background writer stores them within ~0.2 s."""
    deadline = time.monotonic() + wait
    while True:
        r = auditor.get(f"AuditEvent?{query}&_count=100")
        assert r.status_code == 200, r.text
        events = [e["resource"] for e in r.json().get("entry", [])]
        if until(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.1)
