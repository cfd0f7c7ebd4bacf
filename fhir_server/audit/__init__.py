"""The audit trail (issue 7 §8): every read, search, write, login, failed login, token issue and denial
becomes a FHIR ``AuditEvent``.

Interface (used by the FHIR endpoint, the interactions and the OAuth server):

* ``AuditRecord`` – what happened (action, interaction, outcome, what resource or query, which patients,
  who: the ``Access`` of the request or the client/user of an OAuth event, the source address);
* ``await record(svc, rec, conn=None)`` – with ``conn`` (a write transaction) the AuditEvent is written in that
  transaction, so a write and its audit commit or roll back together; without it the event is queued and
  written shortly after by a background writer in batches (reads, searches, logins, denials).

IMPLEMENTATION PENDING (issue 7, audit helper): this module currently defines the interface only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_server.auth.access import Access

__all__ = ["AuditRecord", "record"]


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
    """Record ``rec`` (see the module docstring)."""
    return None
