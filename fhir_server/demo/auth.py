"""Demo login users and a demo SMART app for ``cares-fhir serve --demo`` (issue 7 point 7).

Five users, one per CARES persona, linked to the demo data's Practitioner / RelatedPerson resources, all with the
password :data:`DEMO_PASSWORD` (synthetic demo accounts only: this password is printed on purpose; real users'
passwords are never logged), and a public SMART client ``cares-demo-app``. Created once; existing users and clients
are left alone.
"""

from __future__ import annotations

from typing import Any

import orjson

from fhir_server.auth import clients, users

__all__ = ["DEMO_CLIENT_ID", "DEMO_PASSWORD", "DEMO_USERS", "ensure_demo_auth"]

DEMO_PASSWORD = "cares-demo-password"
DEMO_CLIENT_ID = "cares-demo-app"
DEMO_SCOPES = ("launch launch/patient openid fhirUser profile offline_access online_access "
               "patient/*.rs patient/*.read patient/*.cruds user/*.rs user/*.read user/*.cruds")
DEMO_REDIRECTS = ["http://localhost:8000/callback", "http://127.0.0.1:8000/callback",
                  "http://localhost:3000/callback", "http://127.0.0.1:3000/callback"]
#: username → (fhirUser, roles, display); the parent's RelatedPerson id is found in the loaded data
DEMO_USERS: dict[str, tuple[str | None, list[str], str]] = {
    "coordinator": ("Practitioner/cares-cc-ana-ramos", ["care-coordinator"], "Ana Ramos (care coordinator)"),
    "senior": ("Practitioner/cares-scm-maureen-doyle", ["senior-care-manager"], "Maureen Doyle (senior care manager)"),
    "pcp": ("Practitioner/pcp-marisol-vega", ["pcp"], "Dr. Marisol Vega (PCP)"),
    "ccm": ("Practitioner/ccm-janelle-price", ["ccm-clinical-manager"], "Janelle Price (CCM clinical manager)"),
    "parent": (None, ["parent"], "Jessica Bennett (parent)"),
}


async def _parent(svc: Any) -> str | None:
    """The demo mother's RelatedPerson (server-assigned id), or the first RelatedPerson."""
    async with svc.db.read() as c:
        rows = await c.all("SELECT id, body FROM resource WHERE rtype = %s AND NOT deleted ORDER BY rkey LIMIT 50",
                           ("RelatedPerson",))
    for rid, body in rows:
        names = orjson.loads(body or "{}").get("name") or [{}]
        if names[0].get("family") == "Bennett" and "Jessica" in (names[0].get("given") or []):
            return f"RelatedPerson/{rid}"
    return f"RelatedPerson/{rows[0][0]}" if rows else None


async def ensure_demo_auth(svc: Any) -> list[str]:
    """Create the demo users and client when missing; lines telling how to log in (for the log)."""
    lines = []
    for username, (fhir_user, roles, display) in DEMO_USERS.items():
        if await users.get(svc.db, username) is None:
            ref = fhir_user or await _parent(svc)
            await users.add(svc.db, username=username, password=DEMO_PASSWORD, fhir_user=ref, roles=roles,
                            display=display)
        lines.append(f"demo login: user {username!r} ({', '.join(roles)}), password {DEMO_PASSWORD!r}")
    if await clients.get(svc.db, DEMO_CLIENT_ID) is None:
        await clients.register(svc.db, name="CARES demo app", redirect_uris=DEMO_REDIRECTS, scope=DEMO_SCOPES,
                               auth_method="none", client_id=DEMO_CLIENT_ID)
    lines.append(f"demo SMART app: client_id {DEMO_CLIENT_ID!r} (public, PKCE S256), redirect URIs "
                 f"{', '.join(DEMO_REDIRECTS)}")
    return lines
