"""The StructureDefinitions the validator knows: base R4 types, vendored R4 profiles and extensions, runtime additions.

``ProfileRegistry`` maps canonical urls (``url`` or ``url|version``) to StructureDefinitions and caches, per url,
the generated snapshot (``snapshot(url)``, see ``snapshot.py``) and the compiled validation tree (``profile.py``).
``add(sd)`` / ``remove(url)`` drop the caches that may depend on the changed definition (all of them: profiles can
derive from profiles).

Reference target profiles (FHIR R4 ``ElementDefinition.type.targetProfile``): ``is_constraint(url)``,
``derives_from(url, ancestor)`` (the ``baseDefinition`` chain) and ``target_profile_types(url)`` (the resource types
whose references a profile — or a type profile / extension it uses — restricts to constraint profiles: a write that
claims such a profile needs the stored targets' ``meta.profile``, see ``interactions/profile_checks.py``).
"""

from __future__ import annotations

import re
import threading
from functools import cache
from typing import Any

import orjson

from fhir_server.definitions import R4_DIR, structure_definitions
from fhir_server.validation.snapshot import SnapshotError, generate_snapshot

__all__ = ["BASE", "ProfileRegistry", "default_registry"]

BASE = "http://hl7.org/fhir/StructureDefinition/"

#: ``<element path>.resolve()`` in an invariant (a plain path from the element the invariant is on)
_RESOLVE = re.compile(r"(?<![\w'%).])([A-Za-z]\w*(?:\.[A-Za-z]\w*)*)\.resolve\(\)")
#: ``extension('<url>').value.resolve()`` in an invariant
_EXTENSION_RESOLVE = re.compile(r"extension\('([^']+)'\)\.value(?:\.ofType\(Reference\))?\.resolve\(\)")


@cache
def _base_constraint_types() -> list[dict[str, Any]]:
    """The constraint profiles published among the R4 data types (SimpleQuantity, MoneyQuantity)."""
    bundle = orjson.loads((R4_DIR / "profiles-types.json").read_bytes())
    return [e["resource"] for e in bundle["entry"] if e["resource"].get("derivation") == "constraint"]


