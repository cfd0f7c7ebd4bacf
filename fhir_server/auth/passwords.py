"""Password and client-secret hashing with argon2 (argon2-cffi): only the hash is stored. ``verify`` takes the
same time whether the hash exists or not (an unknown user or client still costs one argon2 verification), and
argon2's own comparison is constant-time."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["hash_secret", "verify"]

_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not-a-real-secret")


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify(stored_hash: str | None, secret: str) -> bool:
    """True when ``secret`` matches ``stored_hash`` (False for no hash, after the same amount of work)."""
    try:
        return _hasher.verify(stored_hash or _DUMMY, secret) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
