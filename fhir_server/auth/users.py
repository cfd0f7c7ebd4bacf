"""Login users of the authorization server (table ``oauth_user``): argon2 password hashes, each user linked to a
``fhirUser`` (Practitioner/…, PractitionerRole/…, RelatedPerson/…, Patient/…) and holding CARES roles (JSON)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import orjson

from fhir_server.auth import passwords
from fhir_server.storage.db import Database

__all__ = ["User", "add", "authenticate", "get", "list_users"]

_FHIR_USER = re.compile(r"^(Practitioner|PractitionerRole|RelatedPerson|Patient|Person)/[A-Za-z0-9\-.]{1,64}$")
_COLUMNS = "username, password_hash, fhir_user, display, roles, created_at, disabled"


@dataclass(frozen=True)
class User:
    username: str
    fhir_user: str | None
    display: str | None
    roles: tuple[str, ...]
    disabled: bool = False

    def get_user_id(self) -> str:  # Authlib's user model
        return self.username


def _user(row: tuple) -> User:
    return User(row[0], row[2], row[3], tuple(orjson.loads(row[4] or "[]")), bool(row[6]))


async def add(db: Database, *, username: str, password: str, fhir_user: str | None, roles: list[str] | None = None,
              display: str | None = None) -> User:
    """Store a new user (password hashed with argon2)."""
    if not username or len(username) > 128 or not username.isprintable() or " " in username:
        raise ValueError("invalid username")
    if fhir_user is not None and not _FHIR_USER.match(fhir_user):
        raise ValueError("fhirUser must be Practitioner/<id>, PractitionerRole/<id>, RelatedPerson/<id> or "
                         "Patient/<id>")
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    user = User(username, fhir_user, display, tuple(roles or ()))
    async with db.write() as c:
        if await c.one("SELECT 1 FROM oauth_user WHERE username = %s", (username,)):
            raise ValueError(f"user {username!r} exists")
        await c.run(f"INSERT INTO oauth_user ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (username, passwords.hash_secret(password), fhir_user, display,
                     orjson.dumps(list(user.roles)).decode(), time.time_ns() // 1000, False))
    return user


async def get(db: Database, username: str) -> User | None:
    if not username or len(username) > 128:
        return None
    async with db.read() as c:
        row = await c.one(f"SELECT {_COLUMNS} FROM oauth_user WHERE username = %s", (username,))
    user = _user(row) if row else None
    return user if user is not None and not user.disabled else None


async def authenticate(db: Database, username: str, password: str) -> User | None:
    """The user when ``password`` is right (one argon2 verification whether the user exists or not)."""
    row = None
    if username and len(username) <= 128 and len(password) <= 1024:
        async with db.read() as c:
            row = await c.one(f"SELECT {_COLUMNS} FROM oauth_user WHERE username = %s", (username,))
    ok = passwords.verify(row[1] if row else None, password[:1024])
    if not ok or row is None or bool(row[6]):
        return None
    return _user(row)


async def list_users(db: Database) -> list[User]:
    async with db.read() as c:
        rows = await c.all(f"SELECT {_COLUMNS} FROM oauth_user ORDER BY username")
    return [_user(r) for r in rows]
