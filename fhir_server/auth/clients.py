"""Registered OAuth clients (table ``oauth_client``) and the Authlib client model.

Authentication methods: ``none`` (public apps: client_id only, PKCE), ``client_secret_basic`` (confidential apps; the
secret is shown once at registration and stored as an argon2 hash), ``private_key_jwt`` (backend services and
asymmetric confidential apps: a JWKS given at registration or fetched from the client's ``jwks_uri``).
A client may be granted only scopes within its registered ``scope`` (see :func:`allowed_scope`).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server.auth import passwords
from fhir_server.auth.scopes import parse_scope
from fhir_server.storage.db import Database

__all__ = ["Client", "allowed_scope", "get", "list_clients", "register"]

METHODS = ("none", "client_secret_basic", "private_key_jwt")
_COLUMNS = "client_id, name, auth_method, secret_hash, redirect_uris, scope, jwks, jwks_uri, created_at, disabled"


def _covered(word: str, allowed: set[str]) -> bool:
    """``word`` is one of ``allowed``, or a resource scope within an allowed one (``patient/*.rs`` covers
    ``patient/Observation.rs``; v1 ``read`` covers v2 ``rs``); restrictions (``?…``) must then be kept."""
    if word in allowed:
        return True
    want = parse_scope(word)
    if want is None:
        return False
    for a in allowed:
        have = parse_scope(a)
        if (have is not None and have.context == want.context and have.rtype in ("*", want.rtype)
                and want.perms <= have.perms and set(have.params) <= set(want.params)):
            return True
    return False


def allowed_scope(requested: str | None, client_scope: str) -> str:
    """The words of ``requested`` (space separated) the client may be granted, in their order."""
    allowed = set(client_scope.split())
    out: list[str] = []
    for word in (requested or "").split():
        if word not in out and _covered(word, allowed):
            out.append(word)
    return " ".join(out)


@dataclass
class Client:
    """A registered client; also Authlib's client model (``ClientMixin`` methods)."""

    client_id: str
    name: str
    auth_method: str
    secret_hash: str | None
    redirect_uris: list[str]
    scope: str
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    created_at: int
    disabled: bool

    # --- authlib.oauth2.rfc6749.ClientMixin
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # redirect_uri is always required (SMART)

    def get_allowed_scope(self, scope: str | None) -> str:
        return allowed_scope(scope, self.scope)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact match only

    def check_client_secret(self, client_secret: str) -> bool:
        return self.auth_method == "client_secret_basic" and passwords.verify(self.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method and not self.disabled

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and bool(self.redirect_uris)

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials":
            return self.auth_method == "private_key_jwt"
        return grant_type in ("authorization_code", "refresh_token") and bool(self.redirect_uris)


def _client(row: tuple) -> Client:
    return Client(row[0], row[1], row[2], row[3], orjson.loads(row[4]), row[5],
                  orjson.loads(row[6]) if row[6] else None, row[7], int(row[8]), bool(row[9]))


async def register(db: Database, *, name: str, redirect_uris: list[str], scope: str, auth_method: str = "none",
                   jwks: dict[str, Any] | None = None, jwks_uri: str | None = None,
                   client_id: str | None = None) -> tuple[Client, str | None]:
    """Store a new client; returns it and, for ``client_secret_basic``, the secret (shown once, stored hashed)."""
    if auth_method not in METHODS:
        raise ValueError(f"unknown authentication method {auth_method!r}")
    if auth_method == "private_key_jwt" and not (jwks or jwks_uri):
        raise ValueError("private_key_jwt needs a JWKS or a jwks_uri")
    if jwks is not None and not isinstance(jwks.get("keys"), list):
        raise ValueError("the JWKS must be an object with a 'keys' array")
    secret = secrets.token_urlsafe(32) if auth_method == "client_secret_basic" else None
    client = Client(client_id or secrets.token_urlsafe(12), name, auth_method,
                    passwords.hash_secret(secret) if secret else None, list(redirect_uris), " ".join(scope.split()),
                    jwks, jwks_uri, time.time_ns() // 1000, False)
    async with db.write() as c:
        await c.run(f"INSERT INTO oauth_client ({_COLUMNS}) VALUES ({', '.join(['%s'] * 10)})",
                    (client.client_id, name, auth_method, client.secret_hash, orjson.dumps(redirect_uris).decode(),
                     client.scope, orjson.dumps(jwks).decode() if jwks else None, jwks_uri, client.created_at, False))
    return client, secret


async def get(db: Database, client_id: str) -> Client | None:
    """The enabled client ``client_id`` (None when unknown or disabled)."""
    if not client_id or len(client_id) > 128:
        return None
    async with db.read() as c:
        row = await c.one(f"SELECT {_COLUMNS} FROM oauth_client WHERE client_id = %s", (client_id,))
    client = _client(row) if row else None
    return client if client is not None and not client.disabled else None


async def list_clients(db: Database) -> list[Client]:
    async with db.read() as c:
        rows = await c.all(f"SELECT {_COLUMNS} FROM oauth_client ORDER BY created_at")
    return [_client(r) for r in rows]
