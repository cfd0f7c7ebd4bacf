"""SMART scopes (App Launch 2.0 "Scopes and Launch Context"), v1 and v2, parsed once per token.

Resource scopes are ``<context>/<type>.<permissions>[?<param>=<value>&…]``:

* context ``patient`` (the launch patient's compartment), ``user`` (what the user may see) or ``system``;
* type a resource type or ``*``;
* v2 permissions: a non-empty, ordered subset of ``c r u d s`` (create, read, update, delete, search);
  v1 ``read`` = ``rs``, ``write`` = ``cud``, ``*`` = ``cruds``;
* v2 only: query restrictions (``patient/Observation.rs?category=…|laboratory``): the scope only covers
  resources matching them (``ResourceScope.params``).

Anything else (``openid``, ``fhirUser``, ``launch``, ``launch/patient``, ``offline_access``, …) is kept as it is
in ``Scopes.other``. A string that looks like a resource scope but is malformed is not a scope: ``parse_scope``
returns None and ``Scopes.parse`` drops it (``Scopes.invalid`` lists it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

__all__ = ["PERMISSIONS", "ResourceScope", "Scopes", "parse_scope"]

PERMISSIONS = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_RESOURCE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.([a-z*]+)(?:\?(.+))?$")


@dataclass(frozen=True, slots=True)
class ResourceScope:
    context: str  # patient | user | system
    rtype: str  # a resource type or "*"
    perms: frozenset[str]  # a subset of c, r, u, d, s
    params: tuple[tuple[str, str], ...] = ()  # v2 query restrictions
    raw: str = ""
    v1: bool = False

    def covers(self, rtype: str, perm: str) -> bool:
        return perm in self.perms and self.rtype in ("*", rtype)


def parse_scope(text: str) -> ResourceScope | None:
    """A resource scope, or None when ``text`` is not a (well-formed) resource scope."""
    m = _RESOURCE.match(text)
    if m is None:
        return None
    context, rtype, perm, query = m.groups()
    if perm in _V1:
        if query:
            return None  # v1 scopes have no query restrictions
        return ResourceScope(context, rtype, frozenset(_V1[perm]), (), text, True)
    # v2: letters in the order c r u d s, each at most once
    pos = -1
    for ch in perm:
        i = PERMISSIONS.find(ch)
        if i <= pos:
            return None
        pos = i
    params: tuple[tuple[str, str], ...] = ()
    if query:
        params = tuple(parse_qsl(query, keep_blank_values=False, strict_parsing=False))
        if not params:
            return None
    return ResourceScope(context, rtype, frozenset(perm), params, text, False)


@dataclass(frozen=True)
class Scopes:
    resource: tuple[ResourceScope, ...] = ()
    other: frozenset[str] = frozenset()
    invalid: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, text: str | None) -> Scopes:
        resource: list[ResourceScope] = []
        other: set[str] = set()
        invalid: list[str] = []
        for word in (text or "").split():
            if "/" in word and "." in word and word.split("/", 1)[0] in ("patient", "user", "system"):
                rs = parse_scope(word)
                if rs is None:
                    invalid.append(word)
                else:
                    resource.append(rs)
            else:
                other.add(word)
        return cls(tuple(resource), frozenset(other), tuple(invalid))

    def __str__(self) -> str:
        return " ".join([*(s.raw for s in self.resource), *sorted(self.other)])

    def matching(self, rtype: str, perm: str, context: str | None = None) -> list[ResourceScope]:
        """The resource scopes that permit ``perm`` on ``rtype`` (in ``context`` when given)."""
        return [s for s in self.resource if s.covers(rtype, perm) and (context is None or s.context == context)]

    def allows(self, rtype: str, perm: str) -> bool:
        return any(s.covers(rtype, perm) for s in self.resource)

    def contexts(self) -> frozenset[str]:
        return frozenset(s.context for s in self.resource)

    def has(self, word: str) -> bool:
        return word in self.other
