"""Helpers for the OAuth tests: database set-up on a live server (clients, users, launches), PKCE, the browser
part of the authorization code flow (login, patient picker, consent) driven with httpx, and client assertions."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from fhir_server.auth import clients, launches, users
from fhir_server.storage.db import Database, create_database
from tests.conftest import LiveServer

REDIRECT = "https://app.example.org/callback"
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def root(server: LiveServer) -> str:
    return server.base.rsplit("/fhir", 1)[0]


def on_database(url: str, fn: Any) -> Any:
    """``await fn(db)`` on the database at ``url``, on a fresh event loop."""
    async def go() -> Any:
        db: Database = create_database(url, pool_size=1)
        await db.open()
        try:
            return await fn(db)
        finally:
            await db.close()

    return asyncio.run(go())


def run_db(server: LiveServer, fn: Any) -> Any:
    """``await fn(db)`` on ``server``'s database."""
    return on_database(server.settings.database_url, fn)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def public_client(server: LiveServer, scope: str) -> str:
    client, _ = run_db(server, lambda db: clients.register(db, name="Test app", redirect_uris=[REDIRECT],
                                                           scope=scope, auth_method="none"))
    return client.client_id


def secret_client(server: LiveServer, scope: str) -> tuple[str, str]:
    client, secret = run_db(server, lambda db: clients.register(db, name="Confidential app",
                                                                redirect_uris=[REDIRECT], scope=scope,
                                                                auth_method="client_secret_basic"))
    return client.client_id, secret


def backend_client(server: LiveServer, scope: str, alg: str = "RS384") -> tuple[str, Any]:
    """A private_key_jwt client; (client_id, its private key)."""
    key: Any = (RSAKey.generate_key(2048, parameters={"kid": uid("k"), "alg": alg}, private=True) if alg == "RS384"
                else ECKey.generate_key("P-384", parameters={"kid": uid("k"), "alg": alg}, private=True))
    jwks = {"keys": [key.as_dict(private=False)]}
    client, _ = run_db(server, lambda db: clients.register(db, name="Backend", redirect_uris=[], scope=scope,
                                                           auth_method="private_key_jwt", jwks=jwks))
    return client.client_id, key


def assertion(server: LiveServer, client_id: str, key: Any, *, aud: str | None = None, exp_in: int = 240,
              jti: str | None = None, alg: str | None = None) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud or f"{root(server)}/auth/token", "exp": now + exp_in,
              "iat": now, "jti": jti or secrets.token_hex(12)}
    a = alg or key.as_dict(private=False).get("alg") or ("RS384" if isinstance(key, RSAKey) else "ES384")
    return jwt.encode({"alg": a, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[a])


def backend_token(server: LiveServer, client_id: str, key: Any, scope: str, **kw: Any) -> httpx.Response:
    return httpx.post(f"{root(server)}/auth/token", data={
        "grant_type": "client_credentials", "scope": scope,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(server, client_id, key, **kw)}, timeout=30)


def add_user(server: LiveServer, fhir_user: str | None, roles: list[str] | None = None) -> str:
    name = uid("user")
    run_db(server, lambda db: users.add(db, username=name, password=PASSWORD, fhir_user=fhir_user, roles=roles))
    return name


def ehr_launch(server: LiveServer, **ctx: Any) -> str:
    return run_db(server, lambda db: launches.create(db, launches.validate(ctx), ttl_seconds=300))


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def auth_params(server: LiveServer, client_id: str, scope: str, challenge: str | None, **extra: str) -> dict[str, str]:
    p = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "scope": scope,
         "state": secrets.token_hex(8), "aud": server.base}
    if challenge is not None:
        p |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return p | extra


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def csrf(html: str) -> str:
    m = _CSRF.search(html)
    assert m, html[:500]
    return m.group(1)


def browser(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=root(server), timeout=30, follow_redirects=False)


def start(b: httpx.Client, params: dict[str, str], method: str = "GET") -> httpx.Response:
    if method == "POST":
        return b.post("/auth/authorize", data=params)
    return b.get("/auth/authorize", params=params)


def login(b: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    page = b.get("/auth/login")
    assert page.status_code == 200, page.text[:300]
    return b.post("/auth/login", data={"username": username, "password": password, "csrf": csrf(page.text)})


def decide(b: httpx.Client, decision: str = "approve", patient: str | None = None) -> httpx.Response:
    """From the consent step on: picks ``patient`` when the picker asks, then approves or denies."""
    page = b.get("/auth/consent")
    if page.status_code == 303 and page.headers["location"].endswith("/auth/pick"):
        pick = b.get("/auth/pick")
        assert pick.status_code == 200, pick.text[:300]
        assert f'name="patient" value="{patient}"' in pick.text
        r = b.post("/auth/pick", data={"patient": patient, "csrf": csrf(pick.text)})
        assert r.status_code == 303, r.text[:300]
        page = b.get("/auth/consent")
    assert page.status_code == 200, page.text[:300]
    assert 'name="decision" value="approve"' in page.text and 'value="deny"' in page.text
    return b.post("/auth/consent", data={"decision": decision, "csrf": csrf(page.text)})


def get_code(server: LiveServer, params: dict[str, str], username: str, patient: str | None = None) -> str:
    """Run the browser part of the flow; the authorization code (state checked)."""
    with browser(server) as b:
        r = start(b, params)
        assert r.status_code == 303, r.text[:300]
        assert r.headers["location"].endswith("/auth/login")
        r = login(b, username)
        assert r.status_code == 303, r.text[:300]
        r = decide(b, "approve", patient)
    assert r.status_code == 302, r.text[:300]
    loc = r.headers["location"]
    assert loc.startswith(REDIRECT + "?")
    q = query(loc)
    assert q.get("state") == params["state"], q
    return q["code"]


def exchange(server: LiveServer, client_id: str, code: str, verifier: str | None, **extra: str) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": client_id}
    if verifier is not None:
        data["code_verifier"] = verifier
    return httpx.post(f"{root(server)}/auth/token", data=data | extra, timeout=30)


def fhir_get(server: LiveServer, path: str, token: str) -> httpx.Response:
    return httpx.get(f"{server.base}/{path}", headers={"Authorization": f"Bearer {token}",
                                                      "Accept": "application/fhir+json"}, timeout=30)
