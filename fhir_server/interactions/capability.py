"""The CapabilityStatement, generated from what is implemented: every R4 resource type with the
interactions the router serves, the search parameters the search compiler accepts, and formats."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_server import __version__
from fhir_server.definitions import resource_types
from fhir_server.interactions.request import Result
from fhir_server.interactions.services import Services

_TYPE_INTERACTIONS = ["read", "vread", "update", "patch", "delete", "history-instance", "history-type",
                      "create", "search-type"]
#: the parameter types the search compiler handles (fhir_server.search.parser)
SUPPORTED_PARAM_TYPES = ("token", "reference", "string", "date", "uri", "number", "quantity")
_COMMON_PARAMS = [
    {"name": "_id", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id"},
    {"name": "_lastUpdated", "type": "date",
     "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"},
]
#: full-text parameters (fhir_server.indexing.text), advertised where R4 defines them for the type
_TEXT_PARAMS = ("_text", "_content")


def _revincludes(svc: Services) -> dict[str, list[str]]:
    """For each type, the ``Source:param`` reference parameters that can point at it."""
    out: dict[str, list[str]] = {}
    for source in sorted(resource_types()):
        for code, p in sorted(svc.registry.params_for(source).items()):
            if p.type == "reference":
                for target in p.targets:
                    out.setdefault(target, []).append(f"{source}:{code}")
    return out


def _operations() -> tuple[dict[str, list[dict[str, str]]], list[dict[str, str]]]:
    """The registered operations (``operations.py``) per resource type, and the system-level ones."""
    from fhir_server.interactions.operations import registered

    per_type: dict[str, list[dict[str, str]]] = {}
    system = [{"name": "reindex", "definition": "http://cares-fhir.org/fhir/OperationDefinition/reindex"}]
    for name, op in sorted(registered().items()):
        base = "http://hl7.org/fhir/OperationDefinition/"
        for t in op.types or sorted(resource_types()):
            owner = t if op.types else "Resource"  # e.g. ValueSet-validate-code vs Resource-validate
            per_type.setdefault(t, []).append({"name": name, "definition": f"{base}{owner}-{name}"})
        if op.system:
            system.append({"name": name, "definition": f"{base}Resource-{name}"})
    return per_type, system


def _supported_profiles() -> dict[str, list[str]]:
    """Constraint profiles of resource types the validator knows (vendored R4, the CARES guide, stored)."""
    from fhir_server.validation.registry import default_registry

    reg = default_registry()
    out: dict[str, list[str]] = {}
    types = resource_types()
    for url in sorted(reg.urls()):
        sd = reg.get(url) or {}
        if sd.get("derivation") == "constraint" and sd.get("type") in types:
            out.setdefault(sd["type"], []).append(url)
    return out


def _security(svc: Services) -> dict[str, Any]:
    """``rest[0].security``: the SMART-on-FHIR service and its OAuth endpoints (oauth-uris extension)."""
    from fhir_server.auth.discovery import security

    return security(svc.settings)


def capability_statement(svc: Services) -> dict[str, Any]:
    resources = []
    revincludes = _revincludes(svc)
    ops, system_ops = _operations()
    profiles = _supported_profiles()
    for rtype in sorted(resource_types()):
        params = [{"name": p.code, "type": p.type, "definition": p.url}
                  for code, p in sorted(svc.registry.params_for(rtype).items())
                  if p.type in SUPPORTED_PARAM_TYPES and not code.startswith("_")]
        text = [{"name": p.code, "type": p.type, "definition": p.url}
                for p in (svc.registry.get(rtype, code) for code in _TEXT_PARAMS) if p is not None]
        resources.append({
            "type": rtype,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
            **({"supportedProfile": profiles[rtype]} if profiles.get(rtype) else {}),
            "interaction": [{"code": c} for c in _TYPE_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "not-supported",
            "conditionalUpdate": True,
            "conditionalDelete": "multiple",
            "referencePolicy": ["literal", "local"],
            "searchInclude": [f"{rtype}:{p['name']}" for p in params if p["type"] == "reference"],
            "searchRevInclude": revincludes.get(rtype, []),
            "searchParam": _COMMON_PARAMS + text + params,
            **({"operation": ops[rtype]} if ops.get(rtype) else {}),
        })
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-26",
        "publisher": "CARES FHIR",
        "kind": "instance",
        "software": {"name": "CARES FHIR", "version": __version__},
        "implementation": {"description": "CARES FHIR server for the MassHealth CARES for Kids program",
                           "url": svc.base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "documentation": "Authorization is not enforced (started with --no-auth)." if svc.settings.no_auth
            else "SMART App Launch 2.0 authorization: see security and /.well-known/smart-configuration.",
            **({} if svc.settings.no_auth else {"security": _security(svc)}),
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}],
            "operation": system_ops,
        }],
    }


_CACHE: dict[int, bytes] = {}


def capability_result(svc: Services) -> Result:
    raw = _CACHE.get(id(svc))
    if raw is None:
        raw = _CACHE[id(svc)] = orjson.dumps(capability_statement(svc))
    return Result(200, raw=raw)


def invalidate(svc: Services) -> None:
    """Forget the cached CapabilityStatement (the search parameters it lists changed)."""
    _CACHE.pop(id(svc), None)


def invalidate_all() -> None:
    """Forget every cached CapabilityStatement (the profiles the validator knows changed)."""
    _CACHE.clear()
