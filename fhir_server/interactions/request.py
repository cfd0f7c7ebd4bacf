"""The HTTP-independent description of one FHIR interaction request, and its result.

The HTTP layer fills an ``Interaction`` from the wire; transaction/batch processing fills one per
bundle entry. Interactions return a ``Result`` that the HTTP layer (or the bundle processor) shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_server.outcome import Issue
from fhir_server.storage.repository import Stored


@dataclass
class Interaction:
    method: str
    rtype: str | None = None
    rid: str | None = None
    vid: str | None = None
    params: list[tuple[str, str]] = field(default_factory=list)
    body: Any = None  # parsed JSON (dict/list) or None
    if_match: str | None = None
    if_none_match: str | None = None
    if_none_exist: str | None = None
    if_modified_since: int | None = None  # µs since epoch
    strict: bool = False  # Prefer: handling=strict


@dataclass
class Result:
    status: int
    stored: Stored | None = None  # a stored version to return (its JSON text is served as is)
    resource: dict[str, Any] | None = None  # or a resource built on the fly (Bundle, OperationOutcome, …)
    raw: bytes | None = None  # or ready JSON bytes (search Bundles glued from stored JSON text)
    location: bool = False  # send Location/ETag/Last-Modified of ``stored``
    issues: list[Issue] = field(default_factory=list)  # warnings/information for Prefer: return=OperationOutcome
    headers: dict[str, str] = field(default_factory=dict)
    #: JSON of ``stored`` when the interaction already has it as a dict (saves a parse)
    stored_json: dict[str, Any] | None = None


def parse_etag(value: str | None) -> int | None:
    """``W/"3"`` / ``"3"`` / ``3`` → 3; anything else → None."""
    if not value:
        return None
    v = value.strip()
    if v.startswith(("W/", "w/")):
        v = v[2:]
    v = v.strip('"')
    return int(v) if v.isdigit() else None
