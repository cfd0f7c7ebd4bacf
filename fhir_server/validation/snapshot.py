"""Snapshot generation for FHIR R4 constraint profiles (profiling.html, "Differential and snapshot").

``generate_snapshot(sd, base_snapshot, type_snapshot)`` applies a profile's ``differential`` to the snapshot of its
``baseDefinition`` (a base R4 type or another profile, whose snapshot the caller resolves recursively, see
``registry.ProfileRegistry.snapshot``) and returns the new snapshot's element list. The rules implemented:

* every differential element is located in the snapshot by its ``id`` (or by ``path`` + ``sliceName`` when the
  id is absent), and its properties are merged into the snapshot element: ``min``/``max`` (narrowing only,
  widening is reported as a problem), ``type`` (replaced: narrowing incl. ``profile``/``targetProfile``),
  ``fixed[x]``/``pattern[x]``, ``binding``, ``slicing`` (merged into the base slicing), ``mustSupport``,
  ``constraint`` (added; same key replaces), ``condition`` (union), and any other property (overwritten);
* **unrolling**: when the differential constrains children of an element whose children are not in the snapshot
  yet (``Observation.code.coding.system``), the element's type is expanded first, from the snapshot of its
  ``type.profile`` when it has one (extension profiles, constrained data types) or of the base data type, or from
  the element named by its ``contentReference``;
* **slicing**: a differential element with a ``sliceName`` not yet in the snapshot creates a slice: a copy of the
  sliced element (without its ``slicing``, with ``min`` 0 unless the differential says otherwise) and of its
  children, inserted after the last existing slice of that element;
* **choice renames**: ``Observation.valueQuantity`` (a type-specific name of ``value[x]``) becomes the slice
  ``Observation.value[x]:valueQuantity`` with its type restricted to ``Quantity``; ``value[x]`` gets
  ``slicing`` ``type`` on ``$this`` when it has none.

Not implemented: re-slicing (``:a/b``), ``sliceIsConstraining``, and checking that a derived ``binding`` is
compatible with the base one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

__all__ = ["SnapshotError", "generate_snapshot", "id_segments"]

Element = dict[str, Any]
TypeSnapshot = Callable[[str, str | None], list[Element] | None]  # (type code, profile url) -> snapshot elements

_KEEP_FROM_BASE = {"id", "path", "sliceName", "base"}


class SnapshotError(ValueError):
    """The differential cannot be applied to the base snapshot."""


def id_segments(element_id: str) -> list[str]:
    """``Observation.component:SystolicBP.code`` -> ``["Observation", "component:SystolicBP", "code"]``.

    Slice names may contain dots only in extension urls (not used in R4 profiles); a ``:`` starts a slice name that
    runs to the next ``.``.
    """
    return element_id.split(".")


def _diff_id(el: Element) -> str:
    if el.get("id"):
        return str(el["id"])
    path = str(el["path"])
    return f"{path}:{el['sliceName']}" if el.get("sliceName") else path


def _card(v: Any) -> float:
    return float("inf") if v == "*" else float(v)


class _Builder:
    def __init__(self, elements: list[Element], type_snapshot: TypeSnapshot, url: str) -> None:
        self.els = elements
        self.type_snapshot = type_snapshot
        self.url = url
        self.problems: list[str] = []
        self._reindex()

    def _reindex(self) -> None:
        self.index = {str(e["id"]): i for i, e in enumerate(self.els)}

    def _subtree_end(self, i: int, include_slices: bool) -> int:
        """Index after the last descendant (and slice, when asked) of element ``i``."""
        eid = self.els[i]["id"]
        j = i + 1
        while j < len(self.els):
            other = self.els[j]["id"]
            if other.startswith(eid + ".") or (include_slices and other.startswith(eid + ":")):
                j += 1
            else:
                break
        return j

    def _insert(self, at: int, new: list[Element]) -> None:
        self.els[at:at] = new
        self._reindex()

    # -- unrolling ----------------------------------------------------------------------------------------------
    def unroll(self, parent_id: str) -> None:
        i = self.index[parent_id]
        parent = self.els[i]
        if i + 1 < len(self.els) and self.els[i + 1]["id"].startswith(parent_id + "."):
            return  # already expanded
        ppath = parent["path"]
        cref = parent.get("contentReference")
        if cref:
            src_path = cref.lstrip("#").split("#")[-1]
            src = [e for e in self.els if e["path"].startswith(src_path + ".") and ":" not in e["id"]]
            children = []
            for e in src:
                c = copy.deepcopy(e)
                c["id"] = parent_id + e["id"][len(src_path):]
                c["path"] = ppath + e["path"][len(src_path):]
                children.append(c)
            self._insert(i + 1, children)
            return
        types = parent.get("type") or []
        if len(types) != 1:
            raise SnapshotError(f"{self.url}: cannot expand {parent_id}: it has {len(types)} types")
        t = types[0]
        code = t["code"]
        profiles = t.get("profile") or []
        snap = self.type_snapshot(code, profiles[0] if len(profiles) == 1 else None)
        if not snap:
            raise SnapshotError(f"{self.url}: cannot expand {parent_id}: no definition of type {code}")
        root_id, root_path = snap[0]["id"], snap[0]["path"]
        children = []
        for e in snap[1:]:
            c = copy.deepcopy(e)
            c["id"] = parent_id + e["id"][len(root_id):]
            c["path"] = ppath + e["path"][len(root_path):]
            children.append(c)
        self._insert(i + 1, children)

    # -- slices -------------------------------------------------------------------------------------------------
    def make_slice(self, base_id: str, slice_name: str, choice_type: str | None) -> None:
        i = self.index[base_id]
        base = self.els[i]
        if choice_type is not None and "slicing" not in base:
            base["slicing"] = {"discriminator": [{"type": "type", "path": "$this"}], "ordered": False,
                               "rules": "open"}
        end = self._subtree_end(i, include_slices=True)
        child_end = self._subtree_end(i, include_slices=False)
        new_id = f"{base_id}:{slice_name}"
        head = copy.deepcopy(base)
        head.pop("slicing", None)
        head["id"] = new_id
        head["sliceName"] = slice_name
        head["min"] = 0
        if choice_type is not None:
            head["type"] = [copy.deepcopy(t) for t in base.get("type", []) if t["code"].lower() == choice_type.lower()]
            if not head["type"]:
                raise SnapshotError(f"{self.url}: {base_id} has no type {choice_type}")
        new = [head]
        for e in self.els[i + 1:child_end]:
            if ":" in e["id"][len(base_id):]:
                continue  # slices of children belong to the base element only
            c = copy.deepcopy(e)
            c["id"] = new_id + e["id"][len(base_id):]
            new.append(c)
        self._insert(end, new)

    def _choice_base(self, parent_id: str, name: str) -> tuple[str, str] | None:
        """``valueQuantity`` under ``parent_id`` -> (``value[x]``, ``Quantity``) when ``value[x]`` allows it."""
        prefix = parent_id + "."
        for eid, i in self.index.items():
            if not (eid.startswith(prefix) and eid.endswith("[x]")) or "." in eid[len(prefix):]:
                continue
            base = eid[len(prefix):-3]
            if name.startswith(base) and len(name) > len(base) and name[len(base)].isupper():
                suffix = name[len(base):]
                for t in self.els[i].get("type", []):
                    if t["code"].lower() == suffix.lower():
                        return base + "[x]", t["code"]
        return None

    # -- locating -----------------------------------------------------------------------------------------------
    def locate(self, did: str) -> int:
        segs = id_segments(did)
        cur = segs[0]
        if cur not in self.index:
            raise SnapshotError(f"{self.url}: differential element {did} does not start at {self.els[0]['id']}")
        for seg in segs[1:]:
            name, _, slice_name = seg.partition(":")
            cand = f"{cur}.{name}"
            if cand not in self.index:
                self.unroll(cur)
            choice_type = None
            if cand not in self.index:
                found = self._choice_base(cur, name)
                if found is None:
                    raise SnapshotError(f"{self.url}: differential element {did}: no element {cand} in the base")
                if slice_name:
                    raise SnapshotError(f"{self.url}: {did}: slicing a type-specific choice name is not supported")
                name, choice_type = found
                slice_name = f"{name[:-3]}{choice_type[0].upper()}{choice_type[1:]}"
                cand = f"{cur}.{name}"
            elif name.endswith("[x]") and slice_name:
                base_name = name[:-3]
                if slice_name.startswith(base_name) and self._choice_base(cur, slice_name):
                    choice_type = self._choice_base(cur, slice_name)[1]  # type: ignore[index]
            if slice_name:
                sid = f"{cand}:{slice_name}"
                if sid not in self.index:
                    self.make_slice(cand, slice_name, choice_type)
                cur = sid
            else:
                cur = cand
        return self.index[cur]

    # -- merging ------------------------------------------------------------------------------------------------
    def merge(self, target: Element, diff: Element) -> None:
        for k, v in diff.items():
            if k in _KEEP_FROM_BASE:
                continue
            if k in ("min", "max"):
                old = target.get(k)
                if old is not None and k == "min" and _card(v) < _card(old) and not target.get("sliceName"):
                    self.problems.append(f"{target['id']}: min {v} is below the base min {old}")
                if old is not None and k == "max" and _card(v) > _card(old) and not target.get("sliceName"):
                    self.problems.append(f"{target['id']}: max {v} is above the base max {old}")
                target[k] = v
            elif k == "constraint":
                cons = list(target.get("constraint", []))
                for c in v:
                    cons = [o for o in cons if o.get("key") != c.get("key")]
                    c = dict(c)
                    c.setdefault("source", self.url)
                    cons.append(c)
                target["constraint"] = cons
            elif k == "condition":
                target["condition"] = list(dict.fromkeys([*target.get("condition", []), *v]))
            elif k == "slicing":
                target["slicing"] = {**target.get("slicing", {}), **v}
            elif k.startswith(("fixed", "pattern")):
                for old in [o for o in target if o.startswith(("fixed", "pattern"))]:
                    del target[old]
                target[k] = copy.deepcopy(v)
            else:
                target[k] = copy.deepcopy(v)


def generate_snapshot(sd: dict[str, Any], base_snapshot: list[Element], type_snapshot: TypeSnapshot
                      ) -> tuple[list[Element], list[str]]:
    """The snapshot elements of constraint profile ``sd`` over ``base_snapshot``, and any problems found.

    ``type_snapshot(code, profile_url)`` returns the snapshot of a data type (or of the profile on it) for
    unrolling. Raises ``SnapshotError`` when a differential element cannot be placed.
    """
    b = _Builder(copy.deepcopy(base_snapshot), type_snapshot, str(sd.get("url", "?")))
    for diff in sd.get("differential", {}).get("element", []):
        did = _diff_id(diff)
        i = b.locate(did)
        b.merge(b.els[i], diff)
    return b.els, b.problems
