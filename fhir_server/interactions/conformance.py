"""Conformance resources are resources: StructureDefinition, ValueSet and CodeSystem written through the
API (or shipped in the repo's ``profiles/`` and ``terminology/`` packages and loaded at start) are what
the validator and the terminology service know.

* Base FHIR R4 definitions (types, resources, R4 value sets and code systems) are vendored JSON used
  in memory by the validator and the terminology service; they are not copied into the database
  (as HAPI FHIR's validation support chain: ~2,200 read-only resources would slow every fresh
  start and every search over conformance types).
* The CARES guide's own content (``profiles/data/ig/*.json``, ``terminology/data/cares/*.json``:
  StructureDefinitions, ValueSets, CodeSystems, SearchParameters, a CapabilityStatement) is PUT
  through the API's update at start when missing or changed, so it is readable and searchable at
  ``/fhir/StructureDefinition`` etc. like anything written through the API, and its SearchParameters
  are in force (index rows of existing resources need ``$reindex``).
* Writes/deletes through the API update the in-memory registries right away (``saved``/``deleted``,
  called by ``crud``); a server also loads every stored one at start (``load_stored``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson

from fhir_server.interactions import capability
from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError

log = logging.getLogger(__name__)

TYPES = ("StructureDefinition", "ValueSet", "CodeSystem")
#: what the guide ships: the conformance types plus its SearchParameters and CapabilityStatement
SHIPPED_TYPES = (*TYPES, "SearchParameter", "CapabilityStatement")
ROOT = Path(__file__).resolve().parents[2]
#: where the repository's own conformance resources live (FHIR JSON, one resource or Bundle per file)
SHIPPED_DIRS = (ROOT / "profiles" / "data" / "ig", ROOT / "terminology" / "data" / "cares")


def saved(resource: dict[str, Any]) -> None:
    """A conformance resource was created or updated: make it known to the validator / terminology."""
    rtype = resource.get("resourceType")
    try:
        if rtype == "StructureDefinition":
            from fhir_server.validation.registry import default_registry

            default_registry().add(resource)
            capability.invalidate_all()
        elif rtype in ("ValueSet", "CodeSystem"):
            import terminology

            terminology.on_resource_saved(resource)
    except Exception as e:  # noqa: BLE001 - a bad definition must not break the write that stored it
        log.warning("%s/%s could not be registered: %s", rtype, resource.get("id"), e)


def deleted(rtype: str, body: str | None) -> None:
    """A conformance resource was deleted (``body``: its last JSON)."""
    if not body:
        return
    resource = orjson.loads(body)
    try:
        if rtype == "StructureDefinition" and isinstance(resource.get("url"), str):
            from fhir_server.validation.registry import default_registry

            default_registry().remove(resource["url"])
            capability.invalidate_all()
        elif rtype in ("ValueSet", "CodeSystem"):
            import terminology

            terminology.on_resource_deleted(rtype, resource.get("id"))
    except Exception as e:  # noqa: BLE001
        log.warning("%s/%s could not be unregistered: %s", rtype, resource.get("id"), e)


def shipped_resources() -> list[dict[str, Any]]:
    """The repository's own conformance resources (files under :data:`SHIPPED_DIRS`)."""
    out: list[dict[str, Any]] = []
    for d in SHIPPED_DIRS:
        for path in sorted(d.glob("*.json")) if d.exists() else []:
            data = orjson.loads(path.read_bytes())
            if data.get("resourceType") == "Bundle":
                out += [e["resource"] for e in data.get("entry", []) if "resource" in e]
            else:
                out.append(data)
    return [r for r in out if r.get("resourceType") in SHIPPED_TYPES and r.get("id")]


async def load_shipped(svc: Services) -> int:
    """Upsert the shipped conformance resources whose stored copy is missing or differs (on start)."""
    changed = 0
    for resource in shipped_resources():
        current = await svc.repo.read(resource["resourceType"], resource["id"])
        if current is not None and not current.deleted and current.body:
            old = {k: v for k, v in orjson.loads(current.body).items() if k != "meta"}
            if old == {k: v for k, v in resource.items() if k != "meta"}:
                continue  # unchanged (meta holds the server's versionId/lastUpdated)
        # through the API's own update: structure and profile checks, SearchParameter registration, hooks
        from fhir_server.interactions import crud
        from fhir_server.interactions.request import Interaction

        try:
            await crud.update(svc, Interaction("PUT", resource["resourceType"], resource["id"], body=resource))
        except FhirError as e:  # a packaging bug: refuse to start rather than serve half a guide
            raise RuntimeError(f"shipped {resource['resourceType']}/{resource['id']} is invalid: {e}") from None
        changed += 1
    if changed:
        log.info("conformance resources shipped with the server: %d stored or updated", changed)
    return changed


async def load_stored(svc: Services) -> int:
    """Register every stored conformance resource with the validator / terminology (on start)."""
    n = 0
    async with svc.db.read() as c:
        for rtype in TYPES:
            after = 0
            while True:
                rows = await svc.repo.current_batch(c, rtype, after, 500)
                if not rows:
                    break
                for _, _, body in rows:
                    saved(orjson.loads(body))
                    n += 1
                after = rows[-1][0]
    return n
