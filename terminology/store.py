"""CodeSystems and ValueSets by canonical url (and version): the vendored R4 ones, loaded lazily on first
use, plus those added at runtime (created through the API: :meth:`Store.add` / :meth:`Store.remove`).

A :class:`Layered` view puts per-request resources (read from the database) in front of a store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import orjson

DATA = Path(__file__).resolve().parent / "data"
VENDORED_FILES = ("r4/valuesets.json", "r4/v3-codesystems.json", "r4/v2-tables.json", "not-present.json")
KINDS = ("CodeSystem", "ValueSet")
Resource = dict[str, Any]
#: ``id()`` of every vendored resource object (they live as long as the process: caches may key on it)
VENDORED_IDS: set[int] = set()


def split_canonical(url: str) -> tuple[str, str | None]:
    """``url|version`` → (url, version); a plain url → (url, None)."""
    base, sep, version = url.partition("|")
    return base, (version or None) if sep else None


def _pick(candidates: list[Resource], version: str | None) -> Resource | None:
    """The candidate of ``version`` if there is one, else the last one added (a pinned version this server
    does not have — bindings often pin 4.0.1 — falls back to the one it has)."""
    if not candidates:
        return None
    if version is not None:
        for r in candidates:
            if r.get("version") == version:
                return r
    return candidates[-1]


class Resolver(Protocol):
    def get(self, rtype: str, url: str, version: str | None = None) -> Resource | None: ...

    @property
    def generation(self) -> int: ...


class Store:
    """Thread-safe registry; ``generation`` changes with every runtime add/remove (caches key on it)."""

    def __init__(self, files: Iterable[str] | None = VENDORED_FILES) -> None:
        self._files = tuple(files or ())
        self._vendored: dict[tuple[str, str], list[Resource]] | None = None
        self._runtime: dict[tuple[str, str], list[Resource]] = {}
        self._lock = threading.Lock()
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    def _load(self) -> dict[tuple[str, str], list[Resource]]:
        with self._lock:
            if self._vendored is None:
                out: dict[tuple[str, str], list[Resource]] = {}
                for name in self._files:
                    for e in orjson.loads((DATA / name).read_bytes()).get("entry", []):
                        r = e["resource"]
                        out.setdefault((r["resourceType"], r["url"]), []).append(r)
                        VENDORED_IDS.add(id(r))
                self._vendored = out
            return self._vendored

    def vendored(self, rtype: str, url: str) -> list[Resource]:
        vendored = self._vendored if self._vendored is not None else self._load()
        return vendored.get((rtype, url), [])

    def get(self, rtype: str, url: str, version: str | None = None) -> Resource | None:
        """The ``rtype`` resource of canonical ``url`` (``url|version`` accepted): runtime ones first."""
        if version is None:
            url, version = split_canonical(url)
        found = _pick(self._runtime.get((rtype, url), []), version)
        if found is not None and (version is None or found.get("version") == version):
            return found
        vendored = _pick(self.vendored(rtype, url), version)
        if vendored is not None and (version is None or vendored.get("version") == version):
            return vendored
        return found or vendored

    def urls(self, rtype: str) -> list[str]:
        vendored = self._vendored if self._vendored is not None else self._load()
        return sorted({u for t, u in (*vendored, *self._runtime) if t == rtype})

    def add(self, resource: Resource) -> None:
        """Add (or replace: same type, url, version and id) a CodeSystem / ValueSet."""
        rtype, url = resource.get("resourceType"), resource.get("url")
        if rtype not in KINDS or not isinstance(url, str) or not url:
            return
        with self._lock:
            self._drop_id(rtype, resource.get("id"))
            lst = [r for r in self._runtime.get((rtype, url), [])
                   if not (r.get("version") == resource.get("version") and r.get("id") == resource.get("id"))]
            lst.append(resource)
            self._runtime[(rtype, url)] = lst
            self._generation += 1

    def remove(self, url: str, rtype: str | None = None) -> None:
        """Forget the runtime resources of canonical ``url`` (the vendored ones stay)."""
        with self._lock:
            for t in (rtype,) if rtype else KINDS:
                self._runtime.pop((t, url), None)
            self._generation += 1

    def remove_id(self, rtype: str, rid: str) -> None:
        """Forget the runtime resource ``rtype/rid`` (a delete through the API)."""
        with self._lock:
            self._drop_id(rtype, rid)
            self._generation += 1

    def _drop_id(self, rtype: str, rid: Any) -> None:
        if not rid:
            return
        for key in [k for k in self._runtime if k[0] == rtype]:
            kept = [r for r in self._runtime[key] if r.get("id") != rid]
            if kept:
                self._runtime[key] = kept
            else:
                del self._runtime[key]


class Layered:
    """``extra`` (resources read for one request, by (type, url)) in front of ``base``."""

    def __init__(self, base: Resolver, extra: dict[tuple[str, str], list[Resource]]) -> None:
        self.base = base
        self.extra = extra
        # caches must tell apart two requests with different database contents
        self.signature = tuple(sorted((k, tuple(_version_key(r) for r in v)) for k, v in extra.items()))

    @property
    def generation(self) -> int:
        return self.base.generation

    def get(self, rtype: str, url: str, version: str | None = None) -> Resource | None:
        if version is None:
            url, version = split_canonical(url)
        found = _pick(self.extra.get((rtype, url), []), version)
        if found is not None:
            return found
        return self.base.get(rtype, url, version)


def _version_key(r: Resource) -> tuple[str, str, str]:
    meta = r.get("meta") or {}
    return (str(r.get("id")), str(meta.get("versionId")), str(meta.get("lastUpdated")))


#: the process-wide store (vendored R4 terminology + what the API created)
STORE = Store()
