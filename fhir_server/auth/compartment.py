"""Patient compartment membership (R4 CompartmentDefinition ``patient``), decided from a resource's JSON.

The enforcement code asks, for a resource body, *which patients' compartments is it in?* A resource is in
``Patient/x``'s compartment when one of the reference search parameters the CompartmentDefinition lists for
its type points at ``Patient/x`` (``Observation.subject``, ``CareTeam.participant.member``, …); a Patient is
in its own compartment. The answer is computed from the body with the same compiled FHIRPath extractors the
search index uses (``indexing.registry``), so it agrees with what compartment search finds, and it needs no
database query — cheap enough for the fast read path (one orjson parse, a few dictionary walks).

Types the CompartmentDefinition lists without parameters (Practitioner, Organization, Location, Medication,
ValueSet, …) are *shared*: in no patient's compartment.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fhir_server.definitions import patient_compartment
from fhir_server.indexing.extract import _walk
from fhir_server.indexing.references import parse_reference
from fhir_server.indexing.registry import SearchParamRegistry

__all__ = ["member_params", "patients_of"]

_Steps = tuple[tuple[str, Any, int | None], ...]


@lru_cache(maxsize=8)
def _plan(registry: SearchParamRegistry) -> dict[str, tuple[tuple[str, tuple[_Steps, ...]], ...]]:
    """Per resource type: (param code, compiled paths) of its Patient compartment reference parameters."""
    out: dict[str, tuple[tuple[str, tuple[_Steps, ...]], ...]] = {}
    for entry in patient_compartment().get("resource") or ():
        rtype = entry["code"]
        items = []
        for code in entry.get("param") or ():
            sp = registry.get(rtype, code)
            if sp is None or sp.type != "reference" or not sp.extractors:
                continue
            paths = tuple(tuple((s.key, s.pred, s.index) for s in ex.path.steps) for ex in sp.extractors
                          if ex.build is not None)
            if paths:
                items.append((code, paths))
        if items:
            out[rtype] = tuple(items)
    return out


def member_params(registry: SearchParamRegistry, rtype: str) -> tuple[str, ...] | None:
    """The compartment parameter codes of ``rtype``; None when ``rtype`` is shared (in no compartment)."""
    if rtype == "Patient":
        return tuple(code for code, _ in _plan(registry).get("Patient", ()))
    items = _plan(registry).get(rtype)
    return tuple(code for code, _ in items) if items else None


def patients_of(registry: SearchParamRegistry, resource: dict[str, Any], base_url: str) -> frozenset[str] | None:
    """Ids of the patients whose compartment ``resource`` is in; None when its type is shared (in no patient
    compartment). References are relative (``Patient/x``) or absolute under ``base_url``."""
    rtype = resource.get("resourceType")
    if type(rtype) is not str:
        return frozenset()
    items = _plan(registry).get(rtype)
    if items is None and rtype != "Patient":
        return None
    out: set[str] = set()
    if rtype == "Patient" and type(resource.get("id")) is str:
        out.add(resource["id"])
    prefix = base_url.rstrip("/") + "/"
    for _, paths in items or ():
        for steps in paths:
            for v in _walk([resource], steps):
                ref = v.get("reference") if type(v) is dict else None
                if type(ref) is not str:
                    continue
                parsed = parse_reference(ref)
                if parsed is None or parsed[0] != "Patient" or parsed[1] is None:
                    continue
                if parsed[2] is None or parsed[2].startswith(prefix):
                    out.add(parsed[1])
    return frozenset(out)
