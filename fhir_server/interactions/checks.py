"""Checks on a resource body before it is written (structure; profiles arrive with the validator issue)."""

from __future__ import annotations

import re
from typing import Any

from fhir_server.definitions import resource_types
from fhir_server.outcome import FhirError
from fhir_server.validation.structure import validate_structure

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def known_type(rtype: str) -> str:
    """``rtype`` if it is an R4 resource type, else 404 (unknown resource type in the URL)."""
    if rtype not in resource_types():
        raise FhirError.of(404, "not-supported", f"Unknown resource type '{rtype[:64]}'")
    return rtype


def valid_id(rid: str) -> str:
    if not _ID.fullmatch(rid):
        raise FhirError.of(400, "invalid", "Resource id must match [A-Za-z0-9-.]{1,64}")
    return rid


def resource_body(body: Any, rtype: str | None) -> dict[str, Any]:
    """The body as a structurally valid R4 resource of type ``rtype`` (any type when None), else 400."""
    if not isinstance(body, dict):
        raise FhirError.of(400, "structure", "The body must be a FHIR resource (a JSON object)")
    got = body.get("resourceType")
    if not isinstance(got, str):
        raise FhirError.of(400, "structure", "The body has no resourceType")
    if rtype is not None and got != rtype:
        raise FhirError.of(400, "invalid", f"The body is a {got[:64]}, the URL names {rtype}", "resourceType")
    if rtype is None:
        known_type(got)
    issues = validate_structure(body)
    errors = [i for i in issues if i.severity in ("error", "fatal")]
    if errors:
        raise FhirError(400, errors)
    return body
