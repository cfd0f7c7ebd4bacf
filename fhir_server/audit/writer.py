"""Storing AuditEvents: in the caller's write transaction, or queued and written in batches in the background.

Why a queue: a read must not pay for a write transaction of its own (on SQLite that would serialise every read
behind the single writer). The events of reads, searches, denials and logins go into a bounded in-memory queue
that one asyncio task per server drains — when ``BATCH_SIZE`` events are waiting or ``INTERVAL`` seconds after
the first one arrived — in one write transaction per batch, stored with ``save_many`` (``Repository.save_many``:
one multi-row insert per table for the whole batch, the same rows as ``save`` of each event). The task is
started and stopped with the application (``start``/``stop`` in the lifespan); ``stop`` writes what is left.
Nothing is dropped silently: when the queue is full the caller waits for room (counted, logged as a warning with
the count only); a batch whose transaction fails is retried one event per transaction, and an event that still
cannot be written is logged as lost (its interaction name and the error type only — never its content).

Without a running writer (the CLI, or a record made from another event loop) the event is written at once in
its own transaction. Caveat: on SQLite that must not happen while the same task holds a write transaction (the
single connection's lock is not re-entrant) — inside a write transaction pass ``conn`` instead.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from fhir_server.storage.db import Conn

__all__ = ["BATCH_SIZE", "INTERVAL", "MAX_QUEUE", "AuditWriter", "save", "save_many", "writer_of"]

log = logging.getLogger("cares_fhir.audit")

BATCH_SIZE = 500
INTERVAL = 0.2
MAX_QUEUE = 20_000
_ATTR = "audit_writer"


async def save(svc: Any, conn: Conn, event: dict[str, Any]) -> str:
    """Store ``event`` in the write transaction ``conn`` (indexed like any resource); its new id."""
    rid = str(uuid.uuid4())
    await svc.repo.save(conn, event, rid, None, "POST", fresh_id=True)
    return rid


async def save_many(svc: Any, conn: Conn, events: list[dict[str, Any]]) -> list[str]:
    """Store ``events`` in the write transaction ``conn`` as ``save`` of each would, in one go; their new ids."""
    ids = [str(uuid.uuid4()) for _ in events]
    await svc.repo.save_many(conn, list(zip(events, ids, strict=True)), "POST")
    return ids


def writer_of(svc: Any) -> AuditWriter | None:
    """The background writer of ``svc`` when it runs on the current event loop, else None."""
    w = getattr(svc, _ATTR, None)
    if not isinstance(w, AuditWriter) or not w.running:
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return w if w.loop is loop else None


class AuditWriter:
    """The background batch writer of one server (``Services``)."""

    def __init__(self, svc: Any, *, batch_size: int = BATCH_SIZE, interval: float = INTERVAL,
                 max_queue: int = MAX_QUEUE) -> None:
        self.svc = svc
        self.batch_size = batch_size
        self.interval = interval
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=max_queue)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.written = 0  # events stored (for tests and monitoring)
        self.lost = 0  # events that could not be stored (each one logged)
        self.waited = 0  # times a caller had to wait for room in the queue
        self._task: asyncio.Task[None] | None = None
        self._full = asyncio.Event()  # a whole batch is waiting: write now
        self._wake = asyncio.Event()  # something was queued (or stop was asked)
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._stopping

    async def start(self) -> None:
        """Start draining (on the running loop) and register as ``svc``'s writer."""
        self.loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="cares-fhir-audit-writer")
        setattr(self.svc, _ATTR, self)

    async def stop(self) -> None:
        """Write everything queued, then end the task."""
        self._stopping = True
        if getattr(self.svc, _ATTR, None) is self:
            setattr(self.svc, _ATTR, None)
        self._wake.set()
        self._full.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self._flush_all()

    async def put(self, event: dict[str, Any]) -> None:
        """Queue ``event``; waits (never drops) when the queue is full."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.waited += 1
            if self.waited == 1 or self.waited % 1000 == 0:
                log.warning("audit queue full (%d events): callers wait for the writer (%d times so far)",
                            self.queue.maxsize, self.waited)
            await self.queue.put(event)
        self._wake.set()
        if self.queue.qsize() >= self.batch_size:
            self._full.set()

    # ------------------------------------------------------------------ draining
    def _take(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        while len(batch) < self.batch_size:
            try:
                batch.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def _run(self) -> None:
        while not self._stopping:
            if self.queue.empty():
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.queue.qsize() < self.batch_size:
                self._full.clear()
                try:
                    await asyncio.wait_for(self._full.wait(), self.interval)
                except TimeoutError:
                    pass
            await self._write(self._take())

    async def _flush_all(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            await self._write(batch)

    async def _write(self, batch: list[dict[str, Any]]) -> None:
        """One transaction for ``batch``; on failure one per event (so one bad event cannot lose the others)."""
        try:
            async with self.svc.db.write() as c:
                await save_many(self.svc, c, batch)
            self.written += len(batch)
            return
        except Exception as e:  # noqa: BLE001 - retried below, one event at a time
            log.warning("audit batch of %d events failed (%s); retrying one by one", len(batch), type(e).__name__)
        await self._write_each(batch)

    async def _write_each(self, batch: list[dict[str, Any]]) -> None:
        for event in batch:
            try:
                async with self.svc.db.write() as c:
                    await save(self.svc, c, event)
                self.written += 1
            except Exception as e:  # noqa: BLE001 - logged, counted; never the event's content
                self.lost += 1
                log.error("audit event lost (%s, %s); %d lost so far", _kind(event), type(e).__name__, self.lost)


def _kind(event: dict[str, Any]) -> str:
    sub = event.get("subtype") or [event.get("type") or {}]
    return str((sub[0] or {}).get("code", "?"))
