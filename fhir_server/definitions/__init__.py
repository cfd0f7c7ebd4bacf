"""Loaders for the vendored FHIR R4 definitions (see ``vendor.py`` for where they come from)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson

R4_DIR = Path(__file__).resolve().parent / "r4"


def _load(name: str) -> Any:
    return orjson.loads((R4_DIR / name).read_bytes())


@cache
def structure_definitions() -> dict[str, dict[str, Any]]:
    """Base StructureDefinitions of all R4 resources and data types, by type name."""
    out: dict[str, dict[str, Any]] = {}
    for name in ("profiles-types.json", "profiles-resources.json"):
        for e in _load(name)["entry"]:
            sd = e["resource"]
            if sd.get("derivation") != "constraint":
                out[sd["type"]] = sd
    return out


@cache
def resource_types() -> frozenset[str]:
    """Concrete (non-abstract) R4 resource type names, e.g. ``CarePlan``."""
    return frozenset(name for name, sd in structure_definitions().items()
                     if sd.get("kind") == "resource" and not sd.get("abstract"))


@cache
def search_parameters() -> list[dict[str, Any]]:
    """All R4 SearchParameter resources as published."""
    return [e["resource"] for e in _load("search-parameters.json")["entry"]]


@cache
def patient_compartment() -> dict[str, Any]:
    """The R4 Patient CompartmentDefinition."""
    return _load("compartmentdefinition-patient.json")