class ProfileRegistry:
    """Known StructureDefinitions by canonical url, with generated snapshots cached per url."""

    def __init__(self, *, vendored: bool = True) -> None:
        self._sds: dict[str, dict[str, Any]] = {}
        self._snapshots: dict[str, list[dict[str, Any]]] = {}
        self.problems: dict[str, list[str]] = {}  # url -> snapshot generation problems
        self.trees: dict[str, Any] = {}  # url -> compiled tree (filled by profile.py)
        self._target_types: dict[str, frozenset[str]] = {}  # url -> target_profile_types(url)
        self._resolved_types: dict[str, frozenset[str]] = {}  # url -> resolved_types(url)
        self._pinned: frozenset[str] = frozenset()  # urls known in one version only: `url|other` is unknown
        self._lock = threading.RLock()
        for sd in structure_definitions().values():
            self._sds[sd["url"]] = sd
        for sd in _base_constraint_types():
            self._sds.setdefault(sd["url"], sd)
        if vendored:
            from profiles import extension_definitions, other_profiles, uscore_profiles

            self._sds.update(extension_definitions())
            self._sds.update(other_profiles())
            self._sds.update(uscore_profiles())  # US Core 5.0.1 (the CARES member profile derives from it)
            self._pinned = frozenset(uscore_profiles())  # a claim of us-core-patient|9.0.0 is not 5.0.1

    # -- membership ---------------------------------------------------------------------------------------------
    def add(self, sd: dict[str, Any]) -> None:
        """Add (or replace) a StructureDefinition; its snapshot is generated on first use."""
        if sd.get("resourceType") != "StructureDefinition" or not isinstance(sd.get("url"), str):
            raise ValueError("not a StructureDefinition with a url")
        if "snapshot" not in sd and "differential" not in sd:
            raise ValueError(f"{sd['url']}: a StructureDefinition needs a snapshot or a differential")
        with self._lock:
            self._sds[sd["url"]] = sd
            self._invalidate()

    def remove(self, url: str) -> None:
        with self._lock:
            self._sds.pop(url.split("|")[0], None)
            self._invalidate()

    def _invalidate(self) -> None:
        self._snapshots.clear()
        self.trees.clear()
        self.problems.clear()
        self._target_types.clear()
        self._resolved_types.clear()

    def get(self, url: str) -> dict[str, Any] | None:
        """The StructureDefinition with this canonical url (a ``|version`` suffix is ignored, except for the
        vendored US Core definitions: another US Core version than the vendored one is not known here)."""
        sd = self._sds.get(url)
        if sd is None and "|" in url:
            base, _, version = url.partition("|")
            sd = self._sds.get(base)
            if sd is not None and base in self._pinned and version and version != sd.get("version"):
                return None
        return sd

    def __contains__(self, url: str) -> bool:
        return self.get(url) is not None

    def urls(self) -> list[str]:
        return list(self._sds)

    def type_of(self, url: str) -> str | None:
        """The resource or data type a profile constrains (``Observation`` for vitalsigns)."""
        sd = self.get(url)
        return None if sd is None else sd.get("type")

    def is_constraint(self, url: str) -> bool:
        """``url`` is a known constraint profile (not a base type / resource definition)."""
        sd = self.get(url)
        return sd is not None and sd.get("derivation") == "constraint"

    def derives_from(self, url: str, ancestor: str) -> bool:
        """The profile ``url`` is ``ancestor`` or derives from it through its ``baseDefinition`` chain (versions
        ignored); the chain ends at the first url this registry does not know."""
        want = ancestor.split("|")[0]
        cur: str | None = url.split("|")[0]
        seen: set[str] = set()
        while cur and cur not in seen:
            if cur == want:
                return True
            seen.add(cur)
            sd = self.get(cur)
            base = sd.get("baseDefinition") if sd is not None else None
            cur = base.split("|")[0] if isinstance(base, str) else None
        return False

    def target_profile_types(self, url: str) -> frozenset[str]:
        """The resource types that references in ``url`` (its snapshot, and the type profiles / extensions its
        elements name, recursively) must reach in a conforming *constraint* profile (a ``targetProfile`` naming a
        profile, not just ``http://hl7.org/fhir/StructureDefinition/<Type>``). Empty: no reference of a resource
        conforming to ``url`` needs its target's claimed profiles. Unknown urls and unusable snapshots give empty."""
        key = url.split("|")[0]
        found = self._target_types.get(key)
        if found is None:
            with self._lock:
                found = self._collect_target_types(key, set())
                self._target_types[key] = found
        return found

    def _collect_target_types(self, url: str, stack: set[str]) -> frozenset[str]:
        done = self._target_types.get(url)
        if done is not None:
            return done
        if url in stack or self.get(url) is None:
            return frozenset()
        stack.add(url)
        try:
            elements = self.snapshot(url)
        except (KeyError, SnapshotError):
            return frozenset()
        out: set[str] = set()
        for el in elements:
            for t in el.get("type") or ():
                if t.get("code") == "Reference":
                    for tp in t.get("targetProfile") or ():
                        sd = self.get(tp) if isinstance(tp, str) else None
                        if sd is not None and sd.get("derivation") == "constraint" and isinstance(sd.get("type"), str):
                            out.add(sd["type"])
                for prof in t.get("profile") or ():  # extensions, data type profiles, profiled nested resources
                    if isinstance(prof, str) and self.is_constraint(prof):
                        out |= self._collect_target_types(prof.split("|")[0], stack)
        return frozenset(out)

    def resolved_types(self, url: str) -> frozenset[str]:
        """The resource types the invariants of ``url`` (its snapshot: inherited ones too) reach with ``resolve()``:
        ``<path>.resolve()`` with ``path`` a plain element path from the element the invariant is on (e.g.
        ``participant.member.resolve()`` on CareTeam; choice elements as ``value``), and
        ``extension('<url>').value.resolve()`` (the extension's value targets) — the types their ``targetProfile``
        names. A write checked against ``url`` needs those stored targets for ``resolve()``. Other forms (inside
        ``where()``, relative to ``$this``) are not followed; their targets are fetched only when a constrained
        ``targetProfile`` asks for them (``target_profile_types``)."""
        key = url.split("|")[0]
        found = self._resolved_types.get(key)
        if found is not None:
            return found
        try:
            snapshot = self.snapshot(key) if self.get(key) is not None else []
        except (KeyError, SnapshotError):
            snapshot = []
        by_path = {el.get("path"): el for el in snapshot}
        out: set[str] = set()
        for el in snapshot:
            for c in el.get("constraint") or ():
                expression = c.get("expression") or ""
                if "resolve()" not in expression:
                    continue
                for m in _RESOLVE.finditer(expression):
                    path = f"{el.get('path')}.{m.group(1)}"
                    out |= self._reference_types(by_path.get(path) or by_path.get(path + "[x]") or {})
                for m in _EXTENSION_RESOLVE.finditer(expression):
                    try:
                        ext = self.snapshot(m.group(1))
                    except (KeyError, SnapshotError):
                        continue
                    for value in (e for e in ext if e.get("path") == "Extension.value[x]"):
                        out |= self._reference_types(value)
        with self._lock:
            self._resolved_types[key] = frozenset(out)
        return self._resolved_types[key]

    def _reference_types(self, element: dict[str, Any]) -> set[str]:
        """The resource types an element's Reference ``targetProfile``s name."""
        out: set[str] = set()
        for t in element.get("type") or ():
            for tp in t.get("targetProfile") or () if t.get("code") == "Reference" else ():
                typ = self.type_of(tp) if isinstance(tp, str) else None
                if typ:
                    out.add(typ)
        return out

    # -- snapshots ----------------------------------------------------------------------------------------------
    def snapshot(self, url: str) -> list[dict[str, Any]]:
        """The snapshot elements of ``url``: the published one for base types, generated for constraint profiles
        that have a differential (a published snapshot of a profile is used only when there is no differential).
        Raises ``KeyError`` for an unknown url and ``SnapshotError`` when the differential does not apply."""
        key = url.split("|")[0]
        snap = self._snapshots.get(key)
        if snap is not None:
            return snap
        with self._lock:
            return self._snapshot(key, ())

    def _snapshot(self, url: str, stack: tuple[str, ...]) -> list[dict[str, Any]]:
        snap = self._snapshots.get(url)
        if snap is not None:
            return snap
        sd = self.get(url)
        if sd is None:
            raise KeyError(url)
        if url in stack:
            raise SnapshotError(f"circular baseDefinition: {' -> '.join((*stack, url))}")
        if sd.get("derivation") != "constraint" or "differential" not in sd:
            snap = sd["snapshot"]["element"]
        else:
            base_url = str(sd.get("baseDefinition", "")).split("|")[0]
            if self.get(base_url) is None:
                raise SnapshotError(f"{url}: unknown baseDefinition {base_url}")
            base = self._snapshot(base_url, (*stack, url))

            def type_snapshot(code: str, profile: str | None) -> list[dict[str, Any]] | None:
                for u in (profile, BASE + code):
                    if u and self.get(u) is not None:
                        return self._snapshot(u.split("|")[0], (*stack, url))
                return None

            snap, problems = generate_snapshot(sd, base, type_snapshot)
            if problems:
                self.problems[url] = problems
        self._snapshots[url] = snap
        return snap


_DEFAULT: ProfileRegistry | None = None
_DEFAULT_LOCK = threading.Lock()


def default_registry() -> ProfileRegistry:
    """The process-wide registry (base R4 + vendored R4 profiles and extensions)."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = ProfileRegistry()
    return _DEFAULT
