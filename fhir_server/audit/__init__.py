"""The audit trail (issue 7 §8): every read, search, write, login, failed login, token issue and denial
becomes a FHIR ``AuditEvent``.

Interface (used by the FHIR endpoint, the interactions and the OAuth server):

* ``AuditRecord`` – what happened (action, interaction, outcome, what resource or query, which patients,
  who: the ``Access`` of the request or the client/user of an OAuth event, the source address);
* ``await record(svc, rec, conn=None)`` – with ``conn`` (a write transaction) the AuditEvent is written in that
  transaction, so a write and its audit commit or roll back together; without it the event is queued and
  written shortly after by a background writer in batches (reads, searches, logins, denials).

* ``await start(svc)`` / ``await stop(svc)`` – the background writer, run by the application's lifespan
  (``stop`` writes what is still queued).

The AuditEvent itself is built by ``audit.event.build`` (its docstring lists the codes); storing and the queue are
``audit.writer``. ``record`` never fails the request it audits when it has no ``conn`` (the error type is logged
and the request goes on); inside a write transaction it raises, so the write rolls back rather than go unaudited.
Neither tokens nor resource content ever reach an AuditEvent or a log line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from fhir_server.audit.event import build
from fhir_server.audit.writer import AuditWriter, save, writer_of
from fhir_server.auth.access import Access

__all__ = ["AuditRecord", "record", "start", "stop"]

log = logging.getLogger("cares_fhir.audit")


@dataclass
class AuditRecord:
    action: str  # AuditEvent.action: C (create) R (read/vread/search) U (update/patch) D (delete) E (execute)
    interaction: str  # read, vread, search-type, history-*, create, update, patch, delete, bundle, operation-…,
    #                   login, login-failed, token, token-denied, denied
    outcome: str = "0"  # AuditEvent.outcome: 0 success, 4 minor failure (denied, bad credentials), 8 serious failure
    status: int = 200  # the HTTP status answered
    rtype: str | None = None
    rid: str | None = None
    query: str | None = None  # the search/operation query string as received (AuditEvent.entity.query)
    patients: tuple[str, ...] = ()  # ids of the patients whose data was concerned
    access: Access | None = None  # the caller of a FHIR request
    client_id: str | None = None  # OAuth events without an Access: the client …
    username: str | None = None  # … and the user
    fhir_user: str | None = None
    source: str | None = None  # the caller's network address
    detail: dict[str, Any] = field(default_factory=dict)  # non-PHI extras (e.g. the denial reason code)


async def record(svc: Any, rec: AuditRecord, conn: Any = None) -> None:
    """Record ``rec`` (see the module docstring): in ``conn``'s transaction when given (errors propagate), else
    queued for the background writer, or written at once when no writer runs on this event loop."""
    if conn is not None:
        await save(svc, conn, build(rec))
        return
    try:
        event = build(rec)
        writer = writer_of(svc)
        if writer is not None:
            await writer.put(event)
            return
        async with svc.db.write() as c:
            await save(svc, c, event)
    except Exception as e:  # noqa: BLE001 - the audited request goes on; the failure is logged (no content)
        log.error("audit record of %s failed: %s", rec.interaction[:40], type(e).__name__)


async def start(svc: Any) -> None:
    """Start ``svc``'s background audit writer on the running event loop."""
    await AuditWriter(svc).start()


async def stop(svc: Any) -> None:
    """Stop ``svc``'s background audit writer, writing what is still queued."""
    writer = getattr(svc, "audit_writer", None)
    if isinstance(writer, AuditWriter):
        await writer.stop()
