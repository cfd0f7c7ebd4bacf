"""The server's signing keys (table ``oauth_key``): an RSA 2048 key (RS256) signs ``id_token``s; its public part
is published as a JWKS at ``jwks_uri``. A key is generated on first start when none is active; ``cares-fhir keys
rotate`` adds a new active key and deactivates the others, which stay published so that tokens they signed still
verify. The private keys live in the database only (never in the repository, never served, never logged).

The same table holds the secret that signs the login/consent session cookies (``alg = "HS256"``, an ``oct`` key;
never published). Keys are generated and serialised by joserfc: no hand-written cryptography.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson
from joserfc.jwk import OctKey, RSAKey

from fhir_server.storage.db import Database

__all__ = ["SIGNING_ALG", "active_key", "ensure", "jwks", "list_keys", "rotate", "session_secret"]

SIGNING_ALG = "RS256"
_SESSION_ALG = "HS256"
_CACHE_SECONDS = 30.0
_cache: dict[int, tuple[RSAKey, float]] = {}


def _now_us() -> int:
    return time.time_ns() // 1000


def _new_rsa() -> tuple[str, str]:
    kid = secrets.token_hex(8)
    key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": SIGNING_ALG, "use": "sig"}, private=True)
    return kid, orjson.dumps(key.as_dict(private=True)).decode()


async def _insert(db: Database, kid: str, alg: str, private_jwk: str, active: bool) -> None:
    async with db.write() as c:
        await c.run("INSERT INTO oauth_key (kid, alg, private_jwk, created_at, active) VALUES (%s, %s, %s, %s, %s)",
                    (kid, alg, private_jwk, _now_us(), active))


async def ensure(db: Database) -> None:
    """Create the signing key and the session secret when the database has none (first start)."""
    async with db.read() as c:
        rsa = await c.one("SELECT kid FROM oauth_key WHERE alg = %s AND active", (SIGNING_ALG,))
        sess = await c.one("SELECT kid FROM oauth_key WHERE alg = %s AND active", (_SESSION_ALG,))
    if rsa is None:
        kid, jwk = _new_rsa()
        await _insert(db, kid, SIGNING_ALG, jwk, True)
    if sess is None:
        key = OctKey.generate_key(256, parameters={"kid": "session-" + secrets.token_hex(4)})
        await _insert(db, str(key.kid), _SESSION_ALG, orjson.dumps(key.as_dict(private=True)).decode(), True)


async def rotate(db: Database) -> str:
    """Add a new active signing key, deactivate the previous ones (still published); the new key's ``kid``."""
    kid, jwk = _new_rsa()
    async with db.write() as c:
        await c.run("UPDATE oauth_key SET active = %s WHERE alg = %s", (False, SIGNING_ALG))
        await c.run("INSERT INTO oauth_key (kid, alg, private_jwk, created_at, active) VALUES (%s, %s, %s, %s, %s)",
                    (kid, SIGNING_ALG, jwk, _now_us(), True))
    _cache.clear()
    return kid


async def active_key(db: Database) -> RSAKey:
    """The key that signs new tokens (cached for a few seconds: a rotation by the CLI is seen within them)."""
    hit = _cache.get(id(db))
    if hit is not None and time.monotonic() - hit[1] < _CACHE_SECONDS:
        return hit[0]
    async with db.read() as c:
        row = await c.one("SELECT private_jwk FROM oauth_key WHERE alg = %s AND active ORDER BY created_at DESC",
                          (SIGNING_ALG,))
    if row is None:
        await ensure(db)
        return await active_key(db)
    key = RSAKey.import_key(orjson.loads(row[0]))
    _cache[id(db)] = (key, time.monotonic())
    return key


async def jwks(db: Database) -> dict[str, Any]:
    """The public JWKS: every RS256 key, active or not (public members only)."""
    async with db.read() as c:
        rows = await c.all("SELECT private_jwk FROM oauth_key WHERE alg = %s ORDER BY created_at DESC",
                           (SIGNING_ALG,))
    return {"keys": [RSAKey.import_key(orjson.loads(r[0])).as_dict(private=False) for r in rows]}


async def list_keys(db: Database) -> list[tuple[str, str, bool, int]]:
    """(kid, alg, active, created_at µs) of the signing keys, newest first."""
    async with db.read() as c:
        rows = await c.all("SELECT kid, alg, active, created_at FROM oauth_key WHERE alg = %s ORDER BY created_at DESC",
                           (SIGNING_ALG,))
    return [(r[0], r[1], bool(r[2]), int(r[3])) for r in rows]


async def session_secret(db: Database) -> bytes:
    """The secret that signs the session cookies of the login and consent pages."""
    async with db.read() as c:
        row = await c.one("SELECT private_jwk FROM oauth_key WHERE alg = %s AND active", (_SESSION_ALG,))
    if row is None:
        await ensure(db)
        return await session_secret(db)
    return OctKey.import_key(orjson.loads(row[0])).raw_value
