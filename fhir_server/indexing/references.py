"""Parsing of literal references (``Reference.reference`` strings) into index columns."""

from __future__ import annotations

import re

from fhir_server.definitions import resource_types

_ID_RE = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_TYPES = resource_types()


def parse_reference(ref: str) -> tuple[str | None, str | None, str | None] | None:
    """``(target_type, target_id, url)`` for a literal reference, or None when it gives no index row.

    * ``Patient/123`` and ``Patient/123/_history/4`` -> ``('Patient', '123', None)``
    * ``http://x/fhir/Patient/123[/_history/4]`` -> ``('Patient', '123', 'http://x/fhir/Patient/123')``
      (the version part is dropped from the url too)
    * any other absolute or unrecognised reference (``urn:uuid:..``, ``http://x/other``) -> ``(None, None, ref)``
    * contained references (``#x``) and empty strings -> None
    """
    if not ref or ref[0] == "#":
        return None
    parts = ref.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
        ref = "/".join(parts)
    if len(parts) >= 2:
        rtype, rid = parts[-2], parts[-1]
        if rtype in _TYPES and _ID_RE.fullmatch(rid):
            if len(parts) == 2:
                return rtype, rid, None
            if ":" in parts[0]:  # absolute: scheme://host/.../Type/id
                return rtype, rid, ref
    return None, None, ref


def reference_type(ref: str) -> str | None:
    """The resource type a literal reference points to, if it can be told from the string."""
    parsed = parse_reference(ref)
    return parsed[0] if parsed else None
