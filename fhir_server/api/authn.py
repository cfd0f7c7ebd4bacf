"""Bearer-token authentication of FHIR requests (SMART App Launch; RFC 6750).

``Authorization: Bearer <token>`` → ``tokens.lookup`` (cached briefly) → ``Access``. Missing, unknown,
expired, revoked or tampered tokens answer **401** with ``WWW-Authenticate: Bearer realm="CARES FHIR"`` (plus
``error="invalid_token"`` when a token was given, RFC 6750 §3.1) and an OperationOutcome (``login`` when no
token was sent, ``security`` for a bad one); the denial is recorded in the audit trail. The token itself is
never logged.
"""

from __future__ import annotations

from typing import Any

from fhir_server import audit as audit_trail
from fhir_server.api.wire import dumps, send
from fhir_server.audit import AuditRecord
from fhir_server.auth import tokens
from fhir_server.auth.access import Access
from fhir_server.interactions.services import Services
from fhir_server.outcome import Issue, operation_outcome

__all__ = ["REALM", "authenticate", "bearer_token", "client_address"]

REALM = "CARES FHIR"


def bearer_token(scope: dict[str, Any]) -> str | None:
    """The bearer token of the request; None when there is no Authorization header; "" when it is not a
    well-formed Bearer credential."""
    for k, v in scope.get("headers", ()):
        if k == b"authorization":
            scheme, _, value = v.decode("latin-1").strip().partition(" ")
            value = value.strip()
            return value if scheme.lower() == "bearer" and value and " " not in value else ""
    return None


def client_address(scope: dict[str, Any]) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


async def authenticate(svc: Services, scope: dict[str, Any], send_fn: Any) -> Access | None:
    """The caller's ``Access``; or None after answering 401 (and recording the denial)."""
    token = bearer_token(scope)
    source = client_address(scope)
    if token:
        rec = await tokens.lookup(svc.db, token)
        if rec is not None:
            return tokens.to_access(rec, source=source)
    if token is None:
        header = f'Bearer realm="{REALM}"'
        issue = Issue("error", "login", "Authentication required: send Authorization: Bearer <access token>")
        reason = "no-token"
    else:
        header = f'Bearer realm="{REALM}", error="invalid_token", error_description="The access token is ' \
                 'unknown, expired or revoked"'
        issue = Issue("error", "security", "The access token is invalid, expired or revoked")
        reason = "invalid-token"
    await audit_trail.record(svc, AuditRecord("E", "denied", "4", 401, source=source, detail={"reason": reason}))
    await send(send_fn, 401, dumps(operation_outcome([issue]), False), [(b"www-authenticate", header.encode())])
    return None
