"""Access and refresh tokens: opaque, random, stored hashed with their grant (table ``oauth_token``).

Why opaque rather than JWT: every token must be revocable at once (RFC 7009, a reused authorization code
revokes what it issued) and introspectable (RFC 7662); with server-side state both are one row, and a
stolen database holds no usable token (only SHA-256 hashes). The FHIR endpoint looks a token up on every
request; an active access token is cached in the process for :data:`CACHE_SECONDS` (a revocation made
by this process drops it from the cache at once; one made by another server process is seen within
``CACHE_SECONDS``). Expiry is checked on every use, cached or not.

``grant_id`` ties together everything issued from one authorization (the code's tokens, and each refresh
token with the access tokens it issued): ``revoke_grant`` ends them all.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server.auth.access import Access
from fhir_server.auth.scopes import Scopes
from fhir_server.storage.db import Conn, Database

__all__ = ["CACHE_SECONDS", "TokenRecord", "consume_refresh", "hash_token", "issue", "lookup", "revoke",
           "revoke_grant", "to_access"]

CACHE_SECONDS = 5.0
_CACHE_MAX = 10_000
_cache: dict[str, tuple[TokenRecord, float]] = {}

_COLUMNS = ("token_hash, kind, client_id, username, scope, patient, encounter, fhir_user, context, grant_id, "
            "issued_at, expires_at, revoked")


@dataclass(frozen=True)
class TokenRecord:
    token_hash: str
    kind: str  # "access" | "refresh"
    client_id: str
    username: str | None
    scope: str
    patient: str | None
    encounter: str | None
    fhir_user: str | None
    context: dict[str, Any] | None  # launch context extras (need_patient_banner, fhirContext, …)
    grant_id: str
    issued_at: int  # µs since the epoch
    expires_at: int  # µs since the epoch
    revoked: bool

    def active(self, now_us: int | None = None) -> bool:
        return not self.revoked and self.expires_at > (now_us if now_us is not None else _now_us())


def _now_us() -> int:
    return time.time_ns() // 1000


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _record(row: tuple) -> TokenRecord:
    ctx = orjson.loads(row[8]) if row[8] else None
    return TokenRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], ctx, row[9], int(row[10]),
                       int(row[11]), bool(row[12]))


async def issue(db: Database, *, kind: str, client_id: str, scope: str, ttl_seconds: int,
                username: str | None = None, patient: str | None = None, encounter: str | None = None,
                fhir_user: str | None = None, context: dict[str, Any] | None = None, grant_id: str | None = None,
                conn: Conn | None = None) -> tuple[str, TokenRecord]:
    """A new token (the secret string, returned once) and its stored record."""
    token = secrets.token_urlsafe(32)
    now = _now_us()
    rec = TokenRecord(hash_token(token), kind, client_id, username, scope, patient, encounter, fhir_user, context,
                      grant_id or secrets.token_hex(16), now, now + ttl_seconds * 1_000_000, False)
    args = (rec.token_hash, rec.kind, rec.client_id, rec.username, rec.scope, rec.patient, rec.encounter,
            rec.fhir_user, orjson.dumps(context).decode() if context is not None else None, rec.grant_id,
            rec.issued_at, rec.expires_at, False)
    sql = f"INSERT INTO oauth_token ({_COLUMNS}) VALUES ({', '.join(['%s'] * 13)})"
    if conn is not None:
        await conn.run(sql, args)
    else:
        async with db.write() as c:
            await c.run(sql, args)
    return token, rec


async def find(db: Database, token: str) -> TokenRecord | None:
    """The stored record of ``token`` (active or not), uncached; None when unknown."""
    async with db.read() as c:
        return await _select(c, hash_token(token))


async def _select(c: Conn, token_hash: str) -> TokenRecord | None:
    row = await c.one(f"SELECT {_COLUMNS} FROM oauth_token WHERE token_hash = %s", (token_hash,))
    return _record(row) if row is not None else None


async def lookup(db: Database, token: str, kind: str = "access") -> TokenRecord | None:
    """The record of an *active* token of ``kind`` (None when unknown, expired, revoked or another kind)."""
    if not token or len(token) > 512:
        return None
    h = hash_token(token)
    now = time.monotonic()
    hit = _cache.get(h)
    if hit is not None and now - hit[1] < CACHE_SECONDS:
        rec = hit[0]
    else:
        async with db.read() as c:
            found = await _select(c, h)
        if found is None:
            return None
        rec = found
        if rec.kind == "access" and rec.active():
            if len(_cache) >= _CACHE_MAX:
                _cache.clear()
            _cache[h] = (rec, now)
    return rec if rec.kind == kind and rec.active() else None


async def revoke(db: Database, token: str, conn: Conn | None = None) -> TokenRecord | None:
    """Revoke ``token``; its record (as it was), or None when unknown."""
    h = hash_token(token)
    _cache.pop(h, None)

    async def run(c: Conn) -> TokenRecord | None:
        rec = await _select(c, h)
        if rec is not None:
            await c.run("UPDATE oauth_token SET revoked = %s WHERE token_hash = %s", (True, h))
        return rec

    if conn is not None:
        return await run(conn)
    async with db.write() as c:
        return await run(c)


async def consume_refresh(token: str, conn: Conn) -> bool:
    """Mark the refresh token ``token`` used, in ``conn``'s transaction; False when it was no longer active
    (revoked, redeemed by a concurrent request, or not a refresh token; its expiry was checked when it was looked
    up). One conditional ``UPDATE``: of two concurrent redemptions exactly one sees a row count of 1, on SQLite and
    PostgreSQL alike."""
    n = await conn.run("UPDATE oauth_token SET revoked = %s WHERE token_hash = %s AND kind = %s AND NOT revoked",
                       (True, hash_token(token), "refresh"))  # refresh tokens are never in the access cache
    return n == 1


async def revoke_grant(db: Database, grant_id: str, conn: Conn | None = None) -> int:
    """Revoke every token of the grant ``grant_id``; how many were active."""
    for h, (rec, _) in list(_cache.items()):
        if rec.grant_id == grant_id:
            _cache.pop(h, None)
    sql, args = "UPDATE oauth_token SET revoked = %s WHERE grant_id = %s AND NOT revoked", (True, grant_id)
    if conn is not None:
        return await conn.run(sql, args)
    async with db.write() as c:
        return await c.run(sql, args)


def to_access(rec: TokenRecord, source: str | None = None) -> Access:
    return Access(client_id=rec.client_id, scopes=Scopes.parse(rec.scope), patient=rec.patient,
                  encounter=rec.encounter, fhir_user=rec.fhir_user, username=rec.username,
                  token_id=rec.token_hash[:16], source=source, expires_at=rec.expires_at)
