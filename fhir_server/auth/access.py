"""``Access``: who is making the current request and what its token grants.

The FHIR endpoint builds one per request from the bearer token (``tokens.lookup``) and sets it in the
context variable ``CURRENT`` for the time the request runs; interactions and the audit trail read it with
``current()``. ``None`` means authorization is off (``--no-auth``, development only) or the caller is the
server itself (loading the demo data, the CLI).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from fhir_server.auth.scopes import Scopes

__all__ = ["CURRENT", "Access", "current"]


@dataclass
class Access:
    client_id: str
    scopes: Scopes
    patient: str | None = None  # the launch patient's id (patient/ scopes are limited to its compartment)
    encounter: str | None = None
    fhir_user: str | None = None  # "Practitioner/123", "RelatedPerson/9", … of the signed-in user
    username: str | None = None  # the login user (None for backend services)
    token_id: str | None = None  # a non-secret id of the token (its hash prefix), for the audit trail
    source: str | None = None  # the client's network address
    expires_at: int | None = None  # µs since the epoch
    #: filled lazily by the enforcement code: ids of the patients a user-scoped token may see (None: all)
    visible_patients: frozenset[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def system(self) -> bool:
        return "system" in self.scopes.contexts()


CURRENT: ContextVar[Access | None] = ContextVar("cares_fhir_access", default=None)


def current() -> Access | None:
    return CURRENT.get()
